"""``glocal-codec video encode | decode | info | append``: the video sub-app (mounted by :mod:`.app`).

Same rules as the image commands: outputs are written atomically, an existing output is
refused without ``--force``, the input is never touched, and every expected failure is one
``error:`` line on stderr with exit status 1. Long jobs show a progress bar on a terminal.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..bitstream import BitstreamError
from ..errors import WeightsMissingError
from ..imageio import UnsupportedImageError, write_image
from ..util import atomic_write
from .common import EXPECTED as _EXPECTED
from .common import err, out
from .common import fail as _fail
from .common import same_file as _same

__all__ = ["video_app"]

video_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Video: encode a clip (video file or frames folder) into a .glc file and back.")
@contextmanager
def _progress() -> Iterator["_Bar"]:
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[stats]}"), console=err, transient=True, disable=not err.is_terminal) as bar:
        yield _Bar(bar)


class _Bar:
    """A ``progress(done, total)`` callback that starts a new bar whenever the stage changes."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: int | None = None
        self.stage = ""

    def stage_to(self, name: str) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.stage = name
        self.task = self.bar.add_task(name, total=None, stats="")

    def __call__(self, done: int, total: int | None, stats: str | None = None) -> None:
        """``stats``: a short text beside the bar (the INR codecs report their fitting PSNR)."""
        if self.task is None:
            self.stage_to("working")
        assert self.task is not None
        self.bar.update(self.task, completed=done, total=total, **({"stats": stats} if stats is not None else {}))


def _parse_size(size: Optional[str]) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 128x72 (width x height), got {size!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"--size must be positive, got {size!r}")
    return w, h


def _default_glc(src: Path) -> Path:
    return src.with_suffix(".glc") if src.is_file() else src.parent / (src.name + ".glc")


@video_app.command("encode")
def encode_cmd(
    src: Path = typer.Argument(..., help="input clip: a video file (mp4, mkv, y4m, ...) or a folder of PNG/JPEG frames"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="output .glc (default: SRC with .glc)"),
    codec: Optional[str] = typer.Option(None, "--codec", "-c", help="video codec (see `glocal-codec list`); default x264"),
    quality: Optional[int] = typer.Option(None, "--quality", "-q", help="quality level (default: the codec's)"),
    start: int = typer.Option(0, "--start", min=0, help="first frame to encode (0-based)"),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", "-n", min=1, help="encode at most this many frames"),
    fps: Optional[str] = typer.Option(None, "--fps", help="frame rate, e.g. 25 or 30000/1001 (default: the file's; 25 for a folder)"),
    size: Optional[str] = typer.Option(None, "--size", help="resize every frame to WxH first, e.g. 128x72"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite an existing output"),
) -> None:
    """Encode a video file or a folder of frames into a .glc file."""
    from ..video import DEFAULT_VIDEO_CODEC, encode_video, read_info, read_video

    dst = output or _default_glc(src)
    try:
        if _same(src, dst):
            raise ValueError("output would overwrite the input")
        if dst.exists() and not force:
            raise FileExistsError(f"{dst} exists; pass --force to overwrite it")
        if dst.is_dir():
            raise IsADirectoryError(f"{dst} is a directory")
        if not src.exists():
            raise FileNotFoundError(f"no such file or folder: {src}")
        name = codec or DEFAULT_VIDEO_CODEC
        t0 = time.perf_counter()
        with _progress() as bar:
            bar.stage_to(f"reading {src.name}")
            clip = read_video(src, start=start, max_frames=max_frames, fps=fps, size=_parse_size(size), progress=bar)
            bar.stage_to(f"encoding with {name}")
            data = encode_video(clip, codec=name, quality=quality, progress=bar)
        secs = time.perf_counter() - t0
        atomic_write(dst, data, force=force)
        info = read_info(data)
    except _EXPECTED as e:
        _fail(e)
    t, _, h, w = info.shape
    kbps = 8 * info.bytes * float(info.fps or 0) / t / 1000
    out.print(f"{dst}: {info.codec} q{info.quality} {t} frames {w}x{h} @ {info.fps} fps, {info.bytes} bytes "
              f"{info.bpp:.4f} bpp {kbps:.1f} kbit/s ({secs:.2f} s)", highlight=False, soft_wrap=True)


@video_app.command("decode")
def decode_cmd(
    src: Path = typer.Argument(..., help="input .glc video file"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="output video: .mp4/.mov (lossless RGB H.264), .mkv (FFV1), .y4m; "
                                               "default SRC with .mp4"),
    frames_dir: Optional[Path] = typer.Option(None, "--frames-dir", help="write PNG frames into this folder instead"),
    lossy: bool = typer.Option(False, "--lossy", help="mp4/mkv: H.264 4:4:4 CRF 12 instead of lossless"),
    video: Optional[int] = typer.Option(None, "--video", min=1,
                                        help="which video of a file that holds several (pfnr; 1 = the first added); "
                                             "default the last"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite existing outputs"),
) -> None:
    """Decode a .glc video file to a video file or a folder of PNG frames."""
    from ..video import decode_video, write_frames, write_video

    try:
        if output is not None and frames_dir is not None:
            raise ValueError("give either -o/--output or --frames-dir, not both")
        dst = frames_dir if frames_dir is not None else (output or src.with_suffix(".mp4"))
        if _same(src, dst):
            raise ValueError("output would overwrite the input")
        if frames_dir is None:
            if dst.exists() and not force:
                raise FileExistsError(f"{dst} exists; pass --force to overwrite it")
            from ..video.io import output_plan

            output_plan(dst.suffix.lower(), not lossy, None, 12)  # reject a bad suffix before decoding
        if not src.is_file():
            raise FileNotFoundError(f"no such file: {src}")
        data = src.read_bytes()
        t0 = time.perf_counter()
        with _progress() as bar:
            bar.stage_to("decoding")
            clip = decode_video(data, progress=bar, index=None if video is None else video - 1)
            bar.stage_to(f"writing {dst.name}")
            if frames_dir is not None:
                write_frames(frames_dir, clip, force=force, progress=bar)
            else:
                write_video(dst, clip, lossless=not lossy, force=force, progress=bar)
        secs = time.perf_counter() - t0
    except _EXPECTED as e:
        _fail(e)
    what = f"{clip.num_frames} PNG frames" if frames_dir is not None else f"{clip.num_frames} frames"
    out.print(f"{dst}: {what} {clip.width}x{clip.height} @ {clip.fps} fps ({secs:.2f} s)", highlight=False, soft_wrap=True)


@video_app.command("info")
def info_cmd(src: Path = typer.Argument(..., help=".glc video file")) -> None:
    """Show a video file's codec, frames, size, frame rate, quality, bytes, bpp and bit rate."""
    from ..video import read_info

    try:
        if not src.is_file():
            raise FileNotFoundError(f"no such file: {src}")
        i = read_info(src.read_bytes())
    except _EXPECTED as e:
        _fail(e)
    t = Table(show_header=False, box=None)
    match = {True: "matches installed", False: "DIFFERS from installed", None: "n/a"}[i.weights_match]
    rows = [("file", str(src)), ("codec", f"{i.codec} (id {i.codec_id})"), ("format version", str(i.format_version)),
            ("media", i.media)]
    if i.media == "video":
        frames, c, h, w = i.shape
        fps = i.fps or 0
        rows += [("frames", str(frames)), ("size", f"{w}x{h}, {c} channel{'s' if c > 1 else ''}"),
                 ("fps", f"{i.fps} ({float(fps):.3f})"),
                 ("duration", f"{frames / float(fps):.3f} s" if fps else "n/a")]
        kbps = f", {8 * i.bytes * float(fps) / frames / 1000:.1f} kbit/s" if fps else ""
    else:
        rows += [("shape (C,H,W)", "x".join(map(str, i.shape)))]
        kbps = ""
    rows += [("quality", str(i.quality)), ("bytes", f"{i.bytes} (header {i.header_bytes})"),
             ("bpp", f"{i.bpp:.4f}{kbps}"), ("weights digest", f"{i.weights_digest} ({match})")]
    if i.media == "video":
        from ..video import list_videos

        try:
            videos = list_videos(src.read_bytes())
        except _EXPECTED as e:
            _fail(e)
        if len(videos) > 1:
            rows.append(("videos", f"{len(videos)}: " + ", ".join(
                f"{k + 1}) {t_} frames{'' if c_ == 3 else ' gray'}" for k, (t_, c_) in enumerate(videos))))
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)


@video_app.command("append")
def append_cmd(
    src: Path = typer.Argument(..., help="a .glc file of a codec that holds several videos (pfnr)"),
    clip: Path = typer.Argument(..., help="the clip to add: a video file or a folder of frames"),
    output: Path = typer.Option(..., "-o", "--output", help="the new .glc file (never SRC: the input is not touched)"),
    start: int = typer.Option(0, "--start", min=0, help="first frame of CLIP (0-based)"),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", "-n", min=1, help="add at most this many frames"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite an existing output"),
) -> None:
    """Add a clip to a multi-video file (pfnr); the earlier videos still decode bit-exactly.

    The clip is rescaled to the file's frame size if it differs; decode any video with
    `video decode --video N`.
    """
    from ..video import append_video, list_videos, read_info, read_video

    try:
        if _same(clip, output) or _same(src, output):
            raise ValueError("output would overwrite an input")
        if output.exists() and not force:
            raise FileExistsError(f"{output} exists; pass --force to overwrite it")
        if output.is_dir():
            raise IsADirectoryError(f"{output} is a directory")
        if not src.is_file():
            raise FileNotFoundError(f"no such file: {src}")
        if not clip.exists():
            raise FileNotFoundError(f"no such file or folder: {clip}")
        data = src.read_bytes()
        list_videos(data)  # a damaged or non-video file fails before the clip is read
        t0 = time.perf_counter()
        with _progress() as bar:
            bar.stage_to(f"reading {clip.name}")
            vc = read_video(clip, start=start, max_frames=max_frames, progress=bar)
            bar.stage_to("fitting the new video")
            new = append_video(data, vc, progress=bar)
        secs = time.perf_counter() - t0
        atomic_write(output, new, force=force)
        info = read_info(new)
        n = len(list_videos(new))
    except _EXPECTED as e:
        _fail(e)
    out.print(f"{output}: {info.codec}, {n} videos, {info.bytes} bytes (+{info.bytes - len(data)}) ({secs:.2f} s)",
              highlight=False, soft_wrap=True)
