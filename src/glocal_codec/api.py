"""Public Python API: ``encode``, ``decode``, ``read_info`` (the CLI is a thin layer over these).

torch is imported only where a tensor is needed: 8-bit images (files, bytes, PIL images,
``uint8`` arrays) go to the classical codecs as numpy arrays (:class:`~glocal_codec.codecs.Uint8Codec`)
and ``read_info`` opens no codec module that needs torch, so ``glocal-codec info`` and JPEG /
WebP / AVIF / JPEG 2000 encoding and decoding start without it.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .bitstream import (
    MAGIC,
    BitstreamError,
    Container,
    CorruptStreamError,
    LimitError,
    MediaKind,
    WeightsMismatchError,
    read_container,
    write_container,
)
from .codecs import (Codec, Payload, Placeable, ProgressFn, Refinable, Rescalable, Restorable, Uint8Codec, codec_digest,
                     codec_id, codec_name, file_facts, list_codecs, open_codec)
from .errors import WeightsMissingError
from .imageio import (UnsupportedImageError, check_size, from_array, header_size, load_image, load_pixels, read_image,
                      read_pixels, to_array, to_pil, to_tensor)

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_CODEC",
    "MAX_DECODE_PIXELS",
    "scaled_size",
    "ImageLike",
    "GlcLike",
    "FileInfo",
    "encode",
    "decode",
    "decode_tensor",
    "read_info",
    "open_container",
    "as_tensor",
    "codec_input",
]

#: The codec ``glocal-codec encode`` uses when none is named.
DEFAULT_CODEC = "msh"

#: Decompression-bomb guard (Pillow's idea): a few hundred bytes of a learned codec can announce a
#: flat 16K x 16K image, 13 KB of H.264 300 black 720p frames, a 0.5 MB PNG 13,000 x 13,000
#: pixels. 2^27 = 134,217,728 pixels (11,585^2: a 100-Mpixel camera fits; Pillow warns from 89.5 M)
#: refuses those. Measured peak memory per pixel (``benchmarks/results/memory_guards.json``): a
#: float32 RGB image is 12 bytes; ``jpeg`` encode 14, decode 10; ``msh`` (tiled) encode 145,
#: decode 38 -- so an image at the limit takes 2 GB with jpeg and 5-19 GB with a learned codec.
#: It limits encode and decode of images (``H * W``, from the input's header before any pixel is
#: decoded or any codec loaded) and video decode per clip (``T * H * W``). Larger inputs need
#: ``max_pixels=None`` (CLI: ``--max-pixels 0``) or a bigger number; the container's limits stay.
MAX_DECODE_PIXELS = 1 << 27

#: What :func:`encode` accepts: a path to an image file, the bytes of an image file (PNG, JPEG,
#: WebP, TIFF, ... -- anything Pillow reads), a PIL image, an ``H x W`` / ``H x W x C`` numpy array
#: (``uint8`` in 0..255, ``uint16`` in 0..65535, float in [0, 1]; C = 1 or 3) or a torch tensor
#: ``C x H x W`` / ``1 x C x H x W`` (float in [0, 1], or ``uint8``).
ImageLike = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray, "torch.Tensor"]

#: What :func:`decode` accepts: the bytes of a ``.glc`` file, or a path to one.
GlcLike = Union[bytes, bytearray, memoryview, str, os.PathLike]


@dataclass(frozen=True)
class FileInfo:
    """What ``glocal-codec info`` prints about a file."""

    codec: str
    codec_id: int
    format_version: int
    media: str
    shape: tuple[int, ...]
    quality: int
    bytes: int
    header_bytes: int
    bpp: float
    weights_digest: str
    weights_match: bool | None  # None: the codec has no weights or they are not installed
    fps: Fraction | None = None  # video only: the frame rate stored in the file
    #: Codec-specific facts of the file's quality level (``mcquic``: levels, codebooks), from
    #: the weights manifest (empty unless the file's weights are the installed ones), and of the
    #: file itself from its parameters (``clc``: dictionary digest, reference ids).
    details: dict[str, str] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        """Number of frames (1 for an image)."""
        return int(self.shape[0]) if self.media == "video" else 1


def _image_file_bytes(data: bytes, max_pixels: int | None,
                      reader: Callable[..., tuple[Any, Any]] = read_image) -> Any:
    """Image file bytes through ``reader`` (:func:`read_image`: a tensor; :func:`read_pixels`: an array)."""
    if data[:3] == MAGIC:
        raise ValueError("these bytes are a .glc file already; decode them with glocal_codec.decode")
    try:
        return reader(io.BytesIO(data), max_pixels)[0]
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise UnsupportedImageError(f"cannot read the given bytes as an image: {err}") from None
    except Image.DecompressionBombError as err:
        raise UnsupportedImageError(str(err)) from None


def as_tensor(image: ImageLike, max_pixels: int | None = None) -> torch.Tensor:
    """Any :data:`ImageLike` -> a new float tensor 1 x C x H x W in [0, 1] (C = 1 or 3).

    The input is never modified or aliased: numpy arrays (read-only ones from ``np.asarray(pil)``
    included) and tensors are copied. Image files and bytes follow the rules of
    :mod:`glocal_codec.imageio` (palette and CMYK become RGB, 16-bit becomes 8-bit, an opaque
    alpha channel is dropped, a transparent one is refused), their EXIF orientation is applied,
    and files above ``max_pixels`` are refused from their header.
    """
    import torch

    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels)[0]
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _image_file_bytes(bytes(image), max_pixels)
    if isinstance(image, Image.Image):
        return to_tensor(image)[0]
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3):
            raise ValueError(f"expected an H x W or H x W x C (C = 1 or 3) array, got shape {image.shape}")
        if arr.dtype == np.uint8:
            x = torch.from_numpy(np.array(arr, dtype=np.float32)).div_(255.0)
        elif arr.dtype == np.uint16:
            x = torch.from_numpy(np.array(arr, dtype=np.float32)).div_(65535.0)
        elif np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.bool_:
            x = torch.from_numpy(np.array(arr, dtype=np.float32))  # np.array copies: writable, never aliased
        else:
            raise ValueError(f"expected a uint8, uint16, bool or float array, got {arr.dtype}")
        return x.permute(2, 0, 1).unsqueeze(0).clamp_(0, 1).contiguous()
    if isinstance(image, torch.Tensor):
        x = image.unsqueeze(0) if image.dim() == 3 else image
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected a C x H x W or 1 x C x H x W tensor (C = 1 or 3), got {tuple(image.shape)}")
        if not torch.is_floating_point(x):
            x = x.float().div(255.0)
        return x.detach().float().clamp(0, 1)
    raise TypeError(f"cannot encode an object of type {type(image).__name__}: give a path, image file bytes, "
                    "a PIL image, a numpy array or a torch tensor")


def _pixels(image: ImageLike, max_pixels: int | None) -> np.ndarray | None:
    """An 8-bit :data:`ImageLike` (image file path or bytes, PIL image, ``uint8`` array) as a new
    ``H x W x C`` uint8 array, by the rules of :func:`as_tensor` and without torch; ``None`` for
    the other types (tensors, float and 16-bit arrays), which :func:`as_tensor` converts."""
    if isinstance(image, (str, os.PathLike)):
        return load_pixels(image, max_pixels)[0]
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _image_file_bytes(bytes(image), max_pixels, read_pixels)
    if isinstance(image, Image.Image):
        return to_array(image)[0]
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        arr = image[:, :, None] if image.ndim == 2 else image
        if arr.ndim != 3 or arr.shape[2] not in (1, 3):
            raise ValueError(f"expected an H x W or H x W x C (C = 1 or 3) array, got shape {image.shape}")
        return np.array(arr, dtype=np.uint8)  # a copy: writable, never aliased
    return None


def _refuse_large(image: ImageLike, max_pixels: int | None) -> None:
    """The pixel limit, checked before anything else is loaded (codec, torch) or converted: an
    image in memory (PIL image, array, tensor) by its shape, a file or its bytes by its header.
    A file that cannot be read is left to the reader, whose error names the problem."""
    if not max_pixels:
        return
    if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)):
        try:
            w, h = header_size(io.BytesIO(bytes(image)) if isinstance(image, (bytes, bytearray, memoryview))
                               else image)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return
        check_size(w, h, max_pixels)
        return
    shape = image.size[::-1] if isinstance(image, Image.Image) else getattr(image, "shape", None)
    if shape is None or len(shape) < 2:
        return
    h, w = (shape[0], shape[1]) if isinstance(image, np.ndarray) else (shape[-2], shape[-1])  # tensors: [1 x] C x H x W
    if int(h) * int(w) > max_pixels:
        raise LimitError(f"the image is {w}x{h} ({int(h) * int(w):,} pixels), more than the limit of {max_pixels:,}; "
                         "allow it with max_pixels=None (CLI: --max-pixels 0)")


def codec_input(image: ImageLike, codec: str = DEFAULT_CODEC,
                max_pixels: int | None = None) -> np.ndarray | torch.Tensor:
    """``image`` read once, in the form :func:`encode` hands to ``codec``: a new ``H x W x C``
    uint8 array when ``codec`` codes 8-bit pixels (:class:`~glocal_codec.codecs.Uint8Codec`, the
    classical codecs) and ``image`` is 8-bit, else the 1 x C x H x W float tensor of
    :func:`as_tensor`. :func:`encode` takes either and makes the same file as from ``image``
    (the CLI reads each input once, then may encode it at several quality levels)."""
    _refuse_large(image, max_pixels)  # from the header, before the codec (torch) loads
    if isinstance(open_codec(codec), Uint8Codec):
        arr = _pixels(image, max_pixels)
        if arr is not None:
            return arr
    return as_tensor(image, max_pixels)


def _glc_bytes(data: GlcLike) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as f:
            return f.read()
    raise TypeError(f"expected the bytes of a .glc file or a path to one, got {type(data).__name__}")


def _with_device(codec: Codec, device: str | None) -> Codec:
    if device is not None and isinstance(codec, Placeable):
        codec.to(device)
    return codec


def _reports_progress(c: Codec) -> bool:
    """Whether ``c.encode`` takes ``progress`` (codecs that fit a network per image report it)."""
    import inspect

    try:
        return "progress" in inspect.signature(c.encode).parameters
    except (TypeError, ValueError):
        return False


def _refinable_codecs() -> list[str]:
    return [i.name for i in list_codecs() if i.refinable]


def encode(image: ImageLike, codec: str | Codec = DEFAULT_CODEC, quality: int | None = None,
           device: str | None = None, refine: int = 0, max_pixels: int | None = MAX_DECODE_PIXELS,
           progress: ProgressFn | None = None) -> bytes:
    """Encode an image into a complete ``.glc`` file, returned as bytes.

    ``image`` may be (:data:`ImageLike`):

    * a path (``str`` or ``os.PathLike``) to an image file, or the **bytes** of one (PNG, JPEG,
      WebP, TIFF, ...: whatever Pillow reads);
    * a PIL image (any mode: palette and CMYK become RGB, 16-bit becomes 8-bit, an opaque alpha
      channel is dropped; transparent pixels are refused with :class:`UnsupportedImageError`);
    * a numpy array ``H x W`` or ``H x W x C`` (C = 1 or 3): ``uint8`` 0..255, ``uint16``
      0..65535 or float in [0, 1]; it is copied, so read-only arrays (``np.asarray(pil_image)``)
      are fine and the array is never modified;
    * a torch tensor ``C x H x W`` or ``1 x C x H x W``: float in [0, 1] (clamped), or ``uint8``.

    One channel is coded as grayscale, three as RGB. ``codec`` is a name from
    :func:`list_codecs` (image codecs), or a codec instance built with options (e.g.
    ``ClcCodec(dictionary="my.dict")``); ``quality`` one of its levels (default: the codec's).
    ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``) places a learned codec's networks.
    ``refine`` > 0: that many encoder-side latent-refinement steps, for codecs whose
    :class:`CodecInfo` says ``refinable`` (the learned image codecs; ``glocal-codec list`` shows
    them): a smaller file at the same quality, a slower encode, the usual decoder.
    ``max_pixels``: the same guard as :func:`decode`'s: a larger image is refused (an image file
    from its header, before its pixels are decoded); ``None`` lifts it. Image files are read
    upright (their EXIF orientation applied).
    ``progress(done, total, stats)`` (a :class:`~glocal_codec.codecs.ProgressFn`), if given, is
    called after every refinement step, or as a fitting codec (``overfit``) advances.
    Raises ``ValueError`` for a bad codec, quality or array, ``TypeError`` for an unsupported type.
    """
    _refuse_large(image, max_pixels)  # before the codec (torch) loads and anything is converted
    if isinstance(codec, str):
        c = _with_device(open_codec(codec), device)
    else:  # a codec instance built with options: files carry its registered name's id
        c, codec = _with_device(codec, device), codec.name
    if c.media != "image":
        raise ValueError(f"{codec} is a {c.media} codec; use glocal_codec.video.encode_video "
                         "(or `glocal-codec video encode`)")
    # 8-bit pixels go to a codec that codes them natively as they are (no torch); the rest as tensors
    pixels = _pixels(image, max_pixels) if isinstance(c, Uint8Codec) and not refine else None
    if pixels is not None:
        h, w = pixels.shape[:2]
    else:
        x = as_tensor(image, max_pixels)
        h, w = x.shape[-2:]
    if max_pixels and h * w > max_pixels:
        raise LimitError(f"the image is {w}x{h} ({h * w:,} pixels), more than the limit of {max_pixels:,}; "
                         "allow it with max_pixels=None (CLI: --max-pixels 0)")
    q = c.default_quality if quality is None else int(quality)
    if q not in c.qualities:
        raise ValueError(f"{codec}: quality must be one of {list(c.qualities)}, got {q}")
    if refine:
        if not isinstance(c, Refinable):
            raise ValueError(f"{codec} does not support encoder-side refinement (--refine); "
                             "codecs that do: " + ", ".join(n for n in _refinable_codecs()))
        kw = {"progress": progress} if progress is not None else {}  # plugins written before it need none
        payload = c.encode_refined(x, q, int(refine), **kw)
    elif pixels is not None:
        payload = c.encode_uint8(pixels, q)
    elif progress is not None and _reports_progress(c):
        payload = c.encode(x, q, progress=progress)
    else:
        payload = c.encode(x, q)
    container = Container(
        codec_id=codec_id(codec),
        weights_digest=c.weights_digest(q),
        media=MediaKind.IMAGE,
        shape=tuple(payload.shape),
        quality=q,
        params=payload.params,
        streams=tuple(payload.streams),
    )
    return write_container(container)


def check_clip_pixels(frames: int, height: int, width: int, max_pixels: int | None) -> None:
    """The per-clip decode limit of video (``T * H * W <= max_pixels``; ``None`` or 0: none), as a
    :class:`LimitError`. Needs no torch, so ``video decode`` refuses a bomb before loading it."""
    if max_pixels and frames * height * width > max_pixels:
        raise LimitError(f"the file announces {frames} frames of {width}x{height} ({frames * height * width:,} "
                         f"pixels), more than the decode limit of {max_pixels:,} per clip; allow it with "
                         "max_pixels=None (CLI: --max-pixels 0) if you trust the file")


def open_container(data: bytes) -> tuple[Container, Codec]:
    """Parse a file and check it against this installation (codec registered, same weights)."""
    return _checked(read_container(data))


def _checked(container: Container, given: Codec | None = None) -> tuple[Container, Codec]:
    """:func:`open_container` of a parsed container; ``given``: the codec instance to decode with
    (one built with options), which must be the file's codec."""
    name = codec_name(container.codec_id)
    if given is not None and given.name != name:
        raise ValueError(f"the file was made by {name}; the codec given to decode it is {given.name}")
    codec = open_codec(name) if given is None else given
    expected = MediaKind.IMAGE if codec.media == "image" else MediaKind.VIDEO
    if container.media is not expected:
        raise CorruptStreamError(f"{name} is a {codec.media} codec but the file says {container.media.name.lower()}")
    if container.quality not in codec.qualities:
        raise CorruptStreamError(f"{name} has no quality level {container.quality}")
    try:
        digest = codec.weights_digest(container.quality)
    except WeightsMissingError as err:
        raise WeightsMismatchError(str(err)) from None
    if digest != container.weights_digest:
        raise WeightsMismatchError(
            f"file was made by {name} weights {container.weights_digest.hex()}, installed weights are "
            f"{digest.hex()}: decode it with the glocal-codec version that wrote it"
        )
    return container, codec


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The output size of a render at ``scale``: each side rounded, at least one pixel."""
    if not (scale > 0 and scale < float("inf")):
        raise ValueError(f"scale must be a positive number, got {scale}")
    return max(1, round(height * scale)), max(1, round(width * scale))


def _decode(data: GlcLike, device: str | None, max_pixels: int | None, scale: float | None = None,
            size: tuple[int, int] | None = None, uint8: bool = False,
            codec: Codec | None = None, drop: float | None = None, seed: int = 0) -> np.ndarray | torch.Tensor:
    """The decoded image: a 1 x C x H x W float tensor, or (``uint8``, a
    :class:`~glocal_codec.codecs.Uint8Codec` and the coded size) an H x W x C uint8 array."""
    data = _glc_bytes(data)
    container = read_container(data)
    h, w = container.shape[-2:]
    if scale is not None and size is not None:
        raise ValueError("give scale or size, not both")
    out_size = scaled_size(h, w, scale) if scale is not None else size
    if drop is not None and not (isinstance(drop, (int, float)) and 0.0 <= drop <= 1.0):
        raise ValueError(f"drop must be a fraction in [0, 1], got {drop!r}")
    if drop is not None and (scale is not None or size is not None):
        raise ValueError("drop and a resized render cannot be combined")
    if out_size is not None and (min(out_size) < 1):
        raise ValueError(f"output size must be positive, got {out_size}")
    oh, ow = out_size or (h, w)
    if max_pixels and max(h * w, oh * ow) > max_pixels:
        raise LimitError(f"the file announces a {w}x{h} image ({h * w:,} pixels), more than the decode limit of "
                         f"{max_pixels:,}; allow it with max_pixels=None (CLI: --max-pixels 0) if you trust the file"
                         if h * w > max_pixels else
                         f"a {ow}x{oh} render ({oh * ow:,} pixels) is more than the decode limit of {max_pixels:,}; "
                         "allow it with max_pixels=None (CLI: --max-pixels 0)")
    container, codec = _checked(container, codec)  # opens the codec (a learned one imports torch): after the limit
    if out_size is not None and (oh, ow) != (h, w) and not isinstance(codec, Rescalable):
        raise ValueError(f"{codec.name} files decode at their coded size only ({w}x{h}); rendering at another "
                         "size needs a codec that can (gblsr)")
    if drop is not None and not isinstance(codec, Restorable):
        raise ValueError(f"{codec.name} files cannot simulate lost symbols: --drop needs a codec that restores "
                         "them from the rest (vq)")
    if container.media is not MediaKind.IMAGE:
        # a BitstreamError (still a ValueError): gc.decode of any bytes raises only that family
        raise CorruptStreamError(f"the file holds a {container.media.name.lower()} ({codec.name}); decode it with "
                         "glocal_codec.video.decode_video (or `glocal-codec video decode`)")
    codec = _with_device(codec, device)
    payload = Payload(container.shape, container.quality, container.params, container.streams)
    as_uint8 = uint8 and isinstance(codec, Uint8Codec) and (oh, ow) == (h, w) and drop is None
    try:
        x = (codec.decode_dropped(payload, float(drop), int(seed)) if drop is not None  # type: ignore[union-attr]
             else codec.decode_resized(payload, oh, ow) if (oh, ow) != (h, w)
             else codec.decode_uint8(payload) if as_uint8 else codec.decode(payload))
    except BitstreamError:
        raise
    except WeightsMissingError:
        raise
    except Exception as err:  # noqa: BLE001
        # The CRC matched, so only a crafted or mis-written payload gets here; whatever the
        # codec's libraries raise (constriction, Pillow, torch shape errors) is one clear error.
        raise CorruptStreamError(f"{codec.name}: the payload cannot be decoded ({type(err).__name__}: {err})") from None
    got = (x.shape[2], x.shape[0], x.shape[1]) if as_uint8 and x.ndim == 3 else tuple(x.shape[1:])
    if tuple(got) != (container.shape[0], oh, ow):
        want = "the header says" if (oh, ow) == (h, w) else "the render asked for"
        raise CorruptStreamError(f"{codec.name} decoded {tuple(got)}, {want} {(container.shape[0], oh, ow)}")
    return x


def decode_tensor(data: GlcLike, device: str | None = None,
                  max_pixels: int | None = MAX_DECODE_PIXELS, scale: float | None = None,
                  size: tuple[int, int] | None = None, codec: Codec | None = None,
                  drop: float | None = None, seed: int = 0) -> torch.Tensor:
    """Decode a ``.glc`` image file (its bytes, or a path to it) to a float tensor 1 x C x H x W
    in [0, 1].

    ``max_pixels`` refuses (with :class:`LimitError`) images larger than that before decoding
    anything; ``None`` lifts the guard. Every bad file raises a :class:`BitstreamError`.
    ``scale`` (or an explicit output ``size`` (height, width)) renders the picture at another
    size; only codecs that implement :class:`~glocal_codec.codecs.Rescalable` (``gblsr``) can,
    the others raise ``ValueError``. ``codec``: a codec instance built with options to decode
    with (``ClcCodec(dictionary="my.dict")`` for a clc file coded with that dictionary); it must
    be the file's codec. ``drop`` (a fraction in [0, 1]) decodes as if that share of the coded
    symbols had been lost, chosen by ``seed``, and restored by the codec; only codecs that
    implement :class:`~glocal_codec.codecs.Restorable` (``vq``) can, the others raise ``ValueError``.
    """
    return _decode(data, device, max_pixels, scale, size, codec=codec, drop=drop, seed=seed)


def decode(data: GlcLike, device: str | None = None, max_pixels: int | None = MAX_DECODE_PIXELS,
           scale: float | None = None, codec: Codec | None = None, drop: float | None = None,
           seed: int = 0) -> Image.Image:
    """Decode a ``.glc`` image file to an 8-bit PIL image (RGB, or ``L`` for grayscale).

    ``data`` is the file's bytes (``bytes``, ``bytearray``, ``memoryview``) or a path to it
    (:data:`GlcLike`); the file says which codec made it. See :func:`decode_tensor` for
    ``device``, ``max_pixels``, ``scale`` (``gblsr`` files render at any scale), ``codec`` and
    ``drop`` / ``seed`` (``vq`` files: simulated lost indices, restored). Save the result with
    ``img.save("out.png")``.
    """
    x = _decode(data, device, max_pixels, scale, uint8=True, codec=codec, drop=drop, seed=seed)
    return from_array(x) if isinstance(x, np.ndarray) else to_pil(x)


def read_info(data: GlcLike) -> FileInfo:
    """Header facts of a ``.glc`` file (its bytes, or a path to it: :data:`GlcLike`); checks the
    container fully but decodes nothing, and needs no torch."""
    data = _glc_bytes(data)
    container = read_container(data)
    name = codec_name(container.codec_id)
    try:
        match: bool | None = codec_digest(name, container.quality) == container.weights_digest
    except WeightsMissingError:
        match = None
    if container.weights_digest == b"\0\0\0\0" and match:
        match = None
    h, w = container.shape[-2:]
    frames = container.shape[0] if container.media is MediaKind.VIDEO else 1
    fps = None
    if container.media is MediaKind.VIDEO:
        from .bitstream.video_params import unpack_video_params

        fps = unpack_video_params(container.params)[0]
    details: dict[str, str] = {}
    if match:
        from .weights import manifest_entry

        details = dict(manifest_entry(name).get("level_facts", {}).get(str(container.quality), {}))
    if container.media is MediaKind.IMAGE:  # facts in the codec's parameters (clc: reference ids)
        details.update(file_facts(name, container.params))
    return FileInfo(
        codec=name,
        codec_id=container.codec_id,
        format_version=container.version,
        media=container.media.name.lower(),
        shape=container.shape,
        quality=container.quality,
        bytes=len(data),
        header_bytes=len(data) - container.payload_bytes,
        bpp=8.0 * len(data) / (h * w * frames),
        weights_digest=container.weights_digest.hex(),
        weights_match=match,
        fps=fps,
        details=details,
    )
