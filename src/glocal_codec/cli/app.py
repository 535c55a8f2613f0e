"""``glocal-codec encode | decode | info | list | train`` (and ``eval``, ``bdrate``, ``video ...``).

Every expected failure (bad file, bad image, existing output, unknown codec, ...) is printed as
one ``error:`` line on stderr with exit status 1 -- never a traceback. With several inputs, each
failed file gets its own ``error:`` line, the others still finish, and the exit status is 1.

Start-up is kept short: this module imports typer and rich only. torch, the codecs, PyAV and
the evaluation code are imported inside the commands that use them, so ``--help``,
``--version`` and every ``... --help`` answer at once; ``list``, ``info`` and classical-codec
``encode`` / ``decode`` import no torch either (tests/test_light_import.py,
benchmarks/cli_startup.py).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape

from .. import __version__
from .batch import GLC_SUFFIXES, IMAGE_SUFFIXES, Job, plan, run
from .common import EXPECTED as _EXPECTED
from .common import MAX_PIXELS_HELP
from .common import check_stdout_for_data, err, is_stdio, out, print_json, read_input
from .common import fail as _fail
from .common import same_file as _same_file
from .progress import Reporter

__all__ = ["app", "main"]

#: Shown in help texts without importing the API, and marked by ``list`` without importing the
#: video API (torch, PyAV); tests/cli checks they match ``glocal_codec.api.DEFAULT_CODEC``,
#: ``MAX_DECODE_PIXELS`` and ``glocal_codec.video.DEFAULT_VIDEO_CODEC``.
_DEFAULT_CODEC_HELP = "msh"
_MAX_PIXELS_HELP = MAX_PIXELS_HELP
_DEFAULT_VIDEO_CODEC = "x264"

#: A classical codec's own file: Pillow format -> suffixes a viewer recognises for the stored stream
#: (JPEG 2000 is stored as a raw codestream, which is .j2k, not the boxed .jp2).
_NATIVE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg"), "WEBP": (".webp",), "AVIF": (".avif",), "JPEG2000": (".j2k", ".j2c", ".jpc"),
}

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Neural and classical image codecs with real .glc files "
                       "(video codecs: `glocal-codec video --help`).")


def _version(value: bool) -> None:
    if value:
        out.print(f"glocal-codec {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Neural and classical image codecs with real .glc files."""


# -- shared pieces --------------------------------------------------------------------------------
def _messages(to_stdout: bool):  # noqa: ANN202 - a rich Console
    """Where a command's report goes: stdout, or stderr when stdout carries data or JSON."""
    return err if to_stdout else out


def _parse_size(text: str) -> int:
    """``40k`` -> 40000, ``40KiB`` -> 40960, ``1.5M`` -> 1500000, ``30000`` -> 30000 (bytes)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)(i?)b?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"--size must look like 40k, 1.5M or 30000 (bytes), got {text!r}")
    base = 1024 if m.group(3) else 1000
    n = float(m.group(1)) * base ** " kmg".index(m.group(2).lower() or " ")
    if n < 1:
        raise ValueError(f"--size must be at least 1 byte, got {text!r}")
    return int(n)


def _summary(verb: str, results: list[dict[str, Any]], failed: int, secs: float) -> str:
    n = len(results)
    text = f"{verb} {n} file{'s' if n != 1 else ''}"
    if results and "bytes" in results[0]:
        total = sum(r["bytes"] for r in results)
        mean_bpp = sum(r["bpp"] for r in results) / n
        text += f": {total:,} bytes, mean {mean_bpp:.4f} bpp"
    text += f" ({secs:.2f} s)"
    if failed:
        text += f"; {failed} failed"
    return text


def _finish_batch(command: str, verb: str, results: list[dict[str, Any]], failures: list, secs: float, *,
                  json_out: bool, quiet: bool) -> None:
    if json_out:
        print_json({"command": command, "files": results,
                    "failed": [{"input": str(f.job.src), "error": f.message} for f in failures],
                    "summary": _summary_dict(results, len(failures), secs)})
    elif not quiet:
        out.print(escape(_summary(verb, results, len(failures), secs)), highlight=False, soft_wrap=True)
    if failures:
        names = ", ".join(str(f.job.src) for f in failures)
        _fail(f"{len(failures)} of {len(results) + len(failures)} files failed: {names}")


def _summary_dict(results: list[dict[str, Any]], failed: int, secs: float) -> dict[str, Any]:
    d: dict[str, Any] = {"files": len(results), "failed": failed, "seconds": round(secs, 3)}
    if results and "bytes" in results[0]:
        d["bytes"] = sum(r["bytes"] for r in results)
        d["mean_bpp"] = sum(r["bpp"] for r in results) / len(results)
    return d


def _label(path: str) -> str:
    return "(stdout)" if is_stdio(path) else path


def _write(dst: Path, data: bytes, *, force: bool, mkdir: bool) -> None:
    from ..util import atomic_write

    if is_stdio(dst):
        from .common import write_stdout

        write_stdout(data)
    else:
        atomic_write(dst, data, force=force, mkdir=mkdir)


def _check_output(src: Path, dst: Path, force: bool) -> None:
    if _same_file(src, dst):
        raise ValueError("output would overwrite the input")
    if is_stdio(dst):
        check_stdout_for_data()
    elif dst.exists() and not force:
        raise FileExistsError(f"{dst} exists; pass --force to overwrite it")


# -- encode ---------------------------------------------------------------------------------------
def _native_suffixes(codec: str) -> tuple[str, ...]:
    """The suffixes of a classical codec's own files (``()`` for the other codecs)."""
    from ..codecs import CODEC_TABLE, open_codec

    row = next((r for r in CODEC_TABLE if r.name == codec), None)
    if row is not None and row.target is not None and not row.target.startswith("classic:"):
        return ()  # a built-in codec outside classic.py: not opened here (it may import torch)
    from ..codecs.classic import PillowImageCodec

    c = open_codec(codec)
    return _NATIVE_SUFFIXES.get(c.pil_format, ()) if isinstance(c, PillowImageCodec) else ()


def _encode_target(x: Any, codec: Any, limit: int, refine: int, device: Optional[str], what: str,
                   progress: Any = None) -> bytes:
    """The file of the highest quality level whose size is at most ``limit`` bytes (a binary search
    over the levels: higher levels give bigger files). ``codec``: a name or a codec instance."""
    from .. import api
    from ..codecs import open_codec

    c = open_codec(codec) if isinstance(codec, str) else codec
    codec = c.name
    if c.media != "image":
        raise ValueError(f"{codec} is a {c.media} codec; use `glocal-codec video encode`")
    levels = sorted(c.qualities)
    lo, hi, best, smallest = 0, len(levels) - 1, None, None
    while lo <= hi:
        mid = (lo + hi) // 2
        data = api.encode(x, codec=c, quality=levels[mid], device=device, refine=refine, progress=progress)
        if len(data) <= limit:
            best, lo = data, mid + 1
        else:
            if mid == 0:
                smallest = len(data)
            hi = mid - 1
    if best is None:
        raise ValueError(f"{codec}: even quality {levels[0]} gives {smallest:,} bytes, more than the target {what} "
                         f"({limit:,} bytes); try another codec or a larger target")
    return best


def _with_options(name: str, dictionary: Optional[Path], texture: Optional[float] = None) -> Any:
    """``name``'s codec built with its encoder options (``--dictionary``: clc; ``--texture``: dualrep);
    None without options (the registered instance)."""
    given = {k: v for k, v in (("dictionary", dictionary), ("texture", texture)) if v is not None}
    if not given:
        return None
    from ..codecs import codec_class

    owners = {"dictionary": "clc", "texture": "dualrep"}
    factory = codec_class(name)
    try:
        return factory(**given)
    except TypeError:
        opt = next(iter(given))
        raise ValueError(f"--{opt} is an option of {owners[opt]}; {name} takes no {opt}") from None


def _with_preset(codec: Any, preset: str) -> Any:
    """``codec`` (a name or a configured instance) set to an encoder preset (``--preset``)."""
    from ..codecs import Presets, list_codecs, open_codec

    c = open_codec(codec) if isinstance(codec, str) else codec
    if not isinstance(c, Presets):
        having = [i.name for i in list_codecs(media="image") if isinstance(open_codec(i.name), Presets)]
        raise ValueError(f"--preset: {c.name} has no encoder presets (codecs with presets: {', '.join(having)})")
    if preset not in c.presets:
        raise ValueError(f"--preset: {c.name}'s presets are {', '.join(c.presets)}; {preset!r} is not one")
    return c.with_preset(preset)


@app.command()
def encode(
    inputs: List[Path] = typer.Argument(..., metavar="INPUT...",
                                        help="images (PNG, JPEG, WebP, TIFF, ...), folders of images, or - for stdin"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="output .glc file, - for stdout, or a folder (default: beside each "
                                               "input, .glc instead of its suffix; stdin: stdout)"),
    codec: Optional[str] = typer.Option(None, "--codec", "-c",
                                        help=f"codec name (default {_DEFAULT_CODEC_HELP}; see `glocal-codec list`)"),
    quality: Optional[int] = typer.Option(None, "--quality", "-q", help="quality level (default: the codec's)"),
    bpp: Optional[float] = typer.Option(None, "--bpp",
                                        help="target rate: the highest quality level whose file (header included) "
                                             "has at most this many bits per pixel"),
    size: Optional[str] = typer.Option(None, "--size",
                                       help="target file size, e.g. 40k, 1.5M, 40KiB or 30000 bytes: the highest "
                                            "quality level whose file fits"),
    refine: int = typer.Option(0, "--refine", min=0,
                               help="encoder-side latent refinement steps (0: off; ~30 is a good start): "
                                    "a smaller file at equal quality, slower encode, same decoder. "
                                    "Codecs with 'refine' in `glocal-codec list --long`"),
    export: bool = typer.Option(False, "--export",
                                help="classical codecs: write the codec's own file (.jpg, .webp, .avif, .j2k) "
                                     "that any viewer opens, byte-identical to the stream inside the .glc "
                                     "(also chosen by -o with such a suffix)"),
    dictionary: Optional[Path] = typer.Option(None, "--dictionary",
                                              help="clc: a reference dictionary file (`glocal-codec clc "
                                                   "build-dictionary`) instead of the built-in one"),
    texture: Optional[float] = typer.Option(None, "--texture", min=0.0, max=1.0,
                                            help="dualrep: share of the texture's bits to send, 0 (explicit part "
                                                 "only) .. 1 (default: all)"),
    preset: Optional[str] = typer.Option(None, "--preset",
                                         help="encoder preset of a codec that fits each image (overfit: fast, "
                                              "medium, slow): encode time for quality, same decoder"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="folders: include their sub-folders"),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="files encoded at the same time (threads)"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or auto"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite existing outputs"),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels",
                                             help=f"refuse larger images, read from the file header (default "
                                                  f"{_MAX_PIXELS_HELP}, as decode); 0: no limit"),
    json_out: bool = typer.Option(False, "--json", help="print the results as JSON on stdout"),
    quiet: bool = typer.Option(False, "--quiet", help="print errors only"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="a line per file in a batch"),
) -> None:
    """Encode images into .glc files (or, for classical codecs, their own .jpg / .webp / ... files).

    \b
    glocal-codec encode photo.png                      # photo.glc, default codec
    glocal-codec encode photos/ -r -o encoded/         # a folder (and its sub-folders)
    glocal-codec encode photo.png -c webp --size 40k   # the best quality that fits in 40 kB
    cat photo.png | glocal-codec encode - -o - > photo.glc
    glocal-codec encode photo.png -c dualrep -q 2 --texture 0.7   # < 0.05 bpp, 70 % of the texture
    glocal-codec encode photo.png -c overfit -q 3 --preset medium # fitted to the image: minutes
    """
    name = codec or _DEFAULT_CODEC_HELP
    try:
        if sum(v is not None for v in (quality, bpp, size)) > 1:
            raise ValueError("give one of --quality, --bpp and --size")
        if bpp is not None and bpp <= 0:
            raise ValueError(f"--bpp must be positive, got {bpp}")
        limit_bytes = _parse_size(size) if size is not None else None
        if codec is None:
            from ..api import DEFAULT_CODEC

            name = DEFAULT_CODEC
        native = _native_suffixes(name)
        configured = _with_options(name, dictionary, texture)
        if preset is not None:
            configured = _with_preset(configured or name, preset)
        if export and not native:
            raise ValueError(f"--export writes a classical codec's own file; {name} files exist only as .glc "
                             "(classical codecs: jpeg, webp, avif, jpeg2000)")

        def out_name(src: Path) -> str:
            suffix = native[0] if export else ".glc"
            return src.stem + (".encoded" if (src.parent / (src.stem + suffix)) == src else "") + suffix

        jobs, batch = plan(inputs, output, suffixes=IMAGE_SUFFIXES, recursive=recursive, name=out_name,
                           what="image")
        if json_out and any(is_stdio(j.dst) for j in jobs):
            raise ValueError("--json prints on stdout, which -o - already uses; give -o FILE")
        for j in jobs:
            suffix = j.dst.suffix.lower()
            from ..imageio import OUTPUT_FORMATS

            if not is_stdio(j.dst) and suffix not in native and suffix != ".glc" and \
                    (suffix in OUTPUT_FORMATS or suffix in IMAGE_SUFFIXES):
                hint = f" ({name}'s own files: {', '.join(native)})" if native else ""
                raise ValueError(f"{j.dst}: encode writes .glc files, or a classical codec's own file with "
                                 f"--export{hint}; {suffix} is not one of them")
    except _EXPECTED as e:
        _fail(e)

    def work(job: Job, progress: Any = None) -> dict[str, Any]:
        from .. import api
        from ..bitstream import read_container

        _check_output(job.src, job.dst, force)
        if not is_stdio(job.src) and not job.src.is_file():
            raise FileNotFoundError(f"no such file: {job.src}")
        src: Any = read_input(job.src) if is_stdio(job.src) else job.src  # a path: errors name the file
        t0 = time.perf_counter()
        limit_px = api.MAX_DECODE_PIXELS if max_pixels is None else (max_pixels or None)  # 0: no limit
        x = api.codec_input(src, name, limit_px)  # H x W x C uint8 for a classical codec (no torch), else a tensor
        h, w, channels = (int(v) for v in (x.shape[:3] if x.ndim == 3 else (x.shape[2], x.shape[3], x.shape[1])))
        if limit_bytes is not None or bpp is not None:
            limit = limit_bytes if limit_bytes is not None else int(bpp * h * w / 8)  # type: ignore[operator]
            what = size if size is not None else f"{bpp} bpp"
            data = _encode_target(x, configured or name, limit, refine, device, str(what), progress)
        else:
            data = api.encode(x, codec=configured or name, quality=quality, device=device, refine=refine, max_pixels=limit_px,
                              progress=progress)
        secs = time.perf_counter() - t0
        info = api.read_info(data)
        is_native = export or (job.dst.suffix.lower() in native)
        payload = read_container(data).streams[0] if is_native else data
        _write(job.dst, payload, force=force, mkdir=batch)
        return {"input": str(job.src), "output": str(job.dst), "codec": info.codec, "quality": info.quality,
                "width": w, "height": h, "channels": channels,
                "format": (job.dst.suffix.lstrip(".").lower() or "glc") if is_native else "glc",
                "bytes": len(payload), "bpp": 8.0 * len(payload) / (h * w), "glc_bytes": info.bytes,
                "seconds": round(secs, 4)}

    def line(r: dict[str, Any]) -> str:
        return (f"{_label(r['output'])}: {r['codec']} q{r['quality']} {r['width']}x{r['height']} {r['bytes']} bytes "
                f"{r['bpp']:.4f} bpp ({r['seconds']:.2f} s)")

    to_stdout = any(is_stdio(j.dst) for j in jobs)
    console = _messages(to_stdout or json_out)
    steps = (f", {refine} refinement steps" if refine else "") + (f", preset {preset}" if preset else "")
    with Reporter(err, quiet=quiet) as rep:
        if not batch:
            rep.stage(f"encoding {jobs[0].src.name if not is_stdio(jobs[0].src) else 'stdin'} with {name}{steps}")
            try:
                r = work(jobs[0], rep)  # a bar if the encoder reports steps (--refine, a fitting codec)
            except _EXPECTED as e:
                _fail(e)
        else:
            results, failures, secs = run(jobs, work, reporter=rep, workers=workers,
                                          stage=f"encoding {len(jobs)} files with {name}{steps}",
                                          on_done=(lambda r: rep.print(escape(line(r)))) if verbose else None)
    if batch:
        _finish_batch("encode", "encoded", results, failures, secs, json_out=json_out, quiet=quiet)
    elif json_out:
        print_json(r)
    elif not quiet:
        console.print(escape(line(r)), highlight=False, soft_wrap=True)


# -- decode ---------------------------------------------------------------------------------------
@app.command()
def decode(
    inputs: List[Path] = typer.Argument(..., metavar="INPUT...", help=".glc files, folders of them, or - for stdin"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="output image (.png, .jpg, .webp, .tif, .bmp, .ppm: the suffix "
                                               "names the format), - for stdout, or a folder (default: NAME.decoded.png "
                                               "beside each input; stdin: stdout)"),
    fmt: Optional[str] = typer.Option(None, "--format",
                                      help="png, jpeg, webp, tiff, bmp or ppm: for stdout and default names "
                                           "(default png)"),
    dictionary: Optional[Path] = typer.Option(None, "--dictionary",
                                              help="clc files coded with a user dictionary: that dictionary file"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="folders: include their sub-folders"),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="files decoded at the same time (threads)"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or auto"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite existing outputs"),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels",
                                             help=f"refuse larger images (decompression-bomb guard; default "
                                                  f"{_MAX_PIXELS_HELP}); 0: no limit"),
    scale: Optional[float] = typer.Option(None, "--scale",
                                          help="render at this scale of the coded size (gblsr files: 2 = "
                                               "super-resolution, 0.5 = band-limited half size)"),
    drop: Optional[float] = typer.Option(None, "--drop", min=0.0, max=1.0,
                                         help="simulate this fraction of lost coded symbols, restored by the codec "
                                              "(vq files: indices filled in by its prior)"),
    seed: int = typer.Option(0, "--seed", help="with --drop: which positions are lost"),
    json_out: bool = typer.Option(False, "--json", help="print the results as JSON on stdout"),
    quiet: bool = typer.Option(False, "--quiet", help="print errors only"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="a line per file in a batch"),
) -> None:
    """Decode .glc files to images; each file says which codec made it.

    \b
    glocal-codec decode photo.glc                  # photo.decoded.png
    glocal-codec decode photo.glc -o photo.webp    # lossless WebP (JPEG: quality 95, 4:4:4)
    glocal-codec decode photo.glc -o big.png --scale 2   # gblsr files: any output scale
    glocal-codec decode p.glc -o p.png --drop 0.2 --seed 7   # vq files: 20 % indices lost, restored
    glocal-codec decode encoded/ -r -o decoded/
    cat photo.glc | glocal-codec decode - > photo.png
    """
    from ..imageio import OUTPUT_FORMATS, output_format

    try:
        pil_format = output_format(f"x.{fmt.lower().lstrip('.')}") if fmt is not None else None
        default_suffix = next(s for s, f in OUTPUT_FORMATS.items() if f == (pil_format or "PNG"))
        jobs, batch = plan(inputs, output, suffixes=GLC_SUFFIXES, recursive=recursive,
                           name=lambda src: src.stem + ".decoded" + default_suffix, what=".glc file")
        configured = _with_options("clc", dictionary) if dictionary is not None else None
        if json_out and any(is_stdio(j.dst) for j in jobs):
            raise ValueError("--json prints on stdout, which -o - already uses; give -o FILE")
        for j in jobs:
            if not is_stdio(j.dst):
                f = output_format(j.dst)  # an unknown suffix fails here, before anything is decoded
                if pil_format is not None and f != pil_format:
                    raise ValueError(f"--format {fmt} but {j.dst} names {f}")
    except _EXPECTED as e:
        _fail(e)

    def work(job: Job) -> dict[str, Any]:
        from .. import api
        from ..imageio import image_bytes, write_image

        _check_output(job.src, job.dst, force)
        data = read_input(job.src)
        t0 = time.perf_counter()
        kw = {} if max_pixels is None else {"max_pixels": max_pixels or None}  # 0: no limit
        if configured is not None:  # --dictionary: decode clc files with it (other codecs' files as usual)
            from ..bitstream import read_container
            from ..codecs import codec_name

            if codec_name(read_container(data).codec_id) == configured.name:
                kw["codec"] = configured
        if drop is not None:
            kw.update(drop=drop, seed=seed)
        img = api.decode(data, device=device, scale=scale, **kw)
        secs = time.perf_counter() - t0
        f = pil_format or ("PNG" if is_stdio(job.dst) else output_format(job.dst))
        if is_stdio(job.dst):
            _write(job.dst, image_bytes(img, f), force=force, mkdir=False)
        else:
            if batch:
                job.dst.parent.mkdir(parents=True, exist_ok=True)
            write_image(job.dst, img, force=force, fmt=f)
        info = api.read_info(data)
        return {"input": str(job.src), "output": str(job.dst), "codec": info.codec, "quality": info.quality,
                "width": img.width, "height": img.height, "mode": img.mode, "format": f.lower(),
                "glc_bytes": info.bytes, "seconds": round(secs, 4)}

    def line(r: dict[str, Any]) -> str:
        return f"{_label(r['output'])}: {r['width']}x{r['height']} {r['mode']} ({r['seconds']:.2f} s)"

    to_stdout = any(is_stdio(j.dst) for j in jobs)
    console = _messages(to_stdout or json_out)
    with Reporter(err, quiet=quiet) as rep:
        if not batch:
            rep.stage(f"decoding {jobs[0].src.name if not is_stdio(jobs[0].src) else 'stdin'}")
            try:
                r = work(jobs[0])
            except _EXPECTED as e:
                _fail(e)
        else:
            results, failures, secs = run(jobs, work, reporter=rep, workers=workers,
                                          stage=f"decoding {len(jobs)} files",
                                          on_done=(lambda r: rep.print(escape(line(r)))) if verbose else None)
    if batch:
        _finish_batch("decode", "decoded", results, failures, secs, json_out=json_out, quiet=quiet)
    elif json_out:
        print_json(r)
    elif not quiet:
        console.print(escape(line(r)), highlight=False, soft_wrap=True)


# -- info -----------------------------------------------------------------------------------------
def _info_dict(src: Path, i: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"file": str(src), "codec": i.codec, "codec_id": i.codec_id,
                         "format_version": i.format_version, "media": i.media, "shape": list(i.shape),
                         "quality": i.quality, "bytes": i.bytes, "header_bytes": i.header_bytes, "bpp": i.bpp,
                         "weights_digest": i.weights_digest, "weights_match": i.weights_match}
    if i.media == "video":
        d.update(frames=i.frames, fps=float(i.fps) if i.fps else None, fps_exact=str(i.fps) if i.fps else None)
    else:
        d.update(channels=i.shape[0], height=i.shape[1], width=i.shape[2])
    if i.details:
        d["details"] = dict(i.details)
    return d


@app.command()
def info(
    src: Path = typer.Argument(..., help=".glc file (image or video), or - for stdin"),
    json_out: bool = typer.Option(False, "--json", help="print the facts as JSON"),
) -> None:
    """Show a file's codec, format version, shape, quality, bytes, bpp and weights digest."""
    from rich.table import Table

    from .. import api

    try:
        i = api.read_info(read_input(src))
    except _EXPECTED as e:
        _fail(e)
    if json_out:
        print_json(_info_dict(src, i))
        return
    t = Table(show_header=False, box=None)
    match = {True: "matches installed", False: "DIFFERS from installed", None: "n/a"}[i.weights_match]
    rows = [
        ("file", str(src)), ("codec", f"{i.codec} (id {i.codec_id})"), ("format version", str(i.format_version)),
        ("media", i.media), ("shape (T,C,H,W)" if i.media == "video" else "shape (C,H,W)", "x".join(map(str, i.shape))),
        ("quality", str(i.quality)), ("bytes", f"{i.bytes} (header {i.header_bytes})"), ("bpp", f"{i.bpp:.4f}"),
        ("weights digest", f"{i.weights_digest} ({match})"),
        *i.details.items(),
    ]
    for k, v in rows:
        t.add_row(k, escape(v))
    out.print(t)


# -- list -----------------------------------------------------------------------------------------
def _short(description: str) -> str:
    """The first clause of a codec's description (``"JPEG (libjpeg via Pillow), 4:2:0"`` -> ``"JPEG
    (libjpeg via Pillow)"``)."""
    cut = len(description)
    depth = 0
    for k, ch in enumerate(description):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch in ",;:":
            cut = k
            break
    return description[:cut].strip()


@app.command("list")
def list_cmd(
    long: bool = typer.Option(False, "--long", "-l", help="every detail: ids, all levels, full descriptions"),
    media: Optional[str] = typer.Option(None, "--media", help="image or video only"),
    json_out: bool = typer.Option(False, "--json", help="print the codecs as JSON"),
) -> None:
    """List the codecs: media, quality levels, default level, weights, refinement.

    `*` marks the default codec of `encode` (image) and of `video encode`.
    """
    from rich.table import Table

    from ..api import DEFAULT_CODEC
    from ..codecs import list_codecs

    try:
        if media not in (None, "image", "video"):
            raise ValueError(f"--media must be image or video, got {media!r}")
        infos = list_codecs(media=media)
    except _EXPECTED as e:
        _fail(e)
    defaults = {DEFAULT_CODEC, _DEFAULT_VIDEO_CODEC}

    def weights(c: Any) -> str | None:
        return ("ok" if c.weights_available else "missing") if c.has_weights else None

    def levels(c: Any) -> str:
        q = list(c.qualities)
        return f"{q[0]}-{q[-1]}" if q == list(range(q[0], q[-1] + 1)) else ",".join(map(str, q))

    if json_out:
        print_json([{"name": c.name, "codec_id": c.codec_id, "media": c.media, "qualities": list(c.qualities),
                     "default_quality": c.default_quality, "default": c.name in defaults,
                     "learned": c.has_weights, "weights": weights(c), "refinable": c.refinable, "presets": list(c.presets),
                     "description": c.description} for c in infos])
        return
    if long:
        for c in infos:
            t = Table(show_header=False, box=None, padding=(0, 1))
            t.add_column(style="bold", no_wrap=True)
            t.add_column(overflow="fold")
            t.add_row("codec", escape(c.name) + (" (default)" if c.name in defaults else ""))
            t.add_row("id", str(c.codec_id))
            t.add_row("media", c.media)
            t.add_row("qualities", f"{', '.join(map(str, c.qualities))} (default {c.default_quality})")
            t.add_row("kind", "learned (trained weights)" if c.has_weights else "no weights")
            if c.has_weights:
                t.add_row("weights", "installed" if c.weights_available else "[red]missing[/]")
            t.add_row("refine", "yes (encode --refine N)" if c.refinable else "no")
            if c.presets:
                t.add_row("presets", f"{', '.join(c.presets)} (encode --preset NAME; default {c.presets[0]})")
            t.add_row("about", escape(c.description))
            out.print(t)
            out.print()
        return
    learned = any(c.has_weights for c in infos)
    header = ["codec", "media", "levels", "def"] + (["weights"] if learned else []) + ["refine", "description"]
    rows = []
    for c in infos:
        row = [c.name + (" *" if c.name in defaults else ""), c.media, levels(c), str(c.default_quality)]
        if learned:
            row.append(weights(c) or "")
        rows.append(row + ["yes" if c.refinable else "", _short(c.description)])
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header) - 1)]
    room = max(12, out.width - sum(widths) - 2 * len(widths) - 1)  # the description gets what is left

    def fmt(row: list[str], bold: bool = False) -> str:
        cells = [escape(v.ljust(w)) for v, w in zip(row, widths)]
        if learned and not bold and row[4] == "missing":
            cells[4] = "[red]" + cells[4] + "[/]"
        d = row[-1] if len(row[-1]) <= room else row[-1][: room - 1].rstrip() + "…"
        text = "  ".join(cells + [escape(d)]).rstrip()
        return f"[bold]{text}[/]" if bold else text

    out.print(fmt(header, bold=True), highlight=False, soft_wrap=True)
    for row in rows:
        out.print(fmt(row), highlight=False, soft_wrap=True)
    out.print("* default codec; weights: learned codecs only; details: glocal-codec list --long",
              highlight=False, soft_wrap=True)


# -- train ----------------------------------------------------------------------------------------
@app.command()
def train(
    codec: str = typer.Argument(..., help="a learned image codec (the ones with weights in `glocal-codec list`)"),
    quality: Optional[List[int]] = typer.Option(None, "--quality", "-q",
                                                help="train only these levels (default: all; one model serves every level; "
                                                     "repeat a level to draw it more often)"),
    data: Optional[List[Path]] = typer.Option(None, "--data", help="image folder (repeatable; default: the dataset root's train/)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="dataset root (default $GLOCAL_CODEC_DATA); uses its train/"),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="checkpoint folder (a subfolder per codec)"),
    steps: int = typer.Option(6000, help="optimisation steps"),
    minutes: Optional[float] = typer.Option(None, help="wall-clock budget; stops early and still saves"),
    batch: int = typer.Option(8),
    crop: int = typer.Option(128),
    lr: float = typer.Option(2e-4),
    arch: Optional[List[str]] = typer.Option(None, "--arch", metavar="KEY=VALUE",
                                             help="model config fields, e.g. --arch n=64 --arch m=96 --arch window=4"),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="copy matching tensors from this checkpoint"),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch"),
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    resume: bool = typer.Option(False, help="continue from the checkpoint in --out"),
    bf16: bool = typer.Option(False, "--bf16", help="transforms under bfloat16 autocast (rates stay float32)"),
    grow_from: Optional[int] = typer.Option(None, "--grow-from",
                                            help="msh widened in m: its first new latent channel (see train/widen.py)"),
    grow_steps: int = typer.Option(0, "--grow-steps", help="steps over which the new channels' rate is ramped in"),
    warmup_steps: int = typer.Option(0, "--warmup-steps",
                                     help="with --init-from: first train only the tensors it did not copy"),
    export: bool = typer.Option(False, help="write the result into the package's weights folder"),
) -> None:
    """Train a learned codec (rate + lambda * MSE, every quality level in one variable-rate model).

    Under ``torchrun --nproc_per_node N`` it trains with DistributedDataParallel.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..datasets import dataset_dir
    from ..engine import resolve_device
    from ..train import TrainConfig
    from ..train import train as run_training
    from ..train.export import export_checkpoint
    from ..train.loop import model_config, parse_arch, world_info

    try:
        roots = [str(d) for d in data] if data else [str(dataset_dir("train", data_dir))]
        arch_fields = parse_arch(list(arch or []))
        model_config(codec, **arch_fields)  # unknown codec or field: fail before loading data
        cfg = TrainConfig(codec=codec, data=roots, out=str(out_dir / codec), steps=steps, minutes=minutes,
                          batch=batch, crop=crop, lr=lr, threads=threads, device=str(resolve_device(device)),
                          qualities=list(quality or []), arch=arch_fields,
                          init_from=str(init_from) if init_from else None, bf16=bf16,
                          grow_from=grow_from, grow_steps=grow_steps, warmup_steps=warmup_steps)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), console=err) as bar:
            task = bar.add_task(f"train {codec}", total=steps, stats="")

            def on_step(step: int, total: int, s: dict[str, float]) -> None:
                bar.update(task, completed=step,
                           stats=f"q{s['q']} loss {s['loss']:.3f} bpp {s['bpp']:.3f} psnr {s['psnr']:.2f}")

            result = run_training(cfg, resume=resume, log=lambda m: bar.console.print(m), on_step=on_step)
        out.print(f"checkpoint: {result.checkpoint} ({result.steps} steps, {result.seconds:.0f} s)")
        if export and world_info()[0] == 0:
            path = export_checkpoint(result.checkpoint, codec, command=" ".join(["glocal-codec", *sys.argv[1:]]))
            out.print(f"weights written to {path}")
    except _EXPECTED as e:
        _fail(e)


# `eval` and `bdrate` (the evaluation issue) live in eval_cmds.py.
from .eval_cmds import register_eval_commands  # noqa: E402

register_eval_commands(app)

from .video import video_app  # noqa: E402  (the `glocal-codec video ...` sub-app)

app.add_typer(video_app, name="video")

from .clc import clc_app  # noqa: E402  (the `glocal-codec clc ...` sub-app)

app.add_typer(clc_app, name="clc")


def main() -> None:
    app()
