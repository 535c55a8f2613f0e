"""Local spectral representation with one global bandwidth, rendered at any resolution.

After "GB-LSR: A Fast Local Spectral Image Representation with a Single Global Bandwidth for
Continuous Reconstruction and Super-Resolution" (public code KempnerInstitute/gblsr): every cell
of a coefficient grid carries, per output channel, ``K x K`` coefficients of a separable
truncated Fourier basis on local coordinates,

    phi(t) = [1, cos(pi s t), sin(pi s t), cos(2 pi s t), sin(2 pi s t), ...]   (K terms),

where ``s`` is one trainable bandwidth shared by the whole model (bounded in log space by a
sigmoid). A pixel centre at any continuous position is rendered from the cells around it with
a four-cell local ensemble (LIIF's, Chen et al. CVPR 2021): each of the two nearest cells per
axis evaluates its expansion at the pixel and the results are blended, so the picture has no
step at cell borders. The blend is a plateau, not LIIF's bilinear tent: a cell alone covers
the middle half of its extent (where the native pixel centres lie) and cross-fades linearly to
its neighbour over the outer quarters. Native pixels then depend on one cell each, which lets
a model start from a trained pixel-shuffle synthesis exactly (:func:`phase_head`). The same coefficients render the native grid or any
denser (super-resolution) or sparser one; below scale 1 the decoder renders the native grid and
reduces it with an antialiasing filter (:func:`render_exact_any`), because point samples of the
representation alias there.

Geometry: cell ``i`` covers native pixels ``[CELL i, CELL (i + 1))`` along an axis, its centre
at ``CELL i + CELL / 2`` in continuous native coordinates (pixel ``p`` covers ``[p, p + 1)``);
output pixel ``I`` of a render at scale ``r`` has its centre at ``(I + 0.5) / r``. The local
coordinate is ``t = (centre_of_pixel - centre_of_cell) / CELL``, in ``(-1, 1)`` for the two
blended cells.

Rendering is separable (columns, then rows), a gather plus two small contractions: about
``2 K^2 + 2 K`` multiply-adds per output sample and channel. :func:`render_exact` is the
decoder's version: basis values and blend weights from IEEE-exact arithmetic on fixed grids, so
that every partial sum is an exact float64 value and the pixels do not depend on the machine.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .fixed_point import FRAC, NotExactError, to_grid

__all__ = [
    "CELL", "Bandwidth", "mode_orders", "fourier_basis", "AxisTaps", "axis_taps", "render", "render_exact",
    "cos_sin_exact", "coefficient_grid", "phase_head", "bicubic_down", "reduce_taps", "render_exact_any",
]

#: Native pixels per coefficient cell along each axis.
CELL = 2
#: Fractional bits of the exact renderer's basis-times-weight values.
_TAP_FRAC = 20
_TWO_PI_HI = 6.28318530717958623200  # 2 pi split in two doubles for an exact-ish range reduction
_TWO_PI_LO = 2.4492935982947064e-16


class Bandwidth(nn.Module):
    """The single global bandwidth ``s``: ``exp(log lo + (log hi - log lo) sigmoid(raw))``.

    Bounded (a runaway bandwidth would alias the basis), and parameterised in log space so that
    multiplicative changes are as easy as additive ones. Starts at ``init``.
    """

    def __init__(self, init: float = 1.0, lo: float = 0.25, hi: float = 2.0) -> None:
        super().__init__()
        if not lo < init < hi:
            raise ValueError(f"bandwidth init {init} outside ({lo}, {hi})")
        self.lo, self.hi = lo, hi
        frac = (math.log(init) - math.log(lo)) / (math.log(hi) - math.log(lo))
        self.raw = nn.Parameter(torch.tensor(math.log(frac / (1 - frac)), dtype=torch.float32))

    def forward(self) -> torch.Tensor:
        log_lo, log_hi = math.log(self.lo), math.log(self.hi)
        return torch.exp(log_lo + (log_hi - log_lo) * torch.sigmoid(self.raw))


def mode_orders(modes: int) -> list[int]:
    """Harmonic order ``j`` of each 1-D mode: ``[0, 1, 1, 2, 2, ...]`` (constant, then cos/sin pairs)."""
    return [(k + 1) // 2 for k in range(modes)]


def fourier_basis(t: torch.Tensor, modes: int, bandwidth: torch.Tensor | float) -> torch.Tensor:
    """The 1-D basis at local coordinates ``t`` (any shape): ``(..., modes)`` (differentiable)."""
    cols = [torch.ones_like(t)]
    j = 1
    while len(cols) < modes:
        ang = (j * math.pi) * bandwidth * t
        cols.append(torch.cos(ang))
        if len(cols) < modes:
            cols.append(torch.sin(ang))
        j += 1
    return torch.stack(cols, -1)


def cos_sin_exact(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of a float64 tensor from IEEE-754 operations only (no libm, no fused ops).

    Range reduction to ``[-pi, pi]`` and Taylor polynomials to order 31 (error < 1e-15 there),
    so every machine computes the same bits; :func:`render_exact` rounds the results to a grid.
    """
    x = x.double()
    k = torch.round(x / (2 * math.pi))
    r = (x - k * _TWO_PI_HI) - k * _TWO_PI_LO
    r2 = r * r
    cos = torch.zeros_like(r)
    sin = torch.zeros_like(r)
    for n in range(15, -1, -1):  # Horner in r^2, highest order first
        cos = cos * r2 + ((-1) ** n) / math.factorial(2 * n)
        sin = sin * r2 + ((-1) ** n) / math.factorial(2 * n + 1)
    return cos, sin * r


class AxisTaps:
    """What one axis of a render needs: for every output pixel the two blended cells and, per
    cell, the blend weight times each basis function (``weights``: ``(2, modes, n)``)."""

    def __init__(self, index: torch.Tensor, weights: torch.Tensor) -> None:
        self.index = index  # (2, n) int64
        self.weights = weights  # (2, modes, n)


def _taps_geometry(start: int, stop: int, n_cells: int, scale: float, device=None):
    """(cell index, local coordinate, blend weight), each ``(2, stop - start)``, float64."""
    i_out = torch.arange(start, stop, dtype=torch.float64, device=device)
    c = (i_out + 0.5) / scale  # pixel centres in native coordinates
    pos = (c - CELL / 2) / CELL  # in cell units, 0 at the first cell's centre
    i0 = torch.floor(pos)
    # plateau blend: a cell alone within a quarter cell of its centre (where the native pixel
    # centres are), then a linear cross-fade to the neighbour; continuous, so no step at borders
    w1 = (2 * (pos - i0) - 0.5).clamp(0, 1)
    idx, t, w = [], [], []
    for a, wa in ((0, 1 - w1), (1, w1)):
        i = (i0 + a).clamp(0, n_cells - 1)
        idx.append(i)
        t.append(pos - i)  # local coordinate relative to the (clamped) cell, in (-1, 1) inside the image
        w.append(wa)
    return torch.stack(idx).long(), torch.stack(t), torch.stack(w)


def _mode_mask(modes: int, scale: float, bandwidth: float, band_limit: bool) -> list[float]:
    """1 for the modes a render keeps, 0 for those above the output grid's Nyquist frequency.

    Mode order ``j`` oscillates at ``j s / (2 CELL)`` cycles per native pixel; an output grid
    at scale ``r < 1`` resolves up to ``r / 2``. At ``r >= 1`` every mode is kept (the native
    grid is what the coefficients were fitted on).
    """
    if not band_limit or scale >= 1:
        return [1.0] * modes
    return [1.0 if j * bandwidth / (2 * CELL) <= scale / 2 + 1e-12 else 0.0 for j in mode_orders(modes)]


def axis_taps(start: int, stop: int, n_cells: int, scale: float, modes: int, bandwidth: torch.Tensor,
              *, band_limit: bool = True) -> AxisTaps:
    """Differentiable taps (training and the float renderer) for output pixels ``[start, stop)``."""
    idx, t, w = _taps_geometry(start, stop, n_cells, scale, device=bandwidth.device)
    basis = fourier_basis(t.to(bandwidth.dtype), modes, bandwidth)  # (2, n, modes)
    mask = torch.tensor(_mode_mask(modes, scale, float(bandwidth.detach()), band_limit), dtype=basis.dtype,
                        device=basis.device)
    weights = (basis * mask * w.to(basis.dtype).unsqueeze(-1)).permute(0, 2, 1)
    return AxisTaps(idx, weights)


def _exact_taps(start: int, stop: int, n_cells: int, scale: float, modes: int, bandwidth: float,
                band_limit: bool) -> AxisTaps:
    """:func:`axis_taps` from IEEE-exact operations, rounded to multiples of ``2**-_TAP_FRAC``."""
    idx, t, w = _taps_geometry(start, stop, n_cells, scale)
    mask = _mode_mask(modes, scale, bandwidth, band_limit)
    cols = [torch.ones_like(t)]
    for j in range(1, (modes + 2) // 2):
        cos, sin = cos_sin_exact((j * math.pi * bandwidth) * t)
        cols += [cos, sin]
    basis = torch.stack(cols[:modes], 1) * torch.tensor(mask, dtype=torch.float64).view(1, -1, 1)
    return AxisTaps(idx, to_grid(basis * w.unsqueeze(1), _TAP_FRAC))


def phase_head(phase: torch.Tensor, modes: int, bandwidth: float = 1.0) -> torch.Tensor:
    """Coefficient-head weights that reproduce a pixel-shuffle output at the native grid.

    ``phase``: ``(C, 2, 2, ...)``, for each channel and each of a cell's four native pixels
    (row phase, column phase) the weights that produce that pixel (any trailing shape, e.g. a
    convolution kernel ``(in, 3, 3)``). Returns ``(C * modes^2, ...)``: the weights of the
    coefficients ``[constant, sin]`` per axis (the other modes zero), fitted so that the
    render at scale 1 gives exactly those four values (the native pixels sit at local
    coordinates +-1/4, where the plateau blend uses one cell).
    """
    if modes < 3:
        raise ValueError("phase_head needs modes >= 3 (constant, cos, sin per axis)")
    g = math.sin(math.pi * bandwidth / 4)
    sign = torch.tensor([-1.0, 1.0], dtype=phase.dtype)  # phase 0 at t = -1/4, phase 1 at +1/4
    trail = phase.shape[3:]
    sy = sign.view(1, 2, 1, *([1] * len(trail)))
    sx = sign.view(1, 1, 2, *([1] * len(trail)))
    out = phase.new_zeros(phase.shape[0], modes, modes, *trail)
    out[:, 0, 0] = phase.sum((1, 2)) / 4
    out[:, 0, 2] = (phase * sx).sum((1, 2)) / (4 * g)
    out[:, 2, 0] = (phase * sy).sum((1, 2)) / (4 * g)
    out[:, 2, 2] = (phase * sy * sx).sum((1, 2)) / (4 * g * g)
    return out.reshape(phase.shape[0] * modes * modes, *trail)


def coefficient_grid(coef: torch.Tensor, channels: int, modes: int) -> torch.Tensor:
    """``(B, channels * modes^2, h, w)`` from a convolution -> ``(B, channels, modes, modes, h, w)``."""
    b, _, h, w = coef.shape
    return coef.reshape(b, channels, modes, modes, h, w)


def _contract(coef: torch.Tensor, ty: AxisTaps, tx: AxisTaps, exact: bool) -> torch.Tensor:
    """Columns then rows: ``(B, C, K, K, h, w)`` -> ``(B, C, len(ty), len(tx))``.

    Gather, multiply, sum (not einsum: with a broadcast axis it picks a batched-matmul plan that
    is several times slower here).
    """
    b, c, k, _, h, _ = coef.shape
    cols = None
    for a in range(2):
        term = (coef[..., tx.index[a]] * tx.weights[a].view(1, 1, 1, k, 1, -1)).sum(3)  # (B, C, K, h, W)
        cols = term if cols is None else cols.add_(term)
    if exact:  # back onto the activation grid, so that the row products stay exact too
        cols = to_grid(cols)
    out = None
    for a in range(2):
        term = (cols[..., ty.index[a], :] * ty.weights[a].view(1, 1, k, -1, 1)).sum(2)  # (B, C, H, W)
        out = term if out is None else out.add_(term)
    return out


def render(coef: torch.Tensor, out_h: int, out_w: int, bandwidth: torch.Tensor, *,
           scale_y: float | None = None, scale_x: float | None = None, band_limit: bool = True) -> torch.Tensor:
    """Render a coefficient grid ``(B, C, K, K, h, w)`` to ``(B, C, out_h, out_w)`` (differentiable).

    The scales default to ``out / (CELL * cells)``: the grid's native size maps onto the output.
    """
    *_, k, h, w = coef.shape
    sy = scale_y if scale_y is not None else out_h / (CELL * h)
    sx = scale_x if scale_x is not None else out_w / (CELL * w)
    ty = axis_taps(0, out_h, h, sy, k, bandwidth, band_limit=band_limit)
    tx = axis_taps(0, out_w, w, sx, k, bandwidth, band_limit=band_limit)
    return _contract(coef, ty, tx, exact=False)


def render_exact(coef: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int], cells: tuple[int, int],
                 scale: tuple[float, float], bandwidth: float, *, offset: tuple[int, int] = (0, 0),
                 band_limit: bool = True) -> torch.Tensor:
    """The decoder's renderer: output rows ``[r0, r1)`` and columns ``[c0, c1)`` of the full picture.

    ``coef`` is a window of the full coefficient grid (float64 on the fixed-point grid of
    :mod:`~glocal_codec.nn.fixed_point`) whose first cell is ``offset`` in the full grid of
    ``cells``; it must contain every cell the requested pixels blend. The taps are exact
    multiples of ``2**-20`` and the coefficients of ``2**-16``, so each product and partial sum is
    an exact float64 (magnitudes are checked): the result does not depend on summation order,
    thread count or CPU kernels.
    """
    # |taps| summed over both cells and all modes of an axis is at most K (blend weights add up
    # to 1, |phi| <= 1), so a row sum is at most K^2 max|coef|, on the 2^-(FRAC + _TAP_FRAC) grid
    limit = 2.0 ** (53 - FRAC - _TAP_FRAC) / coef.shape[2] ** 2
    if coef.numel() and not float(coef.abs().max()) < limit:
        raise NotExactError(f"spectral coefficients up to {float(coef.abs().max()):.3g} exceed the exact range {limit:.3g}")
    ty = _exact_taps(*rows, cells[0], scale[0], coef.shape[2], bandwidth, band_limit)
    tx = _exact_taps(*cols, cells[1], scale[1], coef.shape[2], bandwidth, band_limit)
    ty.index = ty.index - offset[0]
    tx.index = tx.index - offset[1]
    if int(ty.index.min()) < 0 or int(ty.index.max()) >= coef.shape[-2] or int(tx.index.min()) < 0 \
            or int(tx.index.max()) >= coef.shape[-1]:
        raise ValueError("coefficient window does not cover the requested pixels")
    # only the cells these pixels blend: a chunk of a big render touches a band of the window
    y0, y1 = int(ty.index.min()), int(ty.index.max()) + 1
    x0, x1 = int(tx.index.min()), int(tx.index.max()) + 1
    coef = coef[..., y0:y1, x0:x1]
    ty.index, tx.index = ty.index - y0, tx.index - x0
    dev = coef.device
    ty.index, tx.index = ty.index.to(dev), tx.index.to(dev)
    ty.weights, tx.weights = ty.weights.to(dev), tx.weights.to(dev)
    return _contract(coef.double(), ty, tx, exact=True)


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = -0.5, Pillow's bicubic), IEEE operations only."""
    x = x.abs()
    x2, x3 = x * x, x * x * x
    near = (a + 2) * x3 - (a + 3) * x2 + 1
    far = a * x3 - 5 * a * x2 + 8 * a * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def reduce_taps(start: int, stop: int, n_in: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Antialiased bicubic reduction from ``n_in`` pixels at ``scale < 1`` (Pillow's geometry: the
    kernel stretched by ``1 / scale``, weights outside the picture dropped and the rest
    normalised): ``(index, weight)``, each ``(taps, stop - start)``; weights on the 2^-20 grid."""
    support = 2.0 / scale
    centre = (torch.arange(start, stop, dtype=torch.float64) + 0.5) / scale
    first = torch.ceil(centre - support - 0.5)
    taps = int(math.ceil(2 * support)) + 1
    j = first.unsqueeze(0) + torch.arange(taps, dtype=torch.float64).unsqueeze(1)
    wt = _cubic((j + 0.5 - centre) * scale)
    wt = torch.where((j >= 0) & (j < n_in), wt, torch.zeros_like(wt))
    wt = wt / wt.sum(0, keepdim=True)
    return j.clamp(0, n_in - 1).long(), to_grid(wt, _TAP_FRAC)


def _reduce_axis(v: torch.Tensor, index: torch.Tensor, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Apply reduction taps along ``dim`` (-2 rows, -1 columns) of a grid tensor, exactly."""
    v = to_grid(v)
    limit = 2.0 ** (53 - FRAC - _TAP_FRAC) / index.shape[0]
    if v.numel() and not float(v.abs().max()) < limit:
        raise NotExactError(f"rendered values up to {float(v.abs().max()):.3g} exceed the exact range {limit:.3g}")
    out = None
    for t in range(index.shape[0]):
        part = v.index_select(dim, index[t])
        shape = [1] * v.dim()
        shape[dim] = -1
        term = part * weight[t].view(shape)
        out = term if out is None else out.add_(term)
    return out


def render_exact_any(coef: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int], cells: tuple[int, int],
                     scale: tuple[float, float], bandwidth: float, native: tuple[int, int], *,
                     offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """:func:`render_exact` at any scale. An axis at scale >= 1 is rendered from the basis
    directly; an axis below 1 is rendered at the native grid (``native`` = the coded picture's
    height and width) and reduced by an antialiasing filter (:func:`reduce_taps`), in the same
    exact arithmetic. Point samples of the representation alias below scale 1 even with the
    modes above the output's Nyquist frequency dropped (measured: 2-3 dB against a filtered
    reduction at 1/2 and 1/4), so the filter is what makes the render band-limited.
    """
    plan = []
    ranges = []
    for (a, b), s, n in ((rows, scale[0], native[0]), (cols, scale[1], native[1])):
        if s >= 1:
            plan.append(None)
            ranges.append((a, b))
        else:
            idx, wt = reduce_taps(a, b, n, s)
            lo, hi = int(idx.min()), int(idx.max()) + 1
            plan.append((idx - lo, wt))
            ranges.append((lo, hi))
    v = render_exact(coef, ranges[0], ranges[1], cells, tuple(max(s, 1.0) for s in scale), bandwidth,
                     offset=offset, band_limit=False)
    if plan[0] is not None:
        v = _reduce_axis(v, plan[0][0], plan[0][1], -2)
    if plan[1] is not None:
        v = _reduce_axis(v, plan[1][0], plan[1][1], -1)
    return v


def bicubic_down(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Antialiased bicubic downsampling (the low-resolution input of super-resolution training)."""
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
