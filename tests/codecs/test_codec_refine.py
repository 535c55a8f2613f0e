"""Encoder-side latent refinement through the codecs, the public API and the CLI.

A refined file is an ordinary file: the one decoder reads it, and its real size plus distortion
(the training loss, measured on the file) beats the plain encode of the same image.
"""

from __future__ import annotations

import pytest
import torch
from conftest import UNTRAINED
from typer.testing import CliRunner

import glocal_codec as gc
from glocal_codec.cli.app import app
from glocal_codec.codecs import open_codec
from glocal_codec.codecs.hyperprior import LAMBDAS
from glocal_codec.codecs.learned import TILE_PIXELS
from glocal_codec.imageio import to_pil


def _real_loss(x: torch.Tensor, data: bytes, quality: int) -> float:
    """bpp from the file size + lambda * 255^2 * MSE: the rate-distortion loss of a real file."""
    y = gc.decode_tensor(data)
    h, w = x.shape[-2:]
    return 8 * len(data) / (h * w) + LAMBDAS[quality - 1] * 255**2 * float(((y - x) ** 2).mean())


# factorized at q1 is left out: on this 96 x 128 crop its file is ~310 bytes and 20 steps move
# the estimated loss by less than a byte's worth (measured: same size, MSE within 2 %).
@pytest.mark.parametrize(("codec", "quality"), [("msh", 1), ("msh", 6), ("factorized", 6), ("glocal", 1),
                                                ("glocal", 6)])
@pytest.mark.slow
def test_refined_file_decodes_and_has_a_lower_real_loss(codec: str, quality: int, kodak_crop: torch.Tensor) -> None:
    if codec in UNTRAINED:
        pytest.skip(f"{codec} runs on untrained stand-in weights here")
    plain = gc.encode(kodak_crop, codec=codec, quality=quality)
    refined = gc.encode(kodak_crop, codec=codec, quality=quality, refine=20)
    assert refined != plain
    info = gc.read_info(refined)
    assert (info.codec, info.quality) == (codec, quality)
    assert gc.decode_tensor(refined).shape == kodak_crop.shape
    assert _real_loss(kodak_crop, refined, quality) < _real_loss(kodak_crop, plain, quality)


def test_refinement_is_deterministic(kodak_crop: torch.Tensor) -> None:
    a = gc.encode(kodak_crop, codec="msh", quality=3, refine=4)
    b = gc.encode(kodak_crop, codec="msh", quality=3, refine=4)
    assert a == b


def test_refinement_of_a_grayscale_odd_sized_image(kodak_crop: torch.Tensor) -> None:
    x = kodak_crop[:, :1, :37, :53].contiguous()
    data = gc.encode(x, codec="msh", quality=2, refine=3)
    assert gc.decode_tensor(data).shape == x.shape


def test_which_codecs_refine_is_listed() -> None:
    flags = {c.name: c.refinable for c in gc.list_codecs()}
    assert flags["msh"] and flags["factorized"] and flags["glocal"]
    assert not flags["jpeg"] and not flags["webp"]


@pytest.mark.parametrize("codec", ["jpeg", "avif"])
def test_codecs_without_refinement_say_so(codec: str, kodak_crop: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"does not support encoder-side refinement.*msh"):
        gc.encode(kodak_crop, codec=codec, quality=2, refine=5)


def test_bad_refine_values_are_rejected_before_work(kodak_crop: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        open_codec("msh").encode(kodak_crop, 2, refine=-1)
    side = int(TILE_PIXELS**0.5) + 1
    big = torch.zeros(1, 3, side, side)
    # glocal's attention and context see the whole latent: no tile-by-tile refinement
    with pytest.raises(ValueError, match="cannot refine tile by tile"):
        open_codec("glocal").encode(big, 2, refine=1)


def _smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, h // 16, w // 16, generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["msh", "factorized"])
def test_tile_windows_give_the_whole_image_gradient(codec: str) -> None:
    # The claim that makes tiled refinement exact: with the model's halo, a tile's loss gradient
    # computed on its window equals the gradient of the whole image's loss. Without the halo it
    # does not (the control below), so the test can fail.
    c = open_codec(codec)
    model, q = c.model, 2
    x = _smooth_image(640, 704)  # 40 x 44 latents: the window around the tile is a part of the grid
    with torch.no_grad():
        y = model.analysis(x, q)
        held = model.latents(y, q)[1:]
    objective = c._window_objective(x, y.shape[-1], held, q)
    tile = (16, 20, 16, 20)
    halo = model.refine_halo

    def tile_grad(box):
        y0, y1, x0, x1 = box
        win = y[..., y0:y1, x0:x1].clone().requires_grad_(True)
        mask = torch.zeros(win.shape, dtype=torch.bool)
        mask[..., tile[0] - y0:tile[1] - y0, tile[2] - x0:tile[3] - x0] = True

        def rounding(v):  # differentiable on the tile, hard on the rest (as refine_tiled rounds)
            return torch.where(mask, v, torch.round(v)) if v.shape == mask.shape else torch.round(v)

        bits, sse = objective(box, win, rounding)
        (g,) = torch.autograd.grad(bits + LAMBDAS[q] * 255**2 * sse / 3, win)
        return g[..., tile[0] - y0:tile[1] - y0, tile[2] - x0:tile[3] - x0]

    whole = tile_grad((0, 40, 0, 44))
    box = (tile[0] - halo, tile[1] + halo, tile[2] - halo, tile[3] + halo)
    assert box[1] - box[0] < 40 and box[3] - box[2] < 44
    window = tile_grad(box)
    assert torch.allclose(window, whole, rtol=1e-3, atol=1e-3 * whole.abs().max().item())
    no_halo = tile_grad(tile)
    assert not torch.allclose(no_halo, whole, rtol=1e-3, atol=1e-3 * whole.abs().max().item())


@pytest.mark.slow
@pytest.mark.parametrize("codec", ["msh", "factorized"])
def test_large_images_are_refined_tile_by_tile(codec: str, monkeypatch, data_dir) -> None:
    # shrink the limits so that a small image takes the large-image path: 6 tiles of 8 x 8 latents
    import glocal_codec.codecs.learned as learned

    if codec in UNTRAINED:
        pytest.skip(f"{codec} runs on untrained stand-in weights here")
    from glocal_codec.imageio import load_image

    x = load_image(data_dir / "kodak" / "kodim23.png")[0][:, :, 100:356, 200:520].contiguous()  # 256 x 320
    plain = gc.encode(x, codec=codec, quality=4)
    monkeypatch.setattr(learned, "TILE_PIXELS", 256 * 320 - 1)
    monkeypatch.setattr(learned, "_REFINE_TILE_PIXELS", 8 * 16)
    refined = gc.encode(x, codec=codec, quality=4, refine=10)
    assert refined == gc.encode(x, codec=codec, quality=4, refine=10)  # deterministic
    assert gc.decode_tensor(refined).shape == x.shape
    assert _real_loss(x, refined, 4) < _real_loss(x, plain, 4)


def test_cli_encode_refine(tmp_path, kodak_crop: torch.Tensor) -> None:
    src = tmp_path / "crop.png"
    to_pil(kodak_crop).save(src)
    runner = CliRunner()
    r = runner.invoke(app, ["encode", str(src), "-o", str(tmp_path / "a.glc"), "--codec", "msh", "--refine", "3"])
    assert r.exit_code == 0, r.output
    assert gc.read_info((tmp_path / "a.glc").read_bytes()).codec == "msh"
    r = runner.invoke(app, ["encode", str(src), "-o", str(tmp_path / "b.glc"), "--codec", "webp", "--refine", "3"])
    assert r.exit_code == 1 and "does not support encoder-side refinement" in r.output
    assert not (tmp_path / "b.glc").exists()
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0 and "refine" in r.output
