"""Unsigned LEB128 varints (the encoding protobuf uses): small numbers take one byte."""

from __future__ import annotations

from .errors import LimitError, TruncatedError

__all__ = ["encode_varint", "decode_varint", "MAX_VARINT_BYTES"]

#: A varint of more than 9 bytes would exceed 63 bits; we never write one, so refuse to read one.
MAX_VARINT_BYTES = 9


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as an unsigned LEB128 varint."""
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes | memoryview, pos: int, what: str = "varint") -> tuple[int, int]:
    """Read a varint at ``pos``; return ``(value, new_pos)``.

    Raises :class:`TruncatedError` if the buffer ends inside it and :class:`LimitError` if it is
    longer than :data:`MAX_VARINT_BYTES` (so a run of 0xFF bytes cannot make a huge integer).
    """
    value = 0
    shift = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= len(buf):
            raise TruncatedError(f"file ends inside the {what} field at byte {pos}")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise LimitError(f"{what} at byte {pos} is longer than {MAX_VARINT_BYTES} bytes")
