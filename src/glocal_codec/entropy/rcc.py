"""Reverse-channel coding of diagonal Gaussian samples (minimal random coding).

The encoder holds a posterior ``q = N(mu_q, sigma_q**2)`` and the decoder a prior
``p = N(mu_p, sigma_p**2)`` (per dimension). Instead of quantising a sample of ``q``, the
encoder sends *which* of a list of shared random candidates to use: both sides draw the same
``2**b`` candidates from ``p`` with a shared seed, the encoder picks one by its importance
weight ``q/p`` and writes its index; the decoder regenerates that candidate exactly. The cost
is about ``KL(q || p)`` bits, and the decoded value is (approximately) a *sample of q*, not a
quantised point: the basis of "bits-back"-free stochastic coding.

References:

* M. Havasi, R. Peharz, J. M. Hernández-Lobato, "Minimal Random Code Learning: Getting Bits
  Back from Compressed Model Parameters", ICLR 2019 -- the chunked scheme implemented here
  (blocks of dimensions with a KL budget of ``b`` bits each, ``2**b`` candidates per block).
* C. T. Li, A. El Gamal, "Strong Functional Representation Lemma and Applications to Coding
  Theorems", IEEE Trans. Inf. Theory 64(11), 2018 -- the Poisson functional representation:
  ``argmin_n T_n * p(x_n) / q(x_n)`` over a Poisson process is an exact sample of ``q``.
* L. Theis, N. Yosri, "Algorithms for the Communication of Samples", ICML 2022 -- ordered
  random coding and the analysis of minimal random coding's bias.
* S. Chatterjee, P. Diaconis, "The sample size required in importance sampling", Ann. Appl.
  Probab. 28(2), 2018 -- ``exp(KL + t)`` candidates make the selection's bias ``~exp(-t/4)``.
* J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel Random Numbers: As Easy as
  1, 2, 3", SC 2011 -- the Philox-4x32-10 counter-based generator.
* G. E. P. Box, M. E. Muller, "A Note on the Generation of Random Normal Deviates", Ann. Math.
  Statist. 29(2), 1958.

**The shared generator** is owned by this module, so no change in NumPy, torch or the CPU can
change the candidates: Philox-4x32-10 (checked against Random123's known-answer vectors)
computed with NumPy ``uint64`` integer arithmetic (exact), keyed by the 64-bit ``seed``, with
the 128-bit counter ``(candidate, dimension // 2, chunk, 0)``. One Philox block gives two
standard normals by Box-Muller: a 53-bit uniform ``u`` in ``(0, 1]`` and a 2-bit quadrant plus
a 51-bit angle fraction, ``r = sqrt(-2 log u)``, ``(r cos t, r sin t)`` for dimensions
``2j, 2j+1`` of the chunk. ``log`` and ``cos/sin`` are this module's own polynomial
evaluations made only of IEEE-754 operations that are correctly rounded by definition
(``+ - * /``, ``sqrt``, exact ``frexp``/``ldexp``, integer to float conversion of values below
``2**53``), one NumPy ufunc per operation (no fused multiply-add), so the float64 normals are
bit-identical on every IEEE-754 machine, SIMD path and library version; no subnormal number
arises, so flush-to-zero modes do not matter either. The candidate value is
``mu_p + sigma_p * z`` (one multiplication, one addition), so the decoded sample is
bit-identical to the encoder's as long as both sides pass bit-identical float64 ``mu_p`` and
``sigma_p`` (quantise them, or compute them deterministically, before use). ``np.log`` and
``np.sin`` are *not* used: they differ in the last bit between SIMD paths.

**Selection.** ``select="sample"`` (the default, minimal random coding) draws the index from
the normalised weights ``w_n / sum w`` (inverse CDF with one uniform per chunk from the
encoder's own Philox stream, ``util.exp_exact`` for the weights): with ``2**b`` well above
``2**KL`` the decoded value is distributed as ``q``; with ``KL`` close to ``b`` it is a sample
of ``p`` only partly reweighted towards ``q`` (too wide: see :func:`default_kl_budget`). ``select="greedy"`` takes the arg-max weight:
deterministic and, for the same ``b``, closer to the mode of ``q`` (lower distortion), but its
decoded values are *not* distributed as ``q`` (too concentrated where ``q/p`` peaks): use it
when only a good point is wanted, ``"sample"`` when the decoder must see a sample (textures,
perceptual quality). Indices are written with exactly ``b`` bits: with ``KL`` close to ``b``
per chunk the selected index is close to uniform on ``[0, 2**b)``, so an entropy coder could
not save more than a fraction of a bit per chunk (ordered random coding, which makes small
indices likelier, only pays when candidates are far more numerous than ``2**KL``).

**Chunks.** The dimensions (flattened in C order) are cut greedily into consecutive chunks
whose KL stays within ``kl_budget`` bits (default ``b - 3``, see :func:`default_kl_budget`). The chunk sizes depend on ``q`` and
are written into the stream (Rice-coded offsets from the smallest size, a few bits per
chunk); when encoder and decoder agree on a partition beforehand (``chunk_sizes=``), nothing
but the chunk count is written.

**Stream format** (bits, most significant first, then zero-padded to a whole byte; nothing
after it): ``01`` (version 1), one bit ``m`` (0: chunk sizes in the stream, 1: known to the
decoder), five bits ``b - 1``; Elias-gamma ``C + 1`` (``C`` chunks); if ``m == 0`` and ``C >= 2``:
Elias-gamma ``base`` (the smallest of the first ``C - 1`` sizes), four bits ``k``, and for the
first ``C - 1`` chunks ``size - base`` Rice-coded with parameter ``k`` (quotient in unary as
ones ended by a zero, then ``k`` remainder bits) -- the last size is ``D`` minus the others;
then the ``C`` indices, ``b`` bits each. Every inconsistency on reading is a
:class:`~glocal_codec.bitstream.errors.BitstreamError`: :class:`TruncatedError` when the data
ends early, :class:`UnsupportedVersionError`, :class:`LimitError` for absurd values and
:class:`CorruptStreamError` for sizes that do not add up, non-zero padding or trailing bytes.
A flipped bit inside an index cannot be detected here (every index is valid); the ``.glc``
container's CRC-32 catches that. The seed is not written: the caller shares it (a constant of
the codec, or a field of its own header).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ..bitstream.errors import CorruptStreamError, LimitError, TruncatedError, UnsupportedVersionError
from ..util import exp_exact

__all__ = [
    "GaussianRCC",
    "RCCResult",
    "RCC_MAX_BITS",
    "default_kl_budget",
    "gaussian_kl_bits",
    "plan_chunks",
    "philox4x32",
    "shared_normals",
]

#: The largest index width: ``2**20`` candidates per chunk is already ~1 s of generation per
#: few dimensions; wider indices would be impractical, so the reader refuses them as absurd.
RCC_MAX_BITS = 20
_VERSION = 1
_MAX_CHUNKS = 1 << 32  # the chunk index is one 32-bit counter word
_MAX_DIMS = 1 << 32
_GAMMA_MAX_ZEROS = 40  # Elias-gamma prefixes longer than this cannot be real (> 2**40 chunks)
_TAG_CANDIDATES = 0
_TAG_SELECTION = 1

# -- Philox-4x32-10 --------------------------------------------------------------------------

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_LO32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_ROUNDS = 10


def _round_keys(seed: int) -> list[tuple[np.uint64, np.uint64]]:
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    return [
        (np.uint64((k0 + r * _W0) & 0xFFFFFFFF), np.uint64((k1 + r * _W1) & 0xFFFFFFFF))
        for r in range(_ROUNDS)
    ]


def _philox(c0: ArrayLike, c1: ArrayLike, c2: ArrayLike, c3: ArrayLike, seed: int) -> tuple[np.ndarray, ...]:
    """Philox-4x32-10 on broadcast counter words (values < 2**32), key = the two halves of
    ``seed``; returns the four output words as uint64 arrays holding 32-bit values."""
    words = np.broadcast_arrays(*(np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3)))
    x0, x1, x2, x3 = (np.array(w, dtype=np.uint64) for w in words)
    for k0, k1 in _round_keys(seed):
        p0 = x0 * _M0  # < 2**64: the exact 64-bit product of two 32-bit words
        p1 = x2 * _M1
        x0 = p1 >> _S32  # hi1 ^ x1 ^ k0
        x0 ^= x1
        x0 ^= k0
        x2 = p0 >> _S32  # hi0 ^ x3 ^ k1
        x2 ^= x3
        x2 ^= k1
        p1 &= _LO32  # lo1
        p0 &= _LO32  # lo0
        x1, x3 = p1, p0
    return x0, x1, x2, x3


def _check_seed(seed: int, name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {seed!r}")
    s = int(seed)
    if not 0 <= s < 1 << 64:
        raise ValueError(f"{name} must be in [0, 2**64), got {s}")
    return s


def philox4x32(counter: ArrayLike, key: ArrayLike) -> np.ndarray:
    """Philox-4x32-10 (Salmon et al. 2011, Random123's ``philox4x32`` with 10 rounds).

    ``counter`` has shape ``(..., 4)`` and ``key`` shape ``(2,)``, 32-bit unsigned words; the
    result has the counter's shape, dtype uint32. Pure integer arithmetic: bit-exact
    everywhere. ``philox4x32([0, 0, 0, 0], [0, 0])`` is ``[0x6627e8d5, 0xe169c58d, 0xbc57ac4c,
    0x9b00dbd8]``.
    """
    c = np.asarray(counter)
    k = np.asarray(key)
    if c.shape[-1:] != (4,) or k.shape != (2,):
        raise ValueError(f"counter must have shape (..., 4) and key (2,), got {c.shape} and {k.shape}")
    for name, a in (("counter", c), ("key", k)):
        if a.dtype.kind not in "iu" or (a.size and (a.min() < 0 or a.max() > 0xFFFFFFFF)):
            raise ValueError(f"{name} words must be integers in [0, 2**32)")
    seed = int(k[0]) | (int(k[1]) << 32)
    out = _philox(c[..., 0], c[..., 1], c[..., 2], c[..., 3], seed)
    return np.stack(out, axis=-1).astype(np.uint32)


# -- deterministic float math ----------------------------------------------------------------

_LN2_HI = 6.93147180369123816490e-01  # low 32 bits zero: e * _LN2_HI is exact for |e| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_SQRT_HALF = 0.70710678118654752440
# log(m) = 2 s (1 + s^2/3 + s^4/5 + ...), s = (m - 1)/(m + 1), |s| <= 0.1716: 13 terms < 1e-19
_LOG_COEFFS = [1.0 / (2 * k + 1) for k in range(12, -1, -1)]
_QUARTER_PI = 0.78539816339744830962
# Taylor series on [0, pi/4]: sin to x^17, cos to x^18 (truncation below 1e-19)
_SIN_COEFFS = [(-1.0) ** k / math.factorial(2 * k + 1) for k in range(8, -1, -1)]
_COS_COEFFS = [(-1.0) ** k / math.factorial(2 * k) for k in range(9, -1, -1)]


def _horner(z: np.ndarray, coeffs: list[float]) -> np.ndarray:
    """``sum c_i z^i`` by Horner's rule, highest power first: one ufunc per multiply and per
    add (NumPy never fuses them), so the rounding is the same on every machine."""
    out = z * coeffs[0]
    out += coeffs[1]
    for c in coeffs[2:]:
        out *= z
        out += c
    return out


def _log_exact(x: np.ndarray) -> np.ndarray:
    """Natural log of positive finite float64 values, within a few ulp, bit-identical on
    every IEEE-754 machine (frexp, + - * / only; no np.log)."""
    m, e = np.frexp(x)
    small = m < _SQRT_HALF
    m[small] *= 2.0  # [sqrt(1/2), sqrt(2)); exact
    e = (e - small).astype(np.float64)
    f = m - 1.0  # exact (Sterbenz)
    s = f / (f + 2.0)
    poly = _horner(s * s, _LOG_COEFFS)
    poly *= s
    poly *= 2.0
    e_lo = e * _LN2_LO
    e_lo += poly
    e *= _LN2_HI
    e += e_lo
    return e


def _box_muller(w0: np.ndarray, w1: np.ndarray, w2: np.ndarray, w3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two standard normals per Philox block (bit-exact): ``u`` from 53 bits of ``w0, w1``;
    the angle from ``w2, w3``: 3 bits of octant and a 50-bit fraction. Odd octants count the
    fraction from the octant's far end (``2**50 - f``, exact), so cos and sin are only ever
    evaluated on ``[0, pi/4]``; the octant then swaps and negates them (exact)."""
    a = w0 << np.uint64(21)
    a |= w1 >> np.uint64(11)  # 53 bits
    a += np.uint64(1)
    u = a.astype(np.float64)
    u *= 2.0**-53  # (0, 1], exact
    r = _log_exact(u)
    r *= -2.0
    np.sqrt(r, out=r)
    octant = w2 >> np.uint64(29)
    f = w2 & np.uint64(0x1FFFFFFF)
    f <<= np.uint64(21)
    f |= w3 >> np.uint64(11)  # 50 bits
    odd = (octant & np.uint64(1)).astype(bool)
    f[odd] = np.uint64(1 << 50) - f[odd]
    theta = f.astype(np.float64)
    theta *= _QUARTER_PI * 2.0**-50  # [0, pi/4]
    z = theta * theta
    s = _horner(z, _SIN_COEFFS)
    s *= theta
    c = _horner(z, _COS_COEFFS)
    quadrant = octant >> np.uint64(1)
    swap = odd ^ (quadrant & np.uint64(1)).astype(bool)
    cc, ss = np.where(swap, s, c), np.where(swap, c, s)
    # signs: cos < 0 in quadrants 1, 2 (bit 0 of q ^ q >> 1), sin < 0 in quadrants 2, 3 (q >> 1)
    r_cos = ((quadrant ^ (quadrant >> np.uint64(1))) & np.uint64(1)).astype(np.float64)
    r_sin = (quadrant >> np.uint64(1)).astype(np.float64)
    for sign in (r_cos, r_sin):
        sign *= -2.0
        sign += 1.0  # +1 or -1
        sign *= r  # exact
    cc *= r_cos
    ss *= r_sin
    return cc, ss


def _normals_at(seed: int, chunk: np.ndarray, candidate: np.ndarray, dim: np.ndarray) -> np.ndarray:
    """The shared standard normal of (chunk, candidate, dimension-within-chunk); broadcast."""
    shape = np.broadcast_shapes(np.shape(chunk), np.shape(candidate), np.shape(dim))
    chunk, candidate, dim = (
        a.ravel() for a in np.broadcast_arrays(*(np.asarray(x, np.uint64) for x in (chunk, candidate, dim)))
    )
    z0, z1 = _box_muller(*_philox(candidate, dim >> np.uint64(1), chunk, _TAG_CANDIDATES, seed))
    return np.where((dim & np.uint64(1)).astype(bool), z1, z0).reshape(shape)


def shared_normals(seed: int, chunk: ArrayLike, candidate: ArrayLike, dim: ArrayLike) -> np.ndarray:
    """The standard normal that the shared generator assigns to ``(seed, chunk, candidate,
    dim)`` (``dim`` counts from the chunk's first dimension); arguments broadcast. Candidate
    ``n`` of chunk ``c`` is ``mu_p + sigma_p * shared_normals(seed, c, n, arange(size))``.
    Bit-exact on every IEEE-754 machine (see the module docstring)."""
    s = _check_seed(seed)
    arrays = [np.asarray(a) for a in (chunk, candidate, dim)]
    # counter words: candidate, dim // 2 and chunk are 32 bits each
    for name, a, limit in zip(("chunk", "candidate", "dim"), arrays, (1 << 32, 1 << 32, 1 << 33)):
        if a.dtype.kind not in "iu" or (a.size and (a.min() < 0 or a.max() >= limit)):
            raise ValueError(f"{name} must hold integers in [0, {limit})")
    return _normals_at(s, *arrays)


# -- KL and chunk planning -------------------------------------------------------------------


def gaussian_kl_bits(mu_q: ArrayLike, sigma_q: ArrayLike, mu_p: ArrayLike, sigma_p: ArrayLike) -> np.ndarray:
    """``KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2))`` per element, in bits (broadcast)."""
    mq, sq, mp, sp = (np.asarray(a, dtype=np.float64) for a in (mu_q, sigma_q, mu_p, sigma_p))
    ratio = sq / sp
    nats = -np.log(ratio) + 0.5 * (ratio * ratio + ((mq - mp) / sp) ** 2) - 0.5
    return np.maximum(nats, 0.0) / math.log(2.0)


def plan_chunks(kl_bits: ArrayLike, budget: float, *, strict: bool = True) -> np.ndarray:
    """Cut dimensions (in order) greedily into consecutive chunks of total KL <= ``budget``.

    Each chunk takes as many of the following dimensions as fit. A dimension whose KL alone
    exceeds the budget raises ``ValueError`` (``strict``) or becomes a chunk of its own, whose
    decoded value is then a poor sample of ``q``. Returns the chunk sizes (int64).
    """
    k = np.asarray(kl_bits, dtype=np.float64).ravel()
    if not np.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget must be a positive number of bits, got {budget}")
    if k.size and (not np.all(np.isfinite(k)) or k.min() < 0):
        raise ValueError("kl_bits must be finite and non-negative")
    over = np.flatnonzero(k > budget)
    if over.size and strict:
        i = int(over[0])
        raise ValueError(
            f"{over.size} dimension(s) have KL above the budget of {budget:g} bits (dimension {i}: "
            f"{k[i]:.3g} bits); raise the index width or the budget, shrink q towards p, or pass strict=False"
        )
    cum = np.concatenate([[0.0], np.cumsum(k)])
    sizes: list[int] = []
    start, d = 0, k.size
    while start < d:
        end = int(np.searchsorted(cum, cum[start] + budget, side="right")) - 1
        end = min(max(end, start + 1), d)
        while end > start + 1 and k[start:end].sum() > budget:  # cumsum differences round
            end -= 1
        sizes.append(end - start)
        start = end
    return np.asarray(sizes, dtype=np.int64)


# -- bit packing -----------------------------------------------------------------------------


def _gamma(n: int) -> str:
    """Elias-gamma code of ``n >= 1``."""
    b = format(n, "b")
    return "0" * (len(b) - 1) + b


def _rice_bits(values: np.ndarray, k: int) -> int:
    return int((values >> k).sum()) + values.size * (1 + k)


def _rice(values: np.ndarray, k: int) -> str:
    fmt = f"0{k}b"
    return "".join("1" * (v >> k) + "0" + (format(v & ((1 << k) - 1), fmt) if k else "") for v in values.tolist())


class _Reader:
    """Strict reader over a '0'/'1' string; running out is a TruncatedError."""

    def __init__(self, bits: str) -> None:
        self.bits = bits
        self.pos = 0

    def take(self, n: int, what: str) -> int:
        if self.pos + n > len(self.bits):
            raise TruncatedError(f"reverse-channel stream ends inside {what}")
        v = int(self.bits[self.pos : self.pos + n], 2) if n else 0
        self.pos += n
        return v

    def gamma(self, what: str) -> int:
        one = self.bits.find("1", self.pos, self.pos + _GAMMA_MAX_ZEROS + 1)
        if one < 0:
            if len(self.bits) - self.pos <= _GAMMA_MAX_ZEROS:
                raise TruncatedError(f"reverse-channel stream ends inside {what}")
            raise LimitError(f"{what}: Elias-gamma prefix longer than {_GAMMA_MAX_ZEROS} bits")
        zeros = one - self.pos
        self.pos = one
        return self.take(zeros + 1, what)

    def rice(self, k: int, limit: int, what: str) -> int:
        zero = self.bits.find("0", self.pos, self.pos + (limit >> k) + 1)
        if zero < 0:
            if len(self.bits) - self.pos <= limit >> k:
                raise TruncatedError(f"reverse-channel stream ends inside {what}")
            raise CorruptStreamError(f"{what} larger than the {limit} dimensions there are")
        q = zero - self.pos
        self.pos = zero + 1
        return (q << k) | self.take(k, what)


# -- the coder -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RCCResult:
    """What :meth:`GaussianRCC.encode` returns.

    ``data`` is the complete stream; ``sample`` the decoded value (float64, the shape of the
    parameters), bit-identical to what :meth:`GaussianRCC.decode` returns; ``indices``,
    ``chunk_sizes`` and ``chunk_kl`` (KL of each chunk, bits) describe the chunks.
    """

    data: bytes
    sample: np.ndarray
    indices: np.ndarray
    chunk_sizes: np.ndarray
    chunk_kl: np.ndarray
    index_width: int

    @property
    def bits(self) -> int:
        """Bits written: ``8 * len(data)``, header, chunk sizes and padding included."""
        return 8 * len(self.data)

    @property
    def kl_bits(self) -> float:
        """Total ``KL(q || p)`` in bits (the ideal cost of sending a sample of q)."""
        return float(self.chunk_kl.sum())

    @property
    def index_bits(self) -> int:
        """Bits spent on the indices alone: ``b`` per chunk."""
        return self.index_width * int(self.indices.size)


def _params(mu: ArrayLike, sigma: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    m, s = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s))):
        raise ValueError(f"mu_{name} and sigma_{name} must be finite")
    if s.size and s.min() <= 0:
        raise ValueError(f"sigma_{name} must be positive")
    return m, s


def _check_sizes(chunk_sizes: ArrayLike, d: int, err: type[ValueError]) -> np.ndarray:
    sizes = np.asarray(chunk_sizes)
    if sizes.ndim != 1 or (sizes.size and sizes.dtype.kind not in "iu"):
        raise err("chunk_sizes must be a 1-D array of integers")
    sizes = sizes.astype(np.int64)
    if sizes.size and sizes.min() < 1:
        raise err("every chunk must hold at least one dimension")
    if int(sizes.sum()) != d:
        raise err(f"chunk sizes add up to {int(sizes.sum())}, but there are {d} dimensions")
    if sizes.size >= _MAX_CHUNKS:
        raise err(f"at most 2**32 - 1 chunks, got {sizes.size}")
    return sizes


def default_kl_budget(bits: int) -> float:
    """The default KL budget per chunk for index width ``bits``: ``max(bits - 3, bits / 2)``.

    Minimal random coding with ``2**b`` candidates and a chunk KL of exactly ``b`` bits gives
    visibly biased samples, too wide and pulled towards p (benchmarks/rcc.py, 1,000
    dimensions: standardised variance 1.22 at b = 8, 1.14 at b = 12, 1.12 at b = 16); a
    3-bit margin brings it to 1.01-1.08 (Chatterjee & Diaconis 2018: the bias falls
    exponentially in the margin) for ~20-50 % more bits. See docs/rcc.md.
    """
    return max(bits - 3.0, bits / 2.0)


class GaussianRCC:
    """Reverse-channel coder for diagonal Gaussians (minimal random coding, Havasi et al. 2019).

    ``bits`` (``b``) is the index width: ``2**b`` candidates per chunk, ``b`` bits per chunk in
    the stream. ``kl_budget`` (bits, default :func:`default_kl_budget`: ``b - 3``) bounds each
    chunk's KL; ``kl_budget=b`` packs the most KL into each index (least overhead), a lower
    budget buys a more faithful sample of ``q`` for more chunks (Chatterjee & Diaconis 2018:
    the selection's bias falls exponentially in ``b - KL``). ``select`` is ``"sample"``
    (minimal random coding: decoded values follow ``q``) or ``"greedy"`` (arg-max weight: a
    deterministic, lower-distortion point, not a sample of ``q``); see the module docstring.
    ``strict`` refuses a dimension whose KL alone exceeds the budget.

    Encoder cost is ``2**b`` candidate normals per dimension whose ``q`` differs from ``p``
    (dimensions with ``q == p`` exactly are free), generated in vectorised blocks of about
    ``work`` elements; the decoder generates one candidate per chunk.
    """

    def __init__(
        self,
        bits: int = 12,
        *,
        kl_budget: float | None = None,
        select: Literal["sample", "greedy"] = "sample",
        strict: bool = True,
        work: int = 1 << 15,
    ) -> None:
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= RCC_MAX_BITS:
            raise ValueError(f"bits must be an integer in [1, {RCC_MAX_BITS}], got {bits!r}")
        if select not in ("sample", "greedy"):
            raise ValueError(f"select must be 'sample' or 'greedy', got {select!r}")
        self.bits = int(bits)
        self.kl_budget = float(default_kl_budget(self.bits) if kl_budget is None else kl_budget)
        if not (np.isfinite(self.kl_budget) and self.kl_budget > 0):
            raise ValueError(f"kl_budget must be a positive number of bits, got {kl_budget!r}")
        self.select = select
        self.strict = bool(strict)
        self.work = max(int(work), 1)

    # -- encoder -------------------------------------------------------------------------

    def plan(self, mu_q: ArrayLike, sigma_q: ArrayLike, mu_p: ArrayLike, sigma_p: ArrayLike) -> np.ndarray:
        """The chunk sizes :meth:`encode` would choose (over the flattened dimensions)."""
        shape = np.broadcast_shapes(*(np.shape(a) for a in (mu_q, sigma_q, mu_p, sigma_p)))
        kl = np.broadcast_to(gaussian_kl_bits(mu_q, sigma_q, mu_p, sigma_p), shape)
        return plan_chunks(kl, self.kl_budget, strict=self.strict)

    def encode(
        self,
        mu_q: ArrayLike,
        sigma_q: ArrayLike,
        mu_p: ArrayLike,
        sigma_p: ArrayLike,
        *,
        seed: int,
        chunk_sizes: ArrayLike | None = None,
        encoder_seed: int | None = None,
    ) -> RCCResult:
        """Send a sample of ``q`` under the shared prior ``p``.

        All four parameters broadcast to the prior's shape (``broadcast(mu_p, sigma_p)``,
        which the decoder knows). ``seed`` (in ``[0, 2**64)``) is shared with the decoder.
        ``chunk_sizes``: a partition both sides know (then not written); by default the
        encoder plans one by KL (:func:`plan_chunks`) and writes it. ``encoder_seed`` keys the
        encoder's private selection noise (default: ``seed``); the result is a deterministic
        function of all arguments.
        """
        s = _check_seed(seed)
        enc_seed = s if encoder_seed is None else _check_seed(encoder_seed, "encoder_seed")
        mq, sq = _params(mu_q, sigma_q, "q")
        mp, sp = _params(mu_p, sigma_p, "p")
        shape = np.broadcast_shapes(mp.shape, sp.shape)
        if np.broadcast_shapes(shape, mq.shape, sq.shape) != shape:
            raise ValueError(f"q's shape {np.broadcast_shapes(mq.shape, sq.shape)} does not broadcast to p's {shape}")
        mq, sq, mp, sp = (np.broadcast_to(a, shape).ravel() for a in (mq, sq, mp, sp))
        d = mp.size
        if d >= _MAX_DIMS:
            raise ValueError(f"at most 2**32 - 1 dimensions, got {d}")
        kl = gaussian_kl_bits(mq, sq, mp, sp)
        if chunk_sizes is None:
            sizes, implicit = plan_chunks(kl, self.kl_budget, strict=self.strict), False
        else:
            sizes, implicit = _check_sizes(chunk_sizes, d, ValueError), True
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        chunk_kl = np.add.reduceat(kl, starts) if sizes.size else np.zeros(0)
        if implicit and self.strict and chunk_kl.size and chunk_kl.max() > self.kl_budget * (1 + 1e-12):
            c = int(np.argmax(chunk_kl))
            raise ValueError(
                f"chunk {c} has KL {chunk_kl[c]:.3g} bits, above the budget of {self.kl_budget:g}; "
                "pass strict=False to code it anyway"
            )
        active = (mq != mp) | (sq != sp)
        indices = self._select(s, enc_seed, sizes, starts, active, (mp - mq) / sq, sp / sq)
        sample = _reconstruct(s, sizes, indices, mp, sp).reshape(shape)
        data = _write(self.bits, sizes, indices, implicit)
        return RCCResult(data, sample, indices, sizes, chunk_kl, self.bits)

    def _select(
        self,
        seed: int,
        enc_seed: int,
        sizes: np.ndarray,
        starts: np.ndarray,
        active: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
    ) -> np.ndarray:
        """One index per chunk. The log-weight of candidate ``x = mu_p + sigma_p z`` is
        ``log q(x) - log p(x) = (z^2 - (a + b z)^2) / 2 + const``, ``a = (mu_p - mu_q)/sigma_q``,
        ``b = sigma_p / sigma_q``, summed over the chunk's dimensions with ``q != p``."""
        n_cand = 1 << self.bits
        n_chunks = sizes.size
        indices = np.zeros(n_chunks, dtype=np.int64)
        if n_chunks == 0:
            return indices
        chunk_of_dim = np.repeat(np.arange(n_chunks), sizes)
        act = np.flatnonzero(active)
        act_count = np.bincount(chunk_of_dim[act], minlength=n_chunks)
        idle = np.flatnonzero(act_count == 0)
        if idle.size and self.select == "sample":  # q == p: every candidate is as good, uniform
            indices[idle] = (_selection_uniform(enc_seed, idle) * n_cand).astype(np.int64)
        busy = np.flatnonzero(act_count > 0)
        if busy.size == 0:
            return indices
        # groups of consecutive busy chunks with about `work / n_cand` active dimensions each
        cum = np.cumsum(act_count[busy]) - act_count[busy]
        group = cum * n_cand // self.work
        cuts = np.flatnonzero(np.diff(group)) + 1
        for part in np.split(busy, cuts):
            dims = act[np.searchsorted(act, starts[part[0]]) : np.searchsorted(act, starts[part[-1]] + sizes[part[-1]])]
            indices[part] = self._select_group(seed, enc_seed, part, dims, chunk_of_dim[dims],
                                               dims - starts[chunk_of_dim[dims]], a[dims], b[dims])
        return indices

    def _select_group(
        self,
        seed: int,
        enc_seed: int,
        chunks: np.ndarray,
        dims: np.ndarray,
        chunk: np.ndarray,
        local: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
    ) -> np.ndarray:
        n_cand = 1 << self.bits
        pair_key = (chunk.astype(np.uint64) << _S32) | (local.astype(np.uint64) >> np.uint64(1))
        pairs, inv = np.unique(pair_key, return_inverse=True)
        p_chunk, p_pair = pairs >> _S32, pairs & _LO32
        cols = 2 * inv.astype(np.int64) + (local & 1)  # column of each dimension in (z0, z1) pairs
        seg = np.flatnonzero(np.diff(chunk, prepend=-1))  # first column of each chunk
        block = max(1, min(n_cand, self.work // max(dims.size, 1)))
        # log-weights of every candidate: at most max(work, 2**b) floats (a group holds about
        # work / 2**b dimensions, or one chunk)
        logw = np.empty((n_cand, chunks.size))
        for n0 in range(0, n_cand, block):
            n = np.arange(n0, min(n_cand, n0 + block), dtype=np.uint64)[:, None]
            z0, z1 = _box_muller(*_philox(n, p_pair[None, :], p_chunk[None, :], _TAG_CANDIDATES, seed))
            z = np.stack((z0, z1), axis=-1).reshape(n.shape[0], -1)[:, cols]
            y = a + b * z
            y *= y
            z *= z
            z -= y
            logw[n0 : n0 + n.shape[0]] = np.add.reduceat(z, seg, axis=1)  # 2 (log w + const)
        if self.select == "greedy":
            return np.argmax(logw, axis=0)  # the first maximum
        # index ~ w_n / sum(w): inverse CDF of the normalised weights with one uniform per chunk
        logw -= logw.max(axis=0)
        w = exp_exact(logw * 0.5)
        np.cumsum(w, axis=0, out=w)
        u = _selection_uniform(enc_seed, chunks)
        return np.minimum((w <= u * w[-1]).sum(axis=0), n_cand - 1)

    # -- decoder -------------------------------------------------------------------------

    @staticmethod
    def decode(
        data: bytes | bytearray | memoryview,
        mu_p: ArrayLike,
        sigma_p: ArrayLike,
        *,
        seed: int,
        chunk_sizes: ArrayLike | None = None,
    ) -> np.ndarray:
        """The sample the encoder sent: float64 of shape ``broadcast(mu_p, sigma_p)``.

        ``mu_p``, ``sigma_p`` and ``seed`` must be bit-identical to the encoder's;
        ``chunk_sizes`` must be given exactly when the encoder was given them. The index width
        is read from the stream. Bad data raises a
        :class:`~glocal_codec.bitstream.errors.BitstreamError`.
        """
        s = _check_seed(seed)
        mp, sp = _params(mu_p, sigma_p, "p")
        shape = np.broadcast_shapes(mp.shape, sp.shape)
        mp, sp = (np.broadcast_to(x, shape).ravel() for x in (mp, sp))
        known = None if chunk_sizes is None else _check_sizes(chunk_sizes, mp.size, ValueError)
        _, sizes, indices = _read(data, mp.size, known)
        return _reconstruct(s, sizes, indices, mp, sp).reshape(shape)


def _selection_uniform(enc_seed: int, chunks: np.ndarray) -> np.ndarray:
    """The encoder's uniform in [0, 1) for each chunk: 53 bits of Philox block
    ``(0, 0, chunk, 1)`` under ``enc_seed`` (a stream apart from the candidates')."""
    w0, w1, _, _ = _philox(0, 0, chunks.astype(np.uint64), _TAG_SELECTION, enc_seed)
    return ((w0 << np.uint64(21)) | (w1 >> np.uint64(11))).astype(np.float64) * 2.0**-53


def _reconstruct(seed: int, sizes: np.ndarray, indices: np.ndarray, mu_p: np.ndarray, sigma_p: np.ndarray) -> np.ndarray:
    """The chosen candidates, one per dimension: ``mu_p + sigma_p * z`` (flat float64)."""
    chunk = np.repeat(np.arange(sizes.size), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    local = np.arange(mu_p.size) - starts[chunk] if sizes.size else np.zeros(0, np.int64)
    z = _normals_at(seed, chunk, indices[chunk], local)
    return mu_p + sigma_p * z


def _write(b: int, sizes: np.ndarray, indices: np.ndarray, implicit: bool) -> bytes:
    c = sizes.size
    parts = [format(_VERSION, "02b"), "1" if implicit else "0", format(b - 1, "05b"), _gamma(c + 1)]
    if not implicit and c >= 2:
        head = sizes[:-1]
        base = int(head.min())
        off = head - base
        k = min(range(16), key=lambda r: _rice_bits(off, r))
        parts += [_gamma(base), format(k, "04b"), _rice(off, k)]
    if c:
        shifts = np.arange(b - 1, -1, -1, dtype=np.int64)
        idx_bits = ((indices[:, None] >> shifts) & 1).astype(np.uint8).ravel() + ord("0")
        parts.append(idx_bits.tobytes().decode("ascii"))
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _read(data: bytes | bytearray | memoryview, d: int, known: np.ndarray | None) -> tuple[int, np.ndarray, np.ndarray]:
    """Parse a stream for ``d`` dimensions: (index width, chunk sizes, indices)."""
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    if raw.size == 0:
        raise TruncatedError("empty reverse-channel stream")
    r = _Reader((np.unpackbits(raw) + ord("0")).tobytes().decode("ascii"))
    version = r.take(2, "the header")
    if version != _VERSION:
        raise UnsupportedVersionError(f"reverse-channel stream version {version} (this reader knows {_VERSION})")
    implicit = r.take(1, "the header") == 1
    b = r.take(5, "the header") + 1
    if b > RCC_MAX_BITS:
        raise LimitError(f"index width of {b} bits is above the limit of {RCC_MAX_BITS}")
    c = r.gamma("the chunk count") - 1
    if c > d or (d > 0 and c == 0):
        raise CorruptStreamError(f"{c} chunks cannot hold {d} dimensions")
    if implicit:
        if known is None:
            raise CorruptStreamError("the stream's chunk sizes are known to the decoder only: pass chunk_sizes")
        if known.size != c:
            raise CorruptStreamError(f"the stream has {c} chunks, the decoder's partition {known.size}")
        sizes = known
    else:
        sizes = np.empty(c, dtype=np.int64)
        if c == 1:
            sizes[0] = d
        elif c >= 2:
            base = r.gamma("the chunk sizes")
            if base > d:
                raise CorruptStreamError(f"chunk size {base} is larger than the {d} dimensions")
            k = r.take(4, "the chunk sizes")
            total = 0
            for i in range(c - 1):
                size = base + r.rice(k, d, "a chunk size")
                total += size
                if total > d - 1:
                    raise CorruptStreamError(f"chunk sizes exceed the {d} dimensions")
                sizes[i] = size
            sizes[-1] = d - total
        if known is not None and not np.array_equal(known, sizes):
            raise CorruptStreamError("the stream's chunk sizes differ from the decoder's chunk_sizes")
    need = c * b
    if r.pos + need > len(r.bits):
        raise TruncatedError("reverse-channel stream ends inside the indices")
    idx_bits = np.unpackbits(raw)[r.pos : r.pos + need].reshape(c, b).astype(np.int64)
    indices = idx_bits @ (np.int64(1) << np.arange(b - 1, -1, -1, dtype=np.int64)) if c else np.zeros(0, np.int64)
    r.pos += need
    rest = len(r.bits) - r.pos
    if rest >= 8:
        raise CorruptStreamError(f"{rest // 8} byte(s) after the end of the reverse-channel stream")
    if "1" in r.bits[r.pos :]:
        raise CorruptStreamError("non-zero padding at the end of the reverse-channel stream")
    return b, sizes, indices
