"""Vectorised entropy coding of integer tensors over constriction's range coder.

The torch side only produces integer symbols and model parameters; this module turns them into
bytes. Two model kinds cover the mean-scale hyperprior family:

* :class:`GaussianCoder` -- zero-mean quantised Gaussians whose standard deviation is picked from
  a fixed scale table by an integer index (Ballé et al. 2018, Minnen et al. 2018). Encoder and
  decoder see the *same* float64 table entries, so coding is bit-exact whatever the thread count.
* :class:`TableCoder` -- one fixed probability table per channel (the factorized prior of Ballé
  et al. 2017), tables stored with the weights so nothing is recomputed at decode time.

Both clamp symbols to a finite alphabet and send the rare values outside it in an escape
list at the head of the stream, so any integer can be coded.
"""

from __future__ import annotations

import numpy as np
import constriction

from ..bitstream.errors import CorruptStreamError
from ..bitstream.varint import decode_varint, encode_varint

__all__ = ["GaussianCoder", "GaussianPassDecoder", "TableCoder", "default_scale_table", "ideal_bits_gaussian"]

_model = constriction.stream.model
_queue = constriction.stream.queue


def default_scale_table(lo: float = 0.11, hi: float = 256.0, levels: int = 64) -> np.ndarray:
    """Log-spaced standard deviations, as in CompressAI's default (same range and size)."""
    return np.exp(np.linspace(np.log(lo), np.log(hi), levels, dtype=np.float64))


_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


def _zigzag(v: int) -> int:
    return (v << 1) if v >= 0 else ((-v << 1) - 1)


def _unzigzag(u: int) -> int:
    return (u >> 1) if not u & 1 else -((u + 1) >> 1)


def _split_escapes(symbols: np.ndarray, lo: np.ndarray | int, hi: np.ndarray | int) -> tuple[np.ndarray, bytes]:
    """Clamp symbols into [lo, hi]; serialise the positions/values that did not fit."""
    clamped = np.clip(symbols, lo, hi)
    idx = np.flatnonzero(clamped != symbols)
    if idx.size and (symbols[idx].min() < _INT32_MIN or symbols[idx].max() > _INT32_MAX):
        # the decoder returns int32 symbols: refuse what it could not give back
        raise ValueError("symbols must fit in 32-bit signed integers")
    out = bytearray(encode_varint(len(idx)))
    prev = 0
    for i in idx.tolist():  # only the (rare) out-of-range symbols, never every symbol
        out += encode_varint(i - prev)
        out += encode_varint(_zigzag(int(symbols[i])))
        prev = i
    return clamped.astype(np.int32), bytes(out)


def _read_escapes(data: bytes, n: int) -> tuple[list[tuple[int, int]], int]:
    count, pos = decode_varint(data, 0, "escape count")
    if count > n:
        raise CorruptStreamError(f"escape count {count} exceeds the {n} coded symbols")
    escapes = []
    prev = 0
    for _ in range(count):
        delta, pos = decode_varint(data, pos, "escape position")
        value, pos = decode_varint(data, pos, "escape value")
        if value >> 32:
            raise CorruptStreamError("escape value beyond the 32-bit range of the coded symbols")
        prev += delta
        if prev >= n:
            raise CorruptStreamError("escape position beyond the coded symbols")
        escapes.append((prev, _unzigzag(value)))
    return escapes, pos


def _words(data: bytes, pos: int) -> np.ndarray:
    body = data[pos:]
    if len(body) % 4:
        raise CorruptStreamError("entropy-coded stream length is not a multiple of 4 bytes")
    return np.frombuffer(body, dtype="<u4").astype(np.uint32)


def _range_decode(dec, *args) -> np.ndarray:
    """``dec.decode(*args)``; constriction's errors on invalid data become CorruptStreamError."""
    try:
        return dec.decode(*args)
    except (AssertionError, ValueError, RuntimeError, OverflowError) as err:
        # constriction raises AssertionError ("compressed data that is invalid for the employed
        # entropy model") or ValueError on a damaged body: one clear error for the caller
        raise CorruptStreamError(f"entropy-coded stream is invalid for its model: {err}") from None


def _apply_escapes(symbols: np.ndarray, escapes: list[tuple[int, int]]) -> np.ndarray:
    for i, v in escapes:
        symbols[i] = v
    return symbols


class GaussianCoder:
    """Codes integer symbols under zero-mean quantised Gaussians indexed into a scale table.

    Callers pass ``symbols = round(y - mean)`` and integer ``indexes`` from
    :meth:`scale_index`; the mean only shifts the reconstruction, so it never has to match
    bit-for-bit between encoder and decoder. ``bound`` limits the alphabet to
    ``[-bound, bound]``; larger values go through the escape list.
    """

    def __init__(self, scale_table: np.ndarray | None = None, bound: int = 255) -> None:
        self.scale_table = np.asarray(default_scale_table() if scale_table is None else scale_table, np.float64)
        self.bound = int(bound)
        self._family = _model.QuantizedGaussian(-self.bound, self.bound)

    def scale_index(self, scales: np.ndarray) -> np.ndarray:
        """Index of the smallest table entry >= scale (clamped to the table)."""
        scales = np.asarray(scales, dtype=np.float64)
        idx = np.searchsorted(self.scale_table, scales, side="left")
        return np.minimum(idx, len(self.scale_table) - 1).astype(np.int32)

    def encode(self, symbols: np.ndarray, indexes: np.ndarray) -> bytes:
        symbols = np.asarray(symbols).reshape(-1).astype(np.int64)
        indexes = np.asarray(indexes).reshape(-1)
        if symbols.shape != indexes.shape:
            raise ValueError("symbols and indexes must have the same size")
        clamped, head = _split_escapes(symbols, -self.bound, self.bound)
        enc = _queue.RangeEncoder()
        if clamped.size:
            stds = self.scale_table[indexes]
            enc.encode(clamped, self._family, np.zeros_like(stds), stds)
        return head + enc.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, indexes: np.ndarray) -> np.ndarray:
        indexes = np.asarray(indexes).reshape(-1)
        n = indexes.size
        escapes, pos = _read_escapes(data, n)
        dec = _queue.RangeDecoder(_words(data, pos))
        if not n:
            return np.zeros(0, np.int32)
        stds = self.scale_table[indexes]
        symbols = np.asarray(_range_decode(dec, self._family, np.zeros_like(stds), stds), dtype=np.int32)
        return _apply_escapes(symbols, escapes)


class GaussianPassDecoder:
    """Decodes a :class:`GaussianCoder` stream in consecutive chunks (one per coding pass).

    Context models (checkerboard and channel-slice passes, He et al. 2021/2022) learn the next
    pass's scales only after decoding the previous one. The encoder writes every pass with one
    ``GaussianCoder.encode`` call over the concatenated symbols (one stream: the range coder's
    state carries over, so nothing is lost between passes); this reads it back chunk by chunk
    from the same range decoder, applying the stream's escapes as their positions come up.
    """

    def __init__(self, coder: GaussianCoder, data: bytes, total: int) -> None:
        self.coder = coder
        self.escapes, pos = _read_escapes(data, total)
        self.dec = _queue.RangeDecoder(_words(data, pos))
        self.pos, self.total, self._e = 0, int(total), 0

    def decode(self, indexes: np.ndarray) -> np.ndarray:
        """The next ``indexes.size`` symbols (int64), under the scales those indexes pick."""
        indexes = np.asarray(indexes).reshape(-1)
        k = int(indexes.size)
        if self.pos + k > self.total:
            raise CorruptStreamError("more symbols requested than the stream holds")
        if not k:
            return np.zeros(0, np.int64)
        stds = self.coder.scale_table[indexes]
        sym = np.asarray(_range_decode(self.dec, self.coder._family, np.zeros_like(stds), stds), dtype=np.int64)
        while self._e < len(self.escapes) and self.escapes[self._e][0] < self.pos + k:
            i, v = self.escapes[self._e]
            sym[i - self.pos] = v
            self._e += 1
        self.pos += k
        return sym


class TableCoder:
    """Codes symbols with one fixed probability table per channel (factorized prior).

    ``pmf[k, j]`` is the probability of symbol ``offsets[k] + j`` in channel ``k``. Symbols
    are coded channel by channel (one vectorised constriction call per channel, never one per
    symbol); ``channels[i]`` says which table symbol ``i`` uses.
    """

    def __init__(self, pmf: np.ndarray, offsets: np.ndarray) -> None:
        pmf = np.asarray(pmf, dtype=np.float64)
        if pmf.ndim != 2 or len(offsets) != pmf.shape[0]:
            raise ValueError("pmf must be K x L with one offset per row")
        self.pmf = np.maximum(pmf, 0.0)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self._models = [_model.Categorical(row, perfect=False) for row in self.pmf]

    @property
    def channels(self) -> int:
        return self.pmf.shape[0]

    def _order(self, channels: np.ndarray) -> np.ndarray:
        return np.argsort(channels, kind="stable")

    def encode(self, symbols: np.ndarray, channels: np.ndarray) -> bytes:
        symbols = np.asarray(symbols).reshape(-1).astype(np.int64)
        channels = np.asarray(channels).reshape(-1).astype(np.int64)
        local = symbols - self.offsets[channels]
        clamped, head = _split_escapes(local, 0, self.pmf.shape[1] - 1)
        order = self._order(channels)
        counts = np.bincount(channels, minlength=self.channels)
        enc = _queue.RangeEncoder()
        start = 0
        for k, cnt in enumerate(counts.tolist()):
            if cnt:
                enc.encode(clamped[order[start : start + cnt]], self._models[k])
                start += cnt
        return head + enc.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, channels: np.ndarray) -> np.ndarray:
        channels = np.asarray(channels).reshape(-1).astype(np.int64)
        n = channels.size
        escapes, pos = _read_escapes(data, n)
        dec = _queue.RangeDecoder(_words(data, pos))
        order = self._order(channels)
        counts = np.bincount(channels, minlength=self.channels)
        local = np.zeros(n, np.int64)
        start = 0
        for k, cnt in enumerate(counts.tolist()):
            if cnt:
                local[order[start : start + cnt]] = _range_decode(dec, self._models[k], cnt)
                start += cnt
        local = _apply_escapes(local, [(i, v) for i, v in escapes])
        # escapes hold values relative to the channel offset, like the coded symbols
        return (local + self.offsets[channels]).astype(np.int32)


def ideal_bits_gaussian(symbols: np.ndarray, stds: np.ndarray) -> float:
    """-log2 p of integer symbols under zero-mean quantised Gaussians (for benchmarks)."""
    from math import sqrt

    from scipy.special import erfc

    s = np.abs(np.asarray(symbols, np.float64))
    stds = np.asarray(stds, np.float64)
    upper = 0.5 * erfc(-(0.5 - s) / (stds * sqrt(2)))
    lower = 0.5 * erfc(-(-0.5 - s) / (stds * sqrt(2)))
    return float(-np.log2(np.maximum(upper - lower, 1e-300)).sum())
