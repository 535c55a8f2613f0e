"""Residual convolution blocks, and the attention-free fallback of :class:`GlocalBlock`.

From CompressAI (re-exported, not rewritten): ``ResidualBlock`` (two 3x3 convs + LeakyReLU,
identity or 1x1 skip), ``ResidualBlockWithStride`` / ``ResidualBlockUpsample`` (stride-2 down /
sub-pixel up), ``AttentionBlock`` (Cheng et al., "Learned Image Compression with Discretized
Gaussian Mixture Likelihoods and Attention Modules", CVPR 2020), ``conv1x1``, ``conv3x3``,
``subpel_conv3x3`` (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an
Efficient Sub-Pixel CNN", CVPR 2016).

Written here (CompressAI has no equivalent):

* :class:`DepthwiseConvBlock` -- a ConvNeXt-style block (Liu et al., "A ConvNet for the
  2020s", CVPR 2022): depth-wise k x k conv, then a point-wise MLP, residual. A cheap local
  mixer with the same (N, C, H, W) -> (N, C, H, W) interface as the window-attention block.
* :class:`SqueezeExcite` -- Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018: a
  channel gate from globally pooled features; the O(HW) global context of the fallback.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import GDN  # noqa: F401  (imports compressai with its warnings silenced)
from compressai.layers import (  # noqa: E402
    AttentionBlock,
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv1x1,
    conv3x3,
    subpel_conv3x3,
)

__all__ = [
    "AttentionBlock",
    "ResidualBlock",
    "ResidualBlockUpsample",
    "ResidualBlockWithStride",
    "conv1x1",
    "conv3x3",
    "subpel_conv3x3",
    "DepthwiseConvBlock",
    "SqueezeExcite",
]


class DepthwiseConvBlock(nn.Module):
    """``x + pw2(GELU(pw1(dw_k(x))))``: (N, C, H, W) -> (N, C, H, W), any H, W."""

    def __init__(self, dim: int, kernel: int = 7, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.dw = nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.pw1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw2(self.act(self.pw1(self.dw(x))))


class SqueezeExcite(nn.Module):
    """``x * sigmoid(MLP(mean_hw(x)))``: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, dim: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, dim // reduction)
        self.fc = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.fc(x.mean(dim=(2, 3))))
        return x * g[:, :, None, None]
