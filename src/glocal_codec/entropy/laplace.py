"""Discretised Laplace entropy coding with integer tables, decodable pass by pass.

What it is for: autoregressive entropy models (the per-image overfitted codec ``overfit``)
that predict a *location* and a *scale* for every integer latent from its already decoded
neighbours. The decoder learns the parameters of pass ``k + 1`` only after decoding pass ``k``,
so the coder works in passes (like :class:`~glocal_codec.entropy.GaussianPassDecoder`), and a
single bit of disagreement between encoder and decoder would derail the rest of the stream, so
everything that selects a probability table is an integer.

The model, for one integer value ``v`` with predicted location ``mu`` and scale ``b``:

* the caller splits ``mu`` into an integer centre ``m`` and a fractional offset index
  ``f`` in ``[0, mean_steps)`` (offset ``(f + 0.5) / mean_steps - 0.5``), and picks a scale index
  ``j`` into the log-spaced :attr:`LaplaceTables.scales`; both are integers, computed by the
  caller with exact (integer / fixed-point) arithmetic;
* the residual ``r = v - m`` is coded under the table row ``(j, f)``: an integer frequency table
  (:func:`~glocal_codec.entropy.quantize_pmf`, ``2**precision`` per row) of the discretised
  Laplace over ``[-A, A]`` whose two end bins hold the tails;
* a residual in an end bin (``|r| >= A``) continues with its excess ``|r| - A`` under the
  geometric table of scale ``j`` (the exact conditional tail of a Laplace: memoryless), in
  chunks of ``K - 1`` whose last bin means "more follows". So any residual up to
  :data:`MAX_ABS` is codable, and a Laplace is coded without loss from truncation.

Tables are computed once from float64 arithmetic that uses only correctly rounded IEEE
operations (a fixed-order polynomial exponential, never ``np.exp``, whose SIMD kernels differ
between CPUs) and quantised to integers, so they are bit-identical on every machine. The range
coder sees them as exact dyadic rationals (as in :class:`~glocal_codec.entropy.CategoricalCoder`).

Stream: the bare range-coder body (constriction, 32-bit little-endian words). Order, pass by
pass: the pass's main symbols in the order given, then excess round 0 for the pass's tail
symbols (in order), round 1 for those still continuing, and so on.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import constriction

from ..bitstream.errors import CorruptStreamError
from .categorical import quantize_pmf
from ..util import exp_exact
from .coder import _range_decode, _words

__all__ = ["LaplaceTables", "LaplaceCoder", "LaplacePassDecoder", "laplace_tables", "MAX_ABS"]

_model = constriction.stream.model
_queue = constriction.stream.queue

#: Largest residual magnitude the coder accepts (bounds the decoder's work per symbol).
MAX_ABS = 1 << 12
_CHUNK_ENTRIES = 1 << 21

class LaplaceTables:
    """Integer tables of the discretised Laplace (main) and its geometric tail (excess).

    ``scales``: ``n_scales`` log-spaced values from ``b_min`` to ``b_max``; ``main[j * mean_steps + f]``
    the row for scale ``j`` and mean offset ``f``; ``excess[j]`` the geometric row of scale ``j``.
    Rows have ``2 * half_width + 1`` entries summing to ``2**precision``.
    """

    def __init__(self, n_scales: int = 64, b_min: float = 0.02, b_max: float = 40.0, mean_steps: int = 16,
                 half_width: int = 31, precision: int = 20) -> None:
        self.n_scales, self.mean_steps, self.half_width, self.precision = n_scales, mean_steps, half_width, precision
        if (n_scales, b_min, b_max) == (64, 0.02, 40.0):  # the shipped tables: no libm in the way
            self.log_b_min, self.log_step = float.fromhex("-0x1.f4bd2b7ac1bafp+1"), float.fromhex("0x1.ee2de733c37bdp-4")
        else:
            self.log_b_min = math.log(b_min)
            self.log_step = (math.log(b_max) - math.log(b_min)) / (n_scales - 1)
        j = np.arange(n_scales, dtype=np.float64)
        self.scales = exp_exact(self.log_b_min + j * self.log_step)
        k = self.k
        a = half_width
        offs = (np.arange(mean_steps, dtype=np.float64) + 0.5) / mean_steps - 0.5
        b = self.scales[:, None, None]
        d = k[None, None, :] - offs[None, :, None]  # distance of the bin centre from the mean
        lo, hi = d - 0.5, d + 0.5
        # mass of [lo, hi] under Laplace(0, b), from the side of the mean each edge lies on
        def upper_tail(t: np.ndarray) -> np.ndarray:  # P(X > t) for t >= 0
            return 0.5 * exp_exact(-np.maximum(t, 0) / b)

        def lower_tail(t: np.ndarray) -> np.ndarray:  # P(X < t) for t <= 0
            return 0.5 * exp_exact(np.minimum(t, 0) / b)

        mass = np.where(lo >= 0, upper_tail(lo) - upper_tail(hi),
                        np.where(hi <= 0, lower_tail(hi) - lower_tail(lo), 1 - upper_tail(hi) - lower_tail(lo)))
        mass[..., 0] = lower_tail(hi)[..., 0]  # (-inf, -A + 0.5]
        mass[..., -1] = upper_tail(lo)[..., -1]  # [A - 0.5, inf)
        self.main = quantize_pmf(np.maximum(mass, 0).reshape(n_scales * mean_steps, 2 * a + 1), precision)
        ratio = exp_exact(-1.0 / self.scales)[:, None]
        e = np.arange(2 * a + 1, dtype=np.float64)[None, :]
        pow_e = exp_exact(-e / self.scales[:, None])
        geo = (1 - ratio) * pow_e
        geo[:, -1] = pow_e[:, -1]  # "K - 1 or more": the chunk continues
        self.excess = quantize_pmf(geo, precision)
        scale = float(2.0 ** -precision)
        self._main_f = self.main.astype(np.float64) * scale  # exact dyadic rationals
        self._excess_f = self.excess.astype(np.float64) * scale

    @property
    def k(self) -> np.ndarray:
        return np.arange(-self.half_width, self.half_width + 1, dtype=np.float64)

    @property
    def alphabet(self) -> int:
        return 2 * self.half_width + 1


@lru_cache(maxsize=4)
def laplace_tables(n_scales: int = 64, b_min: float = 0.02, b_max: float = 40.0, mean_steps: int = 16,
                   half_width: int = 31, precision: int = 20) -> LaplaceTables:
    """Shared, cached :class:`LaplaceTables` (built once per process)."""
    return LaplaceTables(n_scales, b_min, b_max, mean_steps, half_width, precision)


def _split(residuals: np.ndarray, a: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Main symbols (0..K-1), and per tail symbol its number of excess chunks and final chunk."""
    main = np.clip(residuals, -a, a) + a
    excess = np.abs(residuals) - a  # >= 0 for tail symbols
    full = np.where(excess >= 0, excess // (k - 1), 0)
    rem = np.where(excess >= 0, excess % (k - 1), 0)
    return main, full, rem


def _check_indexes(t: LaplaceTables, scale_idx: np.ndarray, mean_idx: np.ndarray, n: int,
                   err: type[ValueError]) -> None:
    if scale_idx.shape != (n,) or mean_idx.shape != (n,):
        raise err("scale and mean indexes must have one entry per symbol")
    if n and (scale_idx.min() < 0 or scale_idx.max() >= t.n_scales or mean_idx.min() < 0
              or mean_idx.max() >= t.mean_steps):
        raise err("scale or mean index outside the table")


class LaplaceCoder:
    """Encodes integer residuals pass by pass under :class:`LaplaceTables` (see the module docstring)."""

    def __init__(self, tables: LaplaceTables | None = None) -> None:
        self.tables = tables or laplace_tables()

    def _check(self, scale_idx: np.ndarray, mean_idx: np.ndarray, n: int, err: type[ValueError]) -> None:
        _check_indexes(self.tables, scale_idx, mean_idx, n, err)

    def encode(self, residuals: np.ndarray, scale_idx: np.ndarray, mean_idx: np.ndarray,
               passes: np.ndarray | None = None) -> bytes:
        """Code ``residuals`` (flat ints, ``|r| <= MAX_ABS``) in the given order; ``passes``
        (non-decreasing) says which decoding pass each belongs to (default: one pass)."""
        r = np.asarray(residuals, np.int64).reshape(-1)
        n = r.size
        j = np.asarray(scale_idx, np.int64).reshape(-1)
        f = np.asarray(mean_idx, np.int64).reshape(-1)
        self._check(j, f, n, ValueError)
        if n and np.abs(r).max() > MAX_ABS:
            raise ValueError(f"residuals must be within +-{MAX_ABS}")
        p = np.zeros(n, np.int64) if passes is None else np.asarray(passes, np.int64).reshape(-1)
        if p.shape != (n,) or (n > 1 and (np.diff(p) < 0).any()):
            raise ValueError("passes must be non-decreasing, one per symbol")
        t = self.tables
        a, k = t.half_width, t.alphabet
        main, full, rem = _split(r, a, k)
        # excess chunks: symbol i with full = q and rem = s sends q chunks "K-1" then s,
        # in round 0, 1, ..., q; ordered by (pass, round, position)
        tail = np.flatnonzero(np.abs(r) >= a)
        rounds = full[tail] + 1
        owner = np.repeat(tail, rounds)
        rnd = np.arange(owner.size) - np.repeat(np.cumsum(rounds) - rounds, rounds)
        chunk = np.where(rnd < full[owner], k - 1, rem[owner])
        pos = np.arange(n)
        key_pass = np.concatenate([p, p[owner]])
        key_round = np.concatenate([np.zeros(n, np.int64), rnd + 1])
        key_pos = np.concatenate([pos, owner])
        order = np.lexsort((key_pos, key_round, key_pass))
        symbols = np.concatenate([main, chunk])[order].astype(np.int32)
        is_main = np.concatenate([np.ones(n, bool), np.zeros(owner.size, bool)])[order]
        row = np.concatenate([j * t.mean_steps + f, j[owner]])[order]
        enc = _queue.RangeEncoder()
        family = _model.Categorical(perfect=False)
        step = max(1, _CHUNK_ENTRIES // k)
        for s in range(0, symbols.size, step):
            e = min(symbols.size, s + step)
            m = is_main[s:e]
            probs = np.where(m[:, None], t._main_f[np.where(m, row[s:e], 0)], t._excess_f[np.where(m, 0, row[s:e])])
            enc.encode(symbols[s:e], family, np.ascontiguousarray(probs))
        return enc.get_compressed().astype("<u4").tobytes()

    def ideal_bits(self, residuals: np.ndarray, scale_idx: np.ndarray, mean_idx: np.ndarray) -> float:
        """Bits the stream will take (up to the coder's few bytes of overhead)."""
        t = self.tables
        r = np.asarray(residuals, np.int64).reshape(-1)
        j = np.asarray(scale_idx, np.int64).reshape(-1)
        f = np.asarray(mean_idx, np.int64).reshape(-1)
        main, full, rem = _split(r, t.half_width, t.alphabet)
        bits = t.precision * r.size - np.log2(t.main[j * t.mean_steps + f, main].astype(np.float64)).sum()
        tail = np.abs(r) >= t.half_width
        jt = j[tail]
        bits += (full[tail] + 1).sum() * t.precision
        bits -= (full[tail] * np.log2(t.excess[jt, -1].astype(np.float64))).sum()
        bits -= np.log2(t.excess[jt, rem[tail]].astype(np.float64)).sum()
        return float(bits)


class LaplacePassDecoder:
    """Reads a :meth:`LaplaceCoder.encode` stream pass by pass: ``decode(scale_idx, mean_idx)``
    returns the next pass's residuals (int64). ``finish()`` checks that nothing is left over."""

    def __init__(self, data: bytes, tables: LaplaceTables | None = None) -> None:
        self.tables = tables or laplace_tables()
        self.dec = _queue.RangeDecoder(_words(bytes(data), 0))
        self.family = _model.Categorical(perfect=False)

    def decode(self, scale_idx: np.ndarray, mean_idx: np.ndarray) -> np.ndarray:
        t = self.tables
        j = np.asarray(scale_idx, np.int64).reshape(-1)
        f = np.asarray(mean_idx, np.int64).reshape(-1)
        n = j.size
        _check_indexes(t, j, f, n, CorruptStreamError)
        if not n:
            return np.zeros(0, np.int64)
        a, k = t.half_width, t.alphabet
        main = np.asarray(_range_decode(self.dec, self.family, t._main_f[j * t.mean_steps + f]), np.int64)
        r = main - a
        tail = np.flatnonzero(np.abs(r) >= a)
        if tail.size:
            excess = np.zeros(tail.size, np.int64)
            live = np.arange(tail.size)
            for _ in range(MAX_ABS // (k - 1) + 2):
                got = np.asarray(_range_decode(self.dec, self.family, t._excess_f[j[tail[live]]]), np.int64)
                excess[live] += got
                live = live[got == k - 1]
                if not live.size:
                    break
            else:
                raise CorruptStreamError("a residual's excess runs beyond the coder's limit")
            if excess.max() + a > MAX_ABS:
                raise CorruptStreamError("a decoded residual is beyond the coder's limit")
            r[tail] = np.sign(r[tail]) * (a + excess)
        return r

    def finish(self) -> None:
        if not self.dec.maybe_exhausted():
            raise CorruptStreamError("entropy-coded stream does not end after its last symbol")
