"""``glocal-codec video encode | decode | info | append``: the video sub-app (mounted by :mod:`.app`).

Same rules as the image commands: outputs are written atomically, an existing output is
refused without ``--force``, the input is never touched, and every expected failure is one
``error:`` line on stderr with exit status 1. Long jobs show a progress bar on a terminal.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.markup import escape

from .common import EXPECTED as _EXPECTED
from .common import MAX_PIXELS_HELP as _MAX_PIXELS_HELP
from .common import check_stdout_for_data, err, is_stdio, out, write_stdout
from .common import fail as _fail
from .common import same_file as _same
from .progress import Reporter

__all__ = ["video_app"]

video_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Video: encode a clip (video file or frames folder) into a .glc file and back.")


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


class _Calibrated(Exception):
    """Raised from the progress callback once a probe fit has been timed (see :func:`_epochs_for`)."""


def _fitted_codecs() -> list[str]:
    from ..codecs import FittedEncoder, list_codecs, open_codec

    return [c.name for c in list_codecs(media="video") if isinstance(open_codec(c.name), FittedEncoder)]


def _require_fitted(name: str) -> None:
    from ..codecs import FittedEncoder, open_codec

    if not isinstance(open_codec(name), FittedEncoder):
        raise ValueError(f"--epochs / --minutes set the fitting budget of the codecs that fit a network to "
                         f"the clip ({', '.join(_fitted_codecs())}); {name} does not")


@contextmanager
def _fitting_budget(name: str, epochs: int | None) -> Iterator[FittedEncoder | None]:
    """Set codec ``name``'s fitting budget for the duration (restored after: instances are shared);
    yields the codec if it fits a network to the clip, else None."""
    from ..codecs import FittedEncoder, open_codec

    c = open_codec(name)
    if not isinstance(c, FittedEncoder):
        if epochs is not None:
            _require_fitted(name)
        yield None
        return
    old = c.epochs
    if epochs is not None:
        c.epochs = epochs
    try:
        yield c
    finally:
        c.epochs = old


def _epochs_for(minutes: float, clip, name: str, quality: int | None, bar: Reporter) -> int:  # noqa: ANN001
    """Epochs that fit in ``minutes``: a probe fit at the codec's own number of epochs is timed over
    its first steps (a few seconds, the first step excluded), then stopped; fitting steps are
    proportional to epochs, so the budget follows. The final coding (seconds) is not counted."""
    from ..video import encode_video

    with _fitting_budget(name, None) as c:
        assert c is not None
        base = c.epochs
    seen: dict[str, float] = {}

    def probe(done: int, total: int | None, stats: str | None = None) -> None:
        now = time.perf_counter()
        if "t1" not in seen:
            seen.update(t1=now, d1=done)
            return
        if total and (now - seen["t1"] >= 3.0 or done >= total):
            seen.update(per_step=(now - seen["t1"]) / max(1, done - seen["d1"]), total=total)
            raise _Calibrated

    bar.stage(f"timing {name}'s fitting steps")
    t0 = time.perf_counter()
    try:
        encode_video(clip, codec=name, quality=quality, progress=probe)
    except _Calibrated:
        pass
    if "per_step" not in seen:  # the whole fit took less than two steps: no need to budget
        return base
    left = max(0.0, minutes * 60 - (time.perf_counter() - t0))
    steps = left / seen["per_step"]
    return max(1, math.floor(base * steps / seen["total"]))


@video_app.command("encode")
def encode_cmd(
    src: Path = typer.Argument(..., help="input clip: a video file (mp4, mkv, y4m, ...) or a folder of PNG/JPEG frames"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="output .glc, or - for stdout (default: SRC with .glc)"),
    codec: Optional[str] = typer.Option(None, "--codec", "-c", help="video codec (see `glocal-codec list`); default x264"),
    quality: Optional[int] = typer.Option(None, "--quality", "-q", help="quality level (default: the codec's)"),
    start: int = typer.Option(0, "--start", min=0, help="first frame to encode (0-based)"),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", "-n", min=1, help="encode at most this many frames"),
    fps: Optional[str] = typer.Option(None, "--fps", help="frame rate, e.g. 25 or 30000/1001 (default: the file's; 25 for a folder)"),
    size: Optional[str] = typer.Option(None, "--size", help="resize every frame to WxH first, e.g. 128x72"),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1,
                                         help="codecs fitted per clip (hnerv, nirvana, pfnr): passes over the clip "
                                              "(more: better quality, slower)"),
    minutes: Optional[float] = typer.Option(None, "--minutes",
                                            help="codecs fitted per clip: fit for about this long (the epochs are "
                                                 "chosen from a few timed steps)"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite an existing output"),
    quiet: bool = typer.Option(False, "--quiet", help="print errors only"),
) -> None:
    """Encode a video file or a folder of frames into a .glc file.

    Fitting codecs report their progress, ETA and fitting PSNR: a live bar on a terminal, else a
    line every 10 s (GLOCAL_CODEC_PROGRESS_SECONDS).
    """
    from ..util import atomic_write
    from ..video import DEFAULT_VIDEO_CODEC, encode_video, read_info, read_video

    try:
        if is_stdio(src):
            raise ValueError("video encode reads a video file or a folder of frames, not stdin")
        dst = output or _default_glc(src)
        if epochs is not None and minutes is not None:
            raise ValueError("give --epochs or --minutes, not both")
        if minutes is not None and not minutes > 0:
            raise ValueError(f"--minutes must be positive, got {minutes}")
        if _same(src, dst):
            raise ValueError("output would overwrite the input")
        if is_stdio(dst):
            check_stdout_for_data()
        elif dst.exists() and not force:
            raise FileExistsError(f"{dst} exists; pass --force to overwrite it")
        if dst.is_dir():
            raise IsADirectoryError(f"{dst} is a directory")
        if not src.exists():
            raise FileNotFoundError(f"no such file or folder: {src}")
        name = codec or DEFAULT_VIDEO_CODEC
        if epochs is not None or minutes is not None:
            _require_fitted(name)  # a codec that fits nothing fails here, before the clip is read
        t0 = time.perf_counter()
        with Reporter(err, quiet=quiet) as bar:
            bar.stage(f"reading {src.name}")
            clip = read_video(src, start=start, max_frames=max_frames, fps=fps, size=_parse_size(size), progress=bar)
            if minutes is not None:
                epochs = _epochs_for(minutes, clip, name, quality, bar)
                bar.print(f"{escape(name)}: {epochs} epochs fit in about {minutes:g} min")
            with _fitting_budget(name, epochs) as fitted:
                bar.stage(f"fitting {name} ({fitted.epochs} epochs)" if fitted is not None else f"encoding with {name}")
                data = encode_video(clip, codec=name, quality=quality, progress=bar)
        secs = time.perf_counter() - t0
        if is_stdio(dst):
            write_stdout(data)
        else:
            atomic_write(dst, data, force=force)
        info = read_info(data)
    except _EXPECTED as e:
        _fail(e)
    if quiet:
        return
    t, _, h, w = info.shape
    kbps = 8 * info.bytes * float(info.fps or 0) / t / 1000
    (err if is_stdio(dst) else out).print(escape(f"{dst}: {info.codec} q{info.quality} {t} frames {w}x{h} @ {info.fps} fps, {info.bytes} bytes "
                     f"{info.bpp:.4f} bpp {kbps:.1f} kbit/s ({secs:.2f} s)"), highlight=False, soft_wrap=True)


def _refuse_large_clip(src: Path, max_pixels: int | None, video: int | None) -> None:
    """The per-clip pixel limit, from the header of ``src``, without torch or PyAV: a bomb is
    refused at once. Anything else wrong with the file is reported by the decode itself, which
    checks the limit again (and, with ``--video``, for the picked video's own frame count)."""
    from ..api import MAX_DECODE_PIXELS, check_clip_pixels
    from ..bitstream import BitstreamError, MediaKind, read_container

    if video is not None or is_stdio(src) or not src.is_file():
        return
    try:
        c = read_container(src.read_bytes())  # the container only: no codec module (PyAV) either
    except (BitstreamError, ValueError, OSError):
        return
    if c.media is MediaKind.VIDEO:
        t, _, h, w = c.shape
        check_clip_pixels(t, h, w, MAX_DECODE_PIXELS if max_pixels is None else (max_pixels or None))


@video_app.command("decode")
def decode_cmd(
    src: Path = typer.Argument(..., help="input .glc video file"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="output video: .mp4, .mov or .mkv (H.264 4:2:0, plays everywhere), "
                                               ".y4m (raw), - for a y4m stream on stdout; default NAME.decoded.mp4 "
                                               "beside SRC"),
    frames_dir: Optional[Path] = typer.Option(None, "--frames-dir", help="write PNG frames into this folder instead"),
    lossless: bool = typer.Option(False, "--lossless",
                                  help="bit-exact RGB: .mp4/.mov H.264 RGB (QP 0, High 4:4:4: few players), "
                                       ".mkv FFV1"),
    video: Optional[int] = typer.Option(None, "--video", min=1,
                                        help="which video of a file that holds several (pfnr; 1 = the first added); "
                                             "default the last"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite existing outputs"),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=0,
                                             help=f"refuse clips of more than this many pixels (frames x width x "
                                                  f"height, from the header; default {_MAX_PIXELS_HELP}, as for "
                                                  "images); 0: no limit"),
    quiet: bool = typer.Option(False, "--quiet", help="print errors only"),
) -> None:
    """Decode a .glc video file to a video file (playable H.264 by default) or a folder of PNG frames.

    x264, x265 and av1 files are written as they are decoded (a few frames in memory).
    """
    try:
        _refuse_large_clip(src, max_pixels, video)  # before torch and PyAV load (seconds, ~650 MB)
        from ..video import decode_video_frames, write_frames, write_video
        from ..video.io import PLAYABLE, output_plan

        if output is not None and frames_dir is not None:
            raise ValueError("give either -o/--output or --frames-dir, not both")
        dst = frames_dir if frames_dir is not None else (output or src.parent / (src.stem + ".decoded.mp4"))
        if _same(src, dst):
            raise ValueError("output would overwrite the input")
        to_stdout = frames_dir is None and is_stdio(dst)
        options: dict = {"lossless": True} if lossless else dict(PLAYABLE)
        if to_stdout or dst.suffix.lower() == ".y4m":
            options = {}  # raw Y'CbCr 4:4:4 either way
        if to_stdout:
            check_stdout_for_data()
        elif frames_dir is None:
            if dst.exists() and not force:
                raise FileExistsError(f"{dst} exists; pass --force to overwrite it")
            # a bad suffix fails here, before anything is decoded
            output_plan(dst.suffix.lower(), options.get("lossless", True), options.get("pix_fmt"), options.get("crf", 12))
        if not src.is_file():
            raise FileNotFoundError(f"no such file: {src}")
        data = src.read_bytes()
        t0 = time.perf_counter()
        with Reporter(err, quiet=quiet) as bar:
            kw = {} if max_pixels is None else {"max_pixels": max_pixels or None}  # 0: no limit
            # checked now (header, limit); the frames are decoded as the writer takes them
            clip = decode_video_frames(data, index=None if video is None else video - 1, progress=bar, **kw)
            bar.stage(f"decoding to {dst.name}" if not to_stdout else "decoding")
            if frames_dir is not None:
                write_frames(frames_dir, clip, force=force, progress=bar)
            elif to_stdout:  # a .y4m stream, e.g. for `| mpv -` or `| ffmpeg -i - ...`
                import tempfile

                with tempfile.TemporaryDirectory(prefix="glocal-") as tmp:
                    with open(write_video(Path(tmp) / "out.y4m", clip, progress=bar), "rb") as f:
                        while chunk := f.read(1 << 22):
                            write_stdout(chunk)
            else:
                write_video(dst, clip, force=force, progress=bar, **options)
        secs = time.perf_counter() - t0
    except _EXPECTED as e:
        _fail(e)
    if quiet:
        return
    what = f"{clip.num_frames} PNG frames" if frames_dir is not None else f"{clip.num_frames} frames"
    if to_stdout:
        err.print(escape(f"(stdout): {what} {clip.width}x{clip.height} @ {clip.fps} fps, y4m ({secs:.2f} s)"),
                  highlight=False, soft_wrap=True)
        return
    kind = "" if frames_dir is not None or "pix_fmt" not in options else ", H.264 4:2:0"
    if kind and (clip.width % 2 or clip.height % 2):
        kind += (f" padded to {clip.width + clip.width % 2}x{clip.height + clip.height % 2} (4:2:0 needs even sizes; "
                 "--lossless keeps the size)")
    elif lossless and frames_dir is None and dst.suffix.lower() != ".y4m":
        kind = ", lossless RGB"
    out.print(escape(f"{dst}: {what} {clip.width}x{clip.height} @ {clip.fps} fps{kind} ({secs:.2f} s)"),
              highlight=False, soft_wrap=True)


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
    from rich.table import Table

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
    from ..util import atomic_write
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
        with Reporter(err) as bar:
            bar.stage(f"reading {clip.name}")
            vc = read_video(clip, start=start, max_frames=max_frames, progress=bar)
            bar.stage("fitting the new video")
            new = append_video(data, vc, progress=bar)
        secs = time.perf_counter() - t0
        atomic_write(output, new, force=force)
        info = read_info(new)
        n = len(list_videos(new))
    except _EXPECTED as e:
        _fail(e)
    out.print(f"{output}: {info.codec}, {n} videos, {info.bytes} bytes (+{info.bytes - len(data)}) ({secs:.2f} s)",
              highlight=False, soft_wrap=True)
