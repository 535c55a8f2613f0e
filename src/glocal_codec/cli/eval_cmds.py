"""``glocal-codec eval`` and ``glocal-codec bdrate`` (registered on the app by :func:`register_eval_commands`).

    glocal-codec eval --dataset kodak --codec msh --codec jpeg --report reports/kodak
    glocal-codec eval --images my_photos/ --codec msh --quality 1 --quality 3
    glocal-codec eval --dataset kodak --codec msh --codec msh+refine30 --report reports/refine
    glocal-codec eval --video clip.mp4 --codec hnerv --codec x264 --report reports/video
    glocal-codec eval --dataset kodak --task ocr --codec jpeg --codec msh --report reports/mpq-ocr
    glocal-codec eval --dataset kodak --codec gblsr --scale 2 --report reports/sr
    glocal-codec tasks
    glocal-codec bdrate reports/kodak/results.json --anchor jpeg

Thin, like the rest of the CLI: parse, call :mod:`glocal_codec.eval`, print. Expected failures
are one ``error:`` line with exit status 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from typer.core import TyperCommand

__all__ = ["register_eval_commands"]


def _errors() -> tuple[type[BaseException], ...]:
    from ..datasets import DownloadError
    from ..eval.runner import EvalError
    from .common import EXPECTED as _EXPECTED

    return _EXPECTED + (EvalError, DownloadError, KeyError)


def eval_cmd(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d",
                                          help="kodak, clic, clic-professional or clic-mobile"),
    images: Optional[Path] = typer.Option(None, "--images", help="a folder of your own images (instead of --dataset)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir",
                                            help="local dataset copies (default $GLOCAL_CODEC_DATA; else download "
                                                 "into the cache)"),
    codec: List[str] = typer.Option(..., "--codec", "-c",
                                    help="codec to measure (repeatable); NAME+refineN: encoded with N refinement steps"),
    quality: Optional[List[int]] = typer.Option(None, "--quality", "-q",
                                                help="quality level (repeatable; default: every level)"),
    report: Optional[Path] = typer.Option(None, "--report", "-o",
                                          help="report folder: results.json, summary.md/.html, plots "
                                               "(default reports/<dataset>)"),
    workers: int = typer.Option(1, "--workers", "-j", help="parallel worker processes (1 torch thread each)"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or auto, for learned codecs"),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                      help="run tasks on Ray: a cluster ADDRESS, or a local Ray without one "
                                           "(or with 'local')"),
    no_lpips: bool = typer.Option(False, "--no-lpips", help="skip LPIPS"),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights",
                                                 help="AlexNet weights file for LPIPS (torchvision state_dict)"),
    anchor: Optional[str] = typer.Option(None, "--anchor",
                                         help="BD-rate anchor in the report (default jpeg, or x264 for --video; "
                                              "when it was not measured the report says which codec stands in)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="only the first N images (a quick check)"),
    fresh: bool = typer.Option(False, "--fresh", help="ignore an existing results.json instead of resuming"),
    video: Optional[List[Path]] = typer.Option(None, "--video", help="a clip (file or frame folder) to evaluate video "
                                                                    "codecs on (repeatable; instead of --dataset)"),
    frames: Optional[int] = typer.Option(None, "--frames", help="video: the first N frames only"),
    size: Optional[str] = typer.Option(None, "--size", help="video: rescale frames to WxH first"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="video: fitting budget of the INR codecs"),
    task: Optional[str] = typer.Option(None, "--task", help="also score a machine task on every decoded image: "
                                                             "ocr, faces or features (see `glocal-codec tasks`)"),
    scale: Optional[float] = typer.Option(None, "--scale", help="super-resolution eval: code each image "
                                          "downsampled by this factor, decode at the original size (gblsr renders "
                                          "it; every codec also gets decode + bicubic upscaling)"),
) -> None:
    """Measure codecs on a dataset: real file sizes, PSNR, MS-SSIM, LPIPS; resumable; writes a report."""
    if scale is not None:
        return _eval_scaled(dataset, images, data_dir, codec, quality, report, scale, limit, no_lpips, fresh)
    if video:
        if task is not None:
            from .common import fail as _fail

            _fail("--task measures image codecs; it cannot be used with --video")
        return _eval_video(video, codec, quality, report, device, frames, size, epochs, fresh, anchor,
                           dataset is not None or images is not None)
    from ..datasets import Dataset, image_folder, load_dataset
    from ..eval.report import write_report
    from ..eval.runner import evaluate
    from .common import err, out
    from .common import fail as _fail
    from .progress import Reporter

    try:
        if (dataset is None) == (images is None):
            raise ValueError("give exactly one of --dataset NAME, --images FOLDER or --video CLIP")
        ds = image_folder(images) if images is not None else load_dataset(dataset, data_dir)  # type: ignore[arg-type]
        if limit is not None:
            if limit < 1:
                raise ValueError("--limit must be at least 1")
            ds = Dataset(ds.name, ds.root, ds.images[:limit], ds.source, ds.notes)
        folder = report or Path("reports") / ds.name
        for note in ds.notes:
            err.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
        with Reporter(err, transient=False) as bar:  # a live bar, or a line every 10 s without a terminal
            bar.stage("eval")

            def on_progress(done: int, total: int, rec) -> None:  # noqa: ANN001
                item = None if rec is None else (f"{rec.codec} q{rec.quality} {rec.image}: {rec.bpp:.3f} bpp "
                                                 f"{rec.psnr:.2f} dB")
                bar(done, total, item)

            def note(m: str) -> None:
                bar.print(f"note: {escape(m)}")

            results = evaluate(ds, codec, quality, results_path=folder / "results.json", device=device,
                               workers=workers, lpips=not no_lpips,
                               lpips_weights=str(lpips_weights) if lpips_weights else None,
                               data_dir=str(data_dir) if data_dir else None, ray_address=ray, fresh=fresh,
                               progress=on_progress, log=note, task=task)
        files = write_report(results, folder, anchor=anchor)
    except _errors() as e:
        _fail(e)
    if anchor is None:
        from ..eval.report import DEFAULT_ANCHOR, anchor_note, default_anchor

        if DEFAULT_ANCHOR not in results.codecs():
            err.print(f"note: {escape(anchor_note(default_anchor(results), None))}", highlight=False, soft_wrap=True)
    out.print(f"{len(results.records)} results in {folder / 'results.json'}", highlight=False)
    plots = [files[k].name for k in ("rd_psnr", "rd_ms_ssim_db", "rd_lpips") if k in files]
    out.print(f"report: {files['summary_md']} and {files['summary_html']}"
              + (f"; plots: {', '.join(plots)}" if plots else ""), highlight=False)
    if task is not None:
        _print_task_line(files)


def _eval_scaled(dataset: Optional[str], images: Optional[Path], data_dir: Optional[Path], codecs: List[str],
                 quality: Optional[List[int]], report: Optional[Path], scale: float, limit: Optional[int],
                 no_lpips: bool, fresh: bool) -> None:
    """``eval --scale r``: the super-resolution evaluation (:mod:`glocal_codec.eval.sr`)."""
    from ..codecs import open_codec
    from ..datasets import image_folder, load_dataset
    from ..eval.sr import evaluate_scaled, load_sr_records, write_sr_report
    from .common import fail as _fail
    from .common import out
    from .progress import Reporter

    try:
        if (dataset is None) == (images is None):
            raise ValueError("give exactly one of --dataset NAME or --images FOLDER with --scale")
        ds = image_folder(images) if images is not None else load_dataset(dataset, data_dir)  # type: ignore[arg-type]
        paths = [e.path for e in (ds.images[:limit] if limit else ds.images)]
        folder = report or Path("reports") / f"{ds.name}-sr{scale:g}"
        records = [] if fresh else load_sr_records(folder / "results.json")
        with Reporter(_err(), transient=False) as bar:
            bar.stage(f"eval x{scale:g}")
            for name in codecs:
                levels = list(quality or open_codec(name).qualities)
                total, done = len(paths) * len(levels), [0]

                def on_record(rec) -> None:  # noqa: ANN001
                    records.append(rec)
                    done[0] += 1
                    write_sr_report(records, folder)  # after every record: resumable
                    bar(done[0], total, f"{rec.codec} q{rec.quality} {rec.image}: {rec.psnr_bicubic:.2f} dB bicubic"
                        + ("" if rec.psnr is None else f", {rec.psnr:.2f} dB rendered"))

                evaluate_scaled(paths, name, levels, scale, use_lpips=not no_lpips, done=records, on_record=on_record)
        write_sr_report(records, folder)
    except _errors() as e:
        _fail(e)
    out.print(f"{len(records)} results in {folder / 'results.json'}; report: {folder / 'summary.md'}", highlight=False)


def _err():  # noqa: ANN202
    from .common import err

    return err


def _print_task_line(files: dict) -> None:  # noqa: ANN001
    import json

    from .common import out

    if "task_summary" not in files:
        return
    ts = json.loads(files["task_summary"].read_text(encoding="utf-8"))
    ref = ts.get("reference")
    line = f"task {ts['task']}: uncompressed score " + ("n/a" if ref is None else f"{ref:.4f}")
    win = ts.get("winner")
    if win:
        k = next(k for k in ts["keep"] if k["codec"] == win)
        line += f"; lowest bpp keeping {ts['keep_share']:.0%} of it: {win} ({k['bpp']:.4f} bpp)"
    elif ref is not None:
        line += f"; no codec keeps {ts['keep_share']:.0%} of it"
    extra = [files[k].name for k in ("task_plot", "task_summary") if k in files]
    out.print(line + f" ({', '.join(extra)})", highlight=False, soft_wrap=True)


def _eval_video(videos: List[Path], codecs: List[str], qualities: Optional[List[int]], report: Optional[Path],
                device: Optional[str], frames: Optional[int], size: Optional[str], epochs: Optional[int], fresh: bool,
                anchor: Optional[str], also_images: bool) -> None:
    from ..eval.video_eval import evaluate_videos, write_video_report
    from .common import err, out
    from .common import fail as _fail
    from .progress import Reporter
    from .video import _parse_size

    try:
        if also_images:
            raise ValueError("give --video, or one of --dataset / --images, not both")
        if frames is not None and frames < 1:
            raise ValueError("--frames must be at least 1")
        for v in videos:
            if not v.exists():
                raise FileNotFoundError(f"no such clip: {v}")
        folder = report or Path("reports") / "video"
        with Reporter(err, transient=False) as bar:
            bar.stage("eval video")

            def on_progress(done: int, total: int, rec) -> None:  # noqa: ANN001
                item = None if rec is None else (f"{rec.codec} q{rec.quality} {rec.video}: {rec.bpp:.4f} bpp "
                                                 f"{rec.psnr:.2f} dB, encode {rec.encode_s:.1f} s")
                bar(done, total, item)

            records = evaluate_videos(videos, codecs, qualities, results_path=folder / "results.json",
                                      max_frames=frames, size=_parse_size(size), device=device, epochs=epochs,
                                      fresh=fresh, progress=on_progress)
        files = write_video_report(records, folder, anchor=anchor)
    except _errors() as e:
        _fail(e)
    out.print(f"{len(records)} results in {folder / 'results.json'}", highlight=False)
    out.print(f"report: {files['summary_md']} and {files['summary_html']}; plots: {files['rd_psnr'].name}, "
              f"{files['rd_ms_ssim_db'].name}", highlight=False)


def bdrate_cmd(
    results: Path = typer.Argument(..., help="results.json written by `glocal-codec eval`"),
    anchor: str = typer.Option(..., "--anchor", "-a",
                               help="a codec in the results, or a published Kodak anchor (vtm, bpg, av1, ...)"),
    metric: str = typer.Option("psnr", "--metric", "-m", help="psnr or ms_ssim_db"),
    method: str = typer.Option("pchip", "--method", help="pchip (JVET CTC) or cubic (VCEG-M33)"),
    published: Optional[List[str]] = typer.Option(None, "--published",
                                                  help="also list these published Kodak anchors (repeatable)"),
    json_out: bool = typer.Option(False, "--json", help="print the table as JSON"),
) -> None:
    """BD-rate and BD-PSNR (or BD-MS-SSIM dB) of every codec in RESULTS against an anchor."""
    from rich.table import Table

    from ..eval.anchors import ANCHORS_SOURCE, published_anchors
    from ..eval.bdrate import METHODS
    from ..eval.report import METRICS, bd_table
    from ..eval.runner import load_results
    from .common import err, out
    from .common import fail as _fail

    try:
        if metric not in METRICS:
            raise ValueError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if method not in METHODS:
            raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
        if not results.is_file():
            raise FileNotFoundError(f"no such file: {results}")
        res = load_results(results)
        rows, notes = bd_table(res, anchor, metric, method, published=published or ())
    except _errors() as e:
        _fail(e)
    if json_out:
        from .common import print_json

        print_json({"dataset": res.dataset, "anchor": anchor, "metric": metric, "method": method,
                    "rows": [{"codec": r.codec, "kind": r.kind, "bd_rate": r.bd_rate, "bd_quality": r.bd_quality,
                              "overlap": r.overlap, "points": r.points, "notes": list(r.notes)} for r in rows],
                    "notes": list(notes)})
        return
    qname = "BD-PSNR (dB)" if metric == "psnr" else "BD-MS-SSIM (dB)"
    pub = published_anchors()
    src = ""
    if anchor in pub and anchor not in res.codecs():
        src = f" (published: {pub[anchor].description}; {ANCHORS_SOURCE})"
    t = Table("codec", "kind", "BD-rate (%)", qname, "overlap", "points",
              title=escape(f"{res.dataset}: against {anchor}{src}, {METRICS[metric]}, {method}"))
    for r in rows:
        flag = " *" if r.notes else ""
        t.add_row(escape(r.codec) + flag, r.kind, "n/a" if r.bd_rate is None else f"{r.bd_rate:+.2f}",
                  "n/a" if r.bd_quality is None else f"{r.bd_quality:+.3f}", f"{r.overlap:.0%}", str(r.points))
    out.print(t)
    for r in rows:
        for n in r.notes:
            err.print(f"* {escape(r.codec)}: {escape(n)}", highlight=False, soft_wrap=True)
    for n in notes:
        err.print(f"note: {escape(n)}", highlight=False, soft_wrap=True)
    if not rows:
        err.print("note: nothing to compare: the results hold no other codec", highlight=False)


class _EvalCommand(TyperCommand):
    """``eval`` with an optional-value ``--ray``: a bare ``--ray`` (last, or followed by another
    option) means a local Ray. Typer has no optional option values, so the argument list is
    completed before parsing."""

    def parse_args(self, ctx, args):  # noqa: ANN001, ANN201 - click's signature
        args = list(args)
        for i, a in enumerate(args):
            if a == "--":
                break
            if a == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                args.insert(i + 1, "local")
                break
        return super().parse_args(ctx, args)


def tasks_cmd(
    json_out: bool = typer.Option(False, "--json", help="print the tasks as JSON"),
) -> None:
    """List the machine tasks of `eval --task`: availability, models, where their weights come from."""
    from rich.table import Table

    from ..eval.tasks import list_tasks
    from .common import out, print_json

    infos = list_tasks()
    if json_out:
        print_json([{"name": t.name, "available": t.available, "reason": t.reason or None, "install": t.install,
                     "version": t.version, "summary": t.summary, "model": t.model, "weights": t.weights,
                     "score": t.score, "found": t.found} for t in infos])
        return
    for t in infos:
        tab = Table(show_header=False, box=None, padding=(0, 1))
        tab.add_column(style="bold", no_wrap=True)
        tab.add_column(overflow="fold")
        tab.add_row("task", escape(t.name))
        tab.add_row("available", "yes" if t.available else f"[red]no[/]: {escape(t.reason)}")
        tab.add_row("about", escape(t.summary))
        tab.add_row("model", escape(t.model))
        tab.add_row("weights", escape(t.weights))
        if t.found:
            tab.add_row("found", escape(t.found))
        if not t.available:
            tab.add_row("install", escape(t.install))
        out.print(tab)
        out.print()
    out.print("use: glocal-codec eval --dataset kodak --task NAME --codec jpeg --codec msh", highlight=False)


def register_eval_commands(app: typer.Typer) -> None:
    """Add ``eval``, ``bdrate`` and ``tasks`` to the typer app."""
    app.command("eval", cls=_EvalCommand)(eval_cmd)
    app.command("bdrate")(bdrate_cmd)
    app.command("tasks")(tasks_cmd)
