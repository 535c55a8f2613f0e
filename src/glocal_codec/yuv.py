"""RGB <-> Y'CbCr conversion used by the classical video codecs and the ``.y4m`` writer.

The colour model is fixed and documented here (and in ``docs/bitstream.md``) so that a file
decodes to the same pixels on every machine and with every FFmpeg build:

* **BT.601, limited ("TV") range**, the conversion ``ffmpeg -pix_fmt yuv420p`` applies to RGB
  input by default, and hence what published x264 / x265 anchors code:
  ``Y = 16 + 219 E'y``, ``Cb = 128 + 224 (B' - E'y) / 1.772``, ``Cr = 128 + 224 (R' - E'y) / 1.402``
  with ``E'y = 0.299 R' + 0.587 G' + 0.114 B'`` and ``R', G', B'`` in [0, 1].
* **4:2:0 chroma** is the mean of each 2 x 2 block (chroma sited at the centre of the block),
  computed in float64 before rounding; the decoder up-samples it back with the matching
  bilinear filter (weights 9/16, 3/16, 3/16, 1/16; edges replicated).
* The **decoder side is integer-exact** (fixed point with 20 fractional bits, numpy int64), so
  decoding is bit-identical everywhere; the encoder side uses float64 and ``rint``.

Arrays are numpy ``uint8``; frames are ``(..., H, W, 3)`` RGB and planes ``(..., H, W)``.
4:2:0 needs even ``H`` and ``W`` (the codecs pad first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "rgb_to_yuv420",
    "yuv420_to_rgb",
    "rgb_to_yuv444",
    "yuv444_to_rgb",
    "pad_frames",
    "to_uint8_frames",
    "pack_i420",
]

_KR, _KB = 0.299, 0.114
_KG = 1.0 - _KR - _KB
_SHIFT = 20
_ONE = 1 << _SHIFT
# Fixed-point inverse matrix; chroma terms take chroma in 1/16 units (the up-sampler's output).
_K_Y = round(255 / 219 * _ONE)
_K_RV = round(255 / 224 * 2 * (1 - _KR) * _ONE / 16)
_K_GU = round(255 / 224 * 2 * (1 - _KB) * _KB / _KG * _ONE / 16)
_K_GV = round(255 / 224 * 2 * (1 - _KR) * _KR / _KG * _ONE / 16)
_K_BU = round(255 / 224 * 2 * (1 - _KB) * _ONE / 16)


def _to_ycc_float(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB frames (..., H, W, 3), got {rgb.dtype} {rgb.shape}")
    f = rgb.astype(np.float64) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    ey = _KR * r + _KG * g + _KB * b
    y = 16.0 + 219.0 * ey
    cb = 128.0 + 224.0 * (b - ey) / (2 * (1 - _KB))
    cr = 128.0 + 224.0 * (r - ey) / (2 * (1 - _KR))
    return y, cb, cr


def _round_u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def rgb_to_yuv444(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB ``(..., H, W, 3)`` uint8 -> full-resolution ``Y, Cb, Cr`` planes (uint8)."""
    y, cb, cr = _to_ycc_float(rgb)
    return _round_u8(y), _round_u8(cb), _round_u8(cr)


def rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB ``(..., H, W, 3)`` uint8 (H, W even) -> ``Y`` (H x W), ``Cb``, ``Cr`` (H/2 x W/2)."""
    h, w = rgb.shape[-3], rgb.shape[-2]
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs an even frame size, got {w}x{h}")
    y, cb, cr = _to_ycc_float(rgb)

    def down(c: np.ndarray) -> np.ndarray:
        c = c.reshape(*c.shape[:-2], h // 2, 2, w // 2, 2)
        return c.mean(axis=(-3, -1))

    return _round_u8(y), _round_u8(down(cb)), _round_u8(down(cr))


def _up2_axis(c: np.ndarray, axis: int) -> np.ndarray:
    """Double one axis with the centre-sited bilinear filter; values come out x4."""
    n = c.shape[axis]
    idx = np.arange(n)
    prev = np.take(c, np.maximum(idx - 1, 0), axis=axis)
    nxt = np.take(c, np.minimum(idx + 1, n - 1), axis=axis)
    even = 3 * c + prev
    odd = 3 * c + nxt
    out = np.stack([even, odd], axis=axis + 1 if axis >= 0 else axis)
    shape = list(c.shape)
    shape[axis] = 2 * n
    return out.reshape(shape)


def _ycc_to_rgb_fixed(y: np.ndarray, cb16: np.ndarray, cr16: np.ndarray) -> np.ndarray:
    """Integer inverse: ``y`` uint8, ``cb16``/``cr16`` chroma minus 128, in 1/16 units."""
    yc = (y.astype(np.int64) - 16) * _K_Y
    half = 1 << (_SHIFT - 1)
    r = (yc + _K_RV * cr16 + half) >> _SHIFT
    g = (yc - _K_GU * cb16 - _K_GV * cr16 + half) >> _SHIFT
    b = (yc + _K_BU * cb16 + half) >> _SHIFT
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def yuv420_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """``Y`` (..., H, W), ``Cb``/``Cr`` (..., H/2, W/2) uint8 -> RGB (..., H, W, 3) uint8, integer-exact."""
    h, w = y.shape[-2:]
    if cb.shape[-2:] != (h // 2, w // 2) or cr.shape != cb.shape or h % 2 or w % 2:
        raise ValueError(f"plane sizes do not form 4:2:0: Y {y.shape}, Cb {cb.shape}, Cr {cr.shape}")

    def up(c: np.ndarray) -> np.ndarray:
        c = c.astype(np.int64)
        return _up2_axis(_up2_axis(c, c.ndim - 1), c.ndim - 2) - 128 * 16

    return _ycc_to_rgb_fixed(y, up(cb), up(cr))


def yuv444_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Full-resolution ``Y, Cb, Cr`` uint8 -> RGB uint8, integer-exact."""
    return _ycc_to_rgb_fixed(y, (cb.astype(np.int64) - 128) * 16, (cr.astype(np.int64) - 128) * 16)


def pad_frames(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad ``(T, H, W, 3)`` frames at the bottom/right to ``height x width`` by edge replication."""
    t, h, w, _ = rgb.shape
    if (h, w) == (height, width):
        return rgb
    if height < h or width < w:
        raise ValueError(f"cannot pad {w}x{h} down to {width}x{height}")
    return np.pad(rgb, ((0, 0), (0, height - h), (0, width - w), (0, 0)), mode="edge")


def to_uint8_frames(x: torch.Tensor) -> np.ndarray:
    """T x C x H x W float in [0, 1] -> T x H x W x 3 uint8 (gray is replicated to RGB)."""
    import torch

    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected T x C x H x W with C in (1, 3), got {tuple(x.shape)}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    arr = (x.detach().to(torch.float32).cpu().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(arr.permute(0, 2, 3, 1).numpy())


def pack_i420(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """PyAV's ``from_ndarray(format="yuv420p")`` takes the I420 buffer as a (3H/2) x W array."""
    h, w = y.shape
    flat = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return flat.reshape(h * 3 // 2, w)
