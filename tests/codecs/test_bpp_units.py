"""Units cannot slip (issue 35, part 4): for every codec of the registry, the rate reported
anywhere -- ``read_info``, the eval runner's records, the video eval -- is ``8 * len(file) /
pixels``: bits per pixel of the complete file, header included, never bytes per pixel and never
an estimate. The loop is over the registry, so a new codec is checked the moment it registers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import glocal_codec as gc
from glocal_codec.codecs import codec_names, open_codec
from glocal_codec.errors import CodecUnavailableError

NAMES = codec_names()


def _codec(name: str, media: str):  # noqa: ANN202
    try:
        c = open_codec(name)
    except CodecUnavailableError as err:
        pytest.skip(f"{name} is not available here: {err}")
    if c.media != media:
        pytest.skip(f"{name} is not an {media} codec" if media == "image" else f"{name} is not a {media} codec")
    if not c.weights_available():
        pytest.skip(f"{name}: weights not installed")
    return c


def test_the_loop_covers_the_classical_codecs() -> None:
    assert {"jpeg", "webp", "avif", "jpeg2000"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_image_bpp_is_bits_of_the_whole_file_per_pixel(name: str, kodak_crop: torch.Tensor, tmp_path: Path) -> None:
    c = _codec(name, "image")
    h, w = kodak_crop.shape[-2:]
    for q in (c.qualities[0], c.qualities[-1]):
        data = gc.encode(kodak_crop, codec=name, quality=q)
        path = tmp_path / f"{name}{q}.glc"
        path.write_bytes(data)
        info = gc.read_info(path.read_bytes())
        assert info.bytes == len(data) == path.stat().st_size
        assert info.bpp == 8 * path.stat().st_size / (h * w)
        assert info.bpp != pytest.approx(len(data) / (h * w))  # not bytes per pixel


@pytest.mark.parametrize("name", NAMES)
def test_eval_records_use_the_same_bpp(name: str, kodak_crop: torch.Tensor, tmp_path: Path) -> None:
    from glocal_codec.datasets import image_folder
    from glocal_codec.eval.runner import evaluate

    c = _codec(name, "image")
    folder = tmp_path / "imgs"
    folder.mkdir()
    arr = (kodak_crop[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(arr).save(folder / "crop.png")
    q = c.qualities[0]
    res = evaluate(image_folder(folder), [name], [q], results_path=tmp_path / "results.json", lpips=False)
    (rec,) = res.records
    data = gc.encode(gc.imageio.load_image(folder / "crop.png")[0], codec=name, quality=q)
    assert rec.bytes == len(data)
    assert rec.bpp == 8 * rec.bytes / (rec.width * rec.height)


@pytest.mark.parametrize("name", NAMES)
def test_video_bpp_is_bits_per_pixel_per_frame(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    c = _codec(name, "video")
    for attr in ("epochs",):  # the implicit-neural-representation codecs: one fitting epoch is enough here
        if hasattr(c, attr):
            monkeypatch.setattr(c, attr, 1)
    t, h, w = 3, 48, 64
    g = np.random.default_rng(0)
    base = np.linspace(0, 1, w)[None, None, :] * np.linspace(0.3, 1, h)[None, :, None]
    frames = torch.tensor(np.clip(base[:, None] + 0.05 * g.standard_normal((t, 3, h, w)), 0, 1), dtype=torch.float32)
    from glocal_codec.video.api import encode_video

    data = encode_video(frames, codec=name, quality=c.qualities[0], fps=25)
    info = gc.read_info(data)
    assert info.media == "video" and info.frames == t
    assert info.bpp == 8 * len(data) / (t * h * w)
