"""``overfit``: the per-image overfitted codec (Cool-chic / C3 family), through real files.

The registry-wide tests (test_registry, test_fuzz, test_determinism, compat) run it with the tiny
budget of ``tests/conftest.py``; these check what is particular to it: bits from the file size,
a quality floor after a short fit, monotone rate, bit-exact latents *and* pixels across thread
counts and CPU kernel sets, reproducible encoding, and damaged or absurd files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import glocal_codec as gc
from glocal_codec.bitstream import BitstreamError, CorruptStreamError, LimitError, read_container
from glocal_codec.codecs import NO_WEIGHTS, Codec, Payload, Placeable, open_codec
from glocal_codec.codecs.overfit import LAMBDAS, MAX_PIXELS, PRESETS, OverfitArch, OverfitCodec
from glocal_codec.eval.metrics import psnr

BUDGET = 10  # iterations: code paths, not quality


@pytest.fixture
def crop(kodak_crop: torch.Tensor) -> torch.Tensor:
    return kodak_crop[:, :, 16:80, 32:112].contiguous()  # 64 x 80


@pytest.fixture
def codec() -> OverfitCodec:
    return OverfitCodec(iterations=BUDGET)


def _payload(data: bytes) -> Payload:
    c = read_container(data)
    return Payload(c.shape, c.quality, c.params, c.streams)


def test_protocols_presets_and_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLOCAL_CODEC_OVERFIT_ITERATIONS", raising=False)  # set by conftest for the suite
    c = OverfitCodec()
    assert isinstance(c, Codec) and isinstance(c, Placeable) and c.to("cpu") is c
    assert c.weights_digest(3) == NO_WEIGHTS and c.weights_available()
    assert list(c.qualities) == sorted(LAMBDAS) and len(c.qualities) >= 5
    assert [OverfitCodec(preset=p).iterations for p in ("fast", "medium", "slow")] == \
        [PRESETS[p].iterations for p in ("fast", "medium", "slow")]
    assert OverfitCodec(preset="slow", iterations=7).iterations == 7
    # fits without the 1:1 grid (fast, low qualities) get the preset's larger budget, unless it was set
    low, high = c.arch_for(512, 768, 1), c.arch_for(512, 768, 5)
    assert low.skip == 1 and high.skip == 0
    assert (c.budget(low), c.budget(high)) == (PRESETS["fast"].skip_iterations, PRESETS["fast"].iterations)
    assert OverfitCodec(iterations=7).budget(low) == 7 and OverfitCodec(preset="medium").budget(low) == 1500
    monkeypatch.setenv("GLOCAL_CODEC_OVERFIT_ITERATIONS", "5")
    assert OverfitCodec().iterations == 5
    with pytest.raises(ValueError, match="preset"):
        OverfitCodec(preset="ultra")
    with pytest.raises(ValueError, match="quality"):
        c.encode(torch.rand(1, 3, 8, 8), 99)
    # the registry's instance runs with the test budget (tests/conftest.py)
    assert open_codec("overfit").iterations == BUDGET


def test_round_trip_through_a_real_file(crop: torch.Tensor, tmp_path: Path) -> None:
    data = gc.encode(crop, codec="overfit", quality=3)
    path = tmp_path / "crop.glc"
    path.write_bytes(data)
    back = path.read_bytes()
    x = gc.decode_tensor(back)
    assert x.shape == crop.shape and x.dtype == torch.float32
    # exact fixed-point output: multiples of 1/4096 in [0, 1]
    assert torch.equal(x * 4096, (x * 4096).round()) and 0 <= float(x.min()) and float(x.max()) <= 1
    info = gc.read_info(back)
    assert info.codec == "overfit" and info.bytes == len(data) == path.stat().st_size
    assert info.bpp == 8 * len(data) / (64 * 80)
    img = gc.decode(back)
    assert img.size == (80, 64) and img.mode == "RGB"
    assert torch.equal(gc.decode_tensor(back), x)


def test_quality_floor_after_a_short_fit(kodak_crop: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(open_codec("overfit"), "iterations", 60)
    data = gc.encode(kodak_crop, codec="overfit", quality=3)
    x = gc.decode_tensor(data)
    assert psnr(x, kodak_crop) > 30.0
    assert 8 * len(data) / (96 * 128) < 4.0


def test_more_bits_at_higher_quality(codec: OverfitCodec, crop: torch.Tensor) -> None:
    sizes, quality = [], []
    for q in codec.qualities:
        p = codec.encode(crop, q)
        sizes.append(sum(len(s) for s in p.streams) + len(p.params))
        quality.append(psnr(codec.decode(p), crop))
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes
    assert quality[-1] > quality[0]


def test_encoding_is_reproducible(codec: OverfitCodec, crop: torch.Tensor) -> None:
    a = codec.encode(crop, 2)
    assert codec.encode(crop, 2) == a
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert codec.encode(crop, 2) == a  # small images are fitted on one thread, in float64
    finally:
        torch.set_num_threads(n)
    # the global RNG is left alone
    torch.manual_seed(5)
    before = torch.rand(3)
    torch.manual_seed(5)
    codec.encode(crop[..., :8, :8], 1)
    assert torch.equal(torch.rand(3), before)


def _reference_bits(band: torch.Tensor, valid: torch.Tensor, w: list[torch.Tensor],
                    parent: torch.Tensor | None = None) -> torch.Tensor:
    """The ARM's rate written the plain way (autograd differentiates it): a discretised Laplace's
    mass as the difference of its CDF at y +- 1/2, floored at 2^-20."""
    from glocal_codec.codecs.overfit import CONTEXT, LATENT_MAX
    from glocal_codec.entropy.laplace import laplace_tables

    n, wc = band.shape[-2] - 2, band.shape[-1] - 4
    taps = [band[0, 0, 2 + dr: 2 + dr + n, 2 + dc: 2 + dc + wc] for dr, dc in CONTEXT]
    if parent is not None:
        taps.append(parent[0, 0, 2:, 2:-2])
    h = torch.stack(taps).view(len(taps), -1)
    for i in range(0, len(w), 2):
        h = torch.addmm(w[i + 1][:, None], w[i], h)
        if i < len(w) - 2:
            h = torch.relu(h)
    tab = laplace_tables()
    mu = h[0].clamp(-LATENT_MAX, LATENT_MAX)
    b = torch.exp(tab.log_b_min + tab.log_step * h[1].clamp(0, tab.n_scales - 1))
    y = band[0, 0, 2:, 2:-2].reshape(-1)

    def cdf(v: torch.Tensor) -> torch.Tensor:
        return torch.where(v < 0, 0.5 * torch.exp(v / b), 1 - 0.5 * torch.exp(-v / b))

    p = cdf(y - mu + 0.5) - cdf(y - mu - 0.5)
    return (-torch.log2(p.clamp_min(2.0**-20)) * valid.reshape(-1)).sum()


@pytest.mark.parametrize("parent", [0, 1], ids=["own-grid", "with-parent"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hand_written_rate_gradients_match_autograd(dtype: torch.dtype, parent: int) -> None:
    """The fitting's rate (:func:`overfit._band_bits`: closed-form bits, derivatives and the MLP's
    backward written out) against autograd on the textbook formula in float64: far latents, near
    ones, clamped scales and masked positions included. In float32 the closed form is the more
    accurate one: measured 3e-7 of the largest gradient, the textbook formula 2e-3 (its two
    CDFs cancel for far latents)."""
    from glocal_codec.codecs import overfit

    g = torch.Generator().manual_seed(3)
    arm = overfit.ARM(replace(OverfitCodec().arch_for(64, 64, 3), parent=parent)).double()
    with torch.no_grad():
        for t in arm.tensors():
            t.mul_(1 + torch.rand(t.shape, generator=g, dtype=torch.float64))
        arm.layers[2].bias[1] = 20.0  # scales from the low clamp to mid-range
    w = [t.detach() for t in arm.tensors()]
    band = (torch.randn(1, 1, 11, 37, generator=g, dtype=torch.float64) * 3).round()
    band += torch.rand(band.shape, generator=g, dtype=torch.float64) * 0.4 - 0.2  # relaxed values, as fitted
    band[..., :2, :] = 0
    valid = (torch.rand(1, 1, 9, 33, generator=g) > 0.2).double()
    up = (torch.randn(band.shape, generator=g, dtype=torch.float64) * 2).round() if parent else None
    ref_in = [band.clone().requires_grad_(True), *(t.clone().requires_grad_(True) for t in w)]
    if parent:
        ref_in.append(up.clone().requires_grad_(True))
        ref = _reference_bits(ref_in[0], valid, ref_in[1:-1], ref_in[-1])
    else:
        ref = _reference_bits(ref_in[0], valid, ref_in[1:])
    ref_g = torch.autograd.grad(ref, ref_in)

    band, valid, w = band.to(dtype), valid.to(dtype), [t.to(dtype) for t in w]
    gb, gw = torch.zeros_like(band), [torch.zeros_like(t) for t in w]
    extra = [up.to(dtype), torch.zeros_like(band)] if parent else []
    bits = overfit._band_bits(band, valid, w, gb, gw, *extra)
    tol = 2e-6 if dtype == torch.float32 else 1e-7
    assert float(bits) == pytest.approx(float(ref.detach()), rel=tol)
    for got, want in zip([gb, *gw, *extra[1:]], ref_g):
        assert float((got.double() - want).abs().max()) <= tol * float(want.abs().max())
    assert all(float(t.abs().max()) > 0.05 for t in ref_g)  # not a vacuous check


@pytest.mark.parametrize("parent", [False, True])
def test_wavefront_decodes_every_context_value_first(parent: bool) -> None:
    """Each latent's context (its 12 causal neighbours, and its parent in the coarser grid when the
    entropy model reads it) is decoded in an earlier pass, or is padding (always 0); the lag of
    one pass per grid adds only ``n - 1`` passes."""
    from glocal_codec.codecs.overfit import _Wavefront, grid_sizes

    sizes = grid_sizes(37, 53, 6)
    wf = _Wavefront(sizes, parent)
    when = np.full(wf.size, -1)
    when[wf.flat] = wf.passes
    ctx = wf.ctx_index(0, wf.flat.size)
    assert ctx.shape[1] == 12 + parent
    seen = when[ctx]
    assert ((seen < wf.passes[:, None]) | (seen == -1)).all()
    if parent:  # every latent but the coarsest grid's reads a real parent
        assert ((seen[:, -1] >= 0) == (wf.grid < len(sizes) - 1)).all()
    assert len(wf.bounds) - 1 == 53 + 3 * 37 - 3 + (len(sizes) - 1 if parent else 0)


def test_coarser_grid_context_round_trip(crop: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entropy model that also reads each latent's parent (params version 3): the file decodes
    to exactly the latents the encoder coded, and to the same image as its own fixed-point view."""
    from glocal_codec.codecs import overfit
    from glocal_codec.codecs.overfit_header import PARENT_VERSION, parse_params

    coded = []
    real_code = OverfitCodec._code

    def spy(self, latents, *a, **k):
        coded.append([y.reshape(y.shape[-2:]).numpy().astype(np.int64) for y in latents])
        return real_code(self, latents, *a, **k)

    monkeypatch.setattr(OverfitCodec, "_code", spy)
    codec = OverfitCodec(iterations=BUDGET, parent_context=True)
    assert codec.with_preset("medium").parent_context
    p = codec.encode(crop, 3)
    assert p.params[0] == PARENT_VERSION
    (arch,) = parse_params(p.params)[1]
    assert arch.parent == 1 and arch.context_size() == 13
    back = codec.decode_latents(p)
    assert len(back) == len(coded[0]) and all(np.array_equal(a, b) for a, b in zip(back, coded[0]))
    assert psnr(codec.decode(p), crop) > 25.0
    assert overfit.OverfitArch.from_bytes(replace(arch, parent=0).to_bytes()).parent == 0
    codec.tile = 48  # tiles carry the flag each
    p = codec.encode(crop, 3)
    tile, archs = parse_params(p.params)
    assert tile == 48 and len(archs) == 4 and all(a.parent for a in archs)
    assert psnr(codec.decode(p), crop) > 25.0


def test_learned_upsampling_round_trip(crop: torch.Tensor) -> None:
    """Learned upsampling (params version 4): the taps are fitted, stored in the header against
    the bicubic ones, and the file decodes with them; the bicubic taps give the fixed filter's bits."""
    from glocal_codec.codecs import overfit
    from glocal_codec.codecs.overfit_header import UP_VERSION, parse_params

    codec = OverfitCodec(iterations=200, learned_up=True, skip=0)  # a random start: the taps move
    assert codec.with_preset("slow").learned_up
    p = codec.encode(crop, 4)
    (arch,) = parse_params(p.params)[1]
    assert p.params[0] == UP_VERSION and arch.learned_up and len(arch.up_taps) == 4 * (arch.n_grids - 1)
    assert arch.up_taps != overfit._TAPS * (arch.n_grids - 1)
    x = codec.decode(p)
    assert psnr(x, crop) > 25.0 and torch.equal(OverfitCodec().decode(p), x)
    # fixed point: bicubic taps given explicitly are the fixed filter, bit for bit
    lat = [torch.randint(-40, 40, (1, 1, a, b), dtype=torch.float64) for a, b in overfit.grid_sizes(37, 45, 4)]
    assert torch.equal(overfit.pyramid(lat, fixed=True), overfit.pyramid(lat, fixed=True, taps=[overfit._TAPS] * 3))


def test_skipped_fine_grid_round_trip(crop: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1:1 grid left out (params version 5): the grids start at 1:2, the coarsest stays where it
    was, the file decodes to the latents the encoder coded, and the preset's policy picks it by quality."""
    from glocal_codec.codecs import overfit
    from glocal_codec.codecs.overfit_header import SKIP_VERSION, parse_params

    h, w = crop.shape[-2:]
    coded = []
    real_code = OverfitCodec._code

    def spy(self, latents, *a, **k):
        coded.append([y.reshape(y.shape[-2:]).numpy().astype(np.int64) for y in latents])
        return real_code(self, latents, *a, **k)

    codec = OverfitCodec(iterations=200, skip=1)
    assert codec.with_preset("medium").skip == 1
    try:
        OverfitCodec._code = spy
        p = codec.encode(crop, 3)
    finally:
        OverfitCodec._code = real_code
    (arch,) = parse_params(p.params)[1]
    assert p.params[0] == SKIP_VERSION and arch.skip == 1 and arch.n_grids == overfit.default_grids(h, w) - 1
    back = codec.decode_latents(p)
    assert [g.shape for g in back] == overfit.grid_sizes(h, w, arch.n_grids, 1) == [g.shape for g in coded[0]]
    assert all(np.array_equal(a, b) for a, b in zip(back, coded[0]))
    x = codec.decode(p)
    assert psnr(x, crop) > 24.0 and torch.equal(OverfitCodec().decode(p), x)
    assert arch.macs_per_pixel() < OverfitArch(arch.n_grids + 1, 16, 16, 1, 8, 8).macs_per_pixel() - 300
    # who skips: the option, else the preset's qualities; never the only grid of a tiny picture
    assert OverfitCodec(skip=0).arch_for(512, 768, 1).skip == 0
    assert (OverfitCodec(skip=2).arch_for(1, 1, 3).skip, OverfitCodec(skip=2).arch_for(1, 1, 3).n_grids) == (0, 1)
    upto = PRESETS["fast"].skip_upto
    assert [OverfitCodec(iterations=20).arch_for(512, 768, q).skip for q in sorted(LAMBDAS)] == [0] * len(LAMBDAS)
    monkeypatch.delenv("GLOCAL_CODEC_OVERFIT_ITERATIONS", raising=False)  # the preset's own budget
    assert [OverfitCodec().arch_for(512, 768, q).skip for q in sorted(LAMBDAS)] == [int(q <= upto) for q in sorted(LAMBDAS)]
    with pytest.raises(ValueError, match="skip"):
        OverfitCodec(skip=3)
    # a header that skips more grids than the picture has is refused before decoding
    bad = Payload(p.shape, p.quality, overfit.pack_params([replace(arch, skip=2, n_grids=arch.n_grids + 1)]),
                  p.streams)
    with pytest.raises(LimitError, match="grids"):
        codec.decode(bad)


def test_low_rate_pictures_leave_the_fine_grid_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the preset's low qualities, ``fast`` leaves the 1:1 grid out for pictures whose rate
    hint (a quality-30 JPEG's bpp, scaled per level) is low; other presets and pictures keep it."""
    from glocal_codec.codecs.overfit import RATE_HINT_SCALE, rate_hint

    monkeypatch.delenv("GLOCAL_CODEC_OVERFIT_ITERATIONS", raising=False)
    p = PRESETS["fast"]
    q = p.skip_upto + 1
    assert p.skip_below_bpp > 0 and PRESETS["medium"].skip_below_bpp == 0
    low = 0.5 * p.skip_below_bpp / RATE_HINT_SCALE[q]
    c = OverfitCodec()
    assert c.arch_for(512, 768, q, hint=low).skip == 1 and c.budget(c.arch_for(512, 768, q, hint=low)) == p.skip_iterations
    assert c.arch_for(512, 768, q, hint=4 * low).skip == 0 and c.arch_for(512, 768, q).skip == 0
    assert OverfitCodec(skip=0).arch_for(512, 768, q, hint=low).skip == 0
    assert OverfitCodec(preset="medium").arch_for(512, 768, q, hint=low).skip == 0
    assert OverfitCodec(iterations=20).arch_for(512, 768, q, hint=low).skip == 0  # previews keep it
    assert all(RATE_HINT_SCALE[a] < RATE_HINT_SCALE[b] for a, b in zip(sorted(LAMBDAS), sorted(LAMBDAS)[1:]))
    # the hint: a flat picture costs little, noise a lot; grey pictures work too
    flat = torch.full((1, 3, 64, 96), 0.5)
    noise = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    assert rate_hint(flat) < 0.3 < 2.0 < rate_hint(noise)
    assert rate_hint(noise[:, :1]) > 1.0 and rate_hint(noise) == rate_hint(noise.clone())


def test_params_versions_round_trip_and_bad_v3_is_refused() -> None:
    """Version 1 (whole) and 2 (tiles) are the plain weight streams of older files; version 3 the
    compact ones, with or without the coarser-grid context."""
    from glocal_codec.codecs.overfit_header import pack_params, parse_params

    a = OverfitArch(7, 16, 16, 1, 6, 7)
    c = replace(a, compact=1)
    b = replace(c, parent=1)
    for archs, tile in [([a], 0), ([a, a], 1024), ([c], 0), ([b], 0), ([b, b], 1024), ([c, b], 1024)]:
        assert parse_params(pack_params(archs, tile)) == (tile, archs)
    assert [pack_params(*x)[0] for x in [([a],), ([a, a], 1024), ([c],), ([b],)]] == [1, 2, 3, 3]
    assert OverfitArch.from_bytes(b.to_bytes()) == b
    with pytest.raises(ValueError):
        pack_params([a, c], 1024)  # one weight format per file
    with pytest.raises(ValueError):
        pack_params([replace(a, parent=1)])  # the parent context exists in version 3 only
    with pytest.raises(CorruptStreamError, match="tile"):
        parse_params(bytes([3, 0, 2]) + bytes(pack_params([b])[3:]) * 2)  # fitted whole, yet two tiles
    with pytest.raises(LimitError, match="parent"):
        parse_params(pack_params([b])[:-1] + bytes([2]))
    # version 4: learned upsampling taps, stored against the bicubic ones
    u = replace(b, n_grids=3, learned_up=1, up_taps=(-9, 67, 225, -27, 1024, -1024, 0, 100))
    assert pack_params([u])[0] == 4 and parse_params(pack_params([u])) == (0, [u])
    assert parse_params(pack_params([u, c], 1024)) == (1024, [u, c])
    assert len(pack_params([replace(u, up_taps=(-9, 67, 225, -27) * 2)])) == len(pack_params([c])) + 1 + 8  # 1 byte a tap
    with pytest.raises(ValueError):
        pack_params([replace(u, up_taps=(1, 2, 3))])  # 4 taps per level
    with pytest.raises(ValueError):
        pack_params([replace(u, up_taps=(0, 0, 0, 0, 0, 0, 0, 2000))])
    with pytest.raises(LimitError, match="upsampling_tap"):
        parse_params(pack_params([u])[:-1] + bytes([0xFF, 0x7F]))  # a tap far beyond the limit
    # version 5: grids left out at the fine end, with or without learned taps
    k = replace(c, n_grids=6, skip=1)
    assert pack_params([k])[0] == 5 and parse_params(pack_params([k])) == (0, [k])
    assert parse_params(pack_params([k, replace(u, skip=2), c], 1024)) == (1024, [k, replace(u, skip=2), c])
    assert len(pack_params([k])) == len(pack_params([replace(c, n_grids=6)])) + 2  # learned_up flag + skip
    with pytest.raises(ValueError):
        pack_params([replace(k, skip=3)])
    with pytest.raises(ValueError):
        pack_params([replace(a, skip=1)])  # compact streams only
    with pytest.raises(LimitError, match="skip"):
        parse_params(pack_params([k])[:-1] + bytes([3]))


_PROBE = """
import hashlib, json, sys
import numpy as np, torch
import glocal_codec as gc
from glocal_codec.bitstream import read_container
from glocal_codec.codecs import Payload, open_codec
out = {}
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    c = read_container(data)
    lat = open_codec("overfit").decode_latents(Payload(c.shape, c.quality, c.params, c.streams))
    px = gc.decode_tensor(data).numpy()
    out[path] = [hashlib.sha256(b"".join(g.astype("<i8").tobytes() for g in lat)).hexdigest(),
                 hashlib.sha256(px.tobytes()).hexdigest()]
print(json.dumps(out))
"""


def _fingerprint(data: bytes) -> list[str]:
    lat = open_codec("overfit").decode_latents(_payload(data))
    px = gc.decode_tensor(data).numpy()
    return [hashlib.sha256(b"".join(g.astype("<i8").tobytes() for g in lat)).hexdigest(),
            hashlib.sha256(px.tobytes()).hexdigest()]


@pytest.fixture(scope="module")
def exactness_files(kodak_crop: torch.Tensor, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A natural crop (one-thread decode) and an image above the one-thread size (all threads)."""
    big = torch.nn.functional.interpolate(kodak_crop, size=(130, 140), mode="bilinear", align_corners=False)
    folder = tmp_path_factory.mktemp("overfit-exact")
    files = []
    # the third leaves the 1:1 grid out (params version 5): its pyramid ends in plain upsampling
    for i, (x, q, c) in enumerate([(kodak_crop, 4, "overfit"), (big.clamp(0, 1), 2, "overfit"),
                                   (big.clamp(0, 1), 2, OverfitCodec(skip=1))]):
        files.append(folder / f"{i}.glc")
        files[-1].write_bytes(gc.encode(x, codec=c, quality=q))
    return files


def test_latents_and_pixels_identical_across_thread_counts(exactness_files: list[Path]) -> None:
    n = torch.get_num_threads()
    for path in exactness_files:
        data = path.read_bytes()
        ref = _fingerprint(data)
        try:
            torch.set_num_threads(1)
            one = _fingerprint(data)
            torch.set_num_threads(max(2, n))
            many = _fingerprint(data)
        finally:
            torch.set_num_threads(n)
        assert one == ref == many, path.name


@pytest.mark.slow
def test_latents_and_pixels_identical_with_plain_cpu_kernels(exactness_files: list[Path]) -> None:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    run = subprocess.run([sys.executable, "-c", _PROBE, *map(str, exactness_files)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    other = json.loads(run.stdout.strip().splitlines()[-1])
    for path in exactness_files:
        assert other[str(path)] == _fingerprint(path.read_bytes()), path.name


def test_grayscale_and_odd_sizes(codec: OverfitCodec) -> None:
    g = torch.Generator().manual_seed(3)
    for shape in [(1, 1, 1, 1), (1, 3, 7, 13), (1, 1, 3, 200), (1, 3, 2, 2)]:
        x = torch.rand(*shape, generator=g)
        p = codec.encode(x, 3)
        y = codec.decode(p)
        assert y.shape == x.shape and p.shape == shape[1:]
    gray = torch.rand(1, 1, 20, 24, generator=g)
    y = codec.decode(codec.encode(gray, 5))
    assert y.shape == (1, 1, 20, 24)


@pytest.fixture
def small(codec: OverfitCodec, crop: torch.Tensor) -> Payload:
    return codec.encode(crop[..., :24, :32], 3)


def _fails_cleanly(codec: OverfitCodec, p: Payload) -> None:
    try:
        y = codec.decode(p)
    except BitstreamError:
        return
    assert y.shape[-2:] == p.shape[-2:]


def test_truncated_and_corrupted_streams(codec: OverfitCodec, small: Payload) -> None:
    for i, s in enumerate(small.streams):
        for n in sorted({0, 1, 2, len(s) // 2, len(s) - 4, len(s) - 1}):
            streams = list(small.streams)
            streams[i] = s[:n]
            bad = Payload(small.shape, small.quality, small.params, tuple(streams))
            if n < 2 and i < 2:  # the weight count is gone
                with pytest.raises(BitstreamError):
                    codec.decode(bad)
            else:  # a range coder may not notice a cut (trailing zero words): never another error
                _fails_cleanly(codec, bad)
    rng = np.random.default_rng(7)
    for _ in range(40):
        i = int(rng.integers(0, 3))
        s = bytearray(small.streams[i])
        s[int(rng.integers(0, len(s)))] ^= int(rng.integers(1, 256))
        streams = list(small.streams)
        streams[i] = bytes(s)
        _fails_cleanly(codec, Payload(small.shape, small.quality, small.params, tuple(streams)))
    with pytest.raises(CorruptStreamError):
        codec.decode(Payload(small.shape, small.quality, small.params, small.streams[:2]))
    with pytest.raises(BitstreamError):
        codec.decode(Payload(small.shape, small.quality, small.params[:-1], small.streams))


def test_absurd_headers_are_limit_errors_before_allocation(codec: OverfitCodec, small: Payload) -> None:
    arch = OverfitArch.from_bytes(small.params)
    for field, value in [("n_grids", 200), ("synth_width", 10**6), ("arm_width", 4096), ("n_res", 99),
                         ("arm_bits", 40)]:
        bad = OverfitArch(**{**arch.__dict__, field: value}).to_bytes()
        with pytest.raises(LimitError, match=field):
            codec.decode(Payload(small.shape, small.quality, bad, small.streams))
    # more grids than the image has octaves
    bad = OverfitArch(**{**arch.__dict__, "n_grids": 8}).to_bytes()
    with pytest.raises(LimitError, match="grids"):
        codec.decode(Payload(small.shape, small.quality, bad, small.streams))
    # a gigantic image announced by the header: refused before anything is allocated
    with pytest.raises(LimitError, match="pixels"):
        codec.decode(Payload((3, MAX_PIXELS, 2), small.quality, small.params, small.streams))
    # a network the streams do not hold: refused before the weights are decoded
    bad = OverfitArch(**{**arch.__dict__, "synth_width": 64}).to_bytes()
    with pytest.raises(CorruptStreamError, match="weights"):
        codec.decode(Payload(small.shape, small.quality, bad, small.streams))


def test_presets_through_the_cli_and_the_api(crop: torch.Tensor, tmp_path: Path) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from glocal_codec.cli.app import app
    from glocal_codec.codecs import Presets

    c = open_codec("overfit")
    assert isinstance(c, Presets) and c.presets[0] == "fast" and set(c.presets) == set(PRESETS)
    slow = c.with_preset("slow")
    assert slow.preset == "slow" and slow.iterations == c.iterations == BUDGET  # the explicit budget stays
    src = tmp_path / "crop.png"
    Image.fromarray((crop[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(src)
    out = tmp_path / "crop.glc"
    r = CliRunner().invoke(app, ["encode", str(src), "-o", str(out), "-c", "overfit", "-q", "2", "--preset", "medium"])
    assert r.exit_code == 0, r.output
    assert out.read_bytes() == gc.encode(src, codec=c.with_preset("medium"), quality=2)
    assert gc.decode_tensor(out.read_bytes()).shape == crop.shape
    for codec, preset, match in (("msh", "fast", "msh has no encoder presets"), ("overfit", "ultra", "presets are")):
        r = CliRunner().invoke(app, ["encode", str(src), "-o", str(tmp_path / "x.glc"), "-c", codec,
                                     "--preset", preset])
        assert r.exit_code == 1 and match in r.output and "Traceback" not in r.output, r.output
    # the fitting reports its progress (bpp / PSNR / loss) through the API's callback
    seen: list[tuple] = []
    gc.encode(crop, codec="overfit", quality=2, progress=lambda *a: seen.append(a))
    assert seen and seen[-1][0] == seen[-1][1] == BUDGET and "dB" in seen[-1][2]


def test_info_shows_the_decoder_and_preset_without_torch(crop: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "m.glc"
    path.write_bytes(gc.encode(crop, codec=open_codec("overfit").with_preset("medium"), quality=2))
    code = ("import sys, glocal_codec as gc; i = gc.read_info(sys.argv[1]); print(i.details); "
            "assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    assert "'preset': 'medium'" in out and "synthesis 24 wide" in out and "MACs/pixel" in out


def test_large_pictures_are_fitted_in_tiles_and_decode_from_the_file(crop: torch.Tensor, tmp_path: Path) -> None:
    """A picture of more than tile**2 pixels is fitted tile by tile (bounded memory); the file says
    so, decodes bit-exactly, and damaged tile headers are clear errors."""
    from glocal_codec.codecs.overfit_header import PARENT_VERSION, parse_params

    codec = OverfitCodec(iterations=60)
    codec.tile = 32  # 64 x 80 -> 2 x 3 tiles of 32 x 26-27
    tiled = codec.encode(crop, 3)
    tile, archs = parse_params(tiled.params)
    assert tiled.params[0] == PARENT_VERSION and tile == 32 and len(archs) == 6 and len(tiled.streams) == 18
    whole = OverfitCodec(iterations=60).encode(crop, 3)
    assert whole.params[:3] == bytes([PARENT_VERSION, 0, 1]) and len(whole.streams) == 3  # below tile**2: whole
    x = codec.decode(tiled)
    assert x.shape == crop.shape and psnr(x, crop) > 20
    torch.set_num_threads(1)
    try:
        assert torch.equal(OverfitCodec().decode(tiled), x)  # any instance, any thread count
    finally:
        torch.set_num_threads(os.cpu_count() or 1)
    assert len(codec.decode_latents(tiled)) == sum(a.n_grids for a in archs)
    # through a real file (the API takes the configured instance): rate from its size, info names the tiles
    data = gc.encode(crop, codec=codec, quality=3)
    (tmp_path / "tiled.glc").write_bytes(data)
    back = (tmp_path / "tiled.glc").read_bytes()
    assert torch.equal(gc.decode_tensor(back), x) and read_container(back).params == tiled.params
    info = gc.read_info(back)
    assert info.bpp == 8 * len(data) / (64 * 80)
    assert info.details["tiles"].startswith("6, fitted one by one")
    # a header for another number of tiles, or missing streams: clear errors, nothing decoded
    bad = bytes([PARENT_VERSION, 32, 2]) + tiled.params[3:]
    with pytest.raises(BitstreamError):
        codec.decode(Payload(tiled.shape, tiled.quality, bad, tiled.streams))
    with pytest.raises(CorruptStreamError, match="streams"):
        codec.decode(Payload(tiled.shape, tiled.quality, tiled.params, tiled.streams[:-3]))
    with pytest.raises(CorruptStreamError, match="tiles"):
        codec.decode(Payload((3, 64, 200), tiled.quality, tiled.params, tiled.streams))


def test_coarse_to_fine_fit_round_trip_and_rules(crop: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit that starts at half resolution (``coarse`` iterations) writes an ordinary file: the same
    decoder, the same bytes for the same seed; with the 1:1 grid or without it; and the rules that
    turn it off (short budgets, learned filters, coarser-grid context, tiny pictures) hold."""
    from glocal_codec.codecs import overfit

    monkeypatch.setattr(overfit, "ANALYTIC_BELOW", 20)  # a short budget that still takes the random start
    for skip in (0, 1):
        codec = OverfitCodec(iterations=30, coarse=40, skip=skip)
        arch = codec.arch_for(*crop.shape[-2:], 3)
        assert codec.coarse_budget(arch, *crop.shape[-2:]) == 40
        p = codec.encode(crop, 3)
        x = OverfitCodec().decode(p)
        assert psnr(x, crop) > 18.0
        assert p == OverfitCodec(iterations=30, coarse=40, skip=skip).encode(crop, 3)  # seeded
    plain = OverfitCodec(iterations=30, coarse=0, skip=0).encode(crop, 3)
    assert plain != OverfitCodec(iterations=30, coarse=40, skip=0).encode(crop, 3)
    c = OverfitCodec(iterations=30, coarse=40)
    a = c.arch_for(512, 768, 3)
    assert c.coarse_budget(a, 512, 768) == 40 and c.coarse_budget(a, 63, 768) == 0
    assert c.coarse_budget(replace(a, learned_up=1), 512, 768) == 0
    assert c.coarse_budget(replace(a, parent=1), 512, 768) == 0
    assert c.coarse_budget(replace(a, n_grids=1), 512, 768) == 0
    assert OverfitCodec(iterations=10, coarse=40).coarse_budget(a, 512, 768) == 0  # the analytic start
    assert c.with_preset("medium").coarse == 40
    # the preset's half-size start: fast, fits that keep the 1:1 grid; an explicit one applies to all
    monkeypatch.delenv("GLOCAL_CODEC_OVERFIT_ITERATIONS", raising=False)
    fast, skipped = OverfitCodec(), replace(a, skip=1)
    assert fast.coarse_budget(a, 512, 768) == PRESETS["fast"].coarse > 0 == fast.coarse_budget(skipped, 512, 768)
    assert OverfitCodec(coarse=40).coarse_budget(skipped, 512, 768) == 40
    assert OverfitCodec(preset="medium").coarse_budget(a, 512, 768) == 0
    # ... below the preset's expected rate only; without it, the time of the half-size start
    # goes to full-size iterations
    line = PRESETS["fast"].coarse_below_bpp
    assert fast.coarse_budget(a, 512, 768, line / 2) == PRESETS["fast"].coarse
    assert fast.coarse_budget(a, 512, 768, line) == 0 == fast.budget(a, 0) - PRESETS["fast"].plain_iterations
    assert OverfitCodec(coarse=40).coarse_budget(a, 512, 768, 2 * line) == 40
    assert fast.budget(a, PRESETS["fast"].coarse) == PRESETS["fast"].iterations < fast.budget(a, 0)
    assert fast.budget(skipped, 0) == PRESETS["fast"].skip_iterations
    assert OverfitCodec(iterations=30).budget(a, 0) == 30
    with pytest.raises(ValueError, match="coarse"):
        OverfitCodec(coarse=-1)
