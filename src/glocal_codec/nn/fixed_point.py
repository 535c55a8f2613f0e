"""Fixed-point execution of convolutional decoders: the same pixels on every machine.

A float32 convolution sums its products in an order that depends on the thread count, the CPU
kernel set (AVX2, AVX-512, the plain ``ATEN_CPU_CAPABILITY=default`` path), oneDNN and the GPU,
so the same latents can decode to pixels one 8-bit level apart on two machines. Integer
networks remove that freedom (Ballé, Johnston, Minnen, "Integer Networks for Data Compression
with Latent-Variable Models", ICLR 2019): here every weight is rounded to a multiple of
``2**-FRAC`` and every activation too, and the layers run in float64, where each product and
each partial sum of such values is an exact multiple of ``2**-(2 FRAC)`` as long as its
magnitude stays below ``2**(53 - 2 FRAC)`` (checked on every call). An exact sum does not depend
on its order, so convolutions give the same bits whatever the kernel; the rest are single IEEE
operations (``sqrt``, ``*``, ``/``, round-half-even), which are correctly rounded everywhere.

Supported layers: ``Conv2d``, ``ConvTranspose2d``, CompressAI's ``GDN`` (forward and inverse)
and ``LeakyReLU`` -- what the Ballé-family synthesis and hyper-synthesis are made of -- and the
attention stages of the ``glocal`` transforms (``ScaledResidual`` around ``GlocalBlock`` stacks:
SwinV2 window attention, pooled-token global attention, LayerNorm, GELU), whose exact versions
live in :mod:`.fixed_point_attention`. With
``FRAC = 16`` the grid is far finer than the 8-bit output (a change of about 1e-4 dB). The
convolutions run as plain float64 GEMMs on strided views (one per kernel row, one per phase of
a transposed convolution with only that phase's taps): torch's float64 CPU convolution unfolds
the whole window single-threaded first, which cost as much as the GEMM. The 5x5 stride-2
transposed convolutions of the Ballé-family synthesis run as Winograd F(2x2, 3x3) over the
window their four phases share, which on this grid is exact (unlike cuDNN's float Winograd):
16 products per output quad instead of 25. A ``msh`` synthesis
costs about 1.5x the float32 one on 2 threads (``benchmarks/exact_synthesis.py``); float64
arithmetic alone is 2x slower per product. Between convolutions, GDNs and LeakyReLUs the
activations stay in grid units (integers), and GDN runs in cache-sized chunks: elementwise
passes over a whole activation stream it through memory, and they were a third of the time.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FRAC", "FixedPointNet", "to_grid", "NotExactError"]

#: Fractional bits of weights and activations.
FRAC = 16
#: A float64 sum of multiples of 2**-(2 FRAC) is exact below this magnitude.
_ACC_LIMIT = 2.0 ** (53 - 2 * FRAC)


class NotExactError(ArithmeticError):
    """An activation grew beyond the range where the fixed-point sums are exact."""


def to_grid(t: torch.Tensor, frac: int = FRAC) -> torch.Tensor:
    """``t`` (float64) rounded to the nearest multiple of ``2**-frac`` (ties to even)."""
    return torch.round(t * 2.0**frac) * 2.0**-frac


def _to_grid_(t: torch.Tensor) -> torch.Tensor:
    """:func:`to_grid` in place (the activations are large: no temporaries)."""
    return t.mul_(2.0**FRAC).round_().mul_(2.0**-FRAC)


def _absmax(t: torch.Tensor) -> float:
    lo, hi = torch.aminmax(t)
    return max(-float(lo), float(hi))


def _check(bound: float, what: str) -> None:
    if not bound < _ACC_LIMIT:
        raise NotExactError(f"{what}: partial sums up to {bound:.3g} exceed the exact float64 range "
                            f"{_ACC_LIMIT:.3g} of the fixed-point decoder")


def _scaled(t: torch.Tensor | None, scale: float = 2.0**FRAC) -> torch.Tensor | None:
    """Weights or bias times ``scale`` (a power of two: exact). With weights times ``2**FRAC``
    on inputs in values, or plain weights on inputs in grid units, a layer's output comes out in
    grid units, so one ``round`` -- fused into the copy that places it, where there is one --
    puts it on the grid, instead of scale, round and scale back over the whole activation."""
    return None if t is None else t * scale


def _width_unfold(xp: torch.Tensor, kw: int, wo: int) -> torch.Tensor:
    """(N, Cin, Hp, Wp) -> (N, kw*Cin, Hp*wo): row block ``j`` holds ``xp[..., j:j+wo]``, so
    rows ``i..i+ho`` of every block are one strided matrix (the rows of a kernel row ``i``)."""
    n, cin, hp = xp.shape[:3]
    return torch.stack([xp[..., j:j + wo] for j in range(kw)], 1).reshape(n, kw * cin, hp * wo)


def _row_gemms(xw: torch.Tensor, k0: int, wi: torch.Tensor, top: int, ho: int, wo: int,
               bias: torch.Tensor | None, out: torch.Tensor) -> None:
    """``out`` (N, Cout, ho*wo) = bias + sum over kernel rows ``i`` of ``wi[i]`` (Cout, K) times
    rows ``k0..k0+K`` and image rows ``top+i..top+i+ho`` of the width-unfolded ``xw``.

    One GEMM per kernel row on strided views, accumulated in place: the float64 CPU convolution
    unfolds the whole kernel window first (im2col, single-threaded, Kh*Kw copies of the input),
    which cost as much as its GEMM here. Every partial sum is exact, so accumulating kernel rows
    one after the other gives the convolution's bits."""
    k = wi.shape[-1]
    for b in range(xw.shape[0]):
        for i in range(wi.shape[0]):
            v = xw[b, k0:k0 + k, (top + i) * wo:(top + i + ho) * wo]
            if i > 0:
                out[b].addmm_(wi[i], v)
            elif bias is not None:
                torch.addmm(bias[:, None], wi[i], v, out=out[b])
            else:
                torch.mm(wi[i], v, out=out[b])


def _rows_weight(g: torch.Tensor) -> torch.Tensor:
    """conv2d weight (Cout, Cin, Kh, Kw) -> (Kh, Cout, Kw*Cin) in :func:`_width_unfold`'s order."""
    return g.permute(2, 0, 3, 1).reshape(g.shape[2], g.shape[0], g.shape[3] * g.shape[1]).contiguous()


def _gemm_conv(layer: nn.Conv2d, w: torch.Tensor, b: torch.Tensor | None,
               w_scale: float = 2.0**FRAC):
    """A stride-1, ungrouped, zero-padded ``Conv2d`` as kernel-row GEMMs (:func:`_row_gemms`),
    or None for other geometries (they keep ``F.conv2d``). Like every ``_..._as_...`` op here it
    returns the output rounded to the grid *in grid units*; ``w_scale`` is ``2**FRAC`` for inputs
    in values, 1 for inputs in grid units (:func:`_scaled`)."""
    if (tuple(layer.stride) != (1, 1) or tuple(layer.dilation) != (1, 1) or layer.groups != 1
            or layer.padding_mode != "zeros" or isinstance(layer.padding, str)):
        return None
    w, b = _scaled(w, w_scale), _scaled(b)
    wi = _rows_weight(w)
    kh, kw = w.shape[-2:]
    ph, pw = layer.padding

    def run(x: torch.Tensor) -> torch.Tensor:
        xp = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
        ho, wo = xp.shape[-2] - kh + 1, xp.shape[-1] - kw + 1
        if kh == kw == 1:
            xw = xp.reshape(xp.shape[0], xp.shape[1], ho * wo)
        else:
            xw = _width_unfold(xp, kw, wo)
        out = x.new_empty(x.shape[0], w.shape[0], ho * wo)
        _row_gemms(xw, 0, wi.to(x.device), 0, ho, wo, None if b is None else b.to(x.device), out)
        return out.round_().view(x.shape[0], w.shape[0], ho, wo)

    return run


class _Phases:
    """One axis of a stride-``s`` transposed convolution as ``s`` interleaved correlations.

    Output ``o = s m + r`` of ``conv_transpose(x, w)`` (padding ``p``) sums ``x[i] w[k]`` over
    ``s i + k = o + p``: with ``c = r + p``, the taps ``k = c mod s + s j`` meet
    ``x[m + c // s - j]``. Every phase is thus a plain correlation of ``x`` over the window
    ``m + amin .. m + amax`` (taps a phase does not have are zero), which the sub-pixel
    formulation (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an
    Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016) runs as one convolution with
    ``s * s`` times the output channels followed by a pixel shuffle.
    """

    def __init__(self, k: int, s: int, p: int, op: int) -> None:
        self.k, self.s, self.p, self.op = k, s, p, op
        cs = [r + p for r in range(s)]
        self.taps = [list(range(c % s, k, s)) for c in cs]  # k of phase r, j = 0, 1, ...
        self.top = [c // s for c in cs]  # window offset of tap j = 0
        self.amin = min(t - len(k_) + 1 for t, k_ in zip(self.top, self.taps))
        self.amax = max(self.top)
        self.size = self.amax - self.amin + 1

    def out_len(self, n: int) -> int:
        return (n - 1) * self.s - 2 * self.p + self.k + self.op


def _phase_weights(w: torch.Tensor, ph: _Phases, pw: _Phases) -> dict[tuple[int, int], torch.Tensor]:
    """``ConvTranspose2d`` weight (Cin, Cout, K, K) -> one conv2d weight (Cout, Cin, Lh, Lw) per
    phase ``(rh, rw)`` holding only the taps that phase has (window order: tap ``j`` at ``L-1-j``)."""
    out = {}
    for rh in range(ph.s):
        for rw in range(pw.s):
            th, tw = ph.taps[rh], pw.taps[rw]
            g = w.new_zeros(w.shape[1], w.shape[0], len(th), len(tw))
            for jh, kh in enumerate(th):
                for jw, kw in enumerate(tw):
                    g[:, :, len(th) - 1 - jh, len(tw) - 1 - jw] = w[:, :, kh, kw].t()
            out[rh, rw] = g
    return out


def _transposed_as_conv(layer: nn.ConvTranspose2d, w: torch.Tensor, b: torch.Tensor | None,
                        w_scale: float = 2.0**FRAC):
    """``F.conv_transpose2d`` with ``layer``'s geometry as one small conv2d per output phase, or
    None where that does not apply (groups, dilation) or would not be faster.

    Each phase convolves only the taps it has (a 5x5 stride-2 kernel: 3x3, 3x2, 2x3 and 2x2, 25
    products per output quad), where the sub-pixel form (one 3x3 conv with ``s*s`` times the
    channels, then a pixel shuffle) pays 36: the float64 GEMM is what a fixed-point decode
    spends its time in. Exact sums do not depend on their order, so the result is bit for bit
    the transposed convolution's (tested); float64 ``conv_transpose2d`` has no fast CPU kernel
    and took a third of ``glocal``'s decode."""
    sh, sw = layer.stride
    if layer.groups != 1 or tuple(layer.dilation) != (1, 1):
        return None
    ph = _Phases(layer.kernel_size[0], sh, layer.padding[0], layer.output_padding[0])
    pw = _Phases(layer.kernel_size[1], sw, layer.padding[1], layer.output_padding[1])
    # both float64 CPU paths unfold: the convolutions Cin*Lh*Lw values per phase and input
    # position, the transposed one Cout*Kh*Kw; take the other path where it unfolds less (e.g. a
    # 3-channel output)
    unfold = sum(len(th) * len(tw) for th in ph.taps for tw in pw.taps)
    if w.shape[0] * unfold > w.shape[1] * ph.k * pw.k * sh * sw:
        return None
    if _WINOGRAD and ph.size <= 3 and pw.size <= 3 and 4 * sh * sw < unfold:
        return _phases_winograd(w, b, w_scale, ph, pw)
    w, b = _scaled(w, w_scale), _scaled(b)
    gs = {r: (g.shape[-2], g.shape[-1], _rows_weight(g)) for r, g in _phase_weights(w, ph, pw).items()}
    cin, cout = w.shape[:2]

    def run(x: torch.Tensor) -> torch.Tensor:
        n_h, n_w = x.shape[-2:]
        oh, ow = ph.out_len(n_h), pw.out_len(n_w)
        mh, mw = -(-oh // sh), -(-ow // sw)  # positions per phase
        xp = F.pad(x, (-pw.amin, max(0, mw + pw.amax - n_w), -ph.amin, max(0, mh + ph.amax - n_h)))
        # the width window every phase reads a part of, unfolded once for all of them
        xw = _width_unfold(xp, pw.size, mw)
        bd = None if b is None else b.to(x.device)
        out = x.new_empty(x.shape[0], cout, mh, sh, mw, sw)
        tmp = x.new_empty(x.shape[0], cout, mh * mw)
        for (rh, rw), (lh, lw, wi) in gs.items():
            dst = out[:, :, :, rh, :, rw]
            if lh == 0 or lw == 0:  # a phase no tap reaches: the bias alone
                dst.copy_((bd if bd is not None else x.new_zeros(cout))[:, None, None].expand_as(dst).round())
                continue
            top, left = ph.top[rh] - lh + 1 - ph.amin, pw.top[rw] - lw + 1 - pw.amin
            _row_gemms(xw, left * cin, wi.to(x.device), top, mh, mw, bd, tmp)
            torch.round(tmp.view(x.shape[0], cout, mh, mw), out=dst)  # onto the grid while interleaving
        return out.view(x.shape[0], cout, mh * sh, mw * sw)[..., :oh, :ow]

    return run


#: Use :func:`_phases_winograd` where it saves products (tests switch it off to compare).
_WINOGRAD = True
#: Winograd F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
#: CVPR 2016): a 2x2 output tile of a 3x3 correlation of a 4x4 input tile ``d`` is
#: ``A^T [(G g G^T) * (B^T d B)] A``, 16 products instead of 36. ``B`` and ``A`` hold 0 and +-1
#: and ``G`` 0, 1 and 1/2, so on the fixed-point grid every transform is exact (sums of a few
#: grid values, halvings: dyadic numbers far inside float64's range), and so are the products
#: and sums in between (range-checked like the plain convolution, with the transforms' growth):
#: the output is the very sum the direct convolution computes, hence the same bits.
_WINO_BT = torch.tensor([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=torch.float64)
_WINO_G = torch.tensor([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=torch.float64)
_WINO_AT = torch.tensor([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=torch.float64)
#: GEMM columns (2x2 tiles) per block: the block's transformed tiles and products (16 x that x
#: channels) stay in cache, where whole-image GEMMs ran at half the float64 peak.
_WINO_COLS = 192


def _phases_winograd(w: torch.Tensor, b: torch.Tensor | None, w_scale: float, ph: _Phases, pw: _Phases):
    """A transposed convolution whose phases (:class:`_Phases`) all read one window of at most
    3x3 input positions (a 5x5 stride-2 kernel: 25 products per output quad) as Winograd
    F(2x2, 3x3) over that window with ``s*s`` times the output channels (each phase's taps
    zero-padded to 3x3): 16 products per output quad, one shared input transform.

    Per block of 2x2 input tiles: the 16 transformed values of every tile (``B^T d B`` as one
    (16, 16) GEMM on a strided view), 16 GEMMs with the transformed weights, the output transform
    (a (4, 16) GEMM; the bias joins the product that reaches all four outputs,
    ``A^T[:, 1] = (1, 1)``), each of the 16 (row, column, phase) planes rounded into place.
    The returned op carries ``l1_bound`` / ``b_bound``: the weight L1 norm and bias bound under
    which the plain range check of :func:`_conv_op` also covers every intermediate here."""
    sh, sw = ph.s, pw.s
    cin, cout = w.shape[:2]
    kernels = []
    for (rh, rw), g in _phase_weights(w, ph, pw).items():  # phases in (rh, rw) row-major order
        lh, lw = g.shape[-2:]
        k3 = w.new_zeros(cout, cin, 3, 3)
        top, left = ph.top[rh] - lh + 1 - ph.amin, pw.top[rw] - lw + 1 - pw.amin
        k3[:, :, top:top + lh, left:left + lw] = g
        kernels.append(k3)
    # (16, P*Cout, Cin); exact: sums of at most 9 weights times 1, 1/2 or 1/4
    u = torch.einsum("ai,pocij,bj->abpoc", _WINO_G, torch.stack(kernels), _WINO_G).reshape(16, -1, cin)
    bt4, at4 = torch.kron(_WINO_BT, _WINO_BT), torch.kron(_WINO_AT, _WINO_AT)  # (16, 16), (4, 16)
    # |B^T d B| <= 4 max|d|, a product sum <= 4 max|x| L1(u) (+ bias), an output sums 9 of those;
    # u is on a grid 4x finer than the weights: bounds 4x tighter in the plain check's terms
    l1u = float(u.abs().sum(-1).max())
    b_max = 0.0 if b is None else float(b.abs().max())
    u = (u * w_scale).contiguous()
    bias = None if b is None else _scaled(b).repeat(sh * sw)[:, None]

    def run(x: torch.Tensor) -> torch.Tensor:
        n, _, n_h, n_w = x.shape
        oh, ow = ph.out_len(n_h), pw.out_len(n_w)
        mh, mw = -(-oh // sh), -(-ow // sw)  # positions per phase
        th, tw = -(-mh // 2), -(-mw // 2)  # 2x2 tiles of them
        # xp row / column 0 is input position amin; tile (t, j) reads rows 2t..2t+3, columns 2j..2j+3
        xp = F.pad(x, (-pw.amin, 2 * tw + 2 + pw.amin - n_w, -ph.amin, 2 * th + 2 + ph.amin - n_h)).contiguous()
        hp, wp = xp.shape[-2:]
        out = x.new_empty(n, cout, th, 2, sh, tw, 2, sw)
        cols = min(tw, _WINO_COLS)
        rows = max(1, _WINO_COLS // cols)
        dev = x.device
        ud, bt, at = u.to(dev), bt4.to(dev), at4.to(dev)
        bd = None if bias is None else bias.to(dev)
        for i in range(n):
            xi = xp[i]
            for t0 in range(0, th, rows):
                nt = min(rows, th - t0)
                for j0 in range(0, tw, cols):
                    nj = min(cols, tw - j0)
                    d = xi.as_strided((4, 4, cin, nt, nj), (wp, 1, hp * wp, 2 * wp, 2),
                                      xi.storage_offset() + 2 * t0 * wp + 2 * j0)
                    v = torch.mm(bt, d.reshape(16, -1)).view(16, cin, nt * nj)
                    m = torch.bmm(ud, v)
                    if bd is not None:
                        m[5].add_(bd)  # index 5 = (1, 1): A^T's column 1 is (1, 1)
                    y = torch.mm(at, m.view(16, -1)).view(2, 2, sh, sw, cout, nt, nj)
                    for a in range(2):
                        for c in range(2):
                            for rh in range(sh):
                                for rw in range(sw):
                                    torch.round(y[a, c, rh, rw], out=out[i, :, t0:t0 + nt, a, rh, j0:j0 + nj, c, rw])
        return out.view(n, cout, 2 * th * sh, 2 * tw * sw)[..., :oh, :ow]

    run.l1_bound = 144.0 * l1u  # type: ignore[attr-defined]
    run.b_bound = 36.0 * b_max  # type: ignore[attr-defined]
    return run


#: Input positions per band of :func:`_transposed_as_scatter`.
_SCATTER_BAND = 1 << 15


def _transposed_as_scatter(layer: nn.ConvTranspose2d, w: torch.Tensor, b: torch.Tensor | None,
                           w_scale: float = 2.0**FRAC):
    """``F.conv_transpose2d`` for few output channels (e.g. the last layer, to RGB): one GEMM
    gives every tap's contribution of every input position, (Cout*Kh*Kw, Cin) x (Cin, H*W), and
    each tap is added into its strided place of the output, where the float64 CPU kernel's
    single-threaded col2im was slower. Exact sums: the order does not change the bits (tested)."""
    if layer.groups != 1 or tuple(layer.dilation) != (1, 1):
        return None
    cin, cout, kh, kw = w.shape
    sh, sw = layer.stride
    (ph, pw), (oph, opw) = layer.padding, layer.output_padding
    w, b = _scaled(w, w_scale), _scaled(b)
    wt = w.permute(1, 2, 3, 0).reshape(cout * kh * kw, cin).contiguous()

    def run(x: torch.Tensor) -> torch.Tensor:
        n, _, h, wd = x.shape
        oh, ow = (h - 1) * sh - 2 * ph + kh + oph, (wd - 1) * sw - 2 * pw + kw + opw
        xs = x.reshape(n, cin, h * wd)
        full = x.new_zeros(n, cout, (h - 1) * sh + kh + oph, (wd - 1) * sw + kw + opw)
        wd_ = wt.to(x.device)
        # bands of input rows: each band's taps are added while they are still in cache (and
        # the GEMM, short and wide, runs twice as fast in pieces); exact sums, any order
        band = max(1, _SCATTER_BAND // wd)
        for i in range(n):
            for r0 in range(0, h, band):
                r1 = min(h, r0 + band)
                cols = torch.mm(wd_, xs[i, :, r0 * wd:r1 * wd]).view(cout, kh, kw, r1 - r0, wd)
                for a in range(kh):
                    for c in range(kw):
                        full[i, :, a + sh * r0:a + sh * (r1 - 1) + 1:sh, c:c + sw * (wd - 1) + 1:sw] += cols[:, a, c]
        out = full[..., ph:ph + oh, pw:pw + ow]
        if b is not None:
            return torch.add(out, b.to(x.device)[:, None, None]).round_()
        return out.round()

    return run


def _conv_op(layer: nn.Conv2d | nn.ConvTranspose2d, units_in: bool = False,
             units_out: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """The fixed-point op of a convolution. Inputs and outputs are grid values, or with
    ``units_in`` / ``units_out`` the same numbers in grid units (times ``2**FRAC``: integers),
    which :class:`FixedPointNet` keeps between its layers to save a scaling pass per layer --
    the bits are the same (scaling by a power of two commutes with every correctly rounded
    operation used here)."""
    w = to_grid(layer.weight.detach().double().cpu())
    b = None if layer.bias is None else to_grid(layer.bias.detach().double().cpu(), 2 * FRAC)
    transposed = isinstance(layer, nn.ConvTranspose2d)
    # |output| <= max|x| * (largest L1 norm of the weights feeding one output channel) + |bias|
    l1 = w.abs().sum(dim=(0, 2, 3)) if transposed else w.abs().sum(dim=(1, 2, 3))
    l1_max = float(l1.max()) * (layer.groups if transposed else 1)
    b_max = 0.0 if b is None else float(b.abs().max())
    x_unit = 2.0**-FRAC if units_in else 1.0  # the value of one unit of the input
    kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    if transposed:
        kw["output_padding"] = layer.output_padding
    w_scale = 1.0 if units_in else 2.0**FRAC  # weights that turn the input into output grid units
    as_conv = ((_transposed_as_conv(layer, w, b, w_scale) or _transposed_as_scatter(layer, w, b, w_scale))
               if transposed else _gemm_conv(layer, w, b, w_scale))
    # a faster form with larger intermediates (Winograd) states what the check must cover
    l1_max = max(l1_max, getattr(as_conv, "l1_bound", 0.0))
    b_max = max(b_max, getattr(as_conv, "b_bound", 0.0))
    w_f, b_f = _scaled(w, w_scale), _scaled(b)

    def run(x: torch.Tensor) -> torch.Tensor:
        _check(_absmax(x) * x_unit * l1_max + b_max, type(layer).__name__)
        if as_conv is not None:
            y = as_conv(x)
        else:
            bd = None if b_f is None else b_f.to(x.device)
            conv = F.conv_transpose2d if transposed else F.conv2d
            y = conv(x, w_f.to(x.device), bd, **kw).round_()
        return y if units_out else y.mul_(2.0**-FRAC)  # grid units -> values

    return run


#: Positions of a GDN processed at once: with 192 channels about 3 MB per float64 temporary, so
#: its chain of elementwise passes runs in cache instead of streaming the whole activation
#: (150 MB at half a Kodak image's resolution) through memory once per pass.
_GDN_CHUNK = 1 << 21


def _gdn_op(layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """CompressAI's GDN: ``x * sqrt(beta + gamma x^2)`` (inverse) or ``x / sqrt(...)`` (forward),
    on activations in grid units (see :class:`FixedPointNet`); may overwrite its input."""

    def reparam(p: nn.Module, v: torch.Tensor) -> torch.Tensor:
        # NonNegativeParametrizer: max(v, bound)^2 - pedestal, with single IEEE operations
        bound = float(p.lower_bound.bound)
        lb = torch.clamp(v.detach().double().cpu(), min=bound)
        return lb * lb - float(p.pedestal)

    c = layer.gamma.shape[0]
    beta = to_grid(reparam(layer.beta_reparam, layer.beta), 2 * FRAC)
    gamma = to_grid(reparam(layer.gamma_reparam, layer.gamma)).reshape(c, c, 1, 1)
    g_l1 = float(gamma.abs().sum(dim=(1, 2, 3)).max())
    b_max = float(beta.abs().max())
    inverse = bool(layer.inverse)
    # gamma applied to x^2 in grid units: sum = beta + gamma x^2 in values. Every partial sum is
    # a multiple of 2**-(2 FRAC) below the checked bound, hence exact. ``x * sqrt(sum)`` and
    # ``x / sqrt(sum)`` with x in grid units come out in grid units (one IEEE operation each), and
    # one ``round`` puts them on the grid.
    g_units = gamma.reshape(c, c) * 2.0**-FRAC
    b_col = beta[:, None]
    step = max(1, _GDN_CHUNK // (8 * c))

    def run(x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        xs = x.view(n, c, h * w) if x.is_contiguous() else x.reshape(n, c, h * w)
        g2, bt = g_units.to(x.device), b_col.to(x.device)
        for i in range(n):
            for p0 in range(0, h * w, step):
                xc = xs[i, :, p0:p0 + step]
                m = _absmax(xc) * 2.0**-FRAC
                _check(m * m, "GDN square")  # x^2 is then exact: a multiple of 2**-(2 FRAC) below 2**21
                _check(m * m * g_l1 + b_max, "GDN")
                x2 = torch.mul(xc, xc).mul_(2.0**-FRAC).round_()  # x^2 on the grid, in grid units
                # the 1x1 convolution as a GEMM (F.conv2d's float64 path unfolds even 1x1)
                s = torch.addmm(bt, g2, x2).sqrt_()
                y = s.mul_(xc) if inverse else torch.div(xc, s, out=s)
                xc.copy_(y.round_())
        return xs.view(n, c, h, w)

    return run


def _leaky_op(layer: nn.LeakyReLU) -> Callable[[torch.Tensor], torch.Tensor]:
    """LeakyReLU on activations in grid units (``x * slope`` rounded: the bits of the value path)."""
    slope = float(layer.negative_slope)
    return lambda x: torch.where(x >= 0, x, x * slope).round_()


class FixedPointNet:
    """A ``Sequential`` of supported layers, run on the fixed-point grid in float64.

    ``net(x)`` takes any float tensor (rounded to the grid first) and returns float64 values on
    the grid. Between convolutions, GDNs and LeakyReLUs the activations stay in grid units
    (integers in float64), which saves a scaling pass per layer; the attention stages take and
    return values. On a GPU, cuDNN is switched off for the call: its FFT and Winograd algorithms
    do not compute plain sums of products.
    """

    def __init__(self, seq: nn.Sequential) -> None:
        from compressai.layers import GDN  # the layer class whose parameters are read here

        # (op, takes grid units, returns grid units)
        self.ops: list[tuple[Callable[[torch.Tensor], torch.Tensor], bool, bool]] = []
        units = True  # the input is converted to whatever the first op takes
        for layer in seq:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                # a convolution takes either form at no cost (its weights absorb the scale)
                self.ops.append((_conv_op(layer, units_in=units, units_out=True), units, True))
                units = True
            elif isinstance(layer, GDN):
                self.ops.append((_gdn_op(layer), True, True))
                units = True
            elif isinstance(layer, nn.LeakyReLU):
                self.ops.append((_leaky_op(layer), True, True))
                units = True
            else:
                from .fixed_point_attention import attention_op  # imports this module

                op = attention_op(layer)
                if op is None:
                    raise TypeError(f"no fixed-point version of {type(layer).__name__}")
                self.ops.append((op, False, False))
                units = False

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.round(x.double() * 2.0**FRAC)  # to_grid, in grid units
        units = True
        with torch.backends.cudnn.flags(enabled=False):
            for op, takes_units, gives_units in self.ops:
                if units != takes_units:
                    x = x.mul(2.0**FRAC) if takes_units else x.mul(2.0**-FRAC)
                x = op(x)
                units = gives_units
        return x.mul_(2.0**-FRAC) if units else x
