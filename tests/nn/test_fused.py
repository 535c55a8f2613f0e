"""The fused numba kernels give the very bits of the torch-op paths they replace
(``glocal_codec.nn.fused``), with any thread count and in a fresh process without them."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from glocal_codec.nn import fixed_point_attention as fpa
from glocal_codec.nn import fused
from glocal_codec.util import erfc_exact_t, exp_exact_t

pytestmark = pytest.mark.skipif(not fused.available(), reason="numba is not installed")

N = fused.MIN_ELEMENTS * 2 + 7  # large enough for the fused path, odd to split unevenly


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy().view(np.int64)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and np.array_equal(_bits(a), _bits(b))


def _values(seed: int, scale: float) -> torch.Tensor:
    """Random values, plus the edges: signed zeros, grid midpoints, huge, tiny, infinities."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, generator=g, dtype=torch.float64) * scale
    edges = torch.tensor([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, 2.0**-17, -(2.0**-17), 3 * 2.0**-17, 1e-300, -1e-300,
                          700.0, -700.0, -745.0, 709.0, 710.0, 1e300, -1e300, float("inf"), float("-inf")],
                         dtype=torch.float64)
    x[: edges.numel()] = edges
    x[edges.numel(): 2 * edges.numel()] = edges * 2.0**-16  # the same on the grid's scale
    return x


@pytest.fixture
def torch_path(monkeypatch):
    """Within the test: the torch-op reference path (fused kernels off)."""

    def off() -> None:
        monkeypatch.setattr(fused, "_NUMBA", False)

    return off


@pytest.mark.parametrize("threads", [1, 2])
def test_exp_and_erfc_match_the_reference_bits(threads: int) -> None:
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for scale in (1.0, 30.0, 400.0):
            x = _values(int(scale), scale)
            assert _same(fused.exp_(x), exp_exact_t(x))
            assert _same(fused.erfc_(x), erfc_exact_t(x))
        x = torch.tensor([float("nan")] * N, dtype=torch.float64)
        assert torch.isnan(fused.exp_(x)).all() and torch.isnan(fused.erfc_(x)).all()
    finally:
        torch.set_num_threads(n)


@pytest.mark.parametrize("frac", [16, 24])
def test_gelu_and_grid_match(frac: int, torch_path) -> None:
    x = fpa.to_grid(_values(3, 6.0)[torch.isfinite(_values(3, 6.0))])  # GELU's inputs are grid values
    y = _values(4, 50.0)
    got_gelu, got_grid = fpa.gelu_grid(x, frac), fpa._grid_(y.clone(), frac)
    assert fused.use_for(x)
    torch_path()
    assert _same(got_gelu, fpa.gelu_grid(x, frac))
    assert _same(got_grid, fpa._grid_(y.clone(), frac))


@pytest.mark.parametrize("shape", [(9, 4, 64, 64), (3, 2, 1000, 17), (70000, 1)])
def test_softmax_matches_with_and_without_mask(shape, torch_path) -> None:
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 8
    logits[0, 0] = 0.0  # ties of the max
    mask = torch.rand((shape[0], 1) + shape[2:], generator=g) < 0.4
    mask[1] = True  # fully masked rows: zeros
    got = [fpa.softmax_exact(logits, m, units=u) for m in (None, mask) for u in (True, False)]
    assert got[2][1].abs().sum() == 0
    torch_path()
    want = [fpa.softmax_exact(logits, m, units=u) for m in (None, mask) for u in (True, False)]
    assert all(_same(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("cols", [1, 3, 32, 192])
def test_sum_squares_and_normalize_match(cols: int, torch_path) -> None:
    g = torch.Generator().manual_seed(cols)
    x = fpa.to_grid(torch.randn(N // cols + 1, cols, generator=g, dtype=torch.float64) * 40)
    x[0] = 0.0  # a zero row: eps
    x[1] *= 2.0**-20  # tiny and huge rows: the power-of-two scaling
    x[2] *= 2.0**20
    got = fpa.sum_squares_exact(x), fpa.normalize_grid(x, fpa.PROB_FRAC)
    torch_path()
    want = fpa.sum_squares_exact(x), fpa.normalize_grid(x, fpa.PROB_FRAC)
    assert _same(got[0], want[0]) and _same(got[1], want[1])


@pytest.mark.parametrize("cols,affine", [(1, True), (3, False), (128, True), (192, True)])
def test_layer_norm_matches(cols: int, affine: bool, torch_path) -> None:
    """The fused LayerNorm: the bits of ExactLayerNorm's torch ops, inputs on 2**-32 (a linear
    layer's unrounded output), constant, tiny and huge rows included; and the same range check."""
    from torch import nn

    g = torch.Generator().manual_seed(cols)
    ln = nn.LayerNorm(cols, elementwise_affine=affine)
    if affine:
        with torch.no_grad():
            ln.weight.copy_(torch.randn(cols, generator=g) * 0.5 + 1)
            ln.bias.copy_(torch.randn(cols, generator=g) * 0.1)
    x = fpa.to_grid(torch.randn(N // cols + 1, cols, generator=g, dtype=torch.float64) * 40, 32)
    x[0] = 0.0
    x[1] = 3.25  # constant: zero variance, eps decides
    x[2] *= 2.0**-12
    x[3] *= 2.0**4
    exact = fpa.ExactLayerNorm(ln)
    res = fpa.to_grid(torch.randn(x.shape, generator=g, dtype=torch.float64) * 9)
    got, got_res = exact(x), exact(x, residual=res)
    assert fused.use_for(x)
    bad = x.clone()
    bad[5, 0] = 2.0**30
    with pytest.raises(fpa.NotExactError):
        exact(bad)
    bad[5, 0] = float("nan")
    with pytest.raises(fpa.NotExactError):
        exact(bad)
    torch_path()
    assert _same(got, exact(x)) and _same(got_res, exact(x, residual=res))
    assert _same(got_res, res + exact(x))


@pytest.mark.parametrize("heads,hd", [(4, 32), (6, 32), (1, 3)])
def test_qkv_split_matches(heads: int, hd: int, torch_path) -> None:
    """q, k normalised and v rounded from the qkv projection in one pass: the torch path's bits
    and bounds, zero rows (eps) included; a NaN makes the bounds infinite."""
    g = torch.Generator().manual_seed(heads * hd)
    b, t = N // (3 * heads * hd * 16) + 2, 16
    qkv = fpa.to_grid(torch.randn(b, t, 3 * heads * hd, generator=g, dtype=torch.float64) * 30, 32)
    qkv[0, 0] = 0.0
    qkv[1, 2] *= 2.0**-20
    k = fpa._sum_squares_k(hd)
    qn, kn, v, l1, vmax = fused.qkv_split(qkv, heads, k, 1e-12, fpa.PROB_FRAC)
    parts = qkv.view(b, t, 3, heads, hd).permute(2, 0, 3, 1, 4)
    torch_path()
    want = fpa.normalize_grid(parts[0], fpa.PROB_FRAC), fpa.normalize_grid(parts[1], fpa.PROB_FRAC), fpa.to_grid(parts[2])
    assert _same(qn, want[0]) and _same(kn, want[1]) and _same(v, want[2])
    assert l1 == float(want[0].abs().sum(-1).max()) and vmax == float(want[2].abs().max())
    assert float(kn.abs().max()) <= 1.0 + 2.0**-20
    qkv[3, 1, 5] = float("nan")
    assert fused.qkv_split(qkv, heads, k, 1e-12, fpa.PROB_FRAC)[3] == float("inf")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_scaled_residual_matches(threads: int, torch_path) -> None:
    """ScaledResidual's ``to_grid((f - x) * gamma + x)`` from a channels-last branch in one pass:
    the torch path's bits, with rows split over threads (per-channel gamma not split with them)."""
    g = torch.Generator().manual_seed(threads)
    x = fpa.to_grid(torch.randn(2, 12, 81, 91, generator=g, dtype=torch.float64) * 5)
    f = fpa.to_grid(torch.randn(2, 81, 91, 12, generator=g, dtype=torch.float64) * 5, 32)
    gamma = torch.randn(1, 12, 1, 1, generator=g, dtype=torch.float64) * 0.4
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        got = fused.scaled_residual_nhwc(f, x, gamma.view(-1))
    finally:
        torch.set_num_threads(n)
    torch_path()
    assert _same(got, fpa._grid_((f.permute(0, 3, 1, 2) - x).mul_(gamma).add_(x)))


def test_splitting_over_threads_changes_no_bit() -> None:
    x = _values(8, 3.0)
    logits = torch.randn(300, 6, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    n = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            outs.append((fused.erfc_(x), fpa.softmax_exact(logits), fpa.normalize_grid(logits, 24)))
    finally:
        torch.set_num_threads(n)
    assert all(_same(a, b) for o in outs[1:] for a, b in zip(o, outs[0]))


_PROBE = """
import hashlib, sys, torch
from glocal_codec.nn import fused, fixed_point_attention as fpa
x = torch.randn(40000, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 6
y = fpa.softmax_exact(x, units=True), fpa.gelu_grid(fpa.to_grid(x)), fpa.normalize_grid(x, 24)
print(fused.available(), hashlib.sha256(b"".join(t.numpy().tobytes() for t in y)).hexdigest())
"""


@pytest.mark.slow
def test_a_process_without_the_kernels_gives_the_same_bits() -> None:
    """``GLOCAL_CODEC_NO_FUSED=1`` (what a machine without numba runs) and torch's plain kernels
    (``ATEN_CPU_CAPABILITY=default``) in fresh processes: one digest."""
    digests = set()
    for env in ({}, {"GLOCAL_CODEC_NO_FUSED": "1"}, {"GLOCAL_CODEC_NO_FUSED": "1", "ATEN_CPU_CAPABILITY": "default"}):
        res = subprocess.run([sys.executable, "-c", _PROBE], env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        avail, digest = res.stdout.split()
        assert avail == str(not env), env
        digests.add(digest)
    assert len(digests) == 1


def test_small_inputs_take_the_torch_path() -> None:
    assert not fused.use_for(torch.zeros(fused.MIN_ELEMENTS - 1, dtype=torch.float64))
    assert not fused.use_for(torch.zeros(fused.MIN_ELEMENTS, dtype=torch.float32))
    assert fused.use_for(torch.zeros(fused.MIN_ELEMENTS, dtype=torch.float64))
