"""Global attention linear in the number of pixels: pooled tokens and channel (transposed) attention."""

from __future__ import annotations

import pytest
import torch

from glocal_codec.nn import ChannelAttention, GlobalTokenAttention
from glocal_codec.nn.global_attention import pooled_grid


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (13, 7), (40, 24)])
def test_token_attention_shapes(hw):
    att = GlobalTokenAttention(16, heads=2, tokens=8)
    x = torch.randn(2, 16, *hw)
    y = att(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    th, tw = pooled_grid(*hw, 8)
    assert att.last_attn_shape == (2, 2, hw[0] * hw[1], th * tw)


def test_cross_attention_to_another_map():
    att = GlobalTokenAttention(12, heads=2, tokens=4, context_dim=5, inner=8, out_dim=6)
    x, ctx = torch.randn(1, 12, 9, 11), torch.randn(1, 5, 9, 11)
    x.requires_grad_(True)
    ctx.requires_grad_(True)
    y = att(x, ctx)
    assert y.shape == (1, 6, 9, 11)
    y.sum().backward()
    assert x.grad.abs().sum() > 0 and ctx.grad.abs().sum() > 0
    assert all(p.grad is not None for p in att.parameters())


def test_attention_matrix_is_linear_in_pixels():
    """A 256 x 384 map: the logits are (HW x 64), never (HW x HW)."""
    att = GlobalTokenAttention(8, heads=1, tokens=8).eval()
    x = torch.randn(1, 8, 256, 384)
    with torch.no_grad():
        y = att(x)
    assert y.shape == x.shape
    assert att.last_attn_shape == (1, 1, 256 * 384, 64)


def test_4k_shape_without_memory():
    """A 3840 x 2160 map on the meta device: shapes only, no memory -- still 64 tokens."""
    att = GlobalTokenAttention(8, heads=2, tokens=8).to("meta")
    x = torch.empty(1, 8, 2160, 3840, device="meta")
    y = att(x)
    assert y.shape == x.shape
    assert att.last_attn_shape == (1, 2, 2160 * 3840, 64)


def test_chunking_does_not_change_the_result():
    att = GlobalTokenAttention(8, heads=2, tokens=4).eval()
    x = torch.randn(1, 8, 20, 30)
    with torch.no_grad():
        full = att(x)
        att.chunk = 37
        part = att(x)
    torch.testing.assert_close(part, full, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("depthwise", [True, False])
@pytest.mark.parametrize("hw", [(1, 1), (5, 3), (16, 16)])
def test_channel_attention(depthwise, hw):
    att = ChannelAttention(16, heads=4, depthwise=depthwise)
    x = torch.randn(2, 16, *hw, requires_grad=True)
    y = att(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert att.temperature.grad is not None


def test_channel_attention_cost_independent_of_size():
    """The attention matrix is (C/h x C/h): captured through a forward hook on the softmax input size."""
    att = ChannelAttention(8, heads=2)
    sizes = []
    orig = torch.Tensor.softmax

    def spy(self, *a, **k):
        sizes.append(tuple(self.shape))
        return orig(self, *a, **k)

    torch.Tensor.softmax = spy
    try:
        att(torch.randn(1, 8, 64, 96))
    finally:
        torch.Tensor.softmax = orig
    assert sizes == [(1, 2, 4, 4)]


def test_bad_arguments():
    with pytest.raises(ValueError):
        GlobalTokenAttention(10, heads=3)
    with pytest.raises(ValueError):
        ChannelAttention(10, heads=3)
