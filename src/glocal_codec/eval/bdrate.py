"""Bjøntegaard delta rate (BD-rate) and delta quality (BD-PSNR), two interpolation methods.

Both compare a *test* RD curve with an *anchor* over the interval where the curves overlap:

* BD-rate: the average difference of ``log(rate)`` at equal quality, integrated over the
  common quality range, as a percentage: ``(exp(mean diff) - 1) * 100``. Negative = the test
  codec needs fewer bits for the same quality.
* BD-PSNR (BD-quality for any quality metric in dB): the average quality difference at equal
  ``log(rate)``, integrated over the common log-rate range. Positive = better.

Methods:

``"cubic"``
    G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves", ITU-T
    SG16/Q6 VCEG-M33, Austin, April 2001: a third-order polynomial fitted (least squares; exact
    for four points) to ``ln(rate)`` against quality (and quality against ``ln(rate)``),
    integrated analytically. Needs at least four points.
``"pchip"``
    The piecewise cubic Hermite interpolation of the JCT-VC / JVET common-test-condition Excel
    sheets (JCTVC-E137, JCTVC-L1100, JVET-T2010) and the default of the ``bjontegaard`` Python
    package (FAU-LMS, C. Herglotz et al.): ``scipy.interpolate.PchipInterpolator`` over
    ``log10(rate)`` / quality, integrated exactly. Needs at least two points. The default here.

Curves are checked before anything is computed: finite values, positive rates, distinct
rates, and quality strictly increasing with rate (a non-monotonic curve has no well-defined
inverse, and an interpolator would silently fit nonsense). Curves with no overlap raise
:class:`NoOverlapError`; a small overlap (intersection over union of the two ranges below
:data:`MIN_OVERLAP`) gives a :class:`BDRateWarning` -- the number is then computed over a narrow
part of the curves and says little. (The FAU-LMS Matlab code warns below 75 %; VCEG-M33's own
example overlaps 74 % in PSNR, so 50 % is used here to keep the warning for real problems.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np

__all__ = [
    "Method",
    "METHODS",
    "MIN_OVERLAP",
    "BDRateWarning",
    "NoOverlapError",
    "Curve",
    "BDResult",
    "bd_rate",
    "bd_psnr",
    "bd_quality",
    "compare",
]

Method = Literal["pchip", "cubic"]
METHODS: tuple[str, ...] = ("pchip", "cubic")
#: Overlap (intersection over union of the two integration ranges) below which a warning is given.
MIN_OVERLAP = 0.5


class BDRateWarning(UserWarning):
    """The BD number is computed but rests on a small overlap of the two curves."""


class NoOverlapError(ValueError):
    """The two curves share no quality (or rate) range: no BD number exists."""


@dataclass(frozen=True)
class Curve:
    """An RD curve: ``rate`` (bpp, kbit/s, ... any positive unit) against ``quality`` (dB)."""

    rate: tuple[float, ...]
    quality: tuple[float, ...]
    label: str = ""

    @classmethod
    def of(cls, rate: Sequence[float], quality: Sequence[float], label: str = "") -> "Curve":
        return cls(tuple(float(r) for r in rate), tuple(float(q) for q in quality), label)


@dataclass(frozen=True)
class BDResult:
    """BD-rate (%) and BD-quality (dB) of a test curve against an anchor, with what limits them.

    A value is ``None`` where it cannot be computed; ``notes`` says why. ``overlap_quality`` /
    ``overlap_rate`` are the overlaps (intersection over union) of the integration ranges."""

    bd_rate: Optional[float]
    bd_quality: Optional[float]
    overlap_quality: float
    overlap_rate: float
    method: str
    notes: tuple[str, ...] = field(default=())


def _prepare(rate: Sequence[float], quality: Sequence[float], name: str, need: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise ValueError(f"{name}: {r.size} rates but {q.size} quality values")
    if r.size < need:
        raise ValueError(f"{name}: {r.size} points; this method needs at least {need}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise ValueError(f"{name}: rates and quality values must be finite")
    if np.any(r <= 0):
        raise ValueError(f"{name}: rates must be positive")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    if np.any(np.diff(r) <= 0):
        raise ValueError(f"{name}: two points have the same rate")
    if np.any(np.diff(q) <= 0):
        raise ValueError(f"{name}: quality does not increase with rate ({np.round(q, 4).tolist()} at rates "
                         f"{np.round(r, 4).tolist()}); BD needs monotonic curves")
    return r, q


def _overlap(a: np.ndarray, b: np.ndarray, what: str) -> tuple[float, float, float]:
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    if hi <= lo:
        raise NoOverlapError(
            f"the curves do not overlap in {what}: anchor {a.min():.4g}..{a.max():.4g}, "
            f"test {b.min():.4g}..{b.max():.4g}"
        )
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    return lo, hi, (hi - lo) / union


def _mean_diff(xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, lo: float, hi: float,
               method: str) -> float:
    """Mean of (test - anchor) of y(x) over [lo, hi], each curve interpolated by ``method``."""
    if method == "cubic":
        ia = np.polyint(np.polyfit(xa, ya, 3))
        ib = np.polyint(np.polyfit(xb, yb, 3))
        area_a = np.polyval(ia, hi) - np.polyval(ia, lo)
        area_b = np.polyval(ib, hi) - np.polyval(ib, lo)
    elif method == "pchip":
        from scipy.interpolate import PchipInterpolator

        area_a = PchipInterpolator(xa, ya).integrate(lo, hi)
        area_b = PchipInterpolator(xb, yb).integrate(lo, hi)
    else:
        raise ValueError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")
    return float((area_b - area_a) / (hi - lo))


def _need(method: str) -> int:
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")
    return 4 if method == "cubic" else 2


def _warn_overlap(fraction: float, what: str) -> None:
    if fraction < MIN_OVERLAP:
        warnings.warn(f"the curves overlap in only {fraction:.0%} of their {what} range (the BD number "
                      f"describes that part only)", BDRateWarning, stacklevel=3)


def bd_rate(rate_anchor: Sequence[float], quality_anchor: Sequence[float], rate_test: Sequence[float],
            quality_test: Sequence[float], method: Method = "pchip") -> float:
    """BD-rate in percent of the test curve against the anchor (negative = fewer bits).

    Raises ``ValueError`` for unusable curves and :class:`NoOverlapError` when the quality
    ranges do not overlap; warns (:class:`BDRateWarning`) when they overlap little.
    """
    need = _need(method)
    ra, qa = _prepare(rate_anchor, quality_anchor, "anchor", need)
    rb, qb = _prepare(rate_test, quality_test, "test", need)
    lo, hi, frac = _overlap(qa, qb, "quality")
    _warn_overlap(frac, "quality")
    # ln for the polynomial (VCEG-M33), log10 for pchip (the CTC sheets); the result is the same
    # either way up to rounding, since exp(mean ln) == 10 ** (mean log10).
    if method == "cubic":
        return (math.exp(_mean_diff(qa, np.log(ra), qb, np.log(rb), lo, hi, method)) - 1.0) * 100.0
    return (10.0 ** _mean_diff(qa, np.log10(ra), qb, np.log10(rb), lo, hi, method) - 1.0) * 100.0


def bd_quality(rate_anchor: Sequence[float], quality_anchor: Sequence[float], rate_test: Sequence[float],
               quality_test: Sequence[float], method: Method = "pchip") -> float:
    """BD-quality: mean quality gain (in the quality unit, e.g. dB) at equal rate (positive = better)."""
    need = _need(method)
    ra, qa = _prepare(rate_anchor, quality_anchor, "anchor", need)
    rb, qb = _prepare(rate_test, quality_test, "test", need)
    log = np.log if method == "cubic" else np.log10
    la, lb = log(ra), log(rb)
    lo, hi, frac = _overlap(la, lb, "rate")
    _warn_overlap(frac, "rate")
    return _mean_diff(la, qa, lb, qb, lo, hi, method)


#: BD-PSNR is BD-quality with PSNR as the quality.
bd_psnr = bd_quality


def compare(anchor: Curve, test: Curve, method: Method = "pchip") -> BDResult:
    """Both BD numbers of ``test`` against ``anchor``, never raising for unusable curves:
    whatever cannot be computed is ``None`` with the reason in ``notes`` (for tables)."""
    notes: list[str] = []
    values: dict[str, Optional[float]] = {}
    overlaps = {"quality": 0.0, "rate": 0.0}
    for kind, fn in (("rate", bd_rate), ("quality", bd_quality)):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", BDRateWarning)
                values[kind] = fn(anchor.rate, anchor.quality, test.rate, test.quality, method)
            for w in caught:
                if issubclass(w.category, BDRateWarning):
                    notes.append(str(w.message))
        except NoOverlapError as err:
            values[kind] = None
            notes.append(str(err))
        except ValueError as err:
            values[kind] = None
            notes.append(str(err))
    for axis, a, b in (("quality", anchor.quality, test.quality),
                       ("rate", np.log(anchor.rate) if min(anchor.rate, default=0) > 0 else None,
                        np.log(test.rate) if min(test.rate, default=0) > 0 else None)):
        if a is None or b is None or len(a) == 0 or len(b) == 0:
            continue
        a, b = np.asarray(a, float), np.asarray(b, float)
        inter = min(a.max(), b.max()) - max(a.min(), b.min())
        union = max(a.max(), b.max()) - min(a.min(), b.min())
        overlaps[axis] = float(max(inter, 0.0) / union) if union > 0 else 0.0
    return BDResult(values["rate"], values["quality"], overlaps["quality"], overlaps["rate"], method,
                    tuple(dict.fromkeys(notes)))
