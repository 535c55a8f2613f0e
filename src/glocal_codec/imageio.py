"""Reading images as people have them, writing decoded ones.

What is accepted (documented in the README):

* 8-bit RGB and grayscale (``L``) -- coded as they are (grayscale stays one channel);
* palette (``P``), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` -- converted to RGB;
* 16-bit grayscale / 48-bit RGB PNG -- converted to 8 bits per channel (the codecs are 8-bit);
  :func:`load_image` reports the conversion in ``ImageInfo.converted_from``;
* an alpha channel (``RGBA``, ``LA``, ``PA``, transparency key) that is fully opaque is dropped;
  a *non-opaque* alpha channel is rejected with :class:`UnsupportedImageError`, because the
  codecs do not code alpha and silently flattening it would lose data.

The rules work on 8-bit numpy arrays (:func:`to_array`, :func:`read_pixels`, :func:`from_array`);
the tensor functions (:func:`to_tensor`, :func:`load_image`, :func:`to_pil`) wrap them. torch is
imported by those only, so a classical codec reads and writes images without it.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .util import atomic_write

if TYPE_CHECKING:
    import torch

__all__ = ["UnsupportedImageError", "ImageInfo", "load_image", "load_pixels", "read_image", "read_pixels",
           "to_tensor", "to_array", "to_pil", "from_array", "atomic_write", "write_image",
           "OUTPUT_FORMATS", "output_format", "image_bytes", "check_size", "header_size"]


class UnsupportedImageError(ValueError):
    """The input image cannot be coded (alpha with transparency, unreadable file, ...)."""


@dataclass(frozen=True)
class ImageInfo:
    mode: str
    converted_from: str | None


def _drop_opaque_alpha(img: Image.Image) -> Image.Image:
    alpha = np.asarray(img.getchannel("A"))
    if alpha.min() < 255:
        raise UnsupportedImageError(
            "image has an alpha channel with transparent pixels; glocal-codec codes RGB or "
            "grayscale only. Flatten it first, e.g. onto white: "
            "Image.alpha_composite(Image.new('RGBA', im.size, 'white'), im).convert('RGB')"
        )
    return img.convert("RGB" if img.mode in ("RGBA", "PA", "RGBa") else "L")


def to_tensor(img: Image.Image) -> tuple[torch.Tensor, ImageInfo]:
    """PIL image -> float tensor 1 x C x H x W in [0, 1] (C = 1 or 3), by the rules above."""
    arr, info = to_array(img)
    return _tensor(arr), info


def _tensor(arr: np.ndarray) -> torch.Tensor:
    """H x W x C uint8 -> 1 x C x H x W float in [0, 1] (the layout :func:`to_tensor` always gave)."""
    import torch

    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_array(img: Image.Image) -> tuple[np.ndarray, ImageInfo]:
    """PIL image -> a new ``H x W x C`` uint8 array (C = 1 or 3), by the rules above."""
    src = img.mode
    converted = None
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: keep the top 8 bits (documented conversion).
        arr = np.asarray(img, dtype=np.uint32) >> 8 if img.mode != "I" else np.asarray(img)
        arr = np.clip(arr, 0, 255).astype(np.uint8) if img.mode == "I" else arr.astype(np.uint8)
        img, converted = Image.fromarray(arr, "L"), src
    elif img.mode == "F":
        img, converted = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L"), src
    elif img.mode == "1":
        img, converted = img.convert("L"), src
    elif img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        converted = src
    elif img.mode in ("L", "RGB"):
        if "transparency" in img.info:
            img = img.convert("RGBA" if img.mode == "RGB" else "LA")
    elif img.mode not in ("RGBA", "LA", "PA", "RGBa", "La"):
        img, converted = img.convert("RGB"), src
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = _drop_opaque_alpha(img.convert("RGBA") if img.mode in ("PA", "RGBa") else img)
        converted = converted or src
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr.copy(), ImageInfo(img.mode, converted)


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[torch.Tensor, ImageInfo]:
    """Read an image file into a 1 x C x H x W float tensor (see the module docs).

    The EXIF orientation is applied (the picture comes out the way viewers show it), and an image
    with more than ``max_pixels`` pixels is refused from its header, before any pixel is decoded.
    """
    arr, info = load_pixels(path, max_pixels)
    return _tensor(arr), info


def load_pixels(path: str | os.PathLike, max_pixels: int | None = None) -> tuple[np.ndarray, ImageInfo]:
    """:func:`load_image` as an ``H x W x C`` uint8 array (no torch)."""
    path = Path(path)
    try:
        return read_pixels(path, max_pixels)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise UnsupportedImageError(f"cannot read {path} as an image: {err}") from None
    except Image.DecompressionBombError as err:
        raise UnsupportedImageError(f"{path}: {err}") from None


def read_image(source: str | os.PathLike | io.BytesIO, max_pixels: int | None = None) -> tuple[torch.Tensor, ImageInfo]:
    """:func:`load_image` for a path or an in-memory file; Pillow's own errors pass through."""
    arr, info = read_pixels(source, max_pixels)
    return _tensor(arr), info


def _open(source: str | os.PathLike | io.BytesIO) -> Image.Image:
    """``Image.open`` (the header only) without Pillow's bomb warning: ``max_pixels`` is the guard."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(source)


def check_size(width: int, height: int, max_pixels: int | None) -> None:
    """:class:`UnsupportedImageError` if ``width * height`` is above ``max_pixels`` (``None`` or 0: no limit)."""
    if max_pixels and width * height > max_pixels:
        raise UnsupportedImageError(
            f"the image is {width}x{height} ({width * height:,} pixels), more than the limit of {max_pixels:,}; "
            "allow it with max_pixels=None (CLI: --max-pixels 0) if you mean it")


def header_size(source: str | os.PathLike | io.BytesIO) -> tuple[int, int]:
    """(width, height) of an image file from its header; no pixel is decoded. Pillow's errors pass through."""
    with _open(source) as img:
        return img.size


def read_pixels(source: str | os.PathLike | io.BytesIO, max_pixels: int | None = None) -> tuple[np.ndarray, ImageInfo]:
    """:func:`read_image` as an ``H x W x C`` uint8 array (no torch).

    ``max_pixels`` replaces Pillow's bomb warning (from 89.5 Mpixel); Pillow's own error above
    178,956,970 pixels (``PIL.Image.MAX_IMAGE_PIXELS``) still applies to files."""
    with _open(source) as img:
        check_size(*img.size, max_pixels)
        img.load()
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)  # animated formats: the first frame is the image
        # the picture as viewers show it: EXIF orientation 2-8 flips / rotates the stored pixels
        upright = ImageOps.exif_transpose(img)
        return to_array(upright if upright is not None else img)


def to_pil(x: torch.Tensor) -> Image.Image:
    """1 x C x H x W (or C x H x W) float tensor in [0, 1] -> 8-bit PIL image."""
    import torch

    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError("to_pil takes one image")
        x = x[0]
    arr = (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return from_array(arr)


def from_array(arr: np.ndarray) -> Image.Image:
    """``H x W x C`` uint8 array (C = 1 or 3) -> PIL image (``L`` or ``RGB``)."""
    return Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")


#: What decoded images can be written as: file suffix -> Pillow format. Lossless but for JPEG.
OUTPUT_FORMATS: dict[str, str] = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
    ".bmp": "BMP", ".ppm": "PPM", ".pgm": "PPM", ".pnm": "PPM",
}

#: Pillow's save options per format: JPEG at high quality without chroma subsampling, WebP lossless,
#: TIFF with lossless deflate compression.
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "PNG": {},
    "JPEG": {"quality": 95, "subsampling": "4:4:4"},
    "WEBP": {"lossless": True, "quality": 100, "method": 4},
    "TIFF": {"compression": "tiff_deflate"},
    "BMP": {},
    "PPM": {},
}


def output_format(path: str | os.PathLike) -> str:
    """The Pillow format a decoded image is written as, from the file name's suffix
    (:data:`OUTPUT_FORMATS`); any other suffix is a ``ValueError`` naming the choices."""
    suffix = Path(path).suffix.lower()
    if suffix in OUTPUT_FORMATS:
        return OUTPUT_FORMATS[suffix]
    what = f"{suffix!r} files" if suffix else f"{os.fspath(path)!r} (no suffix)"
    raise ValueError(f"cannot write {what}: decoded images are written as "
                     + ", ".join(sorted(OUTPUT_FORMATS)) + " (the suffix names the format)")


def _save(image: Image.Image, target, fmt: str) -> None:  # noqa: ANN001 - a path or a binary file
    image.save(target, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))


def image_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    """``image`` encoded as the Pillow format ``fmt`` (a value of :data:`OUTPUT_FORMATS`), as
    bytes (for a pipe), with the same options as :func:`write_image`."""
    buf = io.BytesIO()
    _save(image, buf, fmt.upper())
    return buf.getvalue()


def write_image(path: str | os.PathLike, image: Image.Image, *, force: bool = False, fmt: str | None = None) -> Path:
    """Save a PIL image atomically (:func:`glocal_codec.util.atomic_write`) in the format the file
    suffix names (:data:`OUTPUT_FORMATS`: PNG, JPEG at quality 95 4:4:4, lossless WebP, TIFF, ...)
    unless ``fmt`` names one; an unknown suffix is a ``ValueError``, never a silent PNG."""
    path = Path(path)
    fmt = output_format(path) if fmt is None else fmt.upper()
    return atomic_write(path, lambda tmp: _save(image, tmp, fmt), force=force)
