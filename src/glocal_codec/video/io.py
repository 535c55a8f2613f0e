"""Reading and writing video clips: files through PyAV, folders of frames through Pillow.

A clip in memory is a :class:`VideoClip`: a ``T x C x H x W`` float tensor in [0, 1] (C = 3;
C = 1 is accepted from tensors), its frame rate as a ``Fraction`` and where it came from.

Reading (:func:`read_video`):

* a video file that FFmpeg can demux (``.mp4``, ``.mkv``, ``.mov``, ``.webm``, ``.avi``,
  ``.y4m``, ...): the first video stream, converted to 8-bit RGB by FFmpeg's ``swscale`` using
  the colour space the stream is tagged with; frame rate from the stream (its average rate);
* a folder of image frames (PNG, JPEG, BMP, TIFF, WebP), sorted by file name in natural order
  (``f2.png`` before ``f10.png``); every frame must have the same size; grayscale frames are
  converted to RGB; frame rate ``fps`` (default 25).

``start`` / ``max_frames`` pick a range of frames (frames before ``start`` are decoded and
skipped, reading stops after ``max_frames``); ``size=(W, H)`` resizes every frame (antialiased
bilinear), which is how tests and benchmarks get small clips.

Writing (:func:`write_video`, :func:`write_frames`), by the output's suffix:

======== ===================================== ===============================================
suffix   lossless (default)                    ``lossless=False``
======== ===================================== ===============================================
``.mp4`` H.264 RGB (``libx264rgb``, QP 0):     H.264 4:4:4 (``libx264``, ``yuv444p``, CRF ``crf``)
``.mov`` bit-exact RGB                         
``.mkv`` FFV1 (``bgr0``): bit-exact RGB        same as ``.mp4``
``.y4m`` raw Y'CbCr 4:4:4 (BT.601 limited; RGB -> YUV rounding costs at most 2 levels), or
         ``pix_fmt="yuv420p"`` (the 4:2:0 input the classical video codecs code)
folder   PNG frames (:func:`write_frames`), bit-exact
======== ===================================== ===============================================

``write_video(path, clip, **PLAYABLE)`` writes what every player and browser plays: H.264
4:2:0 (``yuv420p``, High profile) at CRF :data:`PLAYABLE_CRF`, an odd width or height padded by
one repeated column or row. It is what ``glocal-codec video decode`` writes by default
(``--lossless`` for the bit-exact RGB / FFV1 files above).

Both take a :class:`VideoClip` or a :class:`FrameStream` (frames decoded while they are
written, so memory holds one frame, not the clip: ``glocal-codec video decode``).
Every write is atomic (a temporary file in the same folder, then a rename) and refuses to
replace an existing file unless ``force``. PyAV is imported only when a video file is read or
written, so folders of frames work without it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from ..imageio import UnsupportedImageError, from_array, load_image, to_pil, write_image
from ..util import atomic_write
from ..yuv import pack_i420, rgb_to_yuv420, rgb_to_yuv444, to_uint8_frames
from ..bitstream.video_params import DEFAULT_FPS, as_fps

__all__ = [
    "VideoClip",
    "FrameStream",
    "UnsupportedVideoError",
    "FRAME_SUFFIXES",
    "VIDEO_SUFFIXES",
    "read_video",
    "write_video",
    "PLAYABLE",
    "PLAYABLE_CRF",
    "write_frames",
    "list_frame_files",
    "to_uint8_frames",
]

#: Image files a folder of frames may hold (anything else in the folder is ignored).
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Suffixes :func:`write_video` writes.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".y4m")

ProgressFn = Callable[[int, "int | None"], None]


class UnsupportedVideoError(ValueError):
    """The input cannot be read as a video clip (unreadable file, empty folder, mixed sizes, ...)."""


@dataclass(frozen=True)
class VideoClip:
    """A clip: ``frames`` (T x C x H x W float32 in [0, 1]), ``fps`` and its ``source``."""

    frames: torch.Tensor
    fps: Fraction = field(default=DEFAULT_FPS)
    source: str | None = None

    def __post_init__(self) -> None:
        x = self.frames
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"a clip is a T x C x H x W tensor with C in (1, 3), got {got}")
        if min(x.shape) < 1:
            raise ValueError(f"empty clip {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            object.__setattr__(self, "frames", x.float().div(255.0))
        object.__setattr__(self, "fps", as_fps(self.fps))

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def channels(self) -> int:
        return int(self.frames.shape[1])

    @property
    def height(self) -> int:
        return int(self.frames.shape[2])

    @property
    def width(self) -> int:
        return int(self.frames.shape[3])

    @property
    def duration(self) -> float:
        """Seconds: frames / fps."""
        return float(self.num_frames / self.fps)

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (f"VideoClip({self.num_frames} x {self.channels} x {self.height} x {self.width}, "
                f"fps={self.fps}, source={self.source!r})")


@dataclass
class FrameStream:
    """A clip that is decoded while it is written (``glocal_codec.video.decode_video_frames``):
    ``frames`` yields the ``num_frames`` frames in order, each an ``H x W x C`` uint8 array
    (C = ``channels``), and can be iterated once. :func:`write_video` and :func:`write_frames`
    take it like a :class:`VideoClip`, holding one frame at a time instead of the clip."""

    frames: Iterator[np.ndarray]
    num_frames: int
    channels: int
    height: int
    width: int
    fps: Fraction = field(default=DEFAULT_FPS)

    def __len__(self) -> int:
        return self.num_frames


# --------------------------------------------------------------------------------------------
# reading


def _natural_key(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a frame folder, in natural name order (hidden files skipped)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _check_range(start: int, max_frames: int | None) -> None:
    if isinstance(start, bool) or int(start) < 0:
        raise ValueError(f"start must be >= 0, got {start!r}")
    if max_frames is not None and int(max_frames) < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames!r}")


def _resize(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """``x`` T x C x H x W float; ``size`` = (W, H)."""
    if size is None:
        return x
    w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise ValueError(f"size must be positive (W, H), got {size}")
    if (h, w) == tuple(x.shape[-2:]):
        return x
    y = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return y.clamp_(0, 1).mul_(255).round_().div_(255)  # stay on the 8-bit grid


def _read_folder(folder: Path, start: int, max_frames: int | None, fps: Fraction,
                 progress: ProgressFn | None, size: tuple[int, int] | None) -> VideoClip:
    files = list_frame_files(folder)
    if not files:
        raise UnsupportedVideoError(f"{folder} holds no image frames ({', '.join(FRAME_SUFFIXES)})")
    files = files[start:]
    if max_frames is not None:
        files = files[: int(max_frames)]
    if not files:
        raise UnsupportedVideoError(f"{folder}: start {start} is past the last frame")
    frames: list[torch.Tensor] = []
    first: tuple[int, int] | None = None
    for i, path in enumerate(files):
        try:
            x = load_image(path)[0]
        except UnsupportedImageError as err:
            raise UnsupportedVideoError(str(err)) from None
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        hw = (int(x.shape[2]), int(x.shape[3]))
        if first is None:
            first = hw
        elif hw != first:
            raise UnsupportedVideoError(
                f"{path.name} is {hw[1]}x{hw[0]} but the first frame ({files[0].name}) is {first[1]}x{first[0]}"
            )
        frames.append(_resize(x, size)[0])
        if progress is not None:
            progress(i + 1, len(files))
    return VideoClip(torch.stack(frames), fps, str(folder))


def _read_file(path: Path, start: int, max_frames: int | None, fps: Fraction | None,
               progress: ProgressFn | None, size: tuple[int, int] | None) -> VideoClip:
    import av

    from av.video.reformatter import Interpolation

    try:  # flag combinations need PyAV >= 14; older versions get swscale's default
        interp = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    except (AttributeError, TypeError):
        interp = None
    frames: list[torch.Tensor] = []
    try:
        with av.open(str(path), "r") as container:
            if not container.streams.video:
                raise UnsupportedVideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            total = stream.frames or None
            want = None if max_frames is None else int(max_frames)
            if total is not None:
                total = max(0, total - start)
                if want is not None:
                    total = min(total, want)
            for i, frame in enumerate(container.decode(stream)):
                if i < start:
                    continue
                # Accurate rounding and full-resolution chroma interpolation: for 4:2:0 input this
                # matches the bilinear up-sampling of .yuv to within rounding.
                arr = frame.to_ndarray(format="rgb24", interpolation=interp)
                x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
                frames.append(_resize(x, size)[0])
                if progress is not None:
                    progress(len(frames), total)
                if want is not None and len(frames) >= want:
                    break
    except UnsupportedVideoError:
        raise
    except FileNotFoundError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise UnsupportedVideoError(f"cannot read {path} as a video: {err}") from None
    if not frames:
        raise UnsupportedVideoError(f"{path}: no frames" + (f" at or after frame {start}" if start else ""))
    if fps is None:
        try:
            fps = as_fps(Fraction(rate) if rate else None)
        except ValueError:
            fps = DEFAULT_FPS
    return VideoClip(torch.stack(frames), fps, str(path))


def read_video(path: str | os.PathLike, *, start: int = 0, max_frames: int | None = None,
               fps: float | Fraction | str | None = None, size: tuple[int, int] | None = None,
               progress: ProgressFn | None = None) -> VideoClip:
    """Read a video file or a folder of frames into a :class:`VideoClip` (see the module docs).

    ``fps`` overrides the file's frame rate (a folder's default is 25). ``progress(done, total)``
    is called after each frame (``total`` is ``None`` when the file does not say).
    """
    path = Path(path)
    _check_range(start, max_frames)
    start = int(start)
    rate = None if fps is None else as_fps(fps)
    if path.is_dir():
        return _read_folder(path, start, max_frames, rate or DEFAULT_FPS, progress, size)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    return _read_file(path, start, max_frames, rate, progress, size)


# --------------------------------------------------------------------------------------------
# writing


def _as_clip(clip: VideoClip | FrameStream | torch.Tensor,
             fps: float | Fraction | None = None) -> VideoClip | FrameStream:
    if isinstance(clip, FrameStream):
        return clip if fps is None else FrameStream(clip.frames, clip.num_frames, clip.channels, clip.height,
                                                    clip.width, as_fps(fps))
    if isinstance(clip, VideoClip):
        return clip if fps is None else VideoClip(clip.frames, as_fps(fps), clip.source)
    if isinstance(clip, torch.Tensor):
        return VideoClip(clip, as_fps(fps))
    raise TypeError(f"expected a VideoClip, a FrameStream or a T x C x H x W tensor, got {type(clip).__name__}")


def _rgb_frames(clip: VideoClip | FrameStream) -> Iterator[np.ndarray]:
    """The frames of ``clip`` one at a time as ``H x W x 3`` uint8 (gray replicated to RGB)."""
    if isinstance(clip, FrameStream):
        for frame in clip.frames:
            yield np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame
        return
    for i in range(clip.num_frames):
        yield to_uint8_frames(clip.frames[i: i + 1])[0]


def output_plan(suffix: str, lossless: bool, pix_fmt: str | None, crf: int) -> tuple[str, str, str, dict[str, str]]:
    """(muxer, encoder, pix_fmt, options) for an output suffix."""
    if suffix == ".y4m":
        pf = pix_fmt or "yuv444p"
        if pf not in ("yuv444p", "yuv420p"):
            raise ValueError(f".y4m is written as yuv444p or yuv420p, not {pf!r}")
        return "yuv4mpegpipe", "rawvideo", pf, {}
    muxer = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}.get(suffix)
    if muxer is None:
        raise ValueError(f"cannot write video as {suffix or 'a file without suffix'!r}; "
                         f"use one of {', '.join(VIDEO_SUFFIXES)} or a frames folder")
    if lossless:
        if pix_fmt is not None:
            raise ValueError("pix_fmt applies to lossy or .y4m output only")
        if muxer == "matroska":
            return muxer, "ffv1", "bgr0", {"level": "3", "slicecrc": "1"}
        return muxer, "libx264rgb", "rgb24", {"qp": "0", "preset": "medium"}
    pf = pix_fmt or "yuv444p"
    if pf not in ("yuv444p", "yuv420p"):
        raise ValueError(f"lossy video is written as yuv444p or yuv420p, not {pf!r}")
    return muxer, "libx264", pf, {"crf": str(int(crf)), "preset": "medium"}


#: Constant rate factor of the playable H.264 output (visually transparent for most content).
PLAYABLE_CRF = 18

#: Keywords of :func:`write_video` for a file any player plays (the video CLI's default).
PLAYABLE: dict[str, object] = {"lossless": False, "pix_fmt": "yuv420p", "crf": PLAYABLE_CRF, "pad_odd": True}


def write_video(path: str | os.PathLike, clip: VideoClip | FrameStream | torch.Tensor, *, fps: float | Fraction | None = None,
                lossless: bool = True, crf: int = 12, pix_fmt: str | None = None, force: bool = False,
                progress: ProgressFn | None = None, pad_odd: bool = False) -> Path:
    """Write a clip to ``.mp4`` / ``.mov`` / ``.mkv`` / ``.y4m`` (table in the module docs).

    Odd frame sizes are fine for the lossless RGB formats and ``yuv444p``; ``yuv420p`` output
    needs an even size: an odd one is an error, or with ``pad_odd`` padded by repeating the
    last column / row. A :class:`FrameStream` is written as it is decoded, one frame in memory;
    if it fails part-way nothing is left behind. Returns the path written.
    """
    import av

    clip = _as_clip(clip, fps)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory (use write_frames for a frames folder)")
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    muxer, encoder, pf, options = output_plan(path.suffix.lower(), lossless, pix_fmt, crf)
    t, h, w = clip.num_frames, clip.height, clip.width
    pad = (0, 0)
    if pf == "yuv420p" and (h % 2 or w % 2):
        if not pad_odd:
            raise ValueError(f"yuv420p needs an even frame size, got {w}x{h}")
        pad = (h % 2, w % 2)
        h, w = h + pad[0], w + pad[1]

    def write(tmp: str) -> None:
        with av.open(tmp, "w", format=muxer) as out:
            stream = out.add_stream(encoder, rate=clip.fps)
            stream.width, stream.height, stream.pix_fmt = w, h, pf
            stream.time_base = Fraction(1) / clip.fps
            stream.codec_context.time_base = Fraction(1) / clip.fps
            if pf.startswith("yuv"):
                stream.codec_context.color_range = 1  # MPEG / limited
                stream.codec_context.colorspace = 6  # SMPTE 170M (BT.601)
            stream.options = options
            for i, frame in enumerate(_rgb_frames(clip)):
                if pad != (0, 0):
                    frame = np.pad(frame, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="edge")
                if pf == "yuv444p":
                    planes = np.stack(rgb_to_yuv444(frame))
                    vf = av.VideoFrame.from_ndarray(planes, format="yuv444p")
                elif pf == "yuv420p":
                    y, u, v = rgb_to_yuv420(frame)
                    vf = av.VideoFrame.from_ndarray(pack_i420(y, u, v), format="yuv420p")
                else:
                    vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                    if pf != "rgb24":
                        vf = vf.reformat(format=pf)
                vf.pts = i
                for packet in stream.encode(vf):
                    out.mux(packet)
                if progress is not None:
                    progress(i + 1, t)
            for packet in stream.encode():
                out.mux(packet)

    try:
        atomic_write(path, write, force=force)
    except av.error.FFmpegError as err:
        raise OSError(f"cannot write {path}: {err}") from None
    return path


def write_frames(folder: str | os.PathLike, clip: VideoClip | FrameStream | torch.Tensor, *, pattern: str = "{:05d}.png",
                 first_index: int = 0, force: bool = False, progress: ProgressFn | None = None) -> list[Path]:
    """Write every frame as a PNG into ``folder`` (created if missing; its parent must exist).

    Frame ``i`` goes to ``pattern.format(first_index + i)``. Before anything is written, every
    target name is checked: an existing file is refused unless ``force`` (so a refused call
    leaves the folder as it was). Each frame is written atomically; a :class:`FrameStream` that
    fails part-way (a damaged file) removes the frames this call created.
    """
    clip = _as_clip(clip)
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} exists and is not a folder")
    if not folder.exists():
        parent = folder.parent if str(folder.parent) else Path(".")
        if not parent.is_dir():
            raise FileNotFoundError(f"output folder {parent} does not exist")
    names = [folder / pattern.format(first_index + i) for i in range(clip.num_frames)]
    if len(set(names)) != len(names):
        raise ValueError(f"pattern {pattern!r} does not give every frame its own name")
    if any(n.suffix.lower() != ".png" for n in names):
        raise ValueError(f"frames are written as PNG; pattern {pattern!r} must end in .png")
    if not force:
        taken = [n for n in names if n.exists()]
        if taken:
            more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
            raise FileExistsError(f"{taken[0]} exists{more}; pass --force to overwrite")
    existed = folder.exists()
    folder.mkdir(exist_ok=True)
    frames = clip.frames if isinstance(clip, FrameStream) else (clip.frames[i] for i in range(clip.num_frames))
    made: list[Path] = []
    try:
        for i, (name, frame) in enumerate(zip(names, frames)):
            new = not name.exists()
            write_image(name, from_array(frame) if isinstance(frame, np.ndarray) else to_pil(frame), force=force,
                        fmt="PNG")
            if new:
                made.append(name)
            if progress is not None:
                progress(i + 1, clip.num_frames)
    except BaseException:  # a stream that fails part-way (a damaged file) leaves no frames of this call
        for name in made:
            name.unlink(missing_ok=True)
        if not existed:
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
    return names

