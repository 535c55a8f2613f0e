"""Classical image codecs through Pillow: ``jpeg``, ``webp``, ``avif`` and ``jpeg2000``.

They are plugins like the learned codecs, so evaluation compares everything through one
interface and one byte count. Each codec writes exactly one stream: the format's own file bytes
(a JFIF file, a RIFF/WebP file, an AVIF/HEIF file, a raw JPEG 2000 codestream), unchanged, so
the rate is counted honestly from them plus the ``.glc`` container overhead.

Quality levels 1..8 map monotonically to each library's own rate parameter (higher level =
more bytes). The maps were chosen so the levels span roughly 0.15 bpp to 2-3 bpp on Kodak; the
measured averages over the 24 Kodak images are in each class's docstring.

Decoding is strict: before any pixel is decoded the stream must identify as the expected
format, with the width, height and pixel mode announced by the container; every Pillow error
becomes a :class:`~glocal_codec.bitstream.errors.CorruptStreamError`.

The codecs work on 8-bit pixels (:class:`~glocal_codec.codecs.Uint8Codec`: ``encode_uint8`` /
``decode_uint8`` on numpy arrays); ``encode`` / ``decode`` convert tensors at the boundary. This
module does not import torch, so classical encoding and decoding through the API and the CLI
start without it.
"""

from __future__ import annotations

import io
import struct
import warnings
from typing import Any, ClassVar, Literal, Mapping

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..bitstream.errors import CorruptStreamError
from .base import NO_WEIGHTS, Payload

if TYPE_CHECKING:
    import torch

__all__ = ["PillowImageCodec", "JpegCodec", "WebpCodec", "AvifCodec", "Jpeg2000Codec"]

#: Errors Pillow can raise while *encoding* (decoding catches every ``Exception``: a hostile
#: stream can make a format plugin raise nearly anything, e.g. AVIF's ``RuntimeError``).
_PIL_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    RuntimeError,
    struct.error,
    Image.DecompressionBombError,
)


class PillowImageCodec:
    """Base class: an image codec implemented by one Pillow format plugin.

    Subclasses set ``name``, ``pil_format``, ``levels`` (quality level -> the library's own
    parameter) and implement :meth:`_save_options`.
    """

    name: ClassVar[str]
    media: Literal["image"] = "image"
    description: ClassVar[str] = ""
    #: Pillow's format name, as written by ``Image.save(format=...)`` and read back in ``Image.format``.
    pil_format: ClassVar[str]
    #: Quality level -> the library's parameter (quality, or compression ratio for JPEG 2000).
    levels: ClassVar[Mapping[int, float]]
    default_quality: int = 5
    #: Largest width/height the format can store (``None``: no limit below the container's).
    max_side: ClassVar[int | None] = None
    #: Whether the format stores a single-channel image; if not, gray is coded as R = G = B.
    native_gray: ClassVar[bool] = True

    def __init__(self) -> None:
        self.qualities: tuple[int, ...] = tuple(sorted(self.levels))

    # -- plugin protocol ---------------------------------------------------------------------
    def weights_digest(self, quality: int) -> bytes:
        """Classical codecs have no weights."""
        return NO_WEIGHTS

    def weights_available(self) -> bool:
        """Always true: the codec lives in Pillow, which is a hard dependency."""
        return True

    def _save_options(self, level_param: float, channels: int) -> dict[str, Any]:
        raise NotImplementedError

    def _check_quality(self, quality: int) -> float:
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or int(quality) not in self.levels:
            raise ValueError(f"{self.name}: quality must be one of {list(self.qualities)}, got {quality!r}")
        return self.levels[int(quality)]

    def encode(self, x: torch.Tensor, quality: int) -> Payload:
        """Encode a 1 x C x H x W float tensor in [0, 1] (C = 1 or 3) into one stream.

        Pixels are rounded to 8 bits first (values outside [0, 1] are clipped).
        """
        import torch

        self._check_quality(quality)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{self.name}: expected a 1 x C x H x W tensor with C in (1, 3), got {got}")
        arr = (x.detach()[0].to(torch.float32).cpu().clamp(0, 1) * 255).round().to(torch.uint8)
        return self.encode_uint8(arr.permute(1, 2, 0).contiguous().numpy(), quality)  # H x W x C

    def encode_uint8(self, arr: np.ndarray, quality: int) -> Payload:
        """Encode an ``H x W x C`` uint8 array (C = 1 or 3) into one stream (no torch)."""
        param = self._check_quality(quality)
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (1, 3):
            got = f"{arr.dtype} array of shape {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ValueError(f"{self.name}: expected an H x W x C uint8 array with C in (1, 3), got {got}")
        h, w, c = (int(v) for v in arr.shape)
        if h < 1 or w < 1:
            raise ValueError(f"{self.name}: empty image {w}x{h}")
        if self.max_side is not None and max(h, w) > self.max_side:
            raise ValueError(f"{self.name}: image {w}x{h} exceeds the format's {self.max_side}-pixel side limit")
        arr = np.ascontiguousarray(arr)
        if c == 1:
            img = Image.fromarray(arr[:, :, 0], mode="L")
            if not self.native_gray:
                img = img.convert("RGB")
        else:
            img = Image.fromarray(arr, mode="RGB")
        buf = io.BytesIO()
        try:
            img.save(buf, format=self.pil_format, **self._save_options(param, c))
        except _PIL_ERRORS as err:
            raise ValueError(f"{self.name}: Pillow could not encode the image: {err}") from err
        return Payload(shape=(c, h, w), quality=int(quality), params=b"", streams=(buf.getvalue(),))

    def _expected_mode(self, c: int) -> str:
        if c == 1:
            return "L" if self.native_gray else "RGB"
        return "RGB"

    def decode(self, payload: Payload) -> torch.Tensor:
        """Decode one stream into a 1 x C x H x W float32 tensor in [0, 1] (see :meth:`decode_uint8`)."""
        import torch

        arr = self.decode_uint8(payload)
        out = torch.from_numpy(arr.transpose(2, 0, 1).copy()).to(torch.float32).div_(255.0)
        return out.unsqueeze(0)

    def decode_uint8(self, payload: Payload) -> np.ndarray:
        """Decode one stream into an ``H x W x C`` uint8 array (no torch).

        The stream is validated (format, size, mode, single frame) *before* its pixels are
        decoded; anything wrong raises :class:`CorruptStreamError`. The quality level is only
        informational here: the stream itself carries everything the decoder needs.
        """
        if len(payload.streams) != 1:
            raise CorruptStreamError(f"{self.name} expects exactly 1 stream, got {len(payload.streams)}")
        if payload.params:
            raise CorruptStreamError(f"{self.name} takes no codec parameters, got {len(payload.params)} bytes")
        shape = tuple(payload.shape)
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise CorruptStreamError(f"{self.name}: image shape must be (C, H, W) with C in (1, 3), got {shape}")
        c, h, w = shape
        data = payload.streams[0]
        if not data:
            raise CorruptStreamError(f"{self.name}: the stream is empty")
        try:
            with warnings.catch_warnings():
                # A size that passed the container's limits is legitimate; the error case
                # (DecompressionBombError) is still raised by Pillow and reported below.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data), formats=[self.pil_format])
            with img:
                if img.format != self.pil_format:
                    raise CorruptStreamError(f"{self.name}: stream is {img.format}, expected {self.pil_format}")
                if img.size != (w, h):
                    iw, ih = img.size
                    raise CorruptStreamError(
                        f"{self.name}: stream holds a {iw}x{ih} image but the header says {w}x{h}"
                    )
                mode = self._expected_mode(c)
                if img.mode != mode:
                    raise CorruptStreamError(
                        f"{self.name}: stream has pixel mode {img.mode!r}, expected {mode!r} for {c} channel(s)"
                    )
                if getattr(img, "n_frames", 1) != 1:
                    raise CorruptStreamError(f"{self.name}: stream holds {img.n_frames} frames, expected 1")
                img.load()
                arr = np.asarray(img.convert("L") if c == 1 and mode != "L" else img, dtype=np.uint8)
        except CorruptStreamError:
            raise
        except UnidentifiedImageError:
            raise CorruptStreamError(
                f"{self.name}: the stream is not a {self.pil_format} image (its header is not recognised)"
            ) from None
        except Image.DecompressionBombError as err:
            raise CorruptStreamError(f"{self.name}: refused by Pillow's decompression-bomb limit: {err}") from None
        except Exception as err:  # noqa: BLE001 - any failure inside Pillow on untrusted bytes
            # OSError (truncated / broken data), SyntaxError (bad headers), ValueError,
            # RuntimeError (AVIF), struct.error, MemoryError, ...: all mean a corrupt stream.
            raise CorruptStreamError(
                f"{self.name}: could not decode the {self.pil_format} stream: {type(err).__name__}: {err}"
            ) from None
        if arr.shape[:2] != (h, w):  # defensive: a decoder that changed its mind after the header
            raise CorruptStreamError(f"{self.name}: decoded {arr.shape[1]}x{arr.shape[0]}, expected {w}x{h}")
        return arr.reshape(h, w, c)


class JpegCodec(PillowImageCodec):
    """JPEG (libjpeg via Pillow), baseline, 4:2:0 chroma subsampling, standard Huffman tables.

    4:2:0 is Pillow's default and what the literature's JPEG anchors use (CompressAI's and
    most papers' Kodak curves come from ``Image.save(quality=q)`` with defaults), so no Huffman
    optimisation either. Measured on Kodak (mean of 24), level: quality -> bpp / PSNR:
    1: 3 -> 0.18 / 21.7 dB, 2: 10 -> 0.33 / 26.7, 3: 20 -> 0.51 / 29.1, 4: 35 -> 0.73 / 31.0,
    5: 50 -> 0.91 / 32.2, 6: 70 -> 1.24 / 33.9, 7: 85 -> 1.86 / 36.5, 8: 95 -> 3.39 / 40.6.
    (libjpeg's quality 1 is already ~0.17 bpp: the headers and DC terms cost that much.)
    """

    name = "jpeg"
    description = "JPEG (libjpeg via Pillow), 4:2:0, baseline Huffman"
    pil_format = "JPEG"
    levels = {1: 3, 2: 10, 3: 20, 4: 35, 5: 50, 6: 70, 7: 85, 8: 95}
    max_side = 65500

    def _save_options(self, level_param: float, channels: int) -> dict[str, Any]:
        # 4:2:0 chroma subsampling (Pillow's default, and the literature's JPEG anchor setting).
        return {"quality": int(level_param), "subsampling": "4:2:0", "optimize": False, "progressive": False}


class WebpCodec(PillowImageCodec):
    """WebP lossy (libwebp via Pillow), ``method=6`` (slowest, best compression).

    WebP has no grayscale mode: a gray image is coded as R = G = B and read back as one channel.
    Measured on Kodak (mean of 24), level: quality -> bpp / PSNR:
    1: 2 -> 0.17 / 27.4 dB, 2: 10 -> 0.27 / 28.9, 3: 25 -> 0.43 / 30.7, 4: 45 -> 0.63 / 32.7,
    5: 65 -> 0.82 / 34.1, 6: 80 -> 1.15 / 36.2, 7: 90 -> 1.93 / 39.4, 8: 96 -> 3.02 / 42.1.
    """

    name = "webp"
    description = "WebP lossy (libwebp via Pillow), method 6"
    pil_format = "WEBP"
    levels = {1: 2, 2: 10, 3: 25, 4: 45, 5: 65, 6: 80, 7: 90, 8: 96}
    max_side = 16383
    native_gray = False

    def _save_options(self, level_param: float, channels: int) -> dict[str, Any]:
        return {"quality": int(level_param), "method": 6, "lossless": False, "exact": False}


class AvifCodec(PillowImageCodec):
    """AVIF (libavif via Pillow, AV1 intra), 4:2:0, full range, encoder ``speed=6``.

    Speed 6 (Pillow's default; 0 = slowest/best .. 10 = fastest) keeps a Kodak image under a
    second on one core; slower speeds save a few percent of rate at several times the time.
    Measured on Kodak (mean of 24), level: quality -> bpp / PSNR:
    1: 15 -> 0.12 / 27.3 dB, 2: 25 -> 0.19 / 28.6, 3: 35 -> 0.31 / 30.4, 4: 45 -> 0.50 / 32.5,
    5: 55 -> 0.72 / 34.3, 6: 65 -> 1.01 / 36.1, 7: 78 -> 1.54 / 38.7, 8: 90 -> 2.47 / 41.3.
    """

    name = "avif"
    description = "AVIF (libavif/AV1 via Pillow), 4:2:0, speed 6"
    pil_format = "AVIF"
    levels = {1: 15, 2: 25, 3: 35, 4: 45, 5: 55, 6: 65, 7: 78, 8: 90}

    def _save_options(self, level_param: float, channels: int) -> dict[str, Any]:
        # speed=6: a reasonable encode time on CPU; 4:2:0 like the other anchors, and 4:0:0
        # (luma only, decoded as mode "L") for gray images. max_threads=1 keeps the output and
        # the timing independent of the machine's core count.
        return {
            "quality": int(level_param),
            "speed": 6,
            "subsampling": "4:0:0" if channels == 1 else "4:2:0",
            "range": "full",
            "max_threads": 1,
        }


class Jpeg2000Codec(PillowImageCodec):
    """JPEG 2000 (OpenJPEG via Pillow): raw codestream, ICT + 9/7 irreversible wavelet, one layer.

    The level sets the compression ratio (``quality_mode="rates"``, ``quality_layers=[ratio]``),
    i.e. a target of ``8 * C / ratio`` bpp; the ratio falls as the level rises. The raw ``.j2k``
    codestream is stored (no JP2 boxes: they only add bytes the container already covers).
    Measured on Kodak RGB (mean of 24), level: ratio -> bpp / PSNR:
    1: 160 -> 0.15 / 25.7 dB, 2: 100 -> 0.24 / 26.8, 3: 64 -> 0.37 / 28.1, 4: 40 -> 0.60 / 29.6,
    5: 24 -> 1.00 / 31.7, 6: 16 -> 1.50 / 33.6, 7: 12 -> 2.00 / 35.3, 8: 8 -> 3.00 / 37.9.
    The ratio is a byte budget, so a tiny image gets a budget close to the codestream's own
    headers and a coarse picture.
    """

    name = "jpeg2000"
    description = "JPEG 2000 (OpenJPEG via Pillow), 9/7 wavelet, rate by compression ratio"
    pil_format = "JPEG2000"
    levels = {1: 160, 2: 100, 3: 64, 4: 40, 5: 24, 6: 16, 7: 12, 8: 8}

    def _save_options(self, level_param: float, channels: int) -> dict[str, Any]:
        return {
            "quality_mode": "rates",
            "quality_layers": [float(level_param)],
            "irreversible": True,
            # the irreversible colour transform (RGB -> YCbCr) before the wavelet: Pillow's
            # default (mct=0) codes R, G and B separately and loses 2-9 dB on Kodak
            "mct": 1 if channels == 3 else 0,
            "no_jp2": True,
        }
