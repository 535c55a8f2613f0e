"""Input guards of encode: EXIF orientation applied, a pixel limit checked from the header."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import glocal_codec as gc
from glocal_codec.bitstream import LimitError
from glocal_codec.imageio import UnsupportedImageError, load_image


def _oriented_jpeg(path: Path) -> np.ndarray:
    """A 12 x 8 (W x H) JPEG stored with Orientation = 6 (viewers rotate it to 8 x 12)."""
    arr = np.zeros((8, 12, 3), np.uint8)
    arr[:2, :] = 255  # a white band along the stored top edge
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(path, quality=100, exif=exif.tobytes())
    return arr


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rot.jpg"
    _oriented_jpeg(path)
    x, _ = load_image(path)
    assert tuple(x.shape[-2:]) == (12, 8)  # upright: 8 wide, 12 high
    assert x[0, :, :, -2:].mean() > 0.9 and x[0, :, :, :2].mean() < 0.1  # orientation 6: top edge -> right edge
    info = gc.read_info(gc.encode(path, codec="jpeg"))
    assert info.shape == (3, 12, 8)
    assert gc.read_info(gc.encode(path.read_bytes(), codec="jpeg")).shape == (3, 12, 8)


def test_encode_pixel_limit_from_the_header(tmp_path: Path) -> None:
    img = Image.new("RGB", (64, 32))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    with pytest.raises(UnsupportedImageError, match="more than the limit of 1,000"):
        gc.encode(buf.getvalue(), codec="jpeg", max_pixels=1000)
    p = tmp_path / "x.png"
    p.write_bytes(buf.getvalue())
    with pytest.raises(UnsupportedImageError, match="64x32"):
        gc.encode(p, codec="jpeg", max_pixels=2047)
    with pytest.raises(LimitError, match="max_pixels=None"):
        gc.encode(np.zeros((32, 64, 3), np.uint8), codec="jpeg", max_pixels=2047)
    assert gc.read_info(gc.encode(p, codec="jpeg", max_pixels=None)).shape == (3, 32, 64)
    assert gc.read_info(gc.encode(p, codec="jpeg")).shape == (3, 32, 64)  # default: decode's limit


def png_claiming(width: int, height: int) -> bytes:
    """A real 8 x 8 PNG whose IHDR declares ``width x height`` (its CRC fixed up): a few hundred
    bytes that any reader trusting the header would allocate the full image for."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    b = bytearray(buf.getvalue())
    assert b[12:16] == b"IHDR"
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    return bytes(b)


@pytest.mark.parametrize("codec", [c.name for c in gc.list_codecs(media="image")])
def test_a_169_mpixel_png_is_refused_by_default(tmp_path: Path, codec: str) -> None:
    # #36: a PNG declaring 13,000 x 13,000 (under Pillow's own error limit) took 6.6 GB with jpeg
    data = png_claiming(13_000, 13_000)
    assert 13_000 ** 2 > gc.MAX_DECODE_PIXELS
    p = tmp_path / "bomb.png"
    p.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # our message, not Pillow's warning
        for src in (p, data):
            with pytest.raises(UnsupportedImageError, match="13000x13000 .*134,217,728.*max_pixels=None"):
                gc.encode(src, codec=codec)


def test_images_in_memory_are_refused_before_conversion() -> None:
    # views that cost no memory: converting them first (to float: 2 GB) would be the bomb
    arr = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (13_000, 13_000, 3))
    with pytest.raises(LimitError, match="13000x13000"):
        gc.encode(arr, codec="jpeg")
    with pytest.raises(LimitError, match="13000x13000"):
        gc.encode(torch.zeros(1, 1, 1).expand(3, 13_000, 13_000), codec="msh")
    with pytest.raises(LimitError, match="20x10"):
        gc.encode(Image.new("L", (20, 10)), codec="jpeg", max_pixels=199)
