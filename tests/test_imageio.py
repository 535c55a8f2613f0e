"""Images as people have them: modes, bit depths, alpha; writing decoded images atomically."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import glocal_codec as gc
from glocal_codec.imageio import UnsupportedImageError, atomic_write, load_image, to_pil, to_tensor, write_image


def _rgb(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _png16(arr: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 48-bit RGB)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _save(tmp_path: Path, img: Image.Image, name: str, **kw) -> Path:
    p = tmp_path / name
    img.save(p, **kw)
    return p


def test_rgb(tmp_path: Path) -> None:
    arr = _rgb()
    x, info = load_image(_save(tmp_path, Image.fromarray(arr), "a.png"))
    assert x.shape == (1, 3, 24, 32) and x.dtype == torch.float32
    assert info.mode == "RGB" and info.converted_from is None
    assert np.array_equal((x[0].permute(1, 2, 0) * 255).round().byte().numpy(), arr)


def test_grayscale_stays_one_channel(tmp_path: Path) -> None:
    arr = _rgb()[:, :, 0]
    x, info = load_image(_save(tmp_path, Image.fromarray(arr, "L"), "g.png"))
    assert x.shape == (1, 1, 24, 32) and info.mode == "L" and info.converted_from is None
    assert np.array_equal((x[0, 0] * 255).round().byte().numpy(), arr)
    data = gc.encode(tmp_path / "g.png", codec="jpeg")
    assert gc.decode(data).mode == "L"


def test_rgba_opaque_drops_alpha(tmp_path: Path) -> None:
    arr = _rgb()
    rgba = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    x, info = load_image(_save(tmp_path, Image.fromarray(rgba, "RGBA"), "o.png"))
    assert x.shape == (1, 3, 24, 32) and info.converted_from == "RGBA"
    assert np.array_equal((x[0].permute(1, 2, 0) * 255).round().byte().numpy(), arr)
    assert gc.encode(tmp_path / "o.png", codec="jpeg") == gc.encode(arr, codec="jpeg")


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_rejected(mode: str, tmp_path: Path) -> None:
    arr = _rgb()
    alpha = np.full(arr.shape[:2], 255, np.uint8)
    alpha[3, 4] = 254  # one slightly transparent pixel is enough to refuse
    if mode == "RGBA":
        img = Image.fromarray(np.dstack([arr, alpha]), "RGBA")
    else:
        img = Image.merge("LA", (Image.fromarray(arr[:, :, 0]), Image.fromarray(alpha)))
    p = _save(tmp_path, img, "t.png")
    with pytest.raises(UnsupportedImageError, match="alpha"):
        load_image(p)
    with pytest.raises(UnsupportedImageError, match="alpha"):
        gc.encode(p, codec="jpeg")
    with pytest.raises(UnsupportedImageError, match="alpha"):
        gc.encode(img, codec="jpeg")


def test_la_opaque_is_gray(tmp_path: Path) -> None:
    gray = _rgb()[:, :, 1]
    img = Image.merge("LA", (Image.fromarray(gray), Image.new("L", (32, 24), 255)))
    x, info = load_image(_save(tmp_path, img, "la.png"))
    assert x.shape == (1, 1, 24, 32) and info.converted_from == "LA"
    assert np.array_equal((x[0, 0] * 255).round().byte().numpy(), gray)


def test_palette(tmp_path: Path) -> None:
    img = Image.fromarray(_rgb()).quantize(colors=16)
    assert img.mode == "P"
    x, info = load_image(_save(tmp_path, img, "p.png"))
    assert x.shape == (1, 3, 24, 32) and info.converted_from == "P"
    expected = np.asarray(img.convert("RGB"))
    assert np.array_equal((x[0].permute(1, 2, 0) * 255).round().byte().numpy(), expected)
    assert gc.decode(gc.encode(tmp_path / "p.png", codec="webp")).size == (32, 24)


def test_palette_with_a_transparent_index(tmp_path: Path) -> None:
    img = Image.fromarray(_rgb()).quantize(colors=16)
    used = int(np.asarray(img)[0, 0])
    p = _save(tmp_path, img, "pt.png", transparency=used)
    with pytest.raises(UnsupportedImageError, match="alpha"):
        load_image(p)
    # a transparency index no pixel uses is harmless
    unused = next(i for i in range(256) if i not in set(np.asarray(img).ravel().tolist()))
    x, _ = load_image(_save(tmp_path, img, "pu.png", transparency=unused))
    assert x.shape == (1, 3, 24, 32)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    img = Image.fromarray(_rgb()).convert("CMYK")
    p = _save(tmp_path, img, "c.jpg", quality=95)
    with Image.open(p) as check:
        assert check.mode == "CMYK"
    x, info = load_image(p)
    assert x.shape == (1, 3, 24, 32) and info.converted_from == "CMYK" and info.mode == "RGB"
    assert gc.read_info(gc.encode(p, codec="jpeg")).shape == (3, 24, 32)


def test_16_bit_gray_png(tmp_path: Path) -> None:
    g = (np.arange(24 * 32).reshape(24, 32) * 85).astype(np.uint16)
    p = _save(tmp_path, Image.fromarray(g), "g16.png")
    with Image.open(p) as check:
        assert check.mode == "I;16"
    x, info = load_image(p)
    assert x.shape == (1, 1, 24, 32) and info.converted_from == "I;16" and info.mode == "L"
    assert np.array_equal((x[0, 0] * 255).round().numpy().astype(np.uint16), g >> 8)
    assert gc.decode(gc.encode(p, codec="jpeg")).mode == "L"


def test_48_bit_rgb_png(tmp_path: Path) -> None:
    a = (np.random.default_rng(1).integers(0, 65536, size=(24, 32, 3))).astype(np.uint16)
    p = tmp_path / "rgb16.png"
    p.write_bytes(_png16(a, color_type=2))
    x, _ = load_image(p)
    assert x.shape == (1, 3, 24, 32)
    assert np.array_equal((x[0].permute(1, 2, 0) * 255).round().numpy().astype(np.uint16), a >> 8)


@pytest.mark.parametrize("mode", ["1", "I", "F", "YCbCr", "HSV"])
def test_other_modes_are_converted(mode: str) -> None:
    base = Image.fromarray(_rgb())
    img = base.convert("L").convert(mode) if mode in ("1", "I", "F") else base.convert(mode)
    x, info = to_tensor(img)
    assert x.shape[1] == (1 if mode in ("1", "I", "F") else 3)
    assert info.converted_from == mode
    assert 0 <= float(x.min()) and float(x.max()) <= 1


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    p = tmp_path / "garbage.png"
    p.write_bytes(b"this is not an image at all")
    with pytest.raises(UnsupportedImageError, match="cannot read"):
        load_image(p)
    with pytest.raises(UnsupportedImageError):
        gc.encode(p, codec="jpeg")
    cut = tmp_path / "cut.png"
    Image.fromarray(_rgb(64, 64)).save(cut)
    cut.write_bytes(cut.read_bytes()[:200])
    with pytest.raises(UnsupportedImageError):
        load_image(cut)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")


def test_animated_gif_takes_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(_rgb(seed=i)).quantize(colors=32) for i in range(3)]
    p = tmp_path / "a.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    x, _ = load_image(p)
    assert x.shape == (1, 3, 24, 32)


def test_to_pil() -> None:
    x = torch.rand(1, 3, 5, 7)
    img = to_pil(x)
    assert img.mode == "RGB" and img.size == (7, 5)
    assert np.array_equal(np.asarray(img), (x[0].permute(1, 2, 0) * 255).round().byte().numpy())
    assert to_pil(torch.rand(1, 5, 7)).mode == "L"
    assert np.asarray(to_pil(torch.full((1, 1, 2, 2), 3.0))).max() == 255  # clamped
    with pytest.raises(ValueError):
        to_pil(torch.rand(2, 3, 4, 4))


def test_atomic_write(tmp_path: Path) -> None:
    p = tmp_path / "out.glc"
    atomic_write(p, b"one")
    assert p.read_bytes() == b"one"
    with pytest.raises(FileExistsError, match="--force"):
        atomic_write(p, b"two")
    assert p.read_bytes() == b"one"
    atomic_write(p, b"two", force=True)
    assert p.read_bytes() == b"two"
    img = Image.fromarray(_rgb())
    q = write_image(tmp_path / "img.png", img)
    with Image.open(q) as back:
        assert back.format == "PNG" and np.array_equal(np.asarray(back), np.asarray(img))
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "such" / "dir.glc", b"x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path / "folder", b"x", force=True)
    assert sorted(os.listdir(tmp_path)) == ["folder", "img.png", "out.glc"]  # no temp files left


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    img = Image.fromarray(_rgb())
    with pytest.raises(Exception):
        write_image(tmp_path / "x.png", img, fmt="NO-SUCH-FORMAT")
    assert os.listdir(tmp_path) == []
    (tmp_path / "keep.png").write_bytes(b"old")
    with pytest.raises(Exception):
        write_image(tmp_path / "keep.png", img, fmt="NO-SUCH-FORMAT", force=True)
    assert os.listdir(tmp_path) == ["keep.png"] and (tmp_path / "keep.png").read_bytes() == b"old"


def test_pil_image_input_is_not_modified() -> None:
    img = Image.fromarray(_rgb())
    before = img.tobytes()
    gc.encode(img, codec="jpeg")
    assert img.tobytes() == before and img.mode == "RGB"


def test_output_formats(tmp_path: Path) -> None:
    """Decoded images are written in the format the suffix names; an unknown suffix is refused."""
    from glocal_codec.imageio import image_bytes, output_format

    assert output_format("a.PNG") == "PNG" and output_format(Path("b.jpeg")) == "JPEG"
    assert output_format("c.tif") == "TIFF" and output_format("d.webp") == "WEBP"
    for bad in ("x.xyz", "x.glc", "noext"):
        with pytest.raises(ValueError, match="cannot write"):
            output_format(bad)
    yy, xx = np.mgrid[0:24, 0:32]
    img = Image.fromarray(np.stack([xx * 8, yy * 10, (xx + yy) * 4], axis=-1).astype(np.uint8))  # smooth
    with pytest.raises(ValueError, match=r"'\.xyz'"):
        write_image(tmp_path / "x.xyz", img)
    assert not list(tmp_path.iterdir())
    for name, fmt, exact in (("a.webp", "WEBP", True), ("a.tiff", "TIFF", True), ("a.jpg", "JPEG", False)):
        write_image(tmp_path / name, img)
        with Image.open(tmp_path / name) as back:
            assert back.format == fmt
            diff = np.abs(np.asarray(back.convert("RGB"), dtype=int) - np.asarray(img, dtype=int))
            assert (diff.max() == 0) if exact else (diff.mean() < 3)
    with Image.open(tmp_path / "a.jpg") as back:
        assert back.layer[0][1:3] == back.layer[1][1:3]  # 4:4:4: no chroma subsampling
    data = image_bytes(img, "WEBP")
    with Image.open(io.BytesIO(data)) as back:
        assert back.format == "WEBP" and np.array_equal(np.asarray(back.convert("RGB")), np.asarray(img))
