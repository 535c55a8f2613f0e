"""The fixed-point runner: grid values, exact sums whatever the thread count, range checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
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


@pytest.mark.parametrize("k,s,p,op,cin,cout", [(5, 2, 2, 1, 6, 8), (3, 2, 1, 1, 4, 5), (4, 2, 1, 0, 3, 7),
                                             (5, 2, 2, 0, 5, 5), (2, 2, 0, 0, 4, 4), (5, 3, 2, 2, 3, 6)])
def test_transposed_convolution_as_phases_is_bit_exact(k: int, s: int, p: int, op: int, cin: int, cout: int) -> None:
    """The phase form of a transposed convolution gives the very bits of F.conv_transpose2d
    rounded to the grid (sums of grid values are exact in any order), odd sizes included."""
    from glocal_codec.nn.fixed_point import _transposed_as_conv

    g = torch.Generator().manual_seed(k * 100 + s * 10 + p)
    layer = torch.nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op)
    w = to_grid(torch.randn(cin, cout, k, k, generator=g, dtype=torch.float64))
    b = to_grid(torch.randn(cout, generator=g, dtype=torch.float64), 32)
    run = _transposed_as_conv(layer, w, b)
    assert run is not None
    for h, wd in ((7, 9), (1, 1), (4, 13)):
        x = to_grid(torch.randn(1, cin, h, wd, generator=g, dtype=torch.float64) * 8)
        ref = F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op)
        assert torch.equal(run(x), torch.round(ref * 2.0**FRAC))  # on the grid, in grid units


@pytest.mark.parametrize("k,s,p,op", [(5, 2, 2, 1), (5, 2, 2, 0), (6, 2, 2, 1), (5, 2, 1, 1)])
def test_winograd_phases_give_the_direct_bits(k: int, s: int, p: int, op: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Winograd F(2x2, 3x3) over the shared phase window is exact on the grid: the same bits as
    the direct phase GEMMs and F.conv_transpose2d, for blocks cut across tile rows and columns,
    batches and odd sizes; its range check covers the transforms' growth."""
    from glocal_codec.nn import fixed_point as fp

    g = torch.Generator().manual_seed(k * 10 + p + op)
    cin, cout = 5, 6
    layer = torch.nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op)
    w = to_grid(torch.randn(cin, cout, k, k, generator=g, dtype=torch.float64))
    b = to_grid(torch.randn(cout, generator=g, dtype=torch.float64), 32)
    monkeypatch.setattr(fp, "_WINO_COLS", 3)  # several blocks per row and per image
    wino = fp._transposed_as_conv(layer, w, b)
    assert hasattr(wino, "l1_bound")
    monkeypatch.setattr(fp, "_WINOGRAD", False)
    direct = fp._transposed_as_conv(layer, w, b)
    assert not hasattr(direct, "l1_bound")
    for n, h, wd in ((1, 7, 9), (1, 1, 1), (2, 4, 13), (1, 2, 8)):
        x = to_grid(torch.randn(n, cin, h, wd, generator=g, dtype=torch.float64) * 8)
        ref = torch.round(F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op) * 2.0**FRAC)
        assert torch.equal(wino(x), ref) and torch.equal(direct(x), ref)
    # the layer op refuses inputs where a Winograd intermediate could leave the exact range,
    # though the direct sums would still fit
    monkeypatch.setattr(fp, "_WINOGRAD", True)
    layer.weight.data, layer.bias.data = w.float(), b.float()
    op_ = fp._conv_op(layer)
    l1 = float(w.abs().sum(dim=(0, 2, 3)).max())
    assert wino.l1_bound > 2 * l1
    big = 2.0 ** (53 - 2 * FRAC) / (2 * l1)  # the direct sums fit, Winograd's bound does not
    with pytest.raises(NotExactError):
        op_(torch.full((1, cin, 3, 3), big, dtype=torch.float64))


@pytest.mark.parametrize("k,s,p,op,cin,cout", [(5, 2, 2, 1, 8, 3), (3, 2, 1, 1, 6, 2), (4, 2, 1, 0, 5, 1),
                                             (2, 2, 0, 0, 4, 3), (5, 3, 2, 2, 7, 3), (3, 1, 1, 0, 4, 3)])
def test_transposed_convolution_as_tap_scatter_is_bit_exact(k: int, s: int, p: int, op: int, cin: int,
                                                             cout: int) -> None:
    """Few output channels: one GEMM then each tap added in place gives F.conv_transpose2d's bits."""
    from glocal_codec.nn.fixed_point import _transposed_as_scatter

    g = torch.Generator().manual_seed(k * 100 + s * 10 + p + 7)
    layer = torch.nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op)
    w = to_grid(torch.randn(cin, cout, k, k, generator=g, dtype=torch.float64))
    b = to_grid(torch.randn(cout, generator=g, dtype=torch.float64), 32)
    run = _transposed_as_scatter(layer, w, b)
    for n, h, wd in ((1, 7, 9), (1, 1, 1), (2, 4, 13)):
        x = to_grid(torch.randn(n, cin, h, wd, generator=g, dtype=torch.float64) * 8)
        ref = F.conv_transpose2d(x, w, b, stride=s, padding=p, output_padding=op)
        assert torch.equal(run(x), torch.round(ref * 2.0**FRAC))  # on the grid, in grid units


@pytest.mark.parametrize("k,pad,cin,cout", [(3, 1, 6, 8), (1, 0, 5, 7), (5, 2, 3, 4), (3, 0, 4, 2), (2, 1, 3, 3)])
def test_convolution_as_row_gemms_is_bit_exact(k: int, pad: int, cin: int, cout: int) -> None:
    """Stride-1 convolutions as one GEMM per kernel row give F.conv2d's bits, batches included."""
    from glocal_codec.nn.fixed_point import _gemm_conv

    g = torch.Generator().manual_seed(k * 10 + pad)
    layer = torch.nn.Conv2d(cin, cout, k, padding=pad)
    w = to_grid(torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64))
    b = to_grid(torch.randn(cout, generator=g, dtype=torch.float64), 32)
    run = _gemm_conv(layer, w, b)
    assert run is not None and _gemm_conv(torch.nn.Conv2d(cin, cout, k, stride=2), w, b) is None
    for n, h, wd in ((1, 7, 9), (2, 5, 6), (1, k, k + 3)):
        x = to_grid(torch.randn(n, cin, h, wd, generator=g, dtype=torch.float64) * 8)
        assert torch.equal(run(x), torch.round(F.conv2d(x, w, b, padding=pad) * 2.0**FRAC))


def _reference(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The textbook fixed-point net: every layer in values, rounded to the grid after each."""
    x = to_grid(x.double())
    for layer in seq:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            w = to_grid(layer.weight.detach().double())
            b = to_grid(layer.bias.detach().double(), 2 * FRAC)
            if isinstance(layer, nn.ConvTranspose2d):
                y = F.conv_transpose2d(x, w, b, layer.stride, layer.padding, layer.output_padding)
            else:
                y = F.conv2d(x, w, b, layer.stride, layer.padding)
            x = to_grid(y)
        elif isinstance(layer, GDN):
            def rep(p, v):
                return torch.clamp(v.detach().double(), min=float(p.lower_bound.bound)) ** 2 - float(p.pedestal)
            c = layer.gamma.shape[0]
            beta = to_grid(rep(layer.beta_reparam, layer.beta), 2 * FRAC)
            gamma = to_grid(rep(layer.gamma_reparam, layer.gamma)).reshape(c, c, 1, 1)
            s = torch.sqrt(F.conv2d(to_grid(x * x), gamma, beta))
            x = to_grid(x * s if layer.inverse else x / s)
        else:
            x = to_grid(torch.where(x >= 0, x, x * layer.negative_slope))
    return x


def test_grid_units_and_chunked_gdn_give_the_textbook_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between layers the runner keeps activations in grid units and runs GDN in cache-sized
    chunks; neither may change a bit against plain per-layer rounding in values."""
    import glocal_codec.nn.fixed_point as fp

    seq = _net()
    with torch.no_grad():
        for p in seq.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # off the initial values (GDN's gamma is diagonal)
    x = torch.randn(2, 8, 7, 5) * 3
    ref = _reference(seq, x)
    assert torch.equal(FixedPointNet(seq)(x), ref)
    monkeypatch.setattr(fp, "_GDN_CHUNK", 8 * 16 * 5)  # 5 positions per chunk: ragged last chunk
    assert torch.equal(FixedPointNet(seq)(x), ref)


def test_decoder_sized_maps_keep_the_textbook_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """At decoder sizes (several GDN chunks, Winograd blocks cut across rows) still the bits of
    plain per-layer rounding, with 1 or 2 threads."""
    import glocal_codec.nn.fixed_point as fp

    monkeypatch.setattr(fp, "_WINO_COLS", 50)
    seq = _net()
    with torch.no_grad():
        for p in seq.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(1, 8, 40, 36) * 3
    ref = _reference(seq, x)
    net = FixedPointNet(seq)
    n = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert torch.equal(net(x), ref)
    finally:
        torch.set_num_threads(n)


def test_tap_scatter_in_row_bands_keeps_the_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The few-output-channel transposed convolution runs in bands of input rows: same bits."""
    import glocal_codec.nn.fixed_point as fp

    torch.manual_seed(5)
    layer = nn.ConvTranspose2d(6, 3, 5, stride=2, padding=2, output_padding=1)
    w, b = to_grid(layer.weight.detach().double()), to_grid(layer.bias.detach().double(), 2 * FRAC)
    x = to_grid(torch.randn(2, 6, 9, 7, dtype=torch.float64) * 3)
    whole = fp._transposed_as_scatter(layer, w, b)(x)
    monkeypatch.setattr(fp, "_SCATTER_BAND", 2 * 7)  # two input rows per band: a ragged last band
    assert torch.equal(fp._transposed_as_scatter(layer, w, b)(x), whole)
    ref = F.conv_transpose2d(x, w * 2.0**FRAC, b * 2.0**FRAC, stride=2, padding=2, output_padding=1).round()
    assert torch.equal(whole, ref)
