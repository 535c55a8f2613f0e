"""Small codec parameter headers: a version byte and varint fields, read back with limits.

A codec's ``Payload.params`` (its model hyper-parameters, clip layout, ...) written by
:func:`pack_fields` and read by :func:`unpack_fields` / :func:`read_fields` with a range per
field, so a crafted header cannot ask for a gigantic network or allocation.
"""

from __future__ import annotations

from typing import Sequence

from .errors import CorruptStreamError, LimitError
from .varint import decode_varint, encode_varint

__all__ = ["pack_fields", "read_fields", "unpack_fields", "check_version", "check_end"]


def pack_fields(version: int, values: Sequence[int]) -> bytes:
    """``version`` byte, then every value as a varint."""
    return bytes([version]) + b"".join(encode_varint(int(v)) for v in values)


def read_fields(data: bytes, pos: int, limits: Sequence[tuple[str, int, int]]) -> tuple[dict[str, int], int]:
    """Read the varint fields named in ``limits`` ``(name, lo, hi)`` from ``pos``; check each range."""
    out = {}
    for name, lo, hi in limits:
        v, pos = decode_varint(data, pos, name)
        if not lo <= v <= hi:
            raise LimitError(f"codec parameter {name} = {v} outside {lo}..{hi}")
        out[name] = v
    return out, pos


def check_version(data: bytes, version: int) -> int:
    """Position after the version byte, which must be ``version``."""
    if not data:
        raise CorruptStreamError("the codec parameters are missing")
    if data[0] != version:
        raise CorruptStreamError(f"codec parameter version {data[0]} is not {version}")
    return 1


def check_end(data: bytes, pos: int) -> None:
    if pos != len(data):
        raise CorruptStreamError(f"{len(data) - pos} unexpected bytes after the codec parameters")


def unpack_fields(data: bytes, version: int, limits: Sequence[tuple[str, int, int]]) -> dict[str, int]:
    """Inverse of :func:`pack_fields` for a fixed list of fields; anything else is a clear error."""
    out, pos = read_fields(data, check_version(data, version), limits)
    check_end(data, pos)
    return out
