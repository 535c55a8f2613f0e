"""Unsigned LEB128 varints: known encodings, round trips, strict reading."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glocal_codec.bitstream import LimitError, TruncatedError, decode_varint, encode_varint
from glocal_codec.bitstream.varint import MAX_VARINT_BYTES

# The examples written in docs/bitstream.md: the format page and the code must agree.
KNOWN = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (300, "ac02"),
    (512, "8004"),
    (768, "8006"),
    (2200, "9811"),
    (16383, "ff7f"),
    (16384, "808001"),
    (2**63 - 1, "ffffffffffffffff7f"),
]


@pytest.mark.parametrize("value,hexbytes", KNOWN)
def test_known_encodings(value: int, hexbytes: str) -> None:
    assert encode_varint(value).hex() == hexbytes
    assert decode_varint(bytes.fromhex(hexbytes), 0) == (value, len(hexbytes) // 2)


@given(st.integers(min_value=0, max_value=2**63 - 1), st.binary(max_size=8), st.binary(max_size=8))
def test_round_trip_at_any_offset(value: int, before: bytes, after: bytes) -> None:
    enc = encode_varint(value)
    # shortest form: 7 bits per byte
    assert len(enc) == max(1, -(-value.bit_length() // 7))
    got, end = decode_varint(before + enc + after, len(before))
    assert (got, end) == (value, len(before) + len(enc))


def test_small_values_take_one_byte() -> None:
    assert all(len(encode_varint(v)) == 1 for v in range(128))
    assert len(encode_varint(128)) == 2


def test_negative_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        encode_varint(-1)


@pytest.mark.parametrize("data", [b"", b"\x80", b"\xff\xff", b"\x80" * 8])
def test_truncated(data: bytes) -> None:
    with pytest.raises(TruncatedError, match="stream 7 length"):
        decode_varint(data, 0, "stream 7 length")


def test_truncated_at_offset() -> None:
    with pytest.raises(TruncatedError, match="at byte 2"):
        decode_varint(b"\x01\x01\x81", 2)


def test_overlong_is_a_limit_error_not_a_huge_integer() -> None:
    with pytest.raises(LimitError, match=f"longer than {MAX_VARINT_BYTES} bytes"):
        decode_varint(b"\xff" * 100, 0, "shape[1]")
    # exactly the maximum length is still read
    assert decode_varint(b"\x80" * (MAX_VARINT_BYTES - 1) + b"\x01", 0)[0] == 1 << (7 * (MAX_VARINT_BYTES - 1))


def test_non_shortest_form_is_read() -> None:
    # documented: the reader accepts over-long encodings up to 9 bytes
    assert decode_varint(b"\x80\x00", 0) == (0, 2)
