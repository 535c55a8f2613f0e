"""Video codec plugins (x264, x265, av1 through PyAV; the INR codecs): real files, rates, odd sizes, bad input.

Every test loops over ``list_codecs(media="video")``, so a new video codec is tested the moment
it registers. The INR codecs (fitted per clip) run here with a tiny fitting budget (set in the
root conftest), so their quality floors live in their own tests (``tests/codecs/test_hnerv.py`` etc.).
"""

from __future__ import annotations

import math
import random
import struct
import zlib
from dataclasses import replace
from fractions import Fraction

import pytest
import torch

import glocal_codec as gc
from glocal_codec import video
from glocal_codec.bitstream import (
    BitstreamError,
    ChecksumError,
    Container,
    CorruptStreamError,
    LimitError,
    MediaKind,
    TruncatedError,
    read_container,
    write_container,
)
from glocal_codec.bitstream.container import MAX_FRAMES, MAX_VIDEO_PIXELS
from glocal_codec.bitstream.varint import encode_varint
from glocal_codec.codecs import NO_WEIGHTS, CODEC_IDS, Payload, open_codec

from video_clips import davis_clip, motion, synthetic_clip  # noqa: F401  (fixtures)

pytest.importorskip("av")

VIDEO_CODECS = [c.name for c in gc.list_codecs(media="video")]
#: Fitted codecs: quality depends on the fitting budget, which is tiny in this file.
INR = {"hnerv", "nirvana", "pfnr"}


def no_quality_floor_here(name: str) -> None:
    if name in INR:
        pytest.skip(f"{name} is fitted with a 2-epoch budget here; its quality floor is in tests/codecs/test_{name}.py")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


@pytest.fixture(params=VIDEO_CODECS)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_builtin_video_codecs_are_registered() -> None:
    import av

    have = av.codecs_available
    expected = {"x264": "libx264", "x265": "libx265", "av1": "libsvtav1"}
    for codec, encoder in expected.items():
        if encoder in have:
            assert codec in VIDEO_CODECS
    assert {c.name for c in gc.list_codecs(media="image")}.isdisjoint(VIDEO_CODECS)


def test_plugin_attributes(name: str) -> None:
    c = open_codec(name)
    assert c.media == "video"
    assert CODEC_IDS.get(name, 1024) >= 64  # built-in video ids are 64.., third-party 1024..
    assert len(c.qualities) >= 5
    assert list(c.qualities) == sorted(set(c.qualities))
    assert c.default_quality in c.qualities
    assert c.description and c.weights_available()
    assert all(c.weights_digest(q) == NO_WEIGHTS for q in c.qualities)


def test_round_trip_through_a_file(name: str, motion: torch.Tensor, tmp_path) -> None:
    path = tmp_path / f"clip.{name}.glc"
    path.write_bytes(video.encode_video(motion, codec=name, quality=max(open_codec(name).qualities),
                                        fps="30000/1001"))
    data = path.read_bytes()
    clip = video.decode_video(data)
    assert tuple(clip.frames.shape) == tuple(motion.shape)
    assert clip.frames.dtype == torch.float32 and 0 <= clip.frames.min() and clip.frames.max() <= 1
    assert clip.fps == Fraction(30000, 1001)
    info = gc.read_info(data)
    t, _, h, w = motion.shape
    assert info.media == "video" and info.shape == (t, 3, h, w) and info.frames == t
    assert info.fps == Fraction(30000, 1001)
    assert info.bytes == path.stat().st_size
    assert info.bpp == pytest.approx(8 * path.stat().st_size / (t * h * w))
    assert psnr(clip.frames, motion) > (10 if name in INR else 25.5)


def test_quality_floor_on_davis(name: str, davis_clip) -> None:
    """Natural content: the top level is good, the bottom level cheap; both decoded exactly in size."""
    no_quality_floor_here(name)
    top = video.decode_video(video.encode_video(davis_clip, codec=name, quality=max(open_codec(name).qualities)))
    low_data = video.encode_video(davis_clip, codec=name, quality=min(open_codec(name).qualities))
    low = video.decode_video(low_data)
    assert psnr(top.frames, davis_clip.frames) > 31
    assert psnr(low.frames, davis_clip.frames) > 22
    assert gc.read_info(low_data).bpp < 0.15


def test_rate_increases_with_quality(name: str, motion: torch.Tensor) -> None:
    c = open_codec(name)
    sizes, psnrs = [], []
    for q in c.qualities:
        data = video.encode_video(motion, codec=name, quality=q)
        sizes.append(len(data))
        psnrs.append(psnr(video.decode_video(data).frames, motion))
    assert all(a < b for a, b in zip(sizes, sizes[1:])), f"bytes not increasing: {sizes}"
    if name not in INR:
        assert psnrs[-1] > psnrs[0] + 5, psnrs


@pytest.mark.parametrize("t,h,w", [(5, 37, 65), (1, 9, 7), (3, 2, 2)])
def test_odd_and_tiny_sizes(name: str, t: int, h: int, w: int) -> None:
    x = synthetic_clip(t, h, w, seed=3)
    data = video.encode_video(x, codec=name, quality=5)
    out = video.decode_video(data).frames
    assert tuple(out.shape) == (t, 3, h, w)
    if name not in INR:
        assert psnr(out, x) > (22 if h * w > 100 else 12)  # 2x2: one chroma sample for 4 colours


def test_gray_clip(name: str, motion: torch.Tensor) -> None:
    g = motion.mean(dim=1, keepdim=True).mul(255).round().div(255)
    out = video.decode_video(video.encode_video(g, codec=name, quality=5)).frames
    assert tuple(out.shape) == tuple(g.shape)
    if name not in INR:
        assert psnr(out, g) > 28


def test_encoding_is_deterministic(name: str, motion: torch.Tensor) -> None:
    assert video.encode_video(motion[:4], codec=name, quality=2) == video.encode_video(motion[:4], codec=name, quality=2)


def test_x264_version_sei_is_not_stored(motion: torch.Tensor) -> None:
    if "x264" not in VIDEO_CODECS:
        pytest.skip("x264 not available")
    stream = read_container(video.encode_video(motion[:2], codec="x264", quality=3)).streams[0]
    assert bytes.fromhex("dc45e9bde6d948b7962cd820d923eeef") not in stream
    assert b"x264 - core" not in stream


# --- bad input ---------------------------------------------------------------------------------


@pytest.fixture
def good(name: str, motion: torch.Tensor) -> bytes:
    return video.encode_video(motion[:4], codec=name, quality=3)


def test_truncated_files(good: bytes) -> None:
    for n in sorted({0, 1, 3, 4, 7, 12, 20, len(good) // 3, len(good) // 2, len(good) - 5, len(good) - 1}):
        with pytest.raises(BitstreamError):
            video.decode_video(good[:n])
        with pytest.raises(BitstreamError):
            gc.read_info(good[:n])


def test_flipped_byte_is_a_checksum_error(good: bytes) -> None:
    for pos in (len(good) // 2, len(good) - 10):
        bad = bytearray(good)
        bad[pos] ^= 0x40
        with pytest.raises(BitstreamError):
            video.decode_video(bytes(bad))
    bad = bytearray(good)
    bad[len(good) // 2] ^= 0x01
    with pytest.raises(ChecksumError):
        video.decode_video(bytes(bad))


def _rewrap(data: bytes, **changes) -> bytes:
    """Re-write a file with some fields changed and a *valid* CRC (a crafted file)."""
    return write_container(replace(read_container(data), **changes))


def test_damaged_stream_with_valid_crc_never_escapes(good: bytes) -> None:
    """Garbage inside the stream: decodes to something, or a BitstreamError; nothing else."""
    c = read_container(good)
    s = c.streams[0]
    rng = random.Random(1234)
    for k in range(30):
        b = bytearray(s)
        if k % 3 == 0:
            b = b[: rng.randrange(1, len(b))]
        elif k % 3 == 1:
            for _ in range(rng.randint(1, 6)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        else:
            i = rng.randrange(len(b))
            b[i: i + 16] = bytes(rng.randrange(256) for _ in range(16))
        try:
            clip = video.decode_video(_rewrap(good, streams=(bytes(b),)))
        except BitstreamError:
            continue
        assert tuple(clip.frames.shape) == c.shape


def test_crafted_headers_are_corrupt_stream_errors(name: str, good: bytes) -> None:
    c = read_container(good)
    t, ch, h, w = c.shape
    cases = {
        "fewer frames in header": dict(shape=(t - 1, ch, h, w)),
        "more frames in header": dict(shape=(t + 3, ch, h, w)),
        "other size": dict(shape=(t, ch, h + 40, w + 40)),
        "two streams": dict(streams=(c.streams[0], b"\0")),
        "no stream": dict(streams=()),
        "empty stream": dict(streams=(b"",)),
        "not a stream": dict(streams=(b"\x00\x00\x00\x01" + bytes(range(256)) * 4,)),
        "codec params": dict(params=c.params + b"\x01"),
    }
    for what, change in cases.items():
        with pytest.raises(CorruptStreamError):
            video.decode_video(_rewrap(good, **change))
        assert what


def test_stream_of_another_codec(good: bytes, name: str, motion: torch.Tensor) -> None:
    for other in VIDEO_CODECS:
        if other == name:
            continue
        foreign = read_container(video.encode_video(motion[:4], codec=other, quality=3)).streams[0]
        with pytest.raises(CorruptStreamError):
            video.decode_video(_rewrap(good, streams=(foreign,)))


def test_frame_rate_prefix_is_checked(good: bytes) -> None:
    with pytest.raises(TruncatedError):
        video.decode_video(_rewrap(good, params=b""))
    with pytest.raises(TruncatedError):
        gc.read_info(_rewrap(good, params=b"\x80"))
    with pytest.raises(LimitError):
        video.decode_video(_rewrap(good, params=b"\x00\x01"))
    with pytest.raises(LimitError):
        gc.read_info(_rewrap(good, params=b"\x19\x00"))


def test_max_pixels_refuses_before_decoding(good: bytes) -> None:
    t, _, h, w = read_container(good).shape
    with pytest.raises(LimitError):
        video.decode_video(good, max_pixels=t * h * w - 1)
    assert video.decode_video(good, max_pixels=t * h * w).num_frames == t


def test_container_limits_for_video() -> None:
    # 100,000 frames of a small size are a legal header; the total-pixel cap stops absurd ones.
    Container(64, NO_WEIGHTS, MediaKind.VIDEO, (100_000, 3, 480, 640), 3)
    assert MAX_VIDEO_PIXELS >= 100_000 * 480 * 640
    with pytest.raises(LimitError):
        Container(64, NO_WEIGHTS, MediaKind.VIDEO, (MAX_FRAMES, 3, 1080, 1920), 3)
    with pytest.raises(LimitError):
        Container(64, NO_WEIGHTS, MediaKind.VIDEO, (MAX_FRAMES + 1, 3, 2, 2), 3)
    # The reader applies the same cap, before it looks at anything after the shape.
    ok = write_container(Container(64, NO_WEIGHTS, MediaKind.VIDEO, (1, 3, 2, 2), 3, b"\x19\x01", (b"",)))
    head, tail = ok[:10], ok[14:-4]  # magic, version, id, digest, media | after the 4 shape bytes
    body = head + encode_varint(MAX_FRAMES) + b"\x03" + encode_varint(4000) + encode_varint(4000) + tail
    with pytest.raises(LimitError, match="pixels in all"):
        read_container(body + struct.pack("<I", zlib.crc32(body)))


def test_api_keeps_images_and_videos_apart(name: str, good: bytes, motion: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="video codec"):
        gc.encode(motion[0], codec=name)
    with pytest.raises(ValueError, match="video"):
        gc.decode(good)
    img = gc.encode(motion[0], codec="jpeg", quality=5)
    with pytest.raises(ValueError, match="image"):
        video.decode_video(img)
    with pytest.raises(ValueError, match="image codec"):
        video.encode_video(motion, codec="jpeg")
    with pytest.raises(ValueError, match="quality"):
        video.encode_video(motion, codec=name, quality=99)


def test_codec_decode_checks_payload_directly(name: str) -> None:
    c = open_codec(name)
    with pytest.raises(CorruptStreamError):
        c.decode(Payload((2, 3, 8, 8), 3, b"", ()))
    with pytest.raises(CorruptStreamError):
        c.decode(Payload((2, 3, 8), 3, b"", (b"\0\0\0\1",)))
    with pytest.raises(ValueError):
        c.encode(torch.zeros(3, 8, 8), 3)
    with pytest.raises(ValueError):
        c.encode(torch.zeros(1, 3, 8, 8), 0)
