"""Convolutional building blocks shared by the learned codecs.

GDN / IGDN come from CompressAI (Ballé et al., "Density modeling of images using a
generalized normalization transformation", ICLR 2016); the helpers here only fix the padding
conventions every codec in this package uses, so that a stride-2 layer maps H to ceil(H/2).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

with warnings.catch_warnings():
    # compressai's import calls torch.jit.script, which recent torch flags as deprecated: noise
    # for our users, nothing they can act on.
    warnings.simplefilter("ignore", FutureWarning)
    from compressai.layers import GDN

__all__ = ["GDN", "conv", "deconv", "GainUnit", "ste_round"]


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """Strided conv with 'same'-style padding: (N, in, H, W) -> (N, out, H/s, W/s)."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed conv that exactly inverts :func:`conv`'s shape: (N, in, H, W) -> (N, out, sH, sW)."""
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Rounding with a straight-through gradient (Theis et al. 2017; Minnen & Singh 2020 'mixed')."""
    return x + (torch.round(x) - x).detach()


class GainUnit(nn.Module):
    """Per-quality channel gains for variable-rate coding.

    Cui et al., "Asymmetric Gained Deep Image Compression With Continuous Rate Adaptation"
    (CVPR 2021): one learned positive gain vector per quality level scales the latent before
    quantisation (and an inverse-gain vector after), so one network serves every rate.
    Input (N, C, H, W), ``quality`` an index into the gain table.
    """

    def __init__(self, levels: int, channels: int, init: torch.Tensor | None = None) -> None:
        super().__init__()
        if init is None:
            init = torch.ones(levels)
        self.log_gain = nn.Parameter(init.log().view(levels, 1).repeat(1, channels).clone())

    def forward(self, x: torch.Tensor, quality: int, inverse: bool = False) -> torch.Tensor:
        g = self.log_gain[quality].exp().view(1, -1, 1, 1)
        return x / g if inverse else x * g
