"""The fixed-point runner: grid values, exact sums whatever the thread count, range checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glocal_codec.nn import GDN, conv, deconv
from glocal_codec.nn.fixed_point import FRAC, FixedPointNet, NotExactError, to_grid


def _net() -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(deconv(8, 16), GDN(16, inverse=True), nn.LeakyReLU(), deconv(16, 16), GDN(16),
                         conv(16, 3, 3, 1)).eval()


def test_outputs_are_on_the_grid_and_close_to_float() -> None:
    net = _net()
    x = torch.randn(1, 8, 6, 7) * 4
    fixed = FixedPointNet(net)(x)
    assert fixed.dtype == torch.float64
    assert torch.equal(fixed, to_grid(fixed))  # multiples of 2**-FRAC
    with torch.no_grad():
        ref = net(to_grid(x.double()).float())
    assert (fixed.float() - ref).abs().max() < 1e-3


def test_same_bits_with_any_thread_count_and_without_onednn() -> None:
    net = FixedPointNet(_net())
    x = torch.randn(2, 8, 9, 5) * 3
    n = torch.get_num_threads()
    try:
        ref = net(x)
        torch.set_num_threads(1)
        one = net(x)
    finally:
        torch.set_num_threads(n)
    with torch.backends.mkldnn.flags(enabled=False):
        plain = net(x)
    assert torch.equal(ref, one) and torch.equal(ref, plain)


def test_out_of_range_activations_are_refused_not_rounded() -> None:
    net = FixedPointNet(_net())
    with pytest.raises(NotExactError, match="exact"):
        net(torch.full((1, 8, 3, 3), 2.0 ** (53 - 2 * FRAC)))


def test_unsupported_layers_are_named() -> None:
    with pytest.raises(TypeError, match="GELU"):
        FixedPointNet(nn.Sequential(nn.Conv2d(3, 3, 1), nn.GELU()))
