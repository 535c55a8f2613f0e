"""The .glc container: round trips, exact overhead, and every error of the strict reader.

Malformed files are built byte by byte by :func:`raw_glc` (an independent writer following
docs/bitstream.md) so that the *specific* check under test is the one that fires: the CRC is
recomputed over whatever garbage the test put in.
"""

from __future__ import annotations

import random
import struct
import tracemalloc
import zlib
from dataclasses import replace

import pytest

import glocal_codec as gc
from glocal_codec.bitstream import (
    FORMAT_VERSION,
    MAGIC,
    MAX_PIXELS,
    MAX_SIDE,
    BadMagicError,
    BitstreamError,
    ChecksumError,
    Container,
    LimitError,
    MediaKind,
    TruncatedError,
    UnknownCodecError,
    UnsupportedVersionError,
    encode_varint,
    header_size,
    read_container,
    write_container,
)
from glocal_codec.bitstream.container import MAX_STREAMS
from glocal_codec.codecs import CODEC_IDS, CODEC_NAMES

DIGEST = bytes.fromhex("a1b2c3d4")


def v(n: int) -> bytes:
    return encode_varint(n)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def raw_glc(
    *,
    magic: bytes = MAGIC,
    version: int = FORMAT_VERSION,
    codec_id: int = 17,
    digest: bytes = DIGEST,
    media: int = 0,
    shape: tuple[int, ...] = (3, 512, 768),
    quality: int = 3,
    params: bytes = b"",
    streams: tuple[bytes, ...] = (b"z" * 180, b"y" * 2200),
    stream_lengths: tuple[int, ...] | None = None,
    n_streams: int | None = None,
    params_length: int | None = None,
    tail: bytes = b"",
) -> bytes:
    """A .glc file with any field values, valid or not, and a correct CRC."""
    body = bytearray(magic) + bytes([version]) + v(codec_id) + digest + bytes([media])
    for d in shape:
        body += v(d)
    body += v(quality) + v(len(params) if params_length is None else params_length) + params
    body += v(len(streams) if n_streams is None else n_streams)
    lengths = stream_lengths or tuple(len(s) for s in streams)
    for n, s in zip(lengths, streams):
        body += v(n) + s
    return with_crc(bytes(body) + tail)


def kodak_container(n_streams: int = 2) -> Container:
    streams = (b"z" * 180, b"y" * 2200)[:n_streams] if n_streams <= 2 else tuple(b"s" * 100 for _ in range(n_streams))
    return Container(codec_id=17, weights_digest=DIGEST, media=MediaKind.IMAGE, shape=(3, 512, 768),
                     quality=3, params=b"", streams=streams)


# -- round trips and layout -------------------------------------------------------------------


def test_round_trip_every_field() -> None:
    c = Container(codec_id=1234, weights_digest=b"\x00\xff\x10\x20", media=MediaKind.IMAGE,
                  shape=(1, 7, 13), quality=300, params=b"\x01\x02\x03", streams=(b"", b"abc", bytes(range(256))))
    data = write_container(c)
    back = read_container(data)
    assert back == c
    assert back.version == FORMAT_VERSION
    # every accepted input type reads the same
    assert read_container(bytearray(data)) == c
    assert read_container(memoryview(data)) == c


def test_round_trip_video() -> None:
    c = Container(codec_id=80, weights_digest=DIGEST, media=MediaKind.VIDEO, shape=(10, 3, 64, 96), quality=2,
                  streams=(b"w" * 1000,))
    back = read_container(write_container(c))
    assert back == c and back.media is MediaKind.VIDEO and back.shape == (10, 3, 64, 96)


def test_matches_the_documented_worked_example() -> None:
    """docs/bitstream.md walks a 768x512 msh file byte by byte: 2,406 bytes, 26 of overhead."""
    c = kodak_container()
    data = write_container(c)
    assert data == raw_glc()
    assert data[:20].hex() == "474c4301" "11" "a1b2c3d4" "00" "03" "8004" "8006" "03" "00" "02" "b401"
    assert data[200:202].hex() == "9811"
    assert len(data) == 2406
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


@pytest.mark.parametrize("n_streams,stream_size", [(1, 2400), (1, 40_000), (2, 2200), (2, 20_000)])
def test_overhead_of_a_kodak_image_is_at_most_32_bytes(n_streams: int, stream_size: int) -> None:
    streams = tuple(bytes(stream_size) for _ in range(n_streams))
    c = Container(codec_id=17, weights_digest=DIGEST, media=MediaKind.IMAGE, shape=(3, 512, 768), quality=3,
                  streams=streams)
    data = write_container(c)
    overhead = len(data) - sum(len(s) for s in streams)
    assert overhead <= 32
    assert overhead == header_size(c)
    # the fixed part: magic 3 + version 1 + id 1 + digest 4 + media 1 + shape 5 + quality 1
    # + params length 1 + stream count 1 + CRC 4 = 22, plus one length varint per stream
    assert overhead == 22 + sum(len(v(len(s))) for s in streams)


def test_overhead_of_a_third_party_codec_with_params() -> None:
    c = Container(codec_id=5000, weights_digest=DIGEST, media=MediaKind.IMAGE, shape=(3, 2048, 3072), quality=7,
                  params=b"\x00" * 5, streams=(b"a" * 3000, b"b" * 300))
    data = write_container(c)
    assert len(data) - c.payload_bytes == header_size(c) <= 32


def test_real_encoded_file_overhead(kodak_crop) -> None:
    data = gc.encode(kodak_crop, codec="jpeg")
    c = read_container(data)
    assert len(data) - sum(len(s) for s in c.streams) <= 32
    assert gc.read_info(data).header_bytes == len(data) - c.payload_bytes


# -- writer-side validation ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0, 8, 8), (5, 8, 8), (3, 0, 8), (3, 8, MAX_SIDE + 1), (3, 8), (1, 3, 8, 8)])
def test_container_rejects_bad_image_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(LimitError):
        Container(codec_id=1, weights_digest=DIGEST, media=MediaKind.IMAGE, shape=shape, quality=1)


def test_container_rejects_bad_digest_and_writer_limits() -> None:
    with pytest.raises(ValueError, match="digest"):
        Container(codec_id=1, weights_digest=b"abc", media=MediaKind.IMAGE, shape=(3, 8, 8), quality=1)
    good = Container(codec_id=1, weights_digest=DIGEST, media=MediaKind.IMAGE, shape=(3, 8, 8), quality=1)
    with pytest.raises(ValueError, match="quality"):
        write_container(replace(good, quality=1 << 16))
    with pytest.raises(ValueError, match="streams"):
        write_container(replace(good, streams=(b"",) * (MAX_STREAMS + 1)))


# -- strict reader: one test per error ---------------------------------------------------------


def test_not_bytes_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        read_container("GLC...")  # type: ignore[arg-type]


@pytest.mark.parametrize("data", [b"", b"G", b"GL", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"GLD\x01" + b"\0" * 30,
                                  b"glc\x01" + b"\0" * 30])
def test_wrong_magic(data: bytes) -> None:
    with pytest.raises(BadMagicError, match="not a .glc file"):
        read_container(data)


def test_every_truncation_is_a_truncated_error() -> None:
    data = write_container(replace(kodak_container(), streams=(b"z" * 30, b"y" * 50), params=b"pp"))
    for n in range(len(MAGIC), len(data)):
        with pytest.raises(TruncatedError, match=r"truncat|ends|too short") as info:
            read_container(data[:n])
        assert type(info.value) is TruncatedError, n


def test_every_single_byte_flip_is_detected() -> None:
    data = write_container(replace(kodak_container(), streams=(b"z" * 30, b"y" * 50), params=b"pp"))
    rng = random.Random(0)
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF, rng.randrange(1, 256)):
            bad = bytearray(data)
            bad[i] ^= mask
            with pytest.raises(BitstreamError) as info:
                read_container(bytes(bad))
            err = info.value
            if i < len(MAGIC):
                assert isinstance(err, BadMagicError)
            elif i == len(MAGIC):
                assert isinstance(err, UnsupportedVersionError)
            else:
                # either the CRC check itself, or a structural error that also names the CRC
                assert "CRC-32" in str(err), (i, mask, err)


def test_flip_inside_a_stream_is_a_checksum_error() -> None:
    data = bytearray(write_container(kodak_container()))
    data[1000] ^= 0x10
    with pytest.raises(ChecksumError, match="CRC-32 mismatch"):
        read_container(bytes(data))
    data = bytearray(write_container(kodak_container()))
    data[-1] ^= 0x01  # the CRC itself
    with pytest.raises(ChecksumError):
        read_container(bytes(data))


@pytest.mark.parametrize("version", [2, 7, 255])
def test_newer_version(version: int) -> None:
    with pytest.raises(UnsupportedVersionError, match=rf"version {version}.*upgrade"):
        read_container(raw_glc(version=version))


def test_version_zero_is_unknown() -> None:
    with pytest.raises(UnsupportedVersionError, match="unknown .glc format version 0"):
        read_container(raw_glc(version=0))


def test_unknown_codec_id() -> None:
    data = raw_glc(codec_id=999, streams=(b"x" * 10,))
    assert read_container(data).codec_id == 999  # the container itself does not know the registry
    for fn in (gc.read_info, gc.decode, gc.open_container):
        with pytest.raises(UnknownCodecError, match="unknown codec id 999"):
            fn(data)


def test_codec_in_the_table_but_not_installed() -> None:
    registered = {c.codec_id for c in gc.list_codecs()}
    missing = sorted(set(CODEC_NAMES) - registered)
    if not missing:
        pytest.skip("every codec in the id table is registered")
    cid = missing[0]
    with pytest.raises(UnknownCodecError, match=rf"{cid}.*{CODEC_NAMES[cid]}.*not available"):
        gc.decode(raw_glc(codec_id=cid, streams=(b"x",)))


@pytest.mark.parametrize(
    "shape,match",
    [
        ((3, 10**9, 10**9), "outside 1..65536"),
        ((3, MAX_SIDE, MAX_SIDE), f"more than {MAX_PIXELS} pixels"),
        ((3, 0, 64), "outside 1..65536"),
        ((0, 64, 64), "channel count 0"),
        ((99, 64, 64), "channel count 99"),
        ((3, 2**62, 1), "outside 1..65536"),
    ],
)
def test_absurd_shapes(shape: tuple[int, ...], match: str) -> None:
    data = raw_glc(shape=shape, codec_id=1, streams=(b"x" * 10,))
    with pytest.raises(LimitError, match=match) as info:
        read_container(data)
    assert "CRC" not in str(info.value)  # the CRC is fine: the shape check fired on its own
    with pytest.raises(LimitError, match=match):
        gc.decode(data)


def test_absurd_video_frame_count() -> None:
    with pytest.raises(LimitError, match="frame count"):
        read_container(raw_glc(media=1, shape=(10**8, 3, 64, 64)))


def test_unknown_media_kind() -> None:
    with pytest.raises(LimitError, match="unknown media kind 7"):
        read_container(raw_glc(media=7))


def test_quality_beyond_the_limit() -> None:
    with pytest.raises(LimitError, match="quality 70000"):
        read_container(raw_glc(quality=70_000))


def test_stream_count_beyond_the_limit() -> None:
    with pytest.raises(LimitError, match="stream count 5000"):
        read_container(raw_glc(n_streams=5000))


def test_overlong_varint_field() -> None:
    body = MAGIC + b"\x01" + b"\xff" * 20
    with pytest.raises(LimitError, match="codec id .* longer than 9 bytes"):
        read_container(with_crc(body))


def test_trailing_bytes_after_the_last_stream() -> None:
    with pytest.raises(BitstreamError, match="3 unexpected bytes after the last stream") as info:
        read_container(raw_glc(tail=b"abc"))
    assert type(info.value) is BitstreamError


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"stream_lengths": (180, 2**60)}, r"stream 1 needs 1152921504606846976 bytes"),
        ({"stream_lengths": (2**62, 2200)}, r"stream 0 needs"),
        ({"params_length": 2**40}, r"codec parameters needs 1099511627776 bytes"),
        ({"n_streams": MAX_STREAMS}, r"stream 2 length"),
    ],
)
def test_huge_lengths_are_truncation_not_allocation(kwargs: dict, match: str) -> None:
    data = raw_glc(**kwargs)
    with pytest.raises(TruncatedError, match=match):
        read_container(data)


def _peak_bytes(fn, data: bytes) -> int:
    fn(data)  # warm-up: first-use imports and caches are not what is measured
    tracemalloc.start()
    try:
        try:
            fn(data)
        except BitstreamError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "data",
    [
        raw_glc(codec_id=1, shape=(3, 10**9, 10**9), streams=(b"x" * 10,)),
        raw_glc(codec_id=1, shape=(3, 64, 64), streams=(b"x" * 10,), stream_lengths=(2**61,)),
        raw_glc(codec_id=17, params_length=2**50),
        raw_glc(codec_id=17, n_streams=4096, streams=(b"a",), stream_lengths=(2**55,)),
    ],
    ids=["shape", "stream-length", "params-length", "stream-count"],
)
@pytest.mark.parametrize("fn", [read_container, gc.decode, gc.read_info], ids=["read_container", "decode", "read_info"])
def test_no_large_allocation_from_numbers_in_the_file(data: bytes, fn) -> None:
    def call(d: bytes) -> None:
        try:
            fn(d)
        except BitstreamError:
            pass

    assert _peak_bytes(call, data) < 2 * 1024 * 1024


def test_ids_in_files_are_the_frozen_table() -> None:
    # files carry ids, not names: a re-ordering of the registry must not change them
    for c in gc.list_codecs():
        if c.name in CODEC_IDS:
            assert c.codec_id == CODEC_IDS[c.name]
