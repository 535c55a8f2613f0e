"""Fused elementwise / row kernels for the fixed-point attention decoder, with the very bits of
the torch-op versions they replace.

:mod:`.fixed_point_attention` builds ``exp`` and ``erfc`` from ~30 correctly rounded IEEE
operations (:func:`glocal_codec.util.exp_exact_t`) and runs them, like its softmax, LayerNorm
statistics and grid roundings, as one torch kernel per operation: every operation is a pass
over memory and a dispatch, and those passes cost as much as the float64 GEMMs
(``benchmarks/exact_synthesis.py``). The kernels here do the *same operations in the same order*
on one element (or one row) at a time, compiled by numba. Nothing is re-associated or contracted
(numba compiles without fast-math, so LLVM may not fuse ``a * b + c`` into an FMA or reorder a
sum), so every result is bit-identical to the torch path on every machine;
``tests/nn/test_fused.py`` checks that on random and edge-case inputs, and the exactness corpus
checks the decoded pixels.

Why numba and not ``torch.compile``: the Inductor CPU backend needs a C++ toolchain at run time
and does not promise to keep ``a * b + c`` unfused; numba is a pip wheel and its no-fast-math
default is the documented behaviour.

Threads: the kernels release the GIL and a call is split into row blocks over
``torch.get_num_threads()`` Python threads (rows are independent, so the split does not change a
bit). numba's own ``parallel=True`` threading layers are avoided on purpose: its OpenMP layer
aborts a forked child that uses it, and its workqueue layer aborts on concurrent calls from
several threads -- both of which a batch CLI or a multiprocessing eval does.

When numba is missing (or ``GLOCAL_CODEC_NO_FUSED=1``), :func:`available` is False and the
callers keep their torch-op path; small inputs take that path too (numba's first call in a
process loads its cached machine code, ~0.3 s).
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

__all__ = ["available", "use_for", "exp_", "erfc_", "softmax_units", "gelu_grid", "sum_squares",
           "normalize_grid", "grid_", "layer_norm_grid", "qkv_split",
           "scaled_residual_nhwc"]

# the constants of glocal_codec.util's exp_exact / erfc_exact, repeated as numba globals
# (frozen into the compiled code); tests/nn/test_fused.py compares the bits with util's versions
from ..util import ERFC_COEFFS, EXP_COEFFS, INV_LN2, LN2_HI, LN2_LO  # noqa: E402

#: Below this many elements the torch path is used (thread hand-off and first-call costs).
MIN_ELEMENTS = 1 << 15
_POW2 = np.array([2.0**k for k in range(-1022, 1024)])  # 2**k at index k + 1022, k in [-1022, 1023]
_EXP_C = np.array(EXP_COEFFS, dtype=np.float64)
_ERFC_C = np.array(ERFC_COEFFS, dtype=np.float64)
_SQRT_HALF_NEG = -math.sqrt(0.5)

try:  # numba is a dependency; a broken install must not break decoding, only slow it down
    if os.environ.get("GLOCAL_CODEC_NO_FUSED"):
        raise ImportError("disabled by GLOCAL_CODEC_NO_FUSED")
    import numba

    _njit = numba.njit(cache=True, nogil=True, error_model="numpy")
    _NUMBA = True
except ImportError:  # pragma: no cover - exercised by the no-numba test in a subprocess
    _NUMBA = False

    def _njit(fn):  # type: ignore[no-redef]
        return fn


# -- scalar building blocks (inlined by numba) -------------------------------------------------
@_njit
def _exp1(v: float) -> float:
    """util._exp_chunk on one value: Cody-Waite reduction, Horner in two roundings per step,
    ldexp as two power-of-two products."""
    k = np.rint(v * INV_LN2)
    r = v - k * LN2_HI
    r = r - k * LN2_LO
    p = _EXP_C[0]
    for j in range(1, _EXP_C.size):
        p = p * r
        p = p + _EXP_C[j]
    # clamped as in util (k.clamp(-2000, 2000)). numba's max / min return their first argument
    # when the comparison is unordered, so a NaN k becomes -2000 and the table index stays in
    # range (p is NaN, so is the result, as in util). Branches here stop LLVM from vectorising.
    k = min(2000.0, max(-2000.0, k))
    ki = int(k)
    half = ki >> 1  # arithmetic shift, as torch's >> on int64
    p = p * _POW2[half + 1022]
    return p * _POW2[ki - half + 1022]


@_njit
def _erfc1(x: float) -> float:
    """util._erfc_chunk on one value."""
    z = abs(x)
    t = z * 0.5
    t = t + 1.0
    t = 1.0 / t
    p = _ERFC_C[0]
    for j in range(1, _ERFC_C.size):
        p = p * t
        p = p + _ERFC_C[j]
    z = z * z
    p = p - z
    p = max(p, -700.0)  # clamp_min: NaN passes through (first argument)
    out = _exp1(p) * t
    return 2.0 - out if x < 0 else out


@_njit
def _pow2(e: int) -> float:
    if e < -1022:
        e = -1022
    elif e > 1023:
        e = 1023
    return _POW2[e + 1022]


# -- kernels over flat or row-major arrays (a block of elements or rows per call) ----------------
# Loops run over range(n), not range(lo, hi): with a start that may be negative numba keeps its
# negative-index wrap-around check, which stops LLVM from vectorising the loop (3x slower).
@_njit
def _exp_k(x, out):
    for i in range(x.size):
        out[i] = _exp1(max(x[i], -700.0))


@_njit
def _erfc_k(x, out):
    for i in range(x.size):
        out[i] = _erfc1(x[i])


@_njit
def _gelu_grid_k(x, out, scale, inv):
    for i in range(x.size):
        v = x[i]
        c = _erfc1(v * _SQRT_HALF_NEG)
        out[i] = np.rint((c * (v * 0.5)) * scale) * inv


@_njit
def _grid_k(x, out, scale, inv):
    for i in range(x.size):
        out[i] = np.rint(x[i] * scale) * inv


# Reductions: LLVM vectorises no floating-point reduction without fast-math (it may not reorder
# the sum), and a scalar chain of dependent adds is latency bound. The sums here are exact
# (integers, or multiples of one grid step, far below 2**53) and max / min are exact in any order,
# so they keep four independent partial results, which gives the same value.
@_njit
def _row_max(x):
    n = x.size
    m0 = m1 = m2 = m3 = -np.inf
    j = 0
    while j + 4 <= n:
        m0 = max(m0, x[j])
        m1 = max(m1, x[j + 1])
        m2 = max(m2, x[j + 2])
        m3 = max(m3, x[j + 3])
        j += 4
    while j < n:
        m0 = max(m0, x[j])
        j += 1
    return max(max(m0, m1), max(m2, m3))


@_njit
def _row_min(x):
    n = x.size
    m0 = m1 = m2 = m3 = np.inf
    j = 0
    while j + 4 <= n:
        m0 = min(m0, x[j])
        m1 = min(m1, x[j + 1])
        m2 = min(m2, x[j + 2])
        m3 = min(m3, x[j + 3])
        j += 4
    while j < n:
        m0 = min(m0, x[j])
        j += 1
    return min(min(m0, m1), min(m2, m3))


@_njit
def _row_sum(x):
    """Sum of a row whose sum is exact (any order gives it)."""
    n = x.size
    s0 = s1 = s2 = s3 = 0.0
    j = 0
    while j + 4 <= n:
        s0 += x[j]
        s1 += x[j + 1]
        s2 += x[j + 2]
        s3 += x[j + 3]
        j += 4
    while j < n:
        s0 += x[j]
        j += 1
    return (s0 + s1) + (s2 + s3)


@_njit
def _softmax_k(x, mask, out, has_mask):
    """Rows of fixed_point_attention.softmax_exact(units=True). A masked entry is -inf before
    the max, as there, and its exp rounds to 0 in grid units (exp(-700) 2**24 < 0.5), the value
    the torch path writes over it."""
    n = x.shape[1]
    for r in range(x.shape[0]):
        o = out[r]
        xr = x[r]
        if has_mask:
            mr = mask[r]
            for j in range(n):
                o[j] = -np.inf if mr[j] else xr[j]
        else:
            for j in range(n):
                o[j] = xr[j]
        m = _row_max(o)
        if not (m > -np.inf and m < np.inf):
            m = 0.0
        for j in range(n):
            o[j] = np.rint(_exp1(max(o[j] - m, -700.0)) * 16777216.0)  # 2**PROB_FRAC
        s = _row_sum(o)  # integers below 2**53: exact
        if not s > 0.0:
            s = 1.0
        s = s * 5.9604644775390625e-08  # 2**-PROB_FRAC
        for j in range(n):
            o[j] = np.rint(o[j] / s)


@_njit
def _sum_squares_row(xr, k, tmp):
    """One row of fixed_point_attention.sum_squares_exact (FRAC = 16); ``tmp``: scratch."""
    mx = max(-_row_min(xr), _row_max(xr))
    e = math.frexp(mx)[1]
    a = _pow2(k - e)
    for j in range(xr.size):
        v = np.rint((xr[j] * a) * 65536.0) * 1.52587890625e-05
        tmp[j] = v * v
    return _row_sum(tmp[: xr.size]) * _pow2(2 * (e - k))  # exact: n 2**(2k) < 2**21 on 2**-32


@_njit
def _sum_squares_k(x, out, k):
    tmp = np.empty(x.shape[1])
    for r in range(x.shape[0]):
        out[r] = _sum_squares_row(x[r], k, tmp)


@_njit
def _normalize_grid_k(x, out, k, eps, scale, inv):
    """Rows of ``to_grid(normalize_exact(x), frac)``."""
    tmp = np.empty(x.shape[1])
    for r in range(x.shape[0]):
        d = math.sqrt(_sum_squares_row(x[r], k, tmp))
        d = max(d, eps)
        xr = x[r]
        o = out[r]
        for j in range(x.shape[1]):
            o[j] = np.rint((xr[j] / d) * scale) * inv


@_njit
def _layer_norm_k(x, out, amax, res, w, b, has_w, has_b, has_res, k, c, eps):
    """Rows of fixed_point_attention.ExactLayerNorm: exact mean (one division), centred row,
    exact scaled sum of squares, ``d / sqrt(var + eps)``, the affine part, rounded to 2**-16,
    plus the residual row ``res`` (grid values: an exact sum) where ``has_res``.
    ``amax``: each row's max |x| (the caller's range check of the mean's sum)."""
    tmp = np.empty(x.shape[1])
    for r in range(x.shape[0]):
        xr = x[r]
        o = out[r]
        sm = _row_sum(xr)  # exact below the checked bound
        amax[r] = max(-_row_min(xr), _row_max(xr)) if sm == sm else np.nan  # a NaN fails the check
        mean = sm / c  # one division
        for j in range(x.shape[1]):
            o[j] = xr[j] - mean
        var = _sum_squares_row(o, k, tmp) / c
        den = math.sqrt(var + eps)
        for j in range(x.shape[1]):
            v = o[j] / den
            if has_w:
                v = v * w[j]
            if has_b:
                v = v + b[j]
            v = np.rint(v * 65536.0) * 1.52587890625e-05
            if has_res:
                v = res[r, j] + v
            o[j] = v


@_njit
def _qkv_k(x, qn, kn, v, qn_l1, v_max, k, eps, scale, inv):
    """SwinV2's q / k / v from the qkv projection's rows ``x`` (B, t, 3C): per head, q and k as
    ``_normalize_grid_k`` rows (grid ``1 / scale``), v rounded to 2**-16 (``to_grid``), written
    head-major (B, heads, t, hd). ``qn_l1``: each window's largest L1 norm of a q row (an exact
    sum); ``v_max``: each window's max |v|."""
    heads, hd = qn.shape[1], qn.shape[3]
    c = heads * hd
    tmp = np.empty(hd)
    for bi in range(x.shape[0]):
        l1m = 0.0
        vm = 0.0
        bad = False  # a NaN / infinity anywhere: both bounds infinite, so the caller's check refuses
        for ti in range(x.shape[1]):
            xr = x[bi, ti]
            for h in range(heads):
                for part in range(2):
                    seg = xr[part * c + h * hd: part * c + (h + 1) * hd]
                    o = qn[bi, h, ti] if part == 0 else kn[bi, h, ti]
                    d = math.sqrt(_sum_squares_row(seg, k, tmp))
                    d = max(d, eps)
                    l1 = 0.0
                    for j in range(hd):
                        o[j] = np.rint((seg[j] / d) * scale) * inv
                        l1 += abs(o[j])
                    if not l1 <= 1e300:
                        bad = True
                    elif part == 0:
                        l1m = max(l1m, l1)
                seg = xr[2 * c + h * hd: 2 * c + (h + 1) * hd]
                o = v[bi, h, ti]
                for j in range(hd):
                    o[j] = np.rint(seg[j] * 65536.0) * 1.52587890625e-05
                    a = abs(o[j])
                    if not a <= 1e300:
                        bad = True
                    elif a > vm:
                        vm = a
        qn_l1[bi] = np.inf if bad else l1m
        v_max[bi] = np.inf if bad else vm


@_njit
def _scaled_residual_k(f, x, out, g):
    """``to_grid((f - x) * g + x)`` per element (ScaledResidual), ``f`` channels-last (H, N, W, C),
    ``x`` / ``out`` channels-first (H, N, C, W) views: rows ``h`` are split over threads."""
    for hh in range(f.shape[0]):
        for nn in range(f.shape[1]):
            fr = f[hh, nn]
            for c in range(x.shape[2]):
                gc = g[c]
                xr = x[hh, nn, c]
                o = out[hh, nn, c]
                for j in range(xr.size):
                    xv = xr[j]
                    o[j] = np.rint(((fr[j, c] - xv) * gc + xv) * 65536.0) * 1.52587890625e-05


# -- dispatch ------------------------------------------------------------------------------------
_pools: dict[int, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def _after_fork() -> None:
    """A forked child starts with no pool and a free lock (the parent's threads are gone)."""
    global _pool_lock
    _pool_lock = threading.Lock()
    _pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def available() -> bool:
    """True when the compiled kernels can be used."""
    return _NUMBA


def use_for(t: torch.Tensor) -> bool:
    """Whether ``t`` should take the fused path: numba present, a CPU float64 tensor, large."""
    return _NUMBA and t.device.type == "cpu" and t.dtype == torch.float64 and t.numel() >= MIN_ELEMENTS


def _pool(n: int) -> ThreadPoolExecutor:
    key = os.getpid()
    with _pool_lock:
        pool = _pools.get(key)
        if pool is None or pool._max_workers < n:  # noqa: SLF001 - sized once per process
            pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="glocal-fused")
            _pools.clear()
            _pools[key] = pool
        return pool


def _run(kernel: Callable, cost: int, arrays: tuple[np.ndarray, ...], *scalars) -> None:
    """``kernel(*arrays, *scalars)``, split into blocks of the arrays' first axis (elements or
    rows, all arrays alike) over torch's thread count; ``cost``: elements per item."""
    n_items = arrays[0].shape[0]
    threads = max(1, min(torch.get_num_threads(), n_items, (n_items * cost) // MIN_ELEMENTS))
    if threads == 1:
        kernel(*arrays, *scalars)
        return
    step = -(-n_items // threads)
    pool = _pool(threads)
    futures = [pool.submit(kernel, *(a[lo: lo + step] for a in arrays), *scalars)
               for lo in range(0, n_items, step)]
    for f in futures:
        f.result()


def _flat(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().view(-1).numpy()


def _rows(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().reshape(-1, t.shape[-1]).numpy()


def exp_(x: torch.Tensor) -> torch.Tensor:
    """:func:`glocal_codec.util.exp_exact_t` (float64 CPU ``x``)."""
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    _run(_exp_k, 1, (_flat(x), _flat(out)))
    return out


def erfc_(x: torch.Tensor) -> torch.Tensor:
    """:func:`glocal_codec.util.erfc_exact_t` (float64 CPU ``x``)."""
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    _run(_erfc_k, 1, (_flat(x), _flat(out)))
    return out


def gelu_grid(x: torch.Tensor, frac: int) -> torch.Tensor:
    """``to_grid(gelu_exact(x), frac)``."""
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    _run(_gelu_grid_k, 1, (_flat(x), _flat(out)), 2.0**frac, 2.0**-frac)
    return out


def grid_(x: torch.Tensor, frac: int) -> torch.Tensor:
    """``x`` rounded to ``2**-frac`` in place."""
    if not x.is_contiguous():  # _flat would copy: round the tensor itself
        return x.mul_(2.0**frac).round_().mul_(2.0**-frac)
    a = _flat(x)
    _run(_grid_k, 1, (a, a), 2.0**frac, 2.0**-frac)
    return x


def softmax_units(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``softmax_exact(logits, mask, units=True)``; ``mask`` broadcastable to ``logits``."""
    x = _rows(logits)
    if mask is None:
        m, has = np.zeros((x.shape[0], 1), dtype=np.bool_), False  # sliced like the rows
    else:
        m, has = _rows(mask.expand_as(logits)), True
    out = torch.empty(logits.shape, dtype=torch.float64)
    _run(_softmax_k, x.shape[1], (x, m, out.view(-1, x.shape[1]).numpy()), has)
    return out


def sum_squares(x: torch.Tensor, k: int) -> torch.Tensor:
    """``sum_squares_exact(x)`` with its scale exponent ``k`` (computed by the caller)."""
    a = _rows(x)
    out = torch.empty(x.shape[:-1] + (1,), dtype=torch.float64)
    _run(_sum_squares_k, a.shape[1], (a, out.view(-1).numpy()), k)
    return out


def normalize_grid(x: torch.Tensor, k: int, eps: float, frac: int) -> torch.Tensor:
    """``to_grid(normalize_exact(x, eps), frac)``; ``k`` as for :func:`sum_squares`."""
    a = _rows(x)
    out = torch.empty(x.shape, dtype=torch.float64)
    _run(_normalize_grid_k, a.shape[1], (a, out.view(-1, a.shape[1]).numpy()), k, eps, 2.0**frac, 2.0**-frac)
    return out


def layer_norm_grid(x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None, eps: float,
                    k: int, residual: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """``ExactLayerNorm`` over the last dim (``k``: the sum-of-squares scale exponent for rows of
    that length), plus ``residual`` (same shape) if given; returns the output and the input's
    max |x| for the range check."""
    a = _rows(x)
    c = a.shape[1]
    out = torch.empty(x.shape, dtype=torch.float64)
    amax = np.empty(a.shape[0])
    res = np.zeros((a.shape[0], 1)) if residual is None else _rows(residual)  # sliced like the rows
    wa = np.zeros(1) if w is None else w.detach().contiguous().numpy()
    ba = np.zeros(1) if b is None else b.detach().contiguous().numpy()
    _run(_layer_norm_k, c, (a, out.view(-1, c).numpy(), amax, res), wa, ba, w is not None, b is not None,
         residual is not None, k, float(c), eps)
    return out, float(amax.max()) if amax.size else 0.0


def qkv_split(qkv: torch.Tensor, heads: int, k: int, eps: float,
              frac: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]:
    """SwinV2 window attention's ``normalize_grid(q)``, ``normalize_grid(k)`` (on ``2**-frac``;
    ``k``: the sum-of-squares exponent for a head's row) and ``to_grid(v)``, head-major
    (B, heads, t, hd) each, from the qkv projection's output (B, t, 3C) in one pass; with the
    largest L1 norm of a q row and max |v|."""
    x = qkv.detach().contiguous().numpy()
    b, t, c3 = x.shape
    hd = c3 // 3 // heads
    qn, kn, v = (torch.empty(b, heads, t, hd, dtype=torch.float64) for _ in range(3))
    l1, vm = np.zeros(b), np.zeros(b)
    _run(_qkv_k, t * c3, (x, qn.numpy(), kn.numpy(), v.numpy(), l1, vm), k, eps, 2.0**frac, 2.0**-frac)
    return qn, kn, v, float(l1.max()) if b else 0.0, float(vm.max()) if b else 0.0


def scaled_residual_nhwc(f: torch.Tensor, x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``to_grid((f.permute(0, 3, 1, 2) - x) * gamma[:, None, None] + x)`` for the channels-last
    branch output ``f`` (N, H, W, C) and the input ``x`` (N, C, H, W); returns (N, C, H, W)."""
    out = torch.empty(x.shape, dtype=torch.float64)
    fa = f.detach().contiguous().numpy().transpose(1, 0, 2, 3)
    xa = x.detach().contiguous().numpy().transpose(2, 0, 1, 3)
    g = gamma.detach().double().contiguous().numpy()
    _run(_scaled_residual_k, x.shape[0] * x.shape[1] * x.shape[3], (fa, xa, out.numpy().transpose(2, 0, 1, 3)), g)
    return out
