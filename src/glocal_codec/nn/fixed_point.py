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
``FRAC = 16`` the grid is far finer than the 8-bit output (a change of about 1e-4 dB), and a
decode costs about twice the float32 one (float64 arithmetic).
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


def _phase_weight(w: torch.Tensor, ph: _Phases, pw: _Phases) -> torch.Tensor:
    """``ConvTranspose2d`` weight (Cin, Cout, K, K) -> the conv2d weight (Cout*s*s, Cin, Lh, Lw)
    whose output channel ``c*s*s + rh*s + rw`` is phase ``(rh, rw)`` of output channel ``c``
    (the order ``pixel_shuffle`` reads)."""
    cin, cout = w.shape[:2]
    g = w.new_zeros(cout, ph.s, pw.s, cin, ph.size, pw.size)
    for rh in range(ph.s):
        for jh, kh in enumerate(ph.taps[rh]):
            for rw in range(pw.s):
                for jw, kw in enumerate(pw.taps[rw]):
                    g[:, rh, rw, :, ph.top[rh] - jh - ph.amin, pw.top[rw] - jw - pw.amin] = w[:, :, kh, kw].t()
    return g.reshape(cout * ph.s * pw.s, cin, ph.size, pw.size)


def _transposed_as_conv(layer: nn.ConvTranspose2d, w: torch.Tensor, b: torch.Tensor | None):
    """``F.conv_transpose2d`` with ``layer``'s geometry as a conv2d + pixel shuffle, or None
    where that does not apply (groups, dilation, unequal strides) or would not be faster. Exact sums do not depend on
    their order, so the result is bit for bit the transposed convolution's (tested); float64
    ``conv_transpose2d`` has no fast CPU kernel and took a third of ``glocal``'s decode."""
    sh, sw = layer.stride
    if layer.groups != 1 or tuple(layer.dilation) != (1, 1) or sh != sw:
        return None
    ph = _Phases(layer.kernel_size[0], sh, layer.padding[0], layer.output_padding[0])
    pw = _Phases(layer.kernel_size[1], sw, layer.padding[1], layer.output_padding[1])
    # both float64 CPU paths unfold: the convolution Cin*Lh*Lw values per input position, the
    # transposed one Cout*Kh*Kw; take the other path where it unfolds less (e.g. a 3-channel output)
    if w.shape[0] * ph.size * pw.size > w.shape[1] * ph.k * pw.k:
        return None
    g = _phase_weight(w, ph, pw)
    bg = None if b is None else b.repeat_interleave(sh * sw)

    def run(x: torch.Tensor) -> torch.Tensor:
        n_h, n_w = x.shape[-2:]
        oh, ow = ph.out_len(n_h), pw.out_len(n_w)
        mh, mw = -(-oh // sh), -(-ow // sw)  # positions per phase
        xp = F.pad(x, (-pw.amin, max(0, mw + pw.amax - n_w), -ph.amin, max(0, mh + ph.amax - n_h)))
        y = F.conv2d(xp, g.to(x.device), None if bg is None else bg.to(x.device))
        return F.pixel_shuffle(y[..., :mh, :mw], sh)[..., :oh, :ow]

    return run


def _conv_op(layer: nn.Conv2d | nn.ConvTranspose2d) -> Callable[[torch.Tensor], torch.Tensor]:
    w = to_grid(layer.weight.detach().double().cpu())
    b = None if layer.bias is None else to_grid(layer.bias.detach().double().cpu(), 2 * FRAC)
    transposed = isinstance(layer, nn.ConvTranspose2d)
    # |output| <= max|x| * (largest L1 norm of the weights feeding one output channel) + |bias|
    l1 = w.abs().sum(dim=(0, 2, 3)) if transposed else w.abs().sum(dim=(1, 2, 3))
    l1_max = float(l1.max()) * (layer.groups if transposed else 1)
    b_max = 0.0 if b is None else float(b.abs().max())
    kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    if transposed:
        kw["output_padding"] = layer.output_padding
    as_conv = _transposed_as_conv(layer, w, b) if transposed else None

    def run(x: torch.Tensor) -> torch.Tensor:
        _check(_absmax(x) * l1_max + b_max, type(layer).__name__)
        bd = None if b is None else b.to(x.device)
        if as_conv is not None:
            y = as_conv(x)
        elif transposed:
            y = F.conv_transpose2d(x, w.to(x.device), bd, **kw)
        else:
            y = F.conv2d(x, w.to(x.device), bd, **kw)
        return _to_grid_(y)

    return run


def _gdn_op(layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """CompressAI's GDN: ``x * sqrt(beta + gamma x^2)`` (inverse) or ``x / sqrt(...)`` (forward)."""

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

    def run(x: torch.Tensor) -> torch.Tensor:
        m = _absmax(x)
        _check(m * m, "GDN square")  # x^2 is then exact: a multiple of 2**-(2 FRAC) below 2**21
        x2 = _to_grid_(x * x)
        _check(m * m * g_l1 + b_max, "GDN")
        norm = F.conv2d(x2, gamma.to(x.device), beta.to(x.device))
        del x2
        s = norm.sqrt_()
        return _to_grid_(s.mul_(x) if inverse else torch.div(x, s, out=s))

    return run


def _leaky_op(layer: nn.LeakyReLU) -> Callable[[torch.Tensor], torch.Tensor]:
    slope = float(layer.negative_slope)
    return lambda x: _to_grid_(torch.where(x >= 0, x, x * slope))


class FixedPointNet:
    """A ``Sequential`` of supported layers, run on the fixed-point grid in float64.

    ``net(x)`` takes any float tensor (rounded to the grid first) and returns float64 values on
    the grid. On a GPU, cuDNN is switched off for the call: its FFT and Winograd algorithms do
    not compute plain sums of products.
    """

    def __init__(self, seq: nn.Sequential) -> None:
        from compressai.layers import GDN  # the layer class whose parameters are read here

        self.ops: list[Callable[[torch.Tensor], torch.Tensor]] = []
        for layer in seq:
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                self.ops.append(_conv_op(layer))
            elif isinstance(layer, GDN):
                self.ops.append(_gdn_op(layer))
            elif isinstance(layer, nn.LeakyReLU):
                self.ops.append(_leaky_op(layer))
            else:
                from .fixed_point_attention import attention_op  # imports this module

                op = attention_op(layer)
                if op is None:
                    raise TypeError(f"no fixed-point version of {type(layer).__name__}")
                self.ops.append(op)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = to_grid(x.double())
        with torch.backends.cudnn.flags(enabled=False):
            for op in self.ops:
                x = op(x)
        return x
