"""GlocalBlock: local window + global token attention, and its attention-free fallback."""

from __future__ import annotations

import pytest
import torch

from glocal_codec.nn import GlocalBlock, ScaledResidual, glocal_stage, heads_for
from glocal_codec.nn.residual import DepthwiseConvBlock, SqueezeExcite


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("attention", [True, False])
@pytest.mark.parametrize("channel", [False, True])
@pytest.mark.parametrize("hw", [(1, 1), (7, 13), (16, 8), (21, 9)])
def test_shapes_and_gradients(attention, channel, hw):
    blk = GlocalBlock(16, window=4, shift=2, tokens=4, attention=attention, channel=channel, head_dim=8)
    x = torch.randn(2, 16, *hw, requires_grad=True)
    y = blk(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in blk.parameters())


def test_global_branch_sees_far_pixels():
    """A pixel far outside the local window still changes the output (through the global tokens)."""
    blk = GlocalBlock(8, window=4, tokens=4, head_dim=4).eval()
    x = torch.randn(1, 8, 16, 16)
    x2 = x.clone()
    x2[..., 15, 15] += 10.0
    assert (blk(x) - blk(x2))[..., 0, 0].abs().sum() > 0


def test_fallback_is_attention_free_and_same_interface():
    blk = GlocalBlock(16, attention=False)
    assert isinstance(blk.local, DepthwiseConvBlock) and isinstance(blk.glob, SqueezeExcite)
    assert not any("attn" in n for n, _ in blk.named_modules())


def test_stage_alternates_shift():
    st = glocal_stage(16, depth=3, window=4, tokens=4, head_dim=8)
    assert [b.local.attn.shift for b in st] == [0, 2, 0]
    x = torch.randn(1, 16, 10, 6)
    assert st(x).shape == x.shape


def test_heads_for():
    assert heads_for(96, 32) == 3
    assert heads_for(16, 32) == 1
    assert heads_for(24, 8) == 3
    assert 40 % heads_for(40, 16) == 0


def test_scaled_residual_starts_as_identity_and_learns_its_gate():
    torch.manual_seed(0)
    blk = GlocalBlock(8, window=4, tokens=4, head_dim=4)
    gated = ScaledResidual(blk, 8, init=0.0)
    x = torch.randn(2, 8, 9, 11)
    y = gated(x)
    assert torch.equal(y, x)  # gate 0: exactly the identity
    y.square().sum().backward()
    assert gated.gamma.grad is not None and gated.gamma.grad.abs().sum() > 0  # the gate can open
    open_ = ScaledResidual(blk, 8)  # default gate 1: the block itself
    assert torch.allclose(open_(x), blk(x), atol=1e-6)
