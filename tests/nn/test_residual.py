"""Residual conv blocks (CompressAI's, re-exported) and the attention-free blocks."""

from __future__ import annotations

import pytest
import torch

from glocal_codec.nn.residual import (
    DepthwiseConvBlock,
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    SqueezeExcite,
    subpel_conv3x3,
)


@pytest.mark.parametrize("hw", [(1, 1), (7, 13), (16, 16)])
def test_same_size_blocks(hw):
    x = torch.randn(2, 8, *hw, requires_grad=True)
    for blk in (DepthwiseConvBlock(8), SqueezeExcite(8), ResidualBlock(8, 8)):
        y = blk(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
        x.grad = None


def test_resampling_blocks():
    x = torch.randn(1, 8, 7, 13)
    assert ResidualBlockWithStride(8, 12, stride=2)(x).shape == (1, 12, 4, 7)
    assert ResidualBlockUpsample(8, 4, upsample=2)(x).shape == (1, 4, 14, 26)
    assert subpel_conv3x3(8, 4, 2)(x).shape == (1, 4, 14, 26)


def test_squeeze_excite_gates_channels_globally():
    se = SqueezeExcite(4, reduction=2)
    x = torch.randn(1, 4, 5, 5)
    g = se(x) / x
    # one gate per channel, the same at every pixel
    assert torch.allclose(g, g[..., :1, :1].expand_as(g), atol=1e-5)
    assert (g > 0).all() and (g < 1).all()
