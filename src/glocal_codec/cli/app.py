"""``glocal-codec encode | decode | info | list | train``.

Every expected failure (bad file, bad image, existing output, unknown codec, ...) is printed as
one ``error:`` line on stderr with exit status 1 -- never a traceback.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import api
from ..bitstream import BitstreamError
from ..codecs import list_codecs
from ..errors import WeightsMissingError
from ..datasets import DatasetNotFoundError
from ..imageio import UnsupportedImageError, write_image
from ..util import atomic_write
from .common import EXPECTED as _EXPECTED
from .common import err, out
from .common import fail as _fail
from .common import same_file as _same_file

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Neural image codec toolkit: real .glc files.")
def _status(msg: str):
    return err.status(msg, spinner="dots") if err.is_terminal else _Null()


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@app.command()
def encode(
    src: Path = typer.Argument(..., help="input image (PNG, JPEG, ...)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="output .glc (default: SRC with .glc)"),
    codec: str = typer.Option(api.DEFAULT_CODEC, "--codec", "-c", help="codec name (see `glocal-codec list`)"),
    quality: Optional[int] = typer.Option(None, "--quality", "-q", help="quality level (default: the codec's)"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or auto"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite an existing output"),
    refine: int = typer.Option(0, "--refine", min=0,
                               help="encoder-side latent refinement steps (0: off; ~30 is a good start): "
                                    "a smaller file at equal quality, slower encode, same decoder. "
                                    "Codecs with 'refine' in `glocal-codec list`"),
) -> None:
    """Encode an image into a .glc file."""
    dst = output or src.with_suffix(".glc")
    try:
        if _same_file(src, dst):
            raise ValueError("output would overwrite the input")
        if dst.exists() and not force:
            raise FileExistsError(f"{dst} exists; pass --force to overwrite it")
        if not src.is_file():
            raise FileNotFoundError(f"no such file: {src}")
        t0 = time.perf_counter()
        with _status(f"encoding with {codec}" + (f", {refine} refinement steps" if refine else "")):
            data = api.encode(src, codec=codec, quality=quality, device=device, refine=refine)
        secs = time.perf_counter() - t0
        atomic_write(dst, data, force=force)
        info = api.read_info(data)
    except _EXPECTED as e:
        _fail(e)
    out.print(f"{dst}: {info.codec} q{info.quality} {info.shape[-1]}x{info.shape[-2]} "
              f"{info.bytes} bytes {info.bpp:.4f} bpp ({secs:.2f} s)", highlight=False)


@app.command()
def decode(
    src: Path = typer.Argument(..., help="input .glc file"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="output image (default: SRC with .png)"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or auto"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite an existing output"),
    max_pixels: int = typer.Option(api.MAX_DECODE_PIXELS, "--max-pixels",
                                   help="refuse larger images (decompression-bomb guard); 0: no limit"),
) -> None:
    """Decode a .glc file to an image; the file says which codec."""
    dst = output or src.with_suffix(".png")
    try:
        if _same_file(src, dst):
            raise ValueError("output would overwrite the input")
        if dst.exists() and not force:
            raise FileExistsError(f"{dst} exists; pass --force to overwrite it")
        data = src.read_bytes()
        t0 = time.perf_counter()
        with _status("decoding"):
            img = api.decode(data, device=device, max_pixels=max_pixels or None)
        secs = time.perf_counter() - t0
        write_image(dst, img, force=force)
    except _EXPECTED as e:
        _fail(e)
    out.print(f"{dst}: {img.width}x{img.height} {img.mode} ({secs:.2f} s)", highlight=False)


@app.command()
def info(src: Path = typer.Argument(..., help=".glc file")) -> None:
    """Show a file's codec, format version, shape, quality, bytes, bpp and weights digest."""
    try:
        i = api.read_info(src.read_bytes())
    except _EXPECTED as e:
        _fail(e)
    t = Table(show_header=False, box=None)
    match = {True: "matches installed", False: "DIFFERS from installed", None: "n/a"}[i.weights_match]
    rows = [
        ("file", str(src)), ("codec", f"{i.codec} (id {i.codec_id})"), ("format version", str(i.format_version)),
        ("media", i.media), ("shape (T,C,H,W)" if i.media == "video" else "shape (C,H,W)", "x".join(map(str, i.shape))), ("quality", str(i.quality)),
        ("bytes", f"{i.bytes} (header {i.header_bytes})"), ("bpp", f"{i.bpp:.4f}"),
        ("weights digest", f"{i.weights_digest} ({match})"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)


@app.command("list")
def list_cmd() -> None:
    """List every codec, its qualities, media kind and whether its weights are present."""
    t = Table("codec", "id", "media", "qualities", "default", "weights", "refine", "description")
    for c in list_codecs():
        t.add_row(c.name, str(c.codec_id), c.media, f"{c.qualities[0]}..{c.qualities[-1]}", str(c.default_quality),
                  ("yes" if c.weights_available else "[red]missing[/]") if c.has_weights else "-", "yes" if c.refinable else "-", c.description)
    out.print(t)


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
                          grow_from=grow_from, grow_steps=grow_steps)
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


def main() -> None:
    app()
