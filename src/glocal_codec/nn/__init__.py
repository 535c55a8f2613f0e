"""Shared neural building blocks for every learned codec.

* :mod:`.layers` -- strided conv / deconv helpers, GDN (CompressAI), gain units, STE rounding
* :mod:`.residual` -- residual conv blocks (CompressAI) and attention-free conv blocks
* :mod:`.window_attention` -- Swin / SwinV2 shifted-window attention
* :mod:`.global_attention` -- pooled-token global attention and channel (transposed) attention
* :mod:`.glocal_block` -- :class:`GlocalBlock`, local + global attention in one block
* :mod:`.vq` -- :class:`MultiCodebookQuantizer` (multi-codebook VQ: straight-through, EMA or
  Gumbel-softmax; k-means init, dead-code restart, usage / perplexity) and
  :class:`ResidualQuantizer`, for the ``mcquic`` and ``vq`` codecs
"""

from .layers import GDN, GainUnit, conv, deconv, ste_round
from .global_attention import ChannelAttention, GlobalTokenAttention
from .glocal_block import GlocalBlock, ScaledResidual, glocal_stage, heads_for
from .residual import DepthwiseConvBlock, ResidualBlock, SqueezeExcite
from .vq import MultiCodebookQuantizer, ResidualQuantizer
from .window_attention import SwinV2Block, WindowAttention

__all__ = [
    "GDN",
    "GainUnit",
    "conv",
    "deconv",
    "ste_round",
    "ChannelAttention",
    "GlobalTokenAttention",
    "GlocalBlock",
    "ScaledResidual",
    "glocal_stage",
    "heads_for",
    "DepthwiseConvBlock",
    "ResidualBlock",
    "SqueezeExcite",
    "SwinV2Block",
    "WindowAttention",
    "MultiCodebookQuantizer",
    "ResidualQuantizer",
]
