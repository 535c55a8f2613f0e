"""Fixed-point attention ops: each against its float torch counterpart, exactness, and the same
bits whatever the thread count or CPU kernel set."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from glocal_codec.nn import GlocalBlock, ScaledResidual, glocal_stage
from glocal_codec.nn.fixed_point import FRAC, FixedPointNet, NotExactError, to_grid
from glocal_codec.nn.fixed_point_attention import (
    PROB_FRAC,
    ExactGlobalTokenAttention,
    ExactGlocalBlock,
    ExactLayerNorm,
    ExactLinear,
    ExactScaledResidual,
    ExactWindowAttention,
    adaptive_avg_pool_exact,
    gelu_exact,
    matmul_exact,
    normalize_exact,
    sigmoid_exact,
    softmax_exact,
    sum_squares_exact,
)
from glocal_codec.nn.global_attention import GlobalTokenAttention
from glocal_codec.nn.window_attention import WindowAttention
from glocal_codec.util import erf_exact, erfc_exact, exp_exact


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _on_grid(t: torch.Tensor, frac: int = FRAC) -> bool:
    return torch.equal(t, to_grid(t, frac))


# -- util: erf / erfc / exp --------------------------------------------------------------------
def test_erf_and_erfc_match_math() -> None:
    x = np.linspace(-9, 9, 36001)
    assert np.abs(erf_exact(x) - np.array([math.erf(v) for v in x])).max() < 1.5e-7
    ref = np.array([math.erfc(v) for v in x])
    assert (np.abs(erfc_exact(x) - ref) / ref).max() < 1.5e-7
    assert erf_exact(np.array([np.inf, -np.inf])).tolist() == [1.0, -1.0]
    assert isinstance(erf_exact(0.5), float) and abs(erf_exact(0.5) - math.erf(0.5)) < 1.5e-7


def test_chunked_exp_exact_keeps_the_bits_of_the_plain_formula() -> None:
    """exp_exact runs its polynomial chunk by chunk (in cache): same operations per element."""
    from glocal_codec.util import EXP_COEFFS, INV_LN2, LN2_HI, LN2_LO

    def plain(x):
        x = np.maximum(np.asarray(x, dtype=np.float64), -700.0)
        k = np.rint(x * INV_LN2)
        r = (x - k * LN2_HI) - k * LN2_LO
        poly = np.full_like(r, EXP_COEFFS[0])
        for c in EXP_COEFFS[1:]:
            poly = poly * r + c
        return np.ldexp(poly, k.astype(np.int64))

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-800, 700, 70000), rng.normal(0, 1, 5000), [0.0, -0.0, 700, -700, -np.inf]])
    assert plain(x).tobytes() == exp_exact(x).tobytes()
    assert plain(x[:600].reshape(20, 30)[:, ::2]).tobytes() == exp_exact(x[:600].reshape(20, 30)[:, ::2]).tobytes()
    assert exp_exact(1.5) == plain(1.5) and np.ndim(exp_exact(1.5)) == 0


# -- elementary ops -------------------------------------------------------------------------------
def test_matmul_is_exact_and_refuses_overflow() -> None:
    a = to_grid(torch.randn(3, 40, 32, dtype=torch.float64) * 5)
    b = to_grid(torch.randn(3, 32, 24, dtype=torch.float64) * 5)
    out = matmul_exact(a, b, FRAC, FRAC)
    assert _on_grid(out, 2 * FRAC)
    ref = torch.einsum("bik,bkj->bij", a, b)  # another summation order: the same exact result
    assert torch.equal(out, ref)
    with pytest.raises(NotExactError, match="exact"):
        matmul_exact(a * 2.0**12, b, FRAC, FRAC)


def test_sum_squares_and_normalize() -> None:
    for scale in (1e-6, 1.0, 1e4):
        x = torch.randn(50, 96, dtype=torch.float64) * scale
        s = sum_squares_exact(x)
        assert torch.allclose(s, (x * x).sum(-1, keepdim=True), rtol=1e-6, atol=0)
    x = torch.randn(4, 7, 32, dtype=torch.float64)
    x[0, 0] = 0  # a zero row stays zero (torch's eps clamp)
    assert torch.allclose(normalize_exact(x), F.normalize(x, dim=-1), atol=1e-6)


def test_softmax_masks_and_matches_torch() -> None:
    logits = torch.randn(2, 3, 16, 16, dtype=torch.float64) * 10
    p = softmax_exact(logits)
    assert _on_grid(p, PROB_FRAC)
    assert (p - logits.softmax(-1)).abs().max() < 1e-6
    mask = torch.rand(2, 1, 16, 16) < 0.4
    mask[..., 0] = False  # every query sees at least one key ...
    mask[1, 0, 5] = True  # ... but one: a fully masked (padded) row
    pm = softmax_exact(logits, mask)
    ref = logits.masked_fill(mask, -1e4).softmax(-1)
    live = ~mask.expand_as(pm)
    assert torch.equal(pm[~live], torch.zeros_like(pm[~live]))  # masked: exactly 0
    assert (pm[:, :, :5] - ref[:, :, :5]).abs().max() < 1e-6
    assert torch.equal(pm[1, :, 5], torch.zeros_like(pm[1, :, 5]))  # no 0/0
    assert torch.isfinite(pm).all()


def test_gelu_sigmoid_pool_linear_layernorm_match_torch() -> None:
    x = torch.randn(5000, dtype=torch.float64) * 4
    assert (gelu_exact(x) - F.gelu(x)).abs().max() < 1e-6
    assert (sigmoid_exact(x) - torch.sigmoid(x)).abs().max() < 1e-12
    for hw, grid in (((7, 5), (4, 4)), ((3, 9), (3, 4)), ((16, 16), (8, 8)), ((1, 1), (1, 1))):
        m = to_grid(torch.randn(2, *hw, 6, dtype=torch.float64))
        ours = adaptive_avg_pool_exact(m, *grid)
        ref = F.adaptive_avg_pool2d(m.permute(0, 3, 1, 2), grid).flatten(2).transpose(1, 2)
        assert (ours - ref).abs().max() <= 2.0**-FRAC
    lin = nn.Linear(24, 40).double()
    x = to_grid(torch.randn(3, 11, 24, dtype=torch.float64) * 3)
    assert (ExactLinear.of(lin)(x) - lin(x)).abs().max() < 1e-3
    ln = nn.LayerNorm(24).double()
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    for scale in (1e-3, 1.0, 100.0):
        x = to_grid(torch.randn(3, 11, 24, dtype=torch.float64) * scale, 2 * FRAC)
        assert (ExactLayerNorm(ln)(x) - ln(x)).abs().max() < 1e-4


# -- layers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shift", [0, 2])
@pytest.mark.parametrize("hw", [(7, 5), (8, 8), (3, 9), (1, 1)])
def test_window_attention_matches_float(shift: int, hw: tuple[int, int]) -> None:
    wa = WindowAttention(16, 2, window=4, shift=shift).double().eval()
    with torch.no_grad():
        wa.logit_scale.copy_(torch.tensor([2.0, 5.0]).view(2, 1, 1))  # one below, one above log 100
    ex = ExactWindowAttention(wa)
    assert (ex.bias - wa.position_bias()).abs().max() < 1e-4  # the cached continuous position bias
    assert torch.allclose(ex.scale.flatten(), torch.tensor([math.exp(2.0), 100.0], dtype=torch.float64))
    x = to_grid(torch.randn(2, *hw, 16, dtype=torch.float64))
    with torch.no_grad():
        ref = wa.forward_nhwc(x)
    out = ex(x)
    assert out.shape == ref.shape and _on_grid(out, 2 * FRAC)
    assert (out - ref).abs().max() < 2e-3


def test_global_attention_and_blocks_match_float() -> None:
    ga = GlobalTokenAttention(16, 2, tokens=4).double().eval()
    x = to_grid(torch.randn(1, 7, 5, 16, dtype=torch.float64))
    with torch.no_grad():
        assert (ExactGlobalTokenAttention(ga)(x) - ga.forward_nhwc(x)).abs().max() < 2e-4
    for shift in (0, 2):
        blk = GlocalBlock(16, window=4, shift=shift, tokens=4, head_dim=8).double().eval()
        with torch.no_grad():
            ref = blk(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        assert (ExactGlocalBlock(blk)(x) - ref).abs().max() < 2e-3
    sr = ScaledResidual(glocal_stage(16, 2, window=4, tokens=4, head_dim=8), 16).double().eval()
    with torch.no_grad():
        sr.gamma.uniform_(0.2, 1.0)
        xc = x.permute(0, 3, 1, 2)
        assert (ExactScaledResidual(sr)(xc) - sr(xc)).abs().max() < 3e-3


def test_unsupported_attention_layers_are_named() -> None:
    with pytest.raises(TypeError, match="Swin v1"):
        ExactWindowAttention(WindowAttention(16, 2, window=4, cosine=False))
    with pytest.raises(TypeError, match="attention=True"):
        ExactGlocalBlock(GlocalBlock(16, window=4, tokens=4, attention=False))
    with pytest.raises(TypeError, match="attention=True"):
        ExactGlocalBlock(GlocalBlock(16, window=4, tokens=4, channel=True, head_dim=8))
    with pytest.raises(TypeError, match="Conv2d"):
        ExactScaledResidual(ScaledResidual(nn.Conv2d(4, 4, 1), 4))


def _net() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(ScaledResidual(glocal_stage(16, 2, window=4, tokens=4, head_dim=8), 16),
                         nn.Conv2d(16, 8, 3, padding=1)).eval()


_PROBE = """
import hashlib, sys, torch
from torch import nn
from glocal_codec.nn import ScaledResidual, glocal_stage
from glocal_codec.nn.fixed_point import FixedPointNet
net = nn.Sequential(ScaledResidual(glocal_stage(16, 2, window=4, tokens=4, head_dim=8), 16),
                    nn.Conv2d(16, 8, 3, padding=1)).eval()
d = torch.load(sys.argv[1])
net.load_state_dict(d["state"])
print(hashlib.sha256(FixedPointNet(net)(d["x"]).numpy().tobytes()).hexdigest())
"""


def _probe_input() -> torch.Tensor:
    return torch.randn(2, 16, 9, 7, generator=torch.Generator().manual_seed(2)) * 3


def test_attention_net_gives_the_same_bits_with_any_thread_count() -> None:
    net = FixedPointNet(_net())
    x = _probe_input()
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = net(x)
        torch.set_num_threads(1)
        one = net(x)
    finally:
        torch.set_num_threads(n)
    with torch.backends.mkldnn.flags(enabled=False):
        plain = net(x)
    assert torch.equal(one, two) and torch.equal(one, plain)
    with torch.no_grad():
        assert (one.float() - _net()(x)).abs().max() < 5e-3


@pytest.mark.slow
def test_attention_net_gives_the_same_bits_with_plain_cpu_kernels(tmp_path) -> None:
    """A fresh process with ``ATEN_CPU_CAPABILITY=default`` (torch's non-SIMD kernels, a
    stand-in for another CPU) and one with two threads: the same digest as here. Weights and
    input travel in a file (random initialisation itself differs between kernel sets)."""
    net, x = _net(), _probe_input()
    torch.save({"state": net.state_dict(), "x": x}, tmp_path / "net.pt")
    here = hashlib.sha256(FixedPointNet(net)(x).numpy().tobytes()).hexdigest()
    for env in ({"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "2"}):
        res = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "net.pt")], env={**os.environ, **env},
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.strip() == here, env
