"""Categorical entropy coding of integer indices under quantised (integer) probability tables.

What it is for: the discrete indices of the VQ codec, the codebook indices of McQuic and of
the VQ-extreme models, and the reference ids of CLC. Each index ``s`` in ``[0, K)`` is coded
under a categorical distribution given either per group (``G x K`` table plus one group id
per symbol: a codebook or a position class) or per symbol (``N x K``, one row per symbol:
an autoregressive or hyperprior model that predicts each index).

Why integer tables: a float64 pmf computed by a network (softmax, counts divided by a total)
may differ in its last bits between machines, thread counts or SIMD paths, and a range coder
whose encoder and decoder see even slightly different tables decodes garbage. So the float
pmf is turned into integers *once*, by :func:`quantize_pmf` (or :func:`pmf_from_logits`),
before anything is shared; the coder itself only ever takes those integer tables, whose rows
sum to exactly ``2**precision`` with every entry ``>= 1`` (every symbol stays codable).

Stream format: the bare range-coder body (constriction's ``RangeEncoder``, 32-bit words,
little endian), symbols in the order given (per-symbol mode) or in stable group order, group
0 first (per-group mode); no header, since every symbol is in range by contract. Encoding
is the same whichever mode the rows reach the coder through: per-group coding equals
per-symbol coding of the group-sorted symbols with ``tables[groups]`` (a test pins this).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import constriction
from numpy.typing import ArrayLike

from ..bitstream.errors import CorruptStreamError
from ..util import exp_exact
from .coder import _range_decode, _words

__all__ = ["CategoricalCoder", "quantize_pmf", "pmf_from_logits", "MAX_PRECISION"]

_model = constriction.stream.model
_queue = constriction.stream.queue

#: constriction's default range coder works with 24-bit probabilities; finer tables could not
#: be represented exactly, so 24 is the largest precision the coder accepts.
MAX_PRECISION = 24
#: constriction's categorical models take alphabets of 2 .. 2**24 - 2 symbols (K = 1 needs no
#: bits at all and is handled here without constriction).
_MAX_K = (1 << MAX_PRECISION) - 2
#: Per-symbol tables go to constriction in chunks of at most this many float64 entries, so a
#: long message with a large alphabet never needs one huge N x K float copy.
_CHUNK_ENTRIES = 1 << 21


def _check_precision(precision: int) -> int:
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)):
        raise ValueError(f"precision must be an integer, got {precision!r}")
    p = int(precision)
    if not 1 <= p <= MAX_PRECISION:
        raise ValueError(f"precision must be in [1, {MAX_PRECISION}], got {p}")
    return p


# -- quantisation ----------------------------------------------------------------------------


def quantize_pmf(probs: ArrayLike, precision: int = 16) -> np.ndarray:
    """Integer frequency tables, one per row, from float probabilities.

    ``probs`` has any shape ``(..., K)``; rows need not be normalised (counts work too) but
    must be finite and non-negative with at least one positive entry (else ``ValueError``).
    The result has the same shape and dtype int64; every row sums to exactly
    ``2**precision`` and every entry is ``>= 1``, so every symbol stays codable even where the
    float pmf said 0. ``K <= 2**precision`` is required.

    Determinism: the input is read as float64 and scaled *per element* by a power of two
    relative to its row maximum (exact), then rounded to an integer once (``rint``: the one
    float rounding step). Everything after is integer arithmetic (largest-remainder
    apportionment): each symbol gets its floor share of ``2**precision``, at least 1; the
    units still missing go to the largest remainders, and where the floors of 1 overshot, the
    excess is taken back from the other symbols in proportion to what they hold above 1
    (again by largest remainders); ties are always broken by the lower index. There are no
    float sums, so identical float64 input gives identical integers on any machine, whatever
    its SIMD width or thread count. It is *not* robust to input that differs in the last
    bits (no rounding can be), so quantise on one side, before the table is shared, and let
    encoder and decoder use only the integers; see :func:`pmf_from_logits` for network
    outputs. Exactly representable input comes back unchanged:
    ``quantize_pmf(q / 2**precision) == q`` for any valid table ``q``.
    """
    p_bits = _check_precision(precision)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 0 or p.shape[-1] == 0:
        raise ValueError("probs must have a last axis with at least one symbol")
    k = p.shape[-1]
    if k > 1 << p_bits:
        raise ValueError(f"{k} symbols do not fit in precision {p_bits} (need K <= 2**precision)")
    flat = p.reshape(-1, k)
    if flat.shape[0] == 0:
        return np.zeros(p.shape, np.int64)
    # one pass finds NaN and negatives alike (both fail ``>= 0``), the row maxima find inf; the
    # separate checks run only to name what is wrong
    row_max = flat.max(axis=1)
    if not (bool((flat >= 0).all()) and np.isfinite(row_max).all()):
        if np.isnan(p).any():
            raise ValueError("probs contain NaN")
        if np.isinf(p).any():
            raise ValueError("probs contain inf")
        raise ValueError("probs contain negative values")
    if (row_max == 0).any():
        bad = int(np.flatnonzero(row_max == 0)[0])
        raise ValueError(f"row {bad} of probs has no positive entry; it cannot be normalised")

    # Scale each row so its maximum lands in [2**(bits-1), 2**bits]: a power-of-two scaling,
    # exact, with the exponent taken from frexp (exact), then one rounding to integers.
    # bits = 62 - precision keeps every product below 2**62 (int64-safe): w <= 2**bits,
    # w * 2**precision <= 2**62, and the row total <= K * 2**bits <= 2**62.
    bits = 62 - p_bits
    _, exp = np.frexp(row_max)
    w = np.rint(np.ldexp(flat, (bits - exp.astype(np.int64))[:, None])).astype(np.int64)
    total = w.sum(axis=1, keepdims=True)  # integer sum: order-independent, exact

    # The steps below work in place on the (rows x K) arrays where they can: a fresh array of a
    # large table costs its page faults, about as much as the arithmetic (mcquic's tables are
    # ~1M entries per level).
    t_weight = 1 << p_bits  # products below stay < 2**62; the removals < 2**48
    num = np.left_shift(w, p_bits, out=w)
    base, rem = np.divmod(num, total, out=(np.empty_like(num), num))  # floor shares, remainders
    # missing > 0 (floors left units over): one more unit each to the largest remainders among
    # symbols not raised to 1 (there are always enough of them with a positive remainder:
    # missing < their count)
    key = rem
    np.putmask(key, base < 1, -1)
    held = np.maximum(base, 1, out=base)  # every symbol codable
    missing = t_weight - held.sum(axis=1)  # > 0: floors left units over; < 0: floors of 1 overshot
    freq = np.add(held, _top(key, missing), out=held, casting="unsafe")

    # missing < 0: take the excess back in proportion to what each symbol holds above 1 (only
    # the rows that overshot: elsewhere nothing is taken)
    rows = np.flatnonzero(missing < 0)
    if rows.size:
        excess = -missing[rows][:, None]
        above = freq[rows] - 1  # no unit was added on these rows: freq == held there
        room = np.maximum(above.sum(axis=1, keepdims=True), 1)  # >= excess since 2**precision >= K
        take, take_rem = np.divmod(excess * above, room)
        left = excess[:, 0] - take.sum(axis=1)
        freq[rows] -= take + _top(take_rem, left)
    return freq.reshape(p.shape)


def _top(key: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per row, a 0/1 mask of the ``n`` largest keys (``n <= 0``: none), ties to the lower index.

    The same selection as ranking every row (largest first, stable) and keeping ranks below
    ``n``, but from sorted *values* -- the ``n``-th largest value ``v``, every key above it and
    the lowest-indexed keys equal to it -- which needs no stable argsort (2-3x faster on
    ``mcquic``'s tables; tested against the ranking)."""
    k = key.shape[1]
    n = np.clip(n, 0, k)
    v = np.take_along_axis(np.sort(key, axis=1), np.clip(k - n, 0, k - 1)[:, None], axis=1)
    above = key > v
    tied = key == v
    need = n[:, None] - above.sum(axis=1, keepdims=True)
    return (above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= need))) & (n > 0)[:, None]


_EXP_FLOOR = -64.0  # exp(-64) * 2**61 < 1e-9: rounds to 0 in quantize_pmf whatever the precision


def pmf_from_logits(logits: ArrayLike, precision: int = 16) -> np.ndarray:
    """Softmax in float64 over the last axis, then :func:`quantize_pmf`.

    The exponential is computed with basic IEEE operations only (not ``np.exp``, whose SIMD
    kernels differ between CPUs), so identical float64 logits give identical integer tables
    on any machine. The logits must themselves be deterministic -- for instance derived from
    quantised values, or computed once on the encoder side and the integer table sent -- since
    a network's float output can differ in its last bits between machines and threads.
    ``-inf`` logits mean probability 0 (the symbol still gets the minimum frequency); NaN and
    ``+inf`` are rejected with ``ValueError``, as is a row of only ``-inf``.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError("logits must have a last axis with at least one symbol")
    if z.size == 0:
        return quantize_pmf(np.ones(z.shape), precision)
    top = z.max(axis=-1, keepdims=True)  # a row's max is NaN if it holds one, +inf if it holds one
    if np.isnan(top).any():
        raise ValueError("logits contain NaN")
    if np.isposinf(top).any():
        raise ValueError("logits contain +inf")
    if np.isneginf(top).any():
        raise ValueError("a row of logits is all -inf")
    x = np.subtract(z, top)
    np.maximum(x, _EXP_FLOOR, out=x)  # -inf -> the floor; max entry -> exactly 0
    return quantize_pmf(exp_exact(x), precision)  # bit-identical on every machine


# -- coder -----------------------------------------------------------------------------------


def _as_index_array(a: ArrayLike, what: str, err: type[ValueError]) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.dtype.kind not in "iu":
        raise err(f"{what} must be an integer array, got dtype {arr.dtype}")
    return arr.reshape(-1).astype(np.int64)


class CategoricalCoder:
    """Range coder for integer indices in ``[0, K)`` under integer frequency tables.

    ``tables`` are integer arrays (from :func:`quantize_pmf`), never floats: each row sums to
    ``2**precision`` and every entry is ``>= 1``.

    * per-group mode: ``tables`` is ``G x K`` and ``groups[i]`` in ``[0, G)`` names the row
      symbol ``i`` uses; symbols are coded group by group, one vectorised constriction call
      per non-empty group (never one per symbol).
    * per-symbol mode (``groups=None``): ``tables`` is ``N x K``, row ``i`` for symbol ``i``,
      coded with constriction's batched categorical model (one call per chunk of rows). A
      single row (``1 x K``) is shared by all symbols; the decoder then needs ``n``.

    Errors: bad arguments at encode raise ``ValueError`` (a symbol outside ``[0, K)``
    included). At decode every inconsistency -- a damaged body, a length that is not a
    multiple of 4 bytes, group ids outside ``[0, G)``, a table that is not a valid frequency
    table, ``n`` not matching -- raises :class:`CorruptStreamError`, which is a
    ``ValueError`` too: at decode time such arguments usually come from damaged side
    information.
    """

    def __init__(self, precision: int = 16) -> None:
        self.precision = _check_precision(precision)

    # -- validation ----------------------------------------------------------------------

    def _tables(self, tables: ArrayLike, err: type[ValueError]) -> np.ndarray:
        t = np.asarray(tables)
        if t.dtype.kind not in "iu":
            raise err(
                f"tables must hold integer frequencies (see quantize_pmf), got dtype {t.dtype}"
            )
        if t.ndim != 2 or t.shape[1] == 0:
            raise err(f"tables must be a 2-D array (rows x K), got shape {t.shape}")
        if t.shape[1] > _MAX_K:
            raise err(f"alphabet of {t.shape[1]} symbols is larger than {_MAX_K}")
        t = t.astype(np.int64)
        if t.size and t.min() < 1:
            raise err("every table entry must be >= 1 so that every symbol is codable")
        if t.size and t.max() > 1 << self.precision:
            raise err(f"table entries exceed 2**{self.precision}")
        sums = t.sum(axis=1)
        if (sums != 1 << self.precision).any():
            bad = int(np.flatnonzero(sums != 1 << self.precision)[0])
            raise err(
                f"row {bad} of tables sums to {int(sums[bad])}, not 2**{self.precision}"
                f" = {1 << self.precision} (quantise with the same precision)"
            )
        return t

    def _rows(self, t: np.ndarray) -> np.ndarray:
        # Exact dyadic float64 values freq / 2**precision: ints <= 2**24 and a power-of-two
        # scaling, no rounding at all.
        return np.ascontiguousarray(np.ldexp(t.astype(np.float64), -self.precision))

    def _plan(
        self, t: np.ndarray, groups: ArrayLike | None, n: int | None, err: type[ValueError]
    ) -> tuple[int, np.ndarray | None, np.ndarray | None]:
        """(n, order, counts) for per-group coding, or (n, None, None) for per-symbol rows."""
        if groups is None:
            rows = t.shape[0]
            if n is None:
                n = rows
            if rows != 1 and rows != n:
                raise err(
                    f"per-symbol mode needs one table row per symbol: {rows} rows for {n} symbols"
                )
            return n, None, None
        g = _as_index_array(groups, "groups", err)
        if n is not None and n != g.size:
            raise err(f"{g.size} group ids given for {n} symbols")
        if g.size and (g.min() < 0 or g.max() >= t.shape[0]):
            bad = int(np.flatnonzero((g < 0) | (g >= t.shape[0]))[0])
            raise err(f"group id {int(g[bad])} at position {bad} is outside [0, {t.shape[0]})")
        order = np.argsort(g, kind="stable")
        counts = np.bincount(g, minlength=t.shape[0])
        return g.size, order, counts

    # -- coding --------------------------------------------------------------------------

    # Why floats at all: constriction's Python API has no categorical model that takes
    # integer frequencies (CustomModel calls back into Python per symbol). We pass the exact
    # dyadic float64 values freq / 2**precision with perfect=False, whose quantisation to
    # constriction's 24-bit CDF is then exact integer arithmetic: the row sum is exactly 1.0
    # (all partial sums are multiples of 2**-precision, at most 1: exact), the scale is the
    # integer 2**24 - K, and each CDF point floor(C * (2**24 - K) / 2**precision) + j is a
    # product below 2**48, exact in float64, truncated to an integer. No float rounding
    # happens anywhere, so encoder and decoder agree bit for bit on any IEEE-754 machine.
    # (perfect=True would run an iterative optimiser instead; the concrete and the batched,
    # lazy perfect=False models are binary compatible, which the per-group / per-symbol test
    # pins.)

    def encode(self, symbols: ArrayLike, tables: ArrayLike, groups: ArrayLike | None = None) -> bytes:
        """Range-code ``symbols`` (ints in ``[0, K)``, any shape, read flat) into bytes."""
        t = self._tables(tables, ValueError)
        s = _as_index_array(symbols, "symbols", ValueError)
        k = t.shape[1]
        if s.size and (s.min() < 0 or s.max() >= k):
            bad = int(np.flatnonzero((s < 0) | (s >= k))[0])
            raise ValueError(f"symbol {int(s[bad])} at position {bad} is outside [0, {k})")
        n, order, counts = self._plan(t, groups, s.size, ValueError)
        enc = _queue.RangeEncoder()
        if n and k > 1:  # K = 1 carries no information: nothing to code
            s32 = s.astype(np.int32)
            if order is None and t.shape[0] == 1:  # one shared row: one concrete model
                enc.encode(s32, _model.Categorical(self._rows(t[0]), perfect=False))
            elif order is None:
                family = _model.Categorical(perfect=False)
                for a, b, rows in self._chunks(t):
                    enc.encode(s32[a:b], family, rows)
            else:
                start = 0
                for gi, cnt in enumerate(counts.tolist()):
                    if cnt:
                        model = _model.Categorical(self._rows(t[gi]), perfect=False)
                        enc.encode(s32[order[start : start + cnt]], model)
                        start += cnt
        return enc.get_compressed().astype("<u4").tobytes()

    def decode(
        self, data: bytes, tables: ArrayLike, groups: ArrayLike | None = None, n: int | None = None
    ) -> np.ndarray:
        """Symbols coded by :meth:`encode` with the same tables and groups (flat int64).

        ``n`` is the number of symbols. It defaults to the number of group ids (per-group
        mode) or of table rows (per-symbol mode) and is needed only with one shared row;
        otherwise it is a consistency check.
        """
        t = self._tables(tables, CorruptStreamError)
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise CorruptStreamError(f"n must be a non-negative integer, got {n!r}")
            n = int(n)
        n, order, counts = self._plan(t, groups, n, CorruptStreamError)
        k = t.shape[1]
        words = _words(bytes(data), 0)
        out = np.zeros(n, np.int64)
        if not n or k == 1:
            if words.size:
                raise CorruptStreamError("entropy-coded stream holds data but codes no symbols")
            return out
        dec = _queue.RangeDecoder(words)
        if order is None and t.shape[0] == 1:
            out[:] = _range_decode(dec, _model.Categorical(self._rows(t[0]), perfect=False), n)
        elif order is None:
            family = _model.Categorical(perfect=False)
            for a, b, rows in self._chunks(t):
                out[a:b] = _range_decode(dec, family, rows)
        else:
            start = 0
            for gi, cnt in enumerate(counts.tolist()):
                if cnt:
                    model = _model.Categorical(self._rows(t[gi]), perfect=False)
                    out[order[start : start + cnt]] = _range_decode(dec, model, cnt)
                    start += cnt
        if not dec.maybe_exhausted():
            raise CorruptStreamError(
                "entropy-coded stream does not end after its last symbol"
                " (damaged, truncated or extended)"
            )
        return out

    def _chunks(self, t: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """Per-symbol rows as float64 chunks ``(a, b, rows[a:b])``, bounded in memory."""
        chunk = max(1, _CHUNK_ENTRIES // t.shape[1])
        for a in range(0, t.shape[0], chunk):
            b = min(t.shape[0], a + chunk)
            yield a, b, self._rows(t[a:b])

    def ideal_bits(self, symbols: ArrayLike, tables: ArrayLike, groups: ArrayLike | None = None) -> float:
        """Sum of ``-log2(freq / 2**precision)`` over the symbols (the quantised model's cost)."""
        t = self._tables(tables, ValueError)
        s = _as_index_array(symbols, "symbols", ValueError)
        k = t.shape[1]
        if s.size and (s.min() < 0 or s.max() >= k):
            raise ValueError(f"symbols must be in [0, {k})")
        n, _, _ = self._plan(t, groups, s.size, ValueError)
        if not n:
            return 0.0
        if groups is not None:
            freq = t[_as_index_array(groups, "groups", ValueError), s]
        elif t.shape[0] == 1:
            freq = t[0, s]
        else:
            freq = t[np.arange(n), s]
        return float(n * self.precision - np.log2(freq.astype(np.float64)).sum())
