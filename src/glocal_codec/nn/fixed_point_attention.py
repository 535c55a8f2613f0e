"""Fixed-point execution of attention transforms: SwinV2 window attention, pooled-token global
attention, LayerNorm, GELU -- the same pixels on every machine for the ``glocal`` decoder.

:mod:`.fixed_point` makes convolutional decoders machine-independent the way integer networks
do (Ballé, Johnston, Minnen, "Integer Networks for Data Compression with Latent-Variable
Models", ICLR 2019): a float32 sum's rounding depends on its order (thread count, SIMD kernel
set, GPU), an *exact* sum's value does not. The ops here extend that to every op of a glocal
synthesis, on one principle:

* **sums are exact** -- every reduction (matmul, linear layer, LayerNorm mean / variance,
  cosine norm, softmax denominator, pooling) adds values on a grid ``2**-f`` in float64 while
  their magnitude is provably below ``2**(53 - f)``; the bounds are checked on every call
  (``max|x| * L1 norm`` of the other operand, as for the convolutions) and an overflow raises
  :class:`~.fixed_point.NotExactError` instead of rounding silently;
* **everything else is one correctly rounded IEEE operation at a time** (``+ - * /``, ``sqrt``,
  round-half-even), or built from them: :func:`~glocal_codec.util.exp_exact` and
  :func:`~glocal_codec.util.erfc_exact` replace the SIMD ``exp`` / ``erf`` kernels, whose last
  bit differs between CPUs;
* **values are rounded to a grid** only where an exact sum comes next: activations and weights
  to ``2**-FRAC`` (``FRAC = 16``); softmax probabilities and cosine-normalised queries / keys,
  which are at most 1 in magnitude, to the finer ``2**-PROB_FRAC`` (``PROB_FRAC = 24``), so
  their products with ``2**-16`` values lie on ``2**-40`` (exact below ``2**13``) and their
  products with each other on ``2**-48`` (exact below 32; a cosine is at most ~1).

Grid choices and where each bound comes from:

=====================  ==============  ================================================
sum                    grid            bound checked
=====================  ==============  ================================================
linear / cpb MLP       2**-32          max|x| * max row L1(W) + max|b| < 2**21
cos(q, k) = qn . kn    2**-48          max row L1(qn) * max|kn| < 2**5  (<= sqrt(hd))
q . k (global)         2**-32          max row L1(q) * max|k| < 2**21
p @ v                  2**-40          max row sum(p) * max|v| < 2**13  (row sum ~ 1)
softmax denominator    2**-24          at most ``keys`` terms in (0, 1]
LayerNorm mean         2**-32          max|x| * C < 2**21 (input: a linear's exact output)
pool                   2**-16          max|x| * H * W < 2**37
sum of squares         2**-32          rows scaled by a power of two first: never fails
=====================  ==============  ================================================

The sums of squares (LayerNorm variance, cosine norm) scale each row by a power of two
(exact) so that its largest entry sits just below ``2**K`` with ``n 2**(2K) < 2**21`` before
rounding to ``2**-16``: a relative precision of about ``2**-22`` at any magnitude, and no range
limit. Constants of the network (SwinV2's continuous position bias, ``16 sigmoid(cpb(coords))``,
and the logit scale ``exp(min(s, log 100))``) are computed once, the same way, and cached.

The attention-free variant of :class:`~.glocal_block.GlocalBlock` (``attention=False``:
depth-wise conv block + squeeze-excitation) is covered too, with the same ops.

Masked attention entries (Swin's shift / padding mask) get probability exactly 0; a row with
every key masked (a padded query, cropped afterwards) gets all zeros instead of 0/0.

Cost: float64 arithmetic, plus ``exp`` / ``erfc`` built from ~30 elementwise steps; on large
CPU tensors the softmax, GELU, cosine norms and roundings run as the fused kernels of
:mod:`.fused` (the same operations in the same order, one pass: the same bits).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..util import erfc_exact_t, exp_exact, exp_exact_t
from . import fused
from .fixed_point import FRAC, NotExactError, to_grid
from .global_attention import GlobalTokenAttention, pooled_grid
from .glocal_block import GlocalBlock, ScaledResidual
from .window_attention import Mlp, SwinV2Block, WindowAttention, window_partition, window_reverse

__all__ = [
    "PROB_FRAC",
    "check_exact",
    "matmul_exact",
    "sum_squares_exact",
    "normalize_exact",
    "softmax_exact",
    "gelu_exact",
    "gelu_grid",
    "normalize_grid",
    "sigmoid_exact",
    "adaptive_avg_pool_exact",
    "ExactLinear",
    "ExactLayerNorm",
    "ExactWindowAttention",
    "ExactGlobalTokenAttention",
    "ExactGlocalBlock",
    "ExactScaledResidual",
    "attention_op",
]

#: Fractional bits of softmax probabilities and cosine-normalised queries / keys (|v| <= 1).
PROB_FRAC = 24
#: Fractional bits of the SwinV2 position-bias MLP (run once per model, on constants).
_CPB_FRAC = 20
#: ``min(s, log 100)`` of SwinV2's logit scale: the correctly rounded float64 of ln(100), spelled
#: out rather than taken from the platform's libm.
_LOG100 = 4.605170185988092
#: Attention-matrix entries per chunk (4 MB of float64): windows (window attention) / queries
#: (global attention) are processed a few at a time, so the softmax temporaries stay in the CPU
#: cache and a large image never holds its whole attention matrix; rows are independent, so any
#: chunking gives the same bits.
_CHUNK = 1 << 19


# -- elementary exact ops --------------------------------------------------------------------
def check_exact(bound: float, frac: int, what: str) -> None:
    """Raise :class:`NotExactError` unless a float64 sum of multiples of ``2**-frac`` whose
    partial sums are bounded by ``bound`` is exact (``bound < 2**(53 - frac)``)."""
    limit = 2.0 ** (53 - frac)
    if not bound < limit:
        raise NotExactError(f"{what}: partial sums up to {bound:.3g} exceed the exact float64 range "
                            f"{limit:.3g} of the fixed-point decoder")


def _absmax(t: torch.Tensor) -> float:
    if not t.numel():
        return 0.0
    lo, hi = torch.aminmax(t)  # no |t| temporary
    return max(-float(lo), float(hi))


def _grid_(t: torch.Tensor, frac: int = FRAC) -> torch.Tensor:
    """:func:`~.fixed_point.to_grid` in place, for temporaries (no extra copies of big maps)."""
    if fused.use_for(t):
        return fused.grid_(t, frac)
    return t.mul_(2.0**frac).round_().mul_(2.0**-frac)


def _exact_op(fn: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor) -> torch.Tensor:
    """Apply an exact elementwise function (exp_exact_t, erfc_exact_t: CPU, torch's threads; the
    bits do not depend on them) to a float64 tensor on any device."""
    return fn(t).to(t.device)


def _pow2(e: torch.Tensor) -> torch.Tensor:
    """Exactly ``2.0**e`` for an int64 tensor (built from the exponent bits, no ``pow`` kernel)."""
    return ((e.clamp(-1022, 1023) + 1023) << 52).view(torch.float64)


def matmul_exact(a: torch.Tensor, b: torch.Tensor, frac_a: int, frac_b: int, what: str = "matmul",
                 a_l1: float | None = None, b_max: float | None = None) -> torch.Tensor:
    """``a @ b`` for float64 ``a`` on the ``2**-frac_a`` grid and ``b`` on ``2**-frac_b``: exact.

    Every product is a multiple of ``2**-(frac_a + frac_b)``; a partial sum of row ``i`` of
    ``a`` with column ``j`` of ``b`` is at most ``L1(a_i) max|b|`` and at most
    ``max|a| L1(b_j)``, checked against the exact range, so the result does not depend on the
    BLAS kernel. ``a_l1``: a known bound on the rows' L1 norms (softmax rows sum to ~1, unit
    vectors have L1 <= sqrt(dim)); without it the columns of ``b`` are measured. ``b_max``: a
    known bound on max |b| (with ``a_l1``).
    """
    if a_l1 is None:
        lb = float(b.abs().sum(-2).max()) if b.numel() else 0.0
        bound = lb * _absmax(a)
    else:
        bound = a_l1 * (_absmax(b) if b_max is None else b_max)
    check_exact(bound, frac_a + frac_b, what)
    return a @ b


def _sum_squares_k(n: int) -> int:
    """The scale exponent ``K`` of :func:`sum_squares_exact` for rows of ``n`` terms."""
    n = max(1, n)
    k = (53 - 2 * FRAC - 1 - math.ceil(math.log2(n))) // 2
    if k < 0:
        raise NotExactError(f"sum of {n} squares: too many terms for an exact float64 sum")
    return k


def sum_squares_exact(x: torch.Tensor) -> torch.Tensor:
    """``(x**2).sum(-1, keepdim=True)`` of float64 ``x``, the same bits on every machine.

    Each row is scaled by a power of two (exact) so its largest entry lies in ``[2**(K-1),
    2**K)``, rounded to ``2**-FRAC`` and squared (exact); with ``n 2**(2K) < 2**(53 - 2 FRAC)``
    the sum is exact, whatever the magnitudes: relative precision ~``2**-(FRAC + K)``.
    """
    k = _sum_squares_k(x.shape[-1])
    if fused.use_for(x) and x.shape[-1]:
        return fused.sum_squares(x, k)
    lo, hi = torch.aminmax(x, dim=-1, keepdim=True)
    _, e = torch.frexp(torch.maximum(-lo, hi))  # max|x| < 2**e
    e = e.to(torch.int64)
    xs = _grid_(x * _pow2(k - e))
    return xs.mul_(xs).sum(-1, keepdim=True) * _pow2(2 * (e - k))


def normalize_exact(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize(x, dim=-1)``: ``x / max(||x||, eps)`` with an exact sum of squares, one
    ``sqrt`` and one division (not rounded to a grid)."""
    return x / torch.sqrt(sum_squares_exact(x)).clamp_min(eps)


def normalize_grid(x: torch.Tensor, frac: int, eps: float = 1e-12) -> torch.Tensor:
    """``to_grid(normalize_exact(x, eps), frac)`` (one fused pass where :mod:`.fused` runs)."""
    if fused.use_for(x) and x.shape[-1]:
        return fused.normalize_grid(x, _sum_squares_k(x.shape[-1]), eps, frac)
    return _grid_(normalize_exact(x, eps), frac)


def softmax_exact(logits: torch.Tensor, mask: torch.Tensor | None = None, units: bool = False) -> torch.Tensor:
    """Softmax over the last dim, on the ``2**-PROB_FRAC`` grid; ``mask`` (True = excluded)
    entries are exactly 0. ``units``: returned in grid units (integers, ``2**PROB_FRAC`` times
    the probabilities) for a caller that folds the scale into its next step.

    Row max subtracted (exact), :func:`~glocal_codec.util.exp_exact`, exps rounded to the grid
    and summed exactly (each in [0, 1]), one division, rounded. A fully masked row (padding
    only) gives zeros. The exps stay in grid units throughout: ``eu / su`` is the very quotient
    ``e / s`` (both scaled by the same power of two), so the bits are those of the plain formula
    in fewer passes over the attention matrix.
    """
    if fused.use_for(logits) and logits.shape[-1]:
        pu = fused.softmax_units(logits, mask)
        return pu if units else pu.mul_(2.0**-PROB_FRAC)
    if mask is not None:
        logits = logits.masked_fill(mask, -math.inf)
    m = logits.amax(-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    eu = _exact_op(exp_exact_t, logits - m).mul_(2.0**PROB_FRAC).round_()  # masked: exp(-inf) -> 0
    if mask is not None:
        eu.masked_fill_(mask, 0.0)
    check_exact(float(logits.shape[-1]), PROB_FRAC, "softmax denominator")
    su = eu.sum(-1, keepdim=True)
    su = torch.where(su > 0, su, torch.ones_like(su)).mul_(2.0**-PROB_FRAC)  # s = su 2**-PROB_FRAC
    p = eu.div_(su).round_()  # (e / s) 2**PROB_FRAC, rounded: probabilities in grid units
    return p if units else p.mul_(2.0**-PROB_FRAC)


def _from_prob_units_(y: torch.Tensor) -> torch.Tensor:
    """``p @ v`` computed with ``p`` in grid units (``2**PROB_FRAC p``), onto the ``2**-FRAC``
    grid in place: the bits of ``to_grid(p @ v)`` (the scale is an exact power of two)."""
    return y.mul_(2.0 ** (FRAC - PROB_FRAC)).round_().mul_(2.0**-FRAC)


def gelu_exact(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU, ``x Phi(x) = x/2 erfc(-x / sqrt 2)`` (torch's ``approximate='none'``), with
    :func:`~glocal_codec.util.erfc_exact` (relative error < 1.2e-7); not rounded."""
    c = _exact_op(erfc_exact_t, x * -math.sqrt(0.5))
    return c.mul_(x * 0.5)


def gelu_grid(x: torch.Tensor, frac: int = FRAC) -> torch.Tensor:
    """``to_grid(gelu_exact(x), frac)`` (one fused pass where :mod:`.fused` runs)."""
    if fused.use_for(x):
        return fused.gelu_grid(x, frac)
    return _grid_(gelu_exact(x), frac)


def sigmoid_exact(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(-x))`` with :func:`~glocal_codec.util.exp_exact`."""
    return 1.0 / (1.0 + _exact_op(exp_exact_t, -x))


def adaptive_avg_pool_exact(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` on (N, H, W, C) values on the grid -> (N, out_h * out_w, C).

    torch's cells (rows ``floor(i H / o)`` to ``ceil((i + 1) H / o)``), an exact sum per cell and
    one division; rounded to ``2**-FRAC``.
    """
    n, h, w, c = x.shape
    check_exact(_absmax(x) * h * w, FRAC, "adaptive average pool")
    cells = []
    for i in range(out_h):
        h0, h1 = (i * h) // out_h, -(-((i + 1) * h) // out_h)
        for j in range(out_w):
            w0, w1 = (j * w) // out_w, -(-((j + 1) * w) // out_w)
            cells.append(x[:, h0:h1, w0:w1].sum(dim=(1, 2)) / float((h1 - h0) * (w1 - w0)))
    return _grid_(torch.stack(cells, dim=1))


# -- layers ------------------------------------------------------------------------------------
class ExactLinear:
    """``nn.Linear`` (or a weight + bias) on the grid: weights ``2**-frac``, bias ``2**-2frac``.

    ``lin(x)`` takes values on ``2**-frac`` and returns the exact result (a multiple of
    ``2**-2frac``), rounded to ``2**-frac`` unless ``rounded=False``. ``frac`` defaults to
    ``FRAC``; constants computed once (SwinV2's position bias) use a finer grid.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, frac: int = FRAC) -> None:
        self.frac = frac
        self.w = to_grid(weight.detach().double().cpu(), frac)
        self.b = None if bias is None else to_grid(bias.detach().double().cpu(), 2 * frac)
        self.l1 = float(self.w.abs().sum(1).max()) if self.w.numel() else 0.0
        self.b_max = 0.0 if self.b is None else _absmax(self.b)
        self.what = f"Linear {tuple(self.w.shape)}"

    @classmethod
    def of(cls, layer: nn.Linear, frac: int = FRAC) -> "ExactLinear":
        return cls(layer.weight, layer.bias, frac)

    def __call__(self, x: torch.Tensor, rounded: bool = True) -> torch.Tensor:
        check_exact(_absmax(x) * self.l1 + self.b_max, 2 * self.frac, self.what)
        b = None if self.b is None else self.b.to(x.device)
        y = F.linear(x, self.w.to(x.device), b)
        return _grid_(y, self.frac) if rounded else y


class ExactLayerNorm:
    """``nn.LayerNorm`` over the last dim: exact mean (one division), exact scaled sum of
    squares (:func:`sum_squares_exact`) for the variance, ``sqrt``, one division, the affine
    part, rounded to ``2**-FRAC``.

    The input may be on the finer ``2**-2FRAC`` grid (an unrounded linear layer's exact
    output): a LayerNorm divides by the standard deviation, so rounding its input first would
    magnify the rounding error wherever that is small."""

    def __init__(self, layer: nn.LayerNorm) -> None:
        if len(layer.normalized_shape) != 1:
            raise TypeError("only LayerNorm over the last dimension has a fixed-point version")
        self.eps = float(layer.eps)
        self.w = None if layer.weight is None else layer.weight.detach().double().cpu()
        self.b = None if layer.bias is None else layer.bias.detach().double().cpu()

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``LN(x)``, or ``residual + LN(x)`` (``residual`` on the grid: an exact sum)."""
        c = x.shape[-1]
        if fused.use_for(x) and c:  # one pass per row; the check comes after (a refused result is dropped)
            y, amax = fused.layer_norm_grid(x, self.w, self.b, self.eps, _sum_squares_k(c),
                                            None if residual is None else residual.expand_as(x))
            check_exact(amax * c, 2 * FRAC, "LayerNorm mean")
            return y
        check_exact(_absmax(x) * c, 2 * FRAC, "LayerNorm mean")  # x on 2**-2FRAC: the sum is exact
        d = x - x.sum(-1, keepdim=True) / float(c)
        var = sum_squares_exact(d) / float(c)
        y = d.div_(torch.sqrt(var + self.eps))
        if self.w is not None:
            y = y.mul_(self.w.to(x.device))
        if self.b is not None:
            y = y.add_(self.b.to(x.device))
        y = _grid_(y)
        return y if residual is None else residual + y


def _grid_of_constants(values: list[float], frac: int) -> torch.Tensor:
    """Constants computed with libm (``log2``; last-bit accurate, not necessarily identical on
    every platform) rounded to ``2**-frac``: the same grid value everywhere unless a value sits
    within 1e-9 grid steps of a rounding midpoint, which is refused (never seen in practice)."""
    t = torch.tensor(values, dtype=torch.float64) * 2.0**frac
    if bool(((t - torch.floor(t) - 0.5).abs() < 1e-9).any()):
        raise NotExactError("a network constant lies on a rounding midpoint of the fixed-point grid")
    return torch.round(t) * 2.0**-frac


class ExactWindowAttention:
    """SwinV2 :class:`~.window_attention.WindowAttention` (cosine attention, continuous position
    bias) on the grid; (N, H, W, C) on ``2**-FRAC`` -> (N, H, W, C), same padding, shift and
    mask as the float module. The output is the projection's exact value (on ``2**-2FRAC``, not
    rounded: a LayerNorm follows)."""

    def __init__(self, mod: WindowAttention) -> None:
        if not mod.cosine:
            raise TypeError("no fixed-point version of Swin v1 (dot-product) window attention")
        self.mod = mod  # for _mask (integer bookkeeping)
        self.window, self.shift, self.heads, self.dim = mod.window, mod.shift, mod.heads, mod.dim
        bias = torch.cat([mod.q_bias, torch.zeros_like(mod.v_bias), mod.v_bias])
        self.qkv = ExactLinear(mod.qkv.weight, bias)
        self.proj = ExactLinear.of(mod.proj)
        # logit scale exp(min(s, log 100)) per head: one exp_exact
        s = np.minimum(mod.logit_scale.detach().double().cpu().numpy(), _LOG100)
        self.scale = torch.from_numpy(exp_exact(s))  # (heads, 1, 1)
        self.bias = self._position_bias(mod)  # (heads, t, t)

    @staticmethod
    def _position_bias(mod: WindowAttention) -> torch.Tensor:
        """``16 sigmoid(cpb_mlp(log-spaced coords))`` gathered to (heads, ws*ws, ws*ws), exactly."""
        ws = mod.window
        vals = []
        for r in range(-(ws - 1), ws):
            v = r / max(ws - 1, 1) * 8
            vals.append(math.copysign(math.log2(abs(v) + 1.0) / 3.0, v) if v else 0.0)  # log2(8) = 3
        # computed once: on the finer 2**-20 grid (products on 2**-40, exact below 2**13), so
        # that weight rounding moves the bias by ~1e-5 only
        frac = _CPB_FRAC
        rv = _grid_of_constants(vals, frac)
        coords = torch.stack(torch.meshgrid(rv, rv, indexing="ij"), dim=-1).reshape(-1, 2)
        fc1, fc2 = mod.cpb_mlp[0], mod.cpb_mlp[2]
        h = torch.relu(ExactLinear.of(fc1, frac)(coords))  # rounded to the grid, then ReLU (exact)
        table = 16.0 * sigmoid_exact(ExactLinear.of(fc2, frac)(h, rounded=False))  # (P, heads)
        n = ws * ws
        return table[mod.rel_index.cpu()].view(n, n, mod.heads).permute(2, 0, 1).contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        ws = self.window
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        if hp != h or wp != w:
            x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
        sh = self.shift if hp > ws else 0
        sw = self.shift if wp > ws else 0
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        win = window_partition(x, ws)  # (B, t, C)
        b, t, _ = win.shape
        hd = c // self.heads
        qkv = self.qkv(win, rounded=False)
        if fused.use_for(qkv) and hd:  # the lines below in one pass
            qn, kn, v, qn_l1, v_max = fused.qkv_split(qkv, self.heads, _sum_squares_k(hd), 1e-12, PROB_FRAC)
            # entries of unit rows are at most 1 plus rounding, so 2 bounds |k| (the kernel makes
            # qn_l1 infinite for a NaN or infinity in a q or k row: the check then refuses)
            k_max: float | None = 2.0
        else:
            qkv = qkv.view(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
            qn = normalize_grid(qkv[0], PROB_FRAC)  # (B, heads, t, hd)
            kn = normalize_grid(qkv[1], PROB_FRAC)
            v = to_grid(qkv[2])
            qn_l1 = float(qn.abs().sum(-1).max()) if qn.numel() else 0.0  # ~sqrt(hd): unit rows
            v_max, k_max = _absmax(v), None
        # rows of a softmax sum to 1 up to rounding: e_i / s (exact sum s) each rounded to
        # 2**-24, so they sum to at most 1 + t 2**-25 + 2**-52
        p_l1 = 1.0 + t * 2.0**-PROB_FRAC
        del qkv
        mask = self.mod._mask(h, w, hp, wp, sh, sw, x.device)  # (nW, t, t) or None
        scale, bias = self.scale.to(x.device), self.bias.to(x.device)
        outs = []
        step = max(1, _CHUNK // (self.heads * t * t))
        for b0 in range(0, b, step):
            b1 = min(b, b0 + step)
            cos = matmul_exact(qn[b0:b1], kn[b0:b1].transpose(-2, -1), PROB_FRAC, PROB_FRAC, "cosine attention",
                               a_l1=qn_l1, b_max=k_max)
            logits = cos.mul_(scale).add_(bias)
            mk = None if mask is None else mask[torch.arange(b0, b1, device=x.device) % mask.shape[0]][:, None]
            pu = softmax_exact(logits, mk, units=True)
            outs.append(_from_prob_units_(matmul_exact(pu, v[b0:b1], 0, FRAC, "attention @ v",
                                                       a_l1=p_l1 * 2.0**PROB_FRAC, b_max=v_max)))
        out = torch.cat(outs, dim=0).transpose(1, 2).reshape(b, t, c)
        out = window_reverse(self.proj(out, rounded=False), ws, n, hp, wp)
        if sh or sw:
            out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
        return out[:, :h, :w, :]


class _ExactMlp:
    """:class:`~.window_attention.Mlp`: fc1, exact GELU, fc2, each rounded to the grid."""

    def __init__(self, mod: Mlp) -> None:
        if not (isinstance(mod.act, nn.GELU) and mod.act.approximate == "none"):
            raise TypeError(f"no fixed-point version of {mod.act!r}")
        self.fc1, self.fc2 = ExactLinear.of(mod.fc1), ExactLinear.of(mod.fc2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu_grid(self.fc1(x)), rounded=False)


class _ExactSwinV2Block:
    """``x + LN(attn(x)); x + LN(mlp(x))`` (res-post-norm)."""

    def __init__(self, mod: SwinV2Block) -> None:
        self.attn = ExactWindowAttention(mod.attn)
        self.norm1, self.norm2 = ExactLayerNorm(mod.norm1), ExactLayerNorm(mod.norm2)
        self.mlp = _ExactMlp(mod.mlp)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.attn(x), residual=x)  # x + LN(attn(x))
        return self.norm2(self.mlp(x), residual=x)  # LayerNorms get the exact, unrounded outputs


class ExactGlobalTokenAttention:
    """:class:`~.global_attention.GlobalTokenAttention` with the map as its own context:
    (N, H, W, C) -> (N, H, W, out_dim). Pooled tokens (exact), LayerNorm, scaled dot-product
    attention of every pixel to them; output unrounded (on ``2**-2FRAC``) like
    :class:`ExactWindowAttention`."""

    def __init__(self, mod: GlobalTokenAttention) -> None:
        self.tokens, self.heads, self.inner = mod.tokens, mod.heads, mod.inner
        self.q, self.kv, self.proj = ExactLinear.of(mod.q), ExactLinear.of(mod.kv), ExactLinear.of(mod.proj)
        self.kv_norm = ExactLayerNorm(mod.kv_norm)
        self.scale = 1.0 / math.sqrt(self.inner // self.heads)  # sqrt and / are correctly rounded

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = x.shape
        gh, gw = pooled_grid(h, w, self.tokens)
        kv = self.kv(self.kv_norm(adaptive_avg_pool_exact(x, gh, gw)))  # (N, T, 2 inner)
        t, hd = gh * gw, self.inner // self.heads
        k, v = (z.reshape(n, t, self.heads, hd).transpose(1, 2) for z in kv.chunk(2, dim=-1))
        # head-major once, so every chunk of queries is one contiguous matrix
        q = self.q(x.reshape(n, h * w, -1)).view(n, h * w, self.heads, hd).transpose(1, 2).contiguous()
        kt = k.transpose(-2, -1)
        p_l1 = 1.0 + t * 2.0**-PROB_FRAC  # softmax rows sum to 1 up to rounding
        # matmul_exact's range checks, done once for all chunks (the largest chunk bound decides)
        k_l1 = float(kt.abs().sum(-2).max()) if kt.numel() else 0.0
        check_exact(k_l1 * _absmax(q), 2 * FRAC, "global attention q.k")
        check_exact(p_l1 * 2.0**PROB_FRAC * _absmax(v), FRAC, "global attention @ v")
        out = x.new_empty(n, h * w, self.heads, hd)
        step = max(1, _CHUNK // (n * self.heads * t))
        for i in range(0, h * w, step):
            logits = (q[:, :, i: i + step] @ kt).mul_(self.scale)
            pu = softmax_exact(logits, units=True)
            out[:, i: i + step].copy_(_from_prob_units_(pu @ v).transpose(1, 2))
        return self.proj(out.view(n, h, w, self.inner), rounded=False)


class _ExactConvGlocalBlock:
    """The attention-free :class:`~.glocal_block.GlocalBlock` (``attention=False``) on (N, C, H, W):
    ``DepthwiseConvBlock`` (``x + pw2(GELU(pw1(dw(x))))``, convs from :mod:`.fixed_point`), then
    ``SqueezeExcite`` (``x * sigmoid(MLP(mean_hw(x)))``, exact mean)."""

    nhwc = False

    def __init__(self, mod: GlocalBlock) -> None:
        from .fixed_point import _conv_op  # the convolution op of the conv decoders
        from .residual import DepthwiseConvBlock, SqueezeExcite

        loc, glob = mod.local, mod.glob
        if not (isinstance(loc, DepthwiseConvBlock) and isinstance(glob, SqueezeExcite)) or mod.chan is not None:
            raise TypeError("fixed-point GlocalBlock: attention=True or the conv/squeeze-excite blocks, no channel")
        for act in (loc.act, glob.fc[1]):
            if not (isinstance(act, nn.GELU) and act.approximate == "none"):
                raise TypeError(f"no fixed-point version of {act!r}")
        self.dw, self.pw1, self.pw2 = _conv_op(loc.dw), _conv_op(loc.pw1), _conv_op(loc.pw2)
        self.fc1, self.fc2 = ExactLinear.of(glob.fc[0]), ExactLinear.of(glob.fc[2])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pw2(gelu_grid(self.pw1(self.dw(x))))  # on the grid: exact
        h, w = x.shape[-2:]
        check_exact(_absmax(x) * h * w, FRAC, "squeeze-excite mean")
        mean = _grid_(x.sum(dim=(2, 3)) / float(h * w))
        g = sigmoid_exact(self.fc2(gelu_grid(self.fc1(mean)), rounded=False))
        return _grid_(x * g[:, :, None, None])


class ExactGlocalBlock:
    """:class:`~.glocal_block.GlocalBlock` with ``attention=True`` and no channel attention
    (the ``glocal`` transforms): ``t = swin(x); t + LN(glob(t))`` on (N, H, W, C)."""

    nhwc = True

    def __init__(self, mod: GlocalBlock) -> None:
        if not mod.attention or mod.chan is not None:
            raise TypeError("fixed-point GlocalBlock: only attention=True, channel=False")
        self.local = _ExactSwinV2Block(mod.local)
        self.glob = ExactGlobalTokenAttention(mod.glob)
        self.norm_g = ExactLayerNorm(mod.norm_g)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t = self.local(x)
        return self.norm_g(self.glob(t), residual=t)


def _glocal_block(mod: GlocalBlock) -> ExactGlocalBlock | _ExactConvGlocalBlock:
    return ExactGlocalBlock(mod) if mod.attention else _ExactConvGlocalBlock(mod)


class ExactScaledResidual:
    """:class:`~.glocal_block.ScaledResidual` around GlocalBlocks: (N, C, H, W) on the grid ->
    ``x + gamma (f(x) - x)`` rounded to the grid (attention blocks run channels-last)."""

    def __init__(self, mod: ScaledResidual) -> None:
        blocks = list(mod.block) if isinstance(mod.block, nn.Sequential) else [mod.block]
        self.blocks: list[ExactGlocalBlock | _ExactConvGlocalBlock] = []
        for blk in blocks:
            if not isinstance(blk, GlocalBlock):
                raise TypeError(f"no fixed-point version of {type(blk).__name__} inside ScaledResidual")
            self.blocks.append(_glocal_block(blk))
        self.gamma = mod.gamma.detach().double().cpu()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t, nhwc = x, False
        for blk in self.blocks:
            if blk.nhwc != nhwc:
                t = (t.permute(0, 2, 3, 1) if blk.nhwc else t.permute(0, 3, 1, 2)).contiguous()
                nhwc = blk.nhwc
            t = blk(t)
        if nhwc and fused.use_for(x) and fused.use_for(t) and x.shape[0]:  # one pass, no permuted copy
            return fused.scaled_residual_nhwc(t, x, self.gamma.view(-1))
        f = t.permute(0, 3, 1, 2) if nhwc else t
        return _grid_((f - x).mul_(self.gamma.to(x.device)).add_(x))


def attention_op(layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The fixed-point op of an attention layer of an NCHW ``Sequential`` (for
    :class:`~.fixed_point.FixedPointNet`), or None if ``layer`` is not one."""
    if isinstance(layer, ScaledResidual):
        return ExactScaledResidual(layer)
    if isinstance(layer, GlocalBlock):
        blk = _glocal_block(layer)
        if not blk.nhwc:
            return blk
        return lambda x: blk(x.permute(0, 2, 3, 1).contiguous()).permute(0, 3, 1, 2).contiguous()
    return None
