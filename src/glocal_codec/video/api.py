"""Video side of the public API: ``encode_video``, ``decode_video`` (``read_info`` is shared),
and for codecs that hold several videos in one file (``pfnr``): ``append_video``, ``list_videos``
and ``decode_video(..., index=s)``.

A video ``.glc`` file is an ordinary container with media kind *video*, shape ``(T, C, H, W)``
and the frame rate in front of the codec's parameters (:mod:`.header`); bpp is
``8 * file bytes / (T * H * W)``.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Union

import numpy as np
import torch

from ..api import MAX_DECODE_PIXELS, check_clip_pixels, open_container
from ..bitstream import BitstreamError, Container, CorruptStreamError, MediaKind, write_container
from ..bitstream.video_params import as_fps, pack_video_params, unpack_video_params
from ..codecs import FrameStreaming, MultiClip, Payload, Placeable, ProgressFn, VideoCodec, codec_id, open_codec
from ..errors import WeightsMissingError
from .io import FrameStream, VideoClip, read_video

__all__ = ["DEFAULT_VIDEO_CODEC", "VideoLike", "as_clip", "encode_video", "decode_video", "decode_video_frames",
           "append_video", "list_videos"]

#: The codec ``glocal-codec video encode`` uses when none is named.
DEFAULT_VIDEO_CODEC = "x264"

VideoLike = Union[VideoClip, torch.Tensor, str, os.PathLike]


def as_clip(src: VideoLike, *, fps: float | Fraction | str | None = None, start: int = 0,
            max_frames: int | None = None, size: tuple[int, int] | None = None,
            progress: ProgressFn | None = None) -> VideoClip:
    """Any supported video input -> :class:`VideoClip` (a path is read with :func:`read_video`).

    ``start`` / ``max_frames`` / ``size`` / ``fps`` apply to clips and tensors as well.
    """
    if isinstance(src, (str, os.PathLike)):
        return read_video(src, start=start, max_frames=max_frames, fps=fps, size=size, progress=progress)
    if isinstance(src, torch.Tensor):
        src = VideoClip(src if torch.is_floating_point(src) else src.float().div(255.0), as_fps(fps))
        fps = None
    if not isinstance(src, VideoClip):
        raise TypeError(f"cannot encode an object of type {type(src).__name__} as a video")
    if start < 0 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"bad frame range start={start}, max_frames={max_frames}")
    x = src.frames[start:] if max_frames is None else src.frames[start: start + max_frames]
    if x.shape[0] == 0:
        raise ValueError(f"start {start} is past the clip's {src.num_frames} frames")
    if size is not None:
        from .io import _resize

        x = _resize(x.float(), size)
    return VideoClip(x.float().clamp(0, 1), as_fps(fps) if fps is not None else src.fps, src.source)


def encode_video(clip: VideoLike, codec: str = DEFAULT_VIDEO_CODEC, quality: int | None = None, *,
                 fps: float | Fraction | str | None = None, start: int = 0, max_frames: int | None = None,
                 size: tuple[int, int] | None = None, progress: ProgressFn | None = None) -> bytes:
    """Encode a clip (a :class:`VideoClip`, a ``T x C x H x W`` tensor, a video file or a frames
    folder) into a complete ``.glc`` file, returned as bytes.

    ``progress(done, total)`` is called per frame read and per frame encoded (if the codec
    reports it).
    """
    c = open_codec(codec)
    if c.media != "video" or not isinstance(c, VideoCodec):
        raise ValueError(f"{codec} is an image codec; use glocal_codec.encode (or `glocal-codec encode`)")
    q = c.default_quality if quality is None else quality
    if isinstance(q, bool) or int(q) != q or int(q) not in c.qualities:
        raise ValueError(f"{codec}: quality must be one of {list(c.qualities)}, got {quality}")
    q = int(q)
    vc = as_clip(clip, fps=fps, start=start, max_frames=max_frames, size=size, progress=progress)
    payload = c.encode(vc.frames, q, fps=vc.fps, progress=progress)
    container = Container(
        codec_id=codec_id(codec),
        weights_digest=c.weights_digest(q),
        media=MediaKind.VIDEO,
        shape=tuple(payload.shape),
        quality=q,
        params=pack_video_params(vc.fps, payload.params),
        streams=tuple(payload.streams),
    )
    return write_container(container)


def _open_video(data: bytes):
    """(container, codec, fps, payload) of a video file; an image file is a ValueError."""
    container, codec = open_container(data)
    if container.media is not MediaKind.VIDEO:
        raise ValueError(f"the file holds an image ({codec.name}); decode it with glocal_codec.decode "
                         "(or `glocal-codec decode`)")
    fps, params = unpack_video_params(container.params)
    return container, codec, fps, Payload(container.shape, container.quality, params, container.streams)


def list_videos(data: bytes) -> list[tuple[int, int]]:
    """``(frames, channels)`` of every video in a file, in the order they were added.

    One entry for every codec but those that hold several videos (``pfnr``, see
    :func:`append_video`). The file is checked (container and codec parameters), not decoded.
    """
    container, codec, _, payload = _open_video(data)
    if isinstance(codec, MultiClip):
        return [(s.frames, s.channels) for s in codec.clips(payload)]
    return [(container.shape[0], container.shape[1])]


def _open_for_decode(data: bytes, max_pixels: int | None, device: str | None, index: int | None):
    """(codec, fps, payload, shape) of the video to decode, after every check that needs no decoding:
    container, ``index``, and the per-clip pixel limit ``T * H * W <= max_pixels``."""
    container, codec, fps, payload = _open_video(data)
    shape = tuple(container.shape)
    if index is not None:
        videos = list_videos(data)
        if not 0 <= index < len(videos):
            raise ValueError(f"the file holds {len(videos)} video(s); there is no video {index + 1}")
        shape = (*videos[index], *shape[2:])
    check_clip_pixels(shape[0], shape[2], shape[3], max_pixels)
    if device is not None and isinstance(codec, Placeable):
        codec.to(device)
    return codec, fps, payload, shape


def decode_video(data: bytes, *, progress: ProgressFn | None = None, max_pixels: int | None = MAX_DECODE_PIXELS,
                 device: str | None = None, index: int | None = None) -> VideoClip:
    """Decode a video ``.glc`` file into a :class:`VideoClip` (frames T x C x H x W, fps).

    ``max_pixels`` is a per-clip limit on ``T * H * W``, checked from the header before anything
    is decoded (a :class:`~glocal_codec.bitstream.LimitError`): by default
    :data:`glocal_codec.MAX_DECODE_PIXELS`, the image limit, since the decoded clip takes
    ``12 * T * H * W`` bytes as float32 RGB; ``None`` (or 0) leaves only the container's limit.
    To write a long clip to a file, :func:`decode_video_frames` holds one frame at a time.
    ``index`` picks one video of a file that holds several (``pfnr``; 0-based, in the order they
    were added; ``None``: the last one, whose shape the header carries).
    Every bad input is a :class:`~glocal_codec.bitstream.BitstreamError`; a valid *image*
    file is a ``ValueError`` (decode it with :func:`glocal_codec.decode`), and so is an
    ``index`` the file does not have.
    """
    codec, fps, payload, shape = _open_for_decode(data, max_pixels, device, index)
    try:
        if index is not None and isinstance(codec, MultiClip):
            x = codec.decode_clip(payload, index, progress=progress)
        else:
            x = codec.decode(payload, progress=progress)
    except (BitstreamError, WeightsMissingError):
        raise
    except Exception as err:  # noqa: BLE001 - a crafted payload with a valid CRC gets here
        raise CorruptStreamError(f"{codec.name}: the payload cannot be decoded ({type(err).__name__}: {err})") from None
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise CorruptStreamError(f"{codec.name} decoded {got}, the header says {shape}")
    return VideoClip(x, fps, None)


def decode_video_frames(data: bytes, *, progress: ProgressFn | None = None,
                        max_pixels: int | None = MAX_DECODE_PIXELS, device: str | None = None,
                        index: int | None = None) -> FrameStream:
    """:func:`decode_video` as a :class:`~glocal_codec.video.io.FrameStream`: ``H x W x C`` uint8
    frames decoded while they are consumed (by :func:`~glocal_codec.video.write_video` or
    :func:`~glocal_codec.video.write_frames`), for writing a clip to a file without holding it.

    The header and ``max_pixels`` are checked now; a damaged stream raises its
    :class:`~glocal_codec.bitstream.BitstreamError` while the frames are read (possibly after
    some of them). Codecs that decode frame by frame (:class:`~glocal_codec.codecs.FrameStreaming`:
    every built-in one; ``nirvana`` renders a group of frames at a time) hold a few frames; a
    third-party codec without ``decode_frames`` decodes the whole clip when the first frame is
    asked for, as :func:`decode_video` does.
    """
    codec, fps, payload, shape = _open_for_decode(data, max_pixels, device, index)
    t, c, h, w = shape
    one_of_many = index is not None and isinstance(codec, MultiClip)
    streaming = isinstance(codec, FrameStreaming)

    def frames():
        if not streaming:
            from ..yuv import to_uint8_frames

            x = decode_video(data, progress=progress, max_pixels=None, device=None, index=index).frames
            for i in range(t):
                f = to_uint8_frames(x[i: i + 1])[0]
                yield f[:, :, :1] if c == 1 else f
            return
        n = 0
        try:
            it = (codec.decode_clip_frames(payload, index, progress=progress) if one_of_many
                  else codec.decode_frames(payload, progress=progress))
            for f in it:
                if not isinstance(f, np.ndarray) or f.shape != (h, w, c) or f.dtype != np.uint8:
                    got = (f.dtype, f.shape) if isinstance(f, np.ndarray) else type(f).__name__
                    raise CorruptStreamError(f"{codec.name} decoded a frame {got}, the header says uint8 {(h, w, c)}")
                n += 1
                yield f
        except (BitstreamError, WeightsMissingError):
            raise
        except Exception as err:  # noqa: BLE001 - a crafted payload with a valid CRC gets here
            raise CorruptStreamError(f"{codec.name}: the payload cannot be decoded ({type(err).__name__}: {err})") from None
        if n != t:
            raise CorruptStreamError(f"{codec.name} decoded {n} frames, the header says {t}")

    return FrameStream(frames(), t, c, h, w, fps)


def append_video(data: bytes, clip: VideoLike, *, start: int = 0, max_frames: int | None = None,
                 progress: ProgressFn | None = None) -> bytes:
    """Add ``clip`` as the next video of ``data``, a file of a codec that holds several (``pfnr``).

    Returns the new file; the earlier videos' streams are copied unchanged and still decode
    bit-exactly (``decode_video(new, index=s)``). The clip is rescaled to the file's frame size
    when it differs (every video of one file shares it); its frame count is its own. The file's
    frame rate is kept. A file of any other codec is a ``ValueError``.
    """
    container, codec, fps, payload = _open_video(data)
    if not isinstance(codec, MultiClip):
        raise ValueError(f"{codec.name} files hold one video; only pfnr can add videos to a file")
    _, _, h, w = container.shape
    vc = as_clip(clip, start=start, max_frames=max_frames, progress=progress)
    size = None if (vc.height, vc.width) == (h, w) else (w, h)
    if size is not None:
        vc = as_clip(vc, size=size)
    out = codec.append(payload, vc.frames, progress=progress)
    return write_container(Container(container.codec_id, container.weights_digest, MediaKind.VIDEO, tuple(out.shape),
                                     out.quality, pack_video_params(fps, out.params), tuple(out.streams)))
