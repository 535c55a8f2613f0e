"""GlocalBlock: local window attention plus a global-context branch, for any codec transform.

The combination follows the "global + local" designs of recent learned codecs -- e.g. Wang et
al., "S2LIC: Learned Image Compression with the SwinV2 Block, Adaptive Channel-wise and Global-
inter Attention Context" (2024), and Zou et al., "The Devil Is in the Details: Window-based
Attention for Image Compression", CVPR 2022 -- here as one drop-in block:

    local:   SwinV2 block (shifted window attention + MLP, res-post-norm)   O(HW * ws^2)
    global:  x = x + LN(GlobalTokenAttention(x))  (pixels -> <= tokens^2 pooled tokens)  O(HW * T)
    channel: x = x + LN(ChannelAttention(x))      (optional, Restormer MDTA)  O(HW * C^2 / h)

so the whole block stays linear in the number of pixels. ``attention=False`` swaps in an
attention-free block with the same interface -- a ConvNeXt-style depth-wise conv block for
the local part and a squeeze-excitation gate for global context -- for speed (or for
hardware where attention is slow); the flag is part of a codec's config, so weights always
match the block kind they were trained with.

(N, C, H, W) -> (N, C, H, W), any H, W >= 1. Usable in analysis/synthesis transforms, hyper
transforms and context models.
"""

from __future__ import annotations

import torch
from torch import nn

from .global_attention import ChannelAttention, GlobalTokenAttention
from .residual import DepthwiseConvBlock, SqueezeExcite
from .window_attention import SwinV2Block

__all__ = ["GlocalBlock", "ScaledResidual", "glocal_stage", "heads_for"]


def heads_for(dim: int, head_dim: int = 32) -> int:
    """Number of heads for ``dim`` channels: dim // head_dim, at least 1, always dividing dim."""
    h = max(1, dim // max(1, head_dim))
    while dim % h:
        h -= 1
    return h


class GlocalBlock(nn.Module):
    """Local window attention + global pooled-token attention (+ optional channel attention)."""

    def __init__(self, dim: int, heads: int | None = None, window: int = 8, shift: int = 0, tokens: int = 8,
                 mlp_ratio: float = 2.0, attention: bool = True, channel: bool = False, head_dim: int = 32) -> None:
        super().__init__()
        heads = heads or heads_for(dim, head_dim)
        self.attention = attention
        if attention:
            self.local = SwinV2Block(dim, heads, window, shift, mlp_ratio)
            self.glob = GlobalTokenAttention(dim, heads, tokens)
            self.norm_g = nn.LayerNorm(dim)
        else:
            self.local = DepthwiseConvBlock(dim, kernel=7, mlp_ratio=mlp_ratio)
            self.glob = SqueezeExcite(dim)
        self.chan = ChannelAttention(dim, heads) if channel else None
        self.norm_c = nn.LayerNorm(dim) if channel else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention:
            t = self.local.forward_nhwc(x.permute(0, 2, 3, 1))
            t = t + self.norm_g(self.glob.forward_nhwc(t))
            x = t.permute(0, 3, 1, 2)
        else:
            x = self.glob(self.local(x))
        if self.chan is not None:
            x = x + self.norm_c(self.chan(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x


def glocal_stage(dim: int, depth: int = 1, window: int = 8, **kw) -> nn.Sequential:
    """``depth`` GlocalBlocks with Swin's alternation: unshifted, then shifted by window // 2."""
    return nn.Sequential(*(GlocalBlock(dim, window=window, shift=(window // 2) * (i % 2), **kw)
                           for i in range(depth)))


class ScaledResidual(nn.Module):
    """``x + gamma * (f(x) - x)`` with a learned per-channel ``gamma`` (LayerScale).

    Touvron et al., "Going deeper with Image Transformers" (CaiT, ICCV 2021) scale each residual
    branch per channel; with ``gamma = 0`` the wrapped block is the identity (as in ReZero,
    Bachlechner et al. 2020). That is what lets a codec insert attention stages into a trained
    conv-only transform (``glocal`` from ``msh``): training starts from the conv model's exact
    function and learns how much each stage adds. ``f`` is a block that maps (N, C, H, W) to
    the same shape and includes its own skip connection (GlocalBlock, glocal_stage), hence the
    ``- x``. Default ``init = 1``: the plain block.
    """

    def __init__(self, block: nn.Module, channels: int, init: float = 1.0) -> None:
        super().__init__()
        self.block = block
        self.gamma = nn.Parameter(torch.full((1, channels, 1, 1), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * (self.block(x) - x)
