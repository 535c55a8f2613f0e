"""Padding and tiled execution: tiles with a wide enough halo reproduce the untiled result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import glocal_codec as gc
from glocal_codec.codecs import learned
from glocal_codec.engine import crop, pad_to_multiple, resolve_device, tiled_apply


@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (3, 200), (64, 64), (65, 130), (100, 37)])
@pytest.mark.parametrize("multiple", [16, 64])
def test_pad_then_crop_is_exact(h: int, w: int, multiple: int) -> None:
    x = torch.rand(1, 3, h, w)
    p = pad_to_multiple(x, multiple)
    ph, pw = p.shape[-2:]
    assert ph % multiple == 0 and pw % multiple == 0
    assert h <= ph < h + multiple and w <= pw < w + multiple
    assert torch.equal(crop(p, h, w), x)
    # replicate padding: the new rows / columns repeat the last row / column
    assert torch.equal(p[..., h:, :w], x[..., -1:, :].expand(1, 3, ph - h, w))
    assert torch.equal(p[..., :, w:], p[..., :, w - 1 : w].expand(1, 3, ph, pw - w))


def test_pad_is_a_no_op_on_multiples() -> None:
    x = torch.rand(2, 1, 32, 48)
    assert pad_to_multiple(x, 16) is x


def _analysis(seed: int = 0) -> nn.Module:
    """Four 5x5 stride-2 convolutions: 1/16 scale, receptive field 61 px (like g_a)."""
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate([(3, 8), (8, 8), (8, 8), (8, 6)]):
        layers.append(nn.Conv2d(a, b, 5, stride=2, padding=2))
        if i < 3:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).eval()


def _synthesis(seed: int = 0) -> nn.Module:
    """Four 5x5 stride-2 transposed convolutions: 16x scale (like g_s)."""
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate([(6, 8), (8, 8), (8, 8), (8, 3)]):
        layers.append(nn.ConvTranspose2d(a, b, 5, stride=2, padding=2, output_padding=1))
        if i < 3:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).eval()


@torch.no_grad()
def test_tiled_analysis_equals_untiled() -> None:
    f = _analysis()
    x = torch.rand(1, 3, 208, 272)
    ref = f(x)
    assert ref.shape == (1, 6, 13, 17)
    out = tiled_apply(f, x, scale=1 / 16, tile=64, halo=96, align=16)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    # the test can fail: without a halo the tile borders are visibly wrong
    bad = tiled_apply(f, x, scale=1 / 16, tile=64, halo=0, align=16)
    assert (bad - ref).abs().max() > 1e-3


@torch.no_grad()
def test_tiled_synthesis_equals_untiled() -> None:
    g = _synthesis()
    y = torch.randn(1, 6, 13, 17)
    ref = g(y)
    assert ref.shape == (1, 3, 208, 272)
    out = tiled_apply(g, y, scale=16, tile=4, halo=6)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    bad = tiled_apply(g, y, scale=16, tile=4, halo=0)
    assert (bad - ref).abs().max() > 1e-3


def test_small_inputs_are_not_tiled() -> None:
    calls = []

    def f(t: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(t.shape))
        return t * 2

    x = torch.rand(1, 1, 32, 32)
    assert torch.equal(tiled_apply(f, x, scale=1, tile=64, halo=8), x * 2)
    assert calls == [(1, 1, 32, 32)]
    calls.clear()
    tiled_apply(f, torch.rand(1, 1, 100, 70), scale=1, tile=32, halo=8)
    assert len(calls) == 4 * 3 and max(c[2] for c in calls) <= 32 + 2 * 8


def test_tile_and_halo_must_be_aligned() -> None:
    with pytest.raises(ValueError, match="multiples of align"):
        tiled_apply(lambda t: t, torch.rand(1, 1, 64, 64), scale=1 / 16, tile=40, halo=96, align=16)


@pytest.mark.parametrize("name", ["msh", "factorized"])
def test_learned_codec_tiles_big_images(name: str, kodak_crop: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny tile budget the codec goes through tiled_apply and still makes a good file."""
    x = kodak_crop  # 96 x 128: padded to 128 x 128 (msh) / 96 x 128 (factorized)
    plain = gc.encode(x, codec=name, quality=3)
    plain_img = np.asarray(gc.decode(plain), dtype=np.int16)

    calls = []
    real = learned.tiled_apply

    def counting(*args, **kwargs):
        calls.append(kwargs.get("scale"))
        return real(*args, **kwargs)

    monkeypatch.setattr(learned, "TILE_PIXELS", 32 * 32)
    monkeypatch.setattr(learned, "_TILE", 32)
    monkeypatch.setattr(learned, "tiled_apply", counting)
    tiled = gc.encode(x, codec=name, quality=3)
    img = gc.decode(tiled)
    assert 1 / 16 in calls and 16 in calls  # both transforms really ran tile by tile
    assert img.size == (128, 96)
    assert gc.read_info(tiled).shape == (3, 96, 128)
    # the halo covers the receptive field: the same file up to rare rounding flips
    assert abs(len(tiled) - len(plain)) <= max(8, len(plain) // 50)
    diff = np.abs(np.asarray(img, dtype=np.int16) - plain_img)
    assert np.mean(diff) < 0.5 and np.percentile(diff, 99) <= 2


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type in ("cpu", "cuda")
    assert resolve_device("auto") == resolve_device(None)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


@pytest.mark.parametrize("h,w,tile", [(1, 1, 16), (50, 70, 32), (1024, 1024, 1024), (1025, 3000, 1024), (7, 5000, 64)])
def test_tile_boxes_cover_the_picture_once_in_near_equal_tiles(h: int, w: int, tile: int) -> None:
    from glocal_codec.engine import tile_boxes

    boxes = tile_boxes(h, w, tile)
    seen = np.zeros((h, w), np.int32)
    for y0, y1, x0, x1 in boxes:
        assert 0 < y1 - y0 <= tile and 0 < x1 - x0 <= tile
        seen[y0:y1, x0:x1] += 1
    assert (seen == 1).all()
    assert len(boxes) == -(-h // tile) * -(-w // tile)
    # no sliver: tile sides differ by at most one pixel along each axis
    assert max(b[1] - b[0] for b in boxes) - min(b[1] - b[0] for b in boxes) <= 1
    assert max(b[3] - b[2] for b in boxes) - min(b[3] - b[2] for b in boxes) <= 1
    with pytest.raises(ValueError, match="tiles"):
        tile_boxes(h, w, 0)
