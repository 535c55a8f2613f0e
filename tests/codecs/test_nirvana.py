"""``nirvana``: a real file and quality floor, group-by-group decoding, what the autoregressive
residuals save, motion adaptivity, the residual coder, crafted parameters and streams."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import glocal_codec as gc
from glocal_codec import video
from glocal_codec.bitstream import BitstreamError, CorruptStreamError, LimitError
from glocal_codec.bitstream.varint import decode_varint
from glocal_codec.codecs import Payload, open_codec
from glocal_codec.codecs.nirvana import (NirvanaArch, NirvanaCodec, PatchNet, _coords, _init_from, choose_patch,
                                            decode_group, encode_group, group_motion)

from video_clips import motion, synthetic_clip  # noqa: F401  (fixtures)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1 / torch.mean((a.double() - b.double()) ** 2).item())


def slow_clip(t: int = 8, h: int = 48, w: int = 64) -> torch.Tensor:
    """A still textured background with a small square moving 2 px a frame (slow, local motion)."""
    bg = synthetic_clip(1, h, w, seed=5)[0]
    frames = []
    for i in range(t):
        f = bg.clone()
        f[:, 10:18, 4 + 2 * i: 12 + 2 * i] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
        frames.append(f)
    return torch.stack(frames)


@pytest.fixture(scope="module")
def real_file(motion: torch.Tensor) -> bytes:
    """The registered codec with a real (small) fitting budget, through a complete .glc file."""
    c = open_codec("nirvana")
    saved = c.epochs
    c.epochs = 60
    try:
        return video.encode_video(motion, codec="nirvana", quality=5)
    finally:
        c.epochs = saved


@pytest.fixture(scope="module")
def quick(motion: torch.Tensor) -> tuple[NirvanaCodec, Payload]:
    c = NirvanaCodec(epochs=2)
    return c, c.encode(motion, 3)


@pytest.mark.slow
def test_quality_floor_through_a_file(real_file: bytes, motion: torch.Tensor, tmp_path) -> None:
    path = tmp_path / "clip.nirvana.glc"
    path.write_bytes(real_file)
    clip = video.decode_video(path.read_bytes())
    assert tuple(clip.frames.shape) == tuple(motion.shape)
    info = gc.read_info(real_file)
    assert info.codec == "nirvana" and info.quality == 5
    assert info.bpp == pytest.approx(8 * path.stat().st_size / (8 * 48 * 64))
    # measured 19.8 dB at 6.6 bpp after 60 epochs (~7 s of a busy CPU) on this textured, panning
    # clip (8 frames, 64x48; 23.0 dB after 100 epochs); a flat grey clip is 15.9 dB, 8x8 block
    # means 17.7 dB
    assert psnr(clip.frames, motion) > 18.0


def test_bytes_grow_with_quality(motion: torch.Tensor) -> None:
    c = NirvanaCodec(epochs=2)
    payloads = [c.encode(motion, q) for q in (1, 3, 5)]
    sizes = [len(p.params) + sum(map(len, p.streams)) for p in payloads]
    assert sizes[0] < sizes[1] < sizes[2], sizes
    widths = [c.base_arch((32, 3, 360, 640), q)[1] for q in c.qualities]
    assert all(a < b for a, b in zip(widths, widths[1:])), widths
    # about the level's parameters per group pixel once the clip is big enough
    arch, width = c.base_arch((32, 3, 360, 640), 3)
    assert arch.n_params(width) == pytest.approx(0.06 * 4 * 360 * 640, rel=0.1)
    assert (arch.patch, arch.group) == (16, 4) and choose_patch(9, 7) == 2


def test_progress_reports_fitting_psnr_and_decodes_group_by_group(quick, motion: torch.Tensor) -> None:
    seen: list[tuple[int, int, str | None]] = []
    NirvanaCodec(epochs=2).encode(motion, 1, progress=lambda d, t, stats=None: seen.append((d, t, stats)))
    assert seen[-1][0] == seen[-1][1] and "dB" in (seen[-1][2] or "")
    assert any("group 2/2" in (s or "") for _, _, s in seen)
    c, payload = quick
    calls: list[tuple[int, int]] = []
    full = c.decode(payload, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 8) for i in range(1, 9)]  # one report per frame (groups of 4 render at once)
    # group 0 decodes (and is yielded) before stream 1 is even read: damage there shows later
    broken = replace(payload, streams=(payload.streams[0], b"\x00" * 7))
    groups = NirvanaCodec().decode_groups(broken)
    start, frames = next(groups)
    assert start == 0 and torch.equal(frames, full[:4])
    with pytest.raises(CorruptStreamError):
        next(groups)


def test_residual_coding_saves_bytes() -> None:
    """Same fitting, same quality: coding group 2 as a residual of group 1 is much cheaper."""
    x = slow_clip()
    res = NirvanaCodec(epochs=15).encode(x, 3)
    ind = NirvanaCodec(epochs=15, residual=False).encode(x, 3)
    assert NirvanaArch.from_bytes(res.params).residual and not NirvanaArch.from_bytes(ind.params).residual
    assert res.streams[0] == ind.streams[0]  # the first group has nothing to refer to
    # measured 2209 vs 2961 bytes (-25 %) for group 2
    assert len(res.streams[1]) < 0.85 * len(ind.streams[1]), (len(res.streams[1]), len(ind.streams[1]))
    a, b = NirvanaCodec().decode(res), NirvanaCodec().decode(ind)
    assert abs(psnr(a, x) - psnr(b, x)) < 0.2


def test_a_repeated_group_is_nearly_free(motion: torch.Tensor) -> None:
    x = torch.cat([motion[:4], motion[:4]])  # group 2 shows group 1 again
    c = NirvanaCodec(epochs=10)
    payload = c.encode(x, 2)
    arch = NirvanaArch.from_bytes(payload.params)
    assert arch.widths[0] == arch.widths[1]
    assert len(payload.streams[1]) < 0.05 * len(payload.streams[0])  # all-zero residuals
    out = c.decode(payload)
    assert torch.equal(out[:4], out[4:])


def test_width_and_budget_follow_motion(motion: torch.Tensor) -> None:
    still_then_moving = torch.cat([motion[:1].expand(4, -1, -1, -1), motion[4:]])
    m = group_motion(still_then_moving, 4)
    assert m[0] == 0 and m[1] > 0.02
    widths, mults = NirvanaCodec.adapt(m, 16)
    # a_k = 0 and 2: widths 0.75x (clamped) and sqrt(2)x, steps 0.5x (x2 for the first group) and 2x
    assert widths == [12, 23] and mults == [1.0, 2.0]
    payload = NirvanaCodec(epochs=2).encode(still_then_moving, 3)
    assert NirvanaArch.from_bytes(payload.params).widths == (12, 23)
    assert len(payload.streams[1]) > len(payload.streams[0])
    # uniform motion: every group at the level's width
    assert NirvanaCodec.adapt(group_motion(motion, 4), 16)[0] == [16, 16]


def test_group_coder_is_exact_and_resizes() -> None:
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 9), (6,), (20, 6, 3, 3)]
    prev = [torch.randn(s, generator=g) for s in shapes]
    cur = [p + 0.01 * torch.randn(p.shape, generator=g) for p in prev]
    prev[0][0, 0], cur[0][0, 0] = 50.0, 0.0  # thousands of steps from the previous value: an escaped symbol
    for bits in (2, 8, 12):
        data, hat = encode_group(cur, prev, bits)
        back = decode_group(data, prev, bits)
        assert all(torch.equal(a, b) for a, b in zip(hat, back))  # bit-exact: encoder and decoder in sync
        step = cur[2].abs().max() / ((1 << (bits - 1)) - 1)
        assert (hat[2] - cur[2]).abs().max() <= step / 2 + 1e-6
    small, _ = encode_group(cur, prev, 8)
    indep, _ = encode_group(cur, [torch.zeros_like(p) for p in prev], 8)
    assert len(small) < 0.6 * len(indep)
    # a wider group starts from the narrower one: same function, new neurons' outputs at zero
    arch = NirvanaArch(4, 16, 16, 4, 4, 3, 2, 4, 4, 8, True, (8, 12))
    narrow, wide = PatchNet(arch, 8), PatchNet(arch, 12)
    _init_from(wide, narrow.state_dict())
    feats = _coords(arch, 4, 4, 4, torch.device("cpu"))
    with torch.no_grad():
        assert torch.allclose(narrow(feats, 4, 4), wide(feats, 4, 4), atol=1e-6)


def test_crafted_params(quick) -> None:
    c, payload = quick
    good = payload.params
    arch = NirvanaArch.from_bytes(good)

    def bad(params: bytes, err: type[BitstreamError] = BitstreamError, shape=None, streams=None) -> None:
        with pytest.raises(err):
            c.decode(Payload(shape or payload.shape, payload.quality, params,
                             payload.streams if streams is None else streams))

    bad(b"", CorruptStreamError)
    bad(bytes([9]) + good[1:], CorruptStreamError)  # unknown version
    bad(good + b"\x00", CorruptStreamError)  # trailing byte
    bad(good[:-1], CorruptStreamError)  # truncated: a group width missing
    bad(good[:5], CorruptStreamError)  # truncated inside the fields
    for field, value in (("patch", 64), ("group", 0), ("bits", 17), ("tile_ch", 0), ("depth", 9),
                         ("frames", 0), ("widths", (0, 8)), ("widths", (2000, 8))):
        bad(replace(arch, **{field: value}).to_bytes(), LimitError)
    bad(replace(arch, patch=6).to_bytes(), CorruptStreamError)  # not a power of two
    bad(replace(arch, widths=arch.widths[:1]).to_bytes(), CorruptStreamError)  # a group without width
    bad(replace(arch, widths=arch.widths + (8,)).to_bytes(), CorruptStreamError)  # one width too many
    bad(replace(arch, frames=9, widths=arch.widths + (8,)).to_bytes(), CorruptStreamError)  # not the header's T
    bad(replace(arch, height=47).to_bytes(), CorruptStreamError)  # not the header's size
    bad(replace(arch, widths=(8, 9)).to_bytes(), CorruptStreamError)  # another network for group 2
    bad(replace(arch, patch=32, tile_ch=64, widths=(1024, 1024)).to_bytes(), LimitError)  # 16.9 M parameters
    huge = replace(arch, frames=1, height=40_000, width=40_000, head_ch=64, widths=(8,))
    bad(huge.to_bytes(), LimitError, shape=(1, 3, 40_000, 40_000), streams=payload.streams[:1])  # refused unbuilt


def test_crafted_streams(quick, motion: torch.Tensor) -> None:
    c, payload = quick
    s0, s1 = payload.streams

    def bad(streams: tuple[bytes, ...]) -> None:
        with pytest.raises(CorruptStreamError):
            c.decode(replace(payload, streams=streams))

    bad((s0,))  # one stream for two groups
    bad((s0, s1, s1))
    bad((s0, b""))
    _, pos = decode_varint(s1, 0)  # the value count; the first tensor's float32 step follows
    for step in (np.nan, np.inf, -1.0, 1e30):
        b = bytearray(s1)
        b[pos: pos + 4] = np.float32(step).tobytes()
        bad((s0, bytes(b)))
    b = bytearray(s1)
    b[pos + 4] = 200  # scale index beyond the table
    bad((s0, bytes(b)))
    # flipped bits inside a body: decodes to something in range, or a clear error
    for k in range(8):
        b = bytearray(s1)
        b[len(b) // 2 + 3 * k] ^= 0x5A
        try:
            out = c.decode(replace(payload, streams=(s0, bytes(b))))
        except BitstreamError:
            continue
        assert out.shape == motion.shape and bool(torch.isfinite(out).all()) and 0 <= out.min() and out.max() <= 1
