"""PFNR (several videos in one network): quality floor, bit-exact decoding after appending videos,
coded masks, rates, the Fourier subneural operator, crafted payloads.

The registry-wide tests (test_video_codecs.py) run pfnr with a 2-epoch budget; the fits here are
small clips with a few dozen epochs, a few seconds of CPU each.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from fractions import Fraction

import pytest
import torch

from glocal_codec import video
from glocal_codec.bitstream import (BitstreamError, Container, CorruptStreamError, LimitError, MediaKind,
                                    read_container, write_container)
from glocal_codec.bitstream.varint import encode_varint
from glocal_codec.codecs import NO_WEIGHTS, Payload, codec_id
from glocal_codec.bitstream.video_params import pack_video_params
from glocal_codec.codecs.pfnr import MAX_PARAMS, PFNRArch, PFNRCodec, fso

from video_clips import motion, synthetic_clip  # noqa: F401  (fixtures)

BAD = (CorruptStreamError, LimitError)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def to_file(p: Payload, fps: str = "25") -> bytes:
    return write_container(Container(codec_id("pfnr"), NO_WEIGHTS, MediaKind.VIDEO, tuple(p.shape), p.quality,
                                     pack_video_params(Fraction(fps), p.params), tuple(p.streams)))


@pytest.fixture(scope="module")
def two_videos() -> dict:
    """Video A encoded alone, then video B (other frame count, gray) appended to the same network."""
    codec = PFNRCodec(epochs=4)
    a = synthetic_clip(4, 24, 32, seed=1)
    b = synthetic_clip(3, 24, 32, seed=2).mean(dim=1, keepdim=True)
    pa = codec.encode(a, 5)
    pab = codec.append(pa, b)
    return dict(codec=codec, a=a, b=b, pa=pa, ya=codec.decode(pa), pab=pab)


def test_round_trip_through_a_file_with_a_quality_floor(tmp_path) -> None:
    # measured on this clip (seed 0): 29.7 dB after 50 epochs (~6 s on one loaded CPU core)
    x = synthetic_clip(4, 24, 32)
    path = tmp_path / "clip.pfnr.glc"
    path.write_bytes(to_file(PFNRCodec(epochs=50).encode(x, 5), "30000/1001"))
    clip = video.decode_video(path.read_bytes())
    assert clip.fps == Fraction(30000, 1001)
    assert tuple(clip.frames.shape) == tuple(x.shape) and clip.frames.dtype == torch.float32
    assert 0 <= clip.frames.min() and clip.frames.max() <= 1
    assert psnr(clip.frames, x) > 27.5


def test_earlier_video_decodes_bit_exactly_after_append(two_videos: dict) -> None:
    codec, pa, pab = two_videos["codec"], two_videos["pa"], two_videos["pab"]
    assert pab.streams[0] == pa.streams[0]  # the first session's stream is never re-encoded
    assert tuple(pab.shape) == tuple(two_videos["b"].shape)  # the container describes the last video
    assert torch.equal(codec.decode_clip(pab, 0), two_videos["ya"])
    last = codec.decode(pab)
    assert torch.equal(codec.decode_clip(pab, 1), last)
    assert tuple(last.shape) == (3, 1, 24, 32)
    with pytest.raises(IndexError):
        codec.decode_clip(pab, 2)
    # video B reuses frozen weights of video A through its mask and adds fresh ones
    info = codec.inspect(pab)
    assert info[1].mask_ones > info[1].new_weights > 0


def test_append_through_glc_files(two_videos: dict) -> None:
    """A third video appended to a .glc file (the video API): same frame rate, A and B unchanged."""
    codec = two_videos["codec"]
    data = to_file(two_videos["pab"], "24")
    c = synthetic_clip(2, 24, 32, seed=5)
    out = video.append_video(data, c)
    assert isinstance(out, bytes)
    clip = video.decode_video(out)
    assert clip.fps == Fraction(24) and tuple(clip.frames.shape) == (2, 3, 24, 32)
    assert torch.equal(video.decode_video(out, index=0).frames, two_videos["ya"])
    assert torch.equal(video.decode_video(out, index=1).frames, codec.decode(two_videos["pab"]))
    assert [(i.frames, i.channels) for i in codec.clips(two_videos["pab"])] == [(4, 3), (3, 1)]
    with pytest.raises(ValueError, match="24"):
        codec.append(two_videos["pab"], synthetic_clip(2, 16, 32))  # every video of a file has the same size


def test_masks_are_coded_below_one_bit_per_weight(two_videos: dict) -> None:
    codec = two_videos["codec"]
    for s in codec.inspect(two_videos["pab"]):
        assert s.mask_ones == pytest.approx(0.3 * s.weights, rel=0.01)
        assert 8 * s.mask_bytes < 0.95 * s.weights  # H(0.3) = 0.88 bit per weight
        assert s.mask_bytes + s.weight_bytes < s.stream_bytes
    sparse = PFNRCodec(epochs=1, capacity=10).encode(synthetic_clip(2, 24, 32), 3)
    (s,) = PFNRCodec().inspect(sparse)
    assert s.mask_ones == pytest.approx(0.1 * s.weights, rel=0.01)
    assert 8 * s.mask_bytes < 0.55 * s.weights  # H(0.1) = 0.47 bit per weight


def test_rate_grows_with_quality() -> None:
    codec = PFNRCodec(epochs=2)
    x = synthetic_clip(4, 24, 32, seed=4)
    sizes = [len(to_file(codec.encode(x, q))) for q in codec.qualities]
    assert len(sizes) >= 5 and all(a < b for a, b in zip(sizes, sizes[1:])), sizes


def test_encoding_is_deterministic_and_seeded() -> None:
    x = synthetic_clip(2, 9, 7, seed=6)
    assert PFNRCodec(epochs=2).encode(x, 1) == PFNRCodec(epochs=2).encode(x, 1)
    assert PFNRCodec(epochs=2, seed=1).encode(x, 1) != PFNRCodec(epochs=2).encode(x, 1)


def test_fso_is_a_spectral_filter() -> None:
    x = torch.randn(2, 3, 6, 8)
    full = torch.ones(3, 6, 5)  # every row, every rfft column: the identity
    assert torch.allclose(fso(x, full, torch.zeros_like(full)), x, atol=1e-5)
    assert torch.equal(fso(x, torch.zeros(3, 4, 2), torch.zeros(3, 4, 2)), torch.zeros_like(x))
    dc = torch.zeros(3, 2, 1)  # rows 0 and h-1 (vertical frequencies 0 and -1), column 0
    dc[:, 0] = 1  # keeps the DC term of each channel only
    low = fso(x, dc, torch.zeros_like(dc))
    assert torch.allclose(low, x.mean(dim=(2, 3), keepdim=True).expand_as(x), atol=1e-5)
    arch = PFNRCodec().arch_for((8, 3, 48, 64), 3)
    names = [n for n, _, _ in arch.masked_shapes()]
    assert {"fso0.re", "fso0.im", "fso1.re", "fso1.im"} <= set(names)


def test_capacity_and_arguments() -> None:
    with pytest.raises(ValueError):
        PFNRCodec(capacity=0)
    codec = PFNRCodec(epochs=1)
    p = codec.encode(synthetic_clip(1, 2, 2), 1)
    with pytest.raises(TypeError):
        codec.append("not a file", synthetic_clip(1, 2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        codec.append(p, torch.zeros(1, 2, 2, 2))
    assert tuple(codec.decode(codec.append(p, synthetic_clip(1, 2, 2, seed=1))).shape) == (1, 3, 2, 2)


# --- crafted payloads -----------------------------------------------------------------------------


def _params(arch: PFNRArch, **changes) -> bytes:
    return replace(arch, **changes).to_bytes()


def test_crafted_params_are_refused(two_videos: dict) -> None:
    codec, pab = two_videos["codec"], two_videos["pab"]
    arch = PFNRArch.from_bytes(pab.params)
    assert arch.sessions == ((4, 3), (3, 1))
    cases = {
        "other version": b"\x09" + pab.params[1:],
        "cut short": pab.params[:7],
        "trailing byte": pab.params + b"\x00",
        "one session less": _params(arch, sessions=arch.sessions[:1]),
        "one session more": _params(arch, sessions=(*arch.sessions, (3, 1))),
        "other frame count": _params(arch, sessions=(arch.sessions[0], (4, 1))),
        "other size": _params(arch, height=arch.height + 8),
        "other capacity": _params(arch, capacity_pct=50),
        "other width": _params(arch, fc_dim=arch.fc_dim + 1),
        "no capacity": _params(arch, capacity_pct=0),
        "2 channels": _params(arch, sessions=(arch.sessions[0], (3, 2))),
        "more FSO blocks than blocks": _params(arch, fso_blocks=len(arch.strides) + 1),
        "stride out of range": _params(arch, strides=(9,) + arch.strides[1:]),
        "stride out of proportion": _params(arch, strides=(8, 8, 8, 8)),
        "giant network": _params(arch, fc_dim=1024, hidden=1024),
        "huge frame count": _params(arch, sessions=(arch.sessions[0], (1 << 20, 1))),
    }
    for what, params in cases.items():
        with pytest.raises(BAD):
            codec.decode(replace(pab, params=params))
        with pytest.raises(BAD):
            codec.decode_clip(replace(pab, params=params), 0)
        assert what
    giant = replace(arch, fc_dim=1024, hidden=1024)
    assert giant.n_params() > MAX_PARAMS  # refused before a single weight is allocated


def test_crafted_streams_are_refused(two_videos: dict) -> None:
    codec, pab = two_videos["codec"], two_videos["pab"]
    s0, s1 = pab.streams
    n_len = len(encode_varint(PFNRArch.from_bytes(pab.params).n_params()))
    cases = {
        "streams swapped": (s1, s0),
        "stream of a single-video file for session 1": (s0, s0),
        "one stream": (s0,),
        "three streams": (s0, s1, s1),
        "empty stream": (s0, b""),
        "trailing words": (s0, s1 + b"\x01\x02\x03\x04"),
        "trailing bytes": (s0, s1 + b"\x01"),
        "cut short": (s0, s1[: len(s1) // 2]),
        "other weight count": (s0, s1[:1] + encode_varint(12345) + s1[1 + n_len:]),
    }
    for what, streams in cases.items():
        with pytest.raises(BAD):
            codec.decode(replace(pab, streams=streams))
        assert what
    # damage inside the first video breaks the second too (it decodes through the first's weights)
    with pytest.raises(BAD):
        codec.decode(replace(pab, streams=(s0[:5], s1)))


def test_random_damage_never_escapes(two_videos: dict) -> None:
    codec, pab = two_videos["codec"], two_videos["pab"]
    rng = random.Random(7)
    for k in range(40):
        s = bytearray(pab.streams[k % 2])
        for _ in range(rng.randint(1, 4)):
            s[rng.randrange(len(s))] ^= 1 << rng.randrange(8)
        streams = list(pab.streams)
        streams[k % 2] = bytes(s)
        try:
            out = codec.decode(replace(pab, streams=tuple(streams)))
        except BitstreamError:
            continue
        assert tuple(out.shape) == tuple(pab.shape)


def test_file_level_crafted_header(two_videos: dict) -> None:
    data = to_file(two_videos["pab"])
    c = read_container(data)
    with pytest.raises(CorruptStreamError):
        video.decode_video(write_container(replace(c, shape=(4, 3, 24, 32))))  # the first video's shape
    with pytest.raises(ValueError, match="one video"):  # hnerv's id on pfnr's payload: hnerv files hold one video
        video.append_video(write_container(replace(c, codec_id=codec_id("hnerv"))), synthetic_clip(1, 24, 32))
