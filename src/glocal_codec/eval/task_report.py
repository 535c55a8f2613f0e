"""The machine-task part of a report (``eval --task``): what the models still see, per bpp.

For the records of one task in ``results.json`` it gives

* the task score of every codec at every quality level (pooled over the images every codec was
  measured on, the way the task pools them: mean, or pooled counts for OCR and faces) against
  the mean real bpp, and a plot of it (``task_<name>.png``);
* the *uncompressed score*: the task run on the very images the codecs were given, and for every
  codec the lowest bpp at which it keeps 95 % of it (linear in log-bpp between the two measured
  levels around the crossing; "<= b" when even its lowest level keeps it), and which codec does
  so at the lowest bpp;
* a BD-rate on task score against the anchor (JPEG by default). Task scores saturate and wobble
  near the top, and BD needs strictly increasing curves, so each curve is first made monotone
  (isotonic least-squares fit against bpp) and a plateau is kept at its lowest-rate point only;
  the notes say how many points that dropped;
* the paper's finding checked: Spearman rank correlations of the task score with LPIPS, PSNR and
  MS-SSIM across all codec x quality points (and across all single records).

Everything is also written as ``task_summary.json``. Nothing here imports a task's model.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ..util import atomic_write
from .bdrate import Curve, compare
from .report import curve_style
from .runner import EvalRecord, EvalResults, summarize

__all__ = ["TaskPoint", "Keep95", "TaskBD", "Correlation", "TaskSummary", "KEEP", "task_summary", "monotone",
           "keep_bpp", "task_section"]

#: The share of the uncompressed score a codec must keep.
KEEP = 0.95


@dataclass(frozen=True)
class TaskPoint:
    codec: str
    quality: int
    images: int
    bpp: float
    score: Optional[float]


@dataclass(frozen=True)
class Keep95:
    codec: str
    bpp: Optional[float]  # None: never reached
    how: str  # "interpolated", "at or below the lowest level", "not reached"
    best_score: Optional[float]
    best_bpp: Optional[float]


@dataclass(frozen=True)
class TaskBD:
    codec: str
    bd_rate: Optional[float]
    bd_score: Optional[float]
    overlap: float
    points: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Correlation:
    metric: str
    rho_points: Optional[float]
    n_points: int
    rho_records: Optional[float]
    n_records: int


@dataclass
class TaskSummary:
    task: str
    score_text: str
    images: int
    reference: Optional[float]
    target: Optional[float]
    points: list[TaskPoint]
    keep: list[Keep95]
    winner: Optional[str]
    anchor: str
    bd: list[TaskBD]
    bd_error: Optional[str]
    correlations: list[Correlation]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["keep_share"] = KEEP
        return d


def _aggregator(name: str):  # noqa: ANN202
    from .tasks import TaskResult, task_class
    from .tasks.base import MachineTask

    try:
        agg = task_class(name).aggregate
    except (ValueError, ImportError, AttributeError):
        agg = MachineTask.aggregate
    return lambda pairs: agg([TaskResult(s, d or {}) for s, d in pairs])


def _common_images(recs: Sequence[EvalRecord]) -> set[str]:
    per_codec = []
    for codec in {r.codec for r in recs}:
        mine = [r for r in recs if r.codec == codec]
        qs = {r.quality for r in mine}
        per_codec.append({img for img in {r.image for r in mine} if {r.quality for r in mine if r.image == img} == qs})
    return set.intersection(*per_codec) if per_codec else set()


def monotone(rate: Sequence[float], score: Sequence[float]) -> tuple[list[float], list[float], int]:
    """The isotonic (non-decreasing, least-squares) fit of ``score`` against ``rate``, with each
    plateau kept at its lowest-rate point only: a strictly increasing curve for BD. Returns the
    rates, scores and how many points were dropped."""
    pts = sorted(zip(rate, score))
    blocks: list[list[float]] = []  # [sum, count]
    for _, s in pts:  # pool adjacent violators
        blocks.append([s, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s2, c2 = blocks.pop()
            blocks[-1][0] += s2
            blocks[-1][1] += c2
    fitted: list[float] = []
    for s, c in blocks:
        fitted += [s / c] * int(c)
    rs, qs = [], []
    for (r, _), f in zip(pts, fitted):
        if not qs or f > qs[-1] + 1e-12:
            rs.append(r)
            qs.append(f)
    return rs, qs, len(pts) - len(rs)


def keep_bpp(points: Sequence[TaskPoint], target: float) -> Keep95:
    """The lowest bpp at which a codec's score reaches ``target`` (see the module docs)."""
    pts = sorted((p for p in points if p.score is not None), key=lambda p: p.bpp)
    codec = points[0].codec if points else ""
    if not pts:
        return Keep95(codec, None, "not reached", None, None)
    best = max(pts, key=lambda p: (p.score, -p.bpp))
    for i, p in enumerate(pts):
        if p.score >= target:  # type: ignore[operator]
            if i == 0:
                return Keep95(codec, p.bpp, "at or below the lowest level", best.score, best.bpp)
            a = pts[i - 1]
            t = (target - a.score) / (p.score - a.score)  # type: ignore[operator]
            b = math.exp(math.log(a.bpp) + t * (math.log(p.bpp) - math.log(a.bpp)))
            return Keep95(codec, b, "interpolated", best.score, best.bpp)
    return Keep95(codec, None, "not reached", best.score, best.bpp)


def _spearman(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    from scipy.stats import spearmanr

    rho = spearmanr(x, y).statistic
    return None if rho is None or not math.isfinite(rho) else float(rho)


def task_summary(results: EvalResults, anchor: str, method: str = "pchip") -> Optional[TaskSummary]:
    """The task numbers of ``results``; ``None`` when its records carry no task."""
    recs = [r for r in results.records if r.task]
    if not recs:
        return None
    name = recs[0].task or ""
    agg = _aggregator(name)
    images = _common_images(results.records)
    recs = [r for r in recs if r.image in images]
    points: list[TaskPoint] = []
    for codec in results.codecs():
        for q in sorted({r.quality for r in recs if r.codec == codec}):
            ps = [r for r in recs if r.codec == codec and r.quality == q]
            points.append(TaskPoint(codec, q, len(ps), sum(r.bpp for r in ps) / len(ps),
                                    agg([(r.task_score, r.task_details) for r in ps])))
    refs: dict[str, tuple[Optional[float], dict]] = {}
    for r in recs:
        ref = dict((r.task_details or {}).get("reference") or {})
        refs.setdefault(r.image, (ref.pop("score", None), ref))
    reference = agg(list(refs.values())) if refs else None
    target = None if reference is None else KEEP * reference
    keep: list[Keep95] = []
    winner = None
    if target is not None:
        for codec in results.codecs():
            mine = [p for p in points if p.codec == codec]
            if mine:
                keep.append(keep_bpp(mine, target))
        reached = [k for k in keep if k.bpp is not None]
        if reached:
            winner = min(reached, key=lambda k: k.bpp).codec  # type: ignore[arg-type, return-value]
    # BD-rate on task score
    bd: list[TaskBD] = []
    bd_error = None
    curves = {}
    for codec in results.codecs():
        mine = [p for p in points if p.codec == codec and p.score is not None]
        if mine:
            r, s, dropped = monotone([p.bpp for p in mine], [p.score for p in mine])  # type: ignore[misc]
            curves[codec] = (Curve.of(r, s, codec), dropped, len(mine))
    if anchor not in curves:
        bd_error = f"the anchor {anchor!r} has no task scores in these results"
    else:
        ref_curve, ref_dropped, _ = curves[anchor]
        for codec, (curve, dropped, n) in curves.items():
            if codec == anchor:
                continue
            res = compare(ref_curve, curve, method)  # type: ignore[arg-type]
            notes = list(res.notes)
            if dropped or ref_dropped:
                notes.append(f"monotone fit kept {n - dropped} of {n} points ({anchor}: "
                             f"{len(ref_curve.rate)} of {len(ref_curve.rate) + ref_dropped})")
            bd.append(TaskBD(codec, res.bd_rate, res.bd_quality, res.overlap_quality, n, tuple(notes)))
    # Spearman: codec x quality means, and single records
    summ = summarize(results.records, images)
    corr: list[Correlation] = []
    for metric in ("lpips", "psnr", "ms_ssim"):
        xs, ys = [], []
        for p in points:
            s = summ.get(p.codec, {}).get(p.quality)
            v = getattr(s, metric) if s is not None else None
            if p.score is not None and v is not None and math.isfinite(v):
                xs.append(p.score)
                ys.append(v)
        xr, yr = [], []
        for r in recs:
            v = getattr(r, metric)
            if r.task_score is not None and v is not None and math.isfinite(v):
                xr.append(r.task_score)
                yr.append(v)
        corr.append(Correlation(metric, _spearman(xs, ys), len(xs), _spearman(xr, yr), len(xr)))
    from .tasks import task_class

    try:
        cls = task_class(name)
        score_text, notes = cls.score_text, list(cls.notes)
    except ValueError:
        score_text, notes = "", []
    info = results.run.get("task") or {}
    if info.get("model"):
        notes.insert(0, f"Model: {info['model']}.")
    return TaskSummary(name, score_text, len(images), reference, target, points, keep, winner, anchor, bd, bd_error,
                       corr, notes)


def _f(v: Optional[float], digits: int = 4, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _plot(ts: TaskSummary, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    for i, codec in enumerate(dict.fromkeys(p.codec for p in ts.points)):
        pts = sorted((p for p in ts.points if p.codec == codec and p.score is not None), key=lambda p: p.bpp)
        if pts:
            ax.plot([p.bpp for p in pts], [p.score for p in pts], label=codec, **curve_style(i))
    if ts.reference is not None:
        ax.axhline(ts.reference, color="k", linewidth=1, label="uncompressed")
        ax.axhline(ts.target, color="k", linewidth=1, linestyle="--", label=f"{KEEP:.0%} of uncompressed")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    rates = [p.bpp for p in ts.points if p.score is not None]
    if rates:
        ticks = [v for v in (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20) if min(rates) / 1.2 <= v <= max(rates) * 1.2]
        ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bits per pixel (real file size, log scale)")
    ax.set_ylabel(f"{ts.task} task score")
    ax.set_title(title)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), force=True, suffix=".png")
    plt.close(fig)


def _tables(ts: TaskSummary) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(heading, head, body, notes) of every table of the section."""
    out = []
    out.append((f"Task score ({ts.task}) against bpp", ["codec", "quality", "images", "bpp", "task score"],
                [[p.codec, str(p.quality), str(p.images), _f(p.bpp), _f(p.score)] for p in ts.points], []))
    body = []
    for k in ts.keep:
        where = "n/a" if k.bpp is None else ("<= " if k.how.startswith("at or below") else "") + _f(k.bpp)
        body.append([k.codec, where, k.how, _f(k.best_score), _f(k.best_bpp)])
    notes = [f"Uncompressed score: {_f(ts.reference)}; {KEEP:.0%} of it: {_f(ts.target)}."]
    if ts.winner:
        w = next(k for k in ts.keep if k.codec == ts.winner)
        notes.append(f"Lowest bpp keeping {KEEP:.0%} of the uncompressed score: **{ts.winner}** "
                     f"({'<= ' if w.how.startswith('at or below') else ''}{_f(w.bpp)} bpp).")
    elif ts.reference is not None:
        notes.append(f"No codec keeps {KEEP:.0%} of the uncompressed score at the levels measured.")
    out.append((f"Bits per pixel at which {KEEP:.0%} of the uncompressed score is kept",
                ["codec", "bpp", "how", "best score", "at bpp"], body, notes))
    if ts.bd_error:
        out.append((f"BD-rate on task score against {ts.anchor}", [], [], [f"Not available: {ts.bd_error}"]))
    else:
        out.append((f"BD-rate on task score against {ts.anchor} (monotone fit, pchip)",
                    ["codec", "BD-rate (%)", "BD-score", "overlap", "points", "notes"],
                    [[b.codec, _f(b.bd_rate, 2, True), _f(b.bd_score, 4, True), f"{b.overlap:.0%}", str(b.points),
                      "; ".join(b.notes)] for b in ts.bd],
                    ["Negative BD-rate: the codec keeps the same task score with fewer bits than the anchor."]))
    out.append(("Spearman correlation of task score with image metrics",
                ["metric", "rho (codec x quality means)", "points", "rho (single records)", "records"],
                [[c.metric, _f(c.rho_points, 3, True), str(c.n_points), _f(c.rho_records, 3, True),
                  str(c.n_records)] for c in ts.correlations],
                ["LPIPS is a distance (lower is better): a strong negative rho means it tracks the task; PSNR and "
                 "MS-SSIM should correlate positively."]))
    return out


def task_section(results: EvalResults, folder: Path, anchor: str, method: str = "pchip"
                 ) -> Optional[tuple[str, str, dict[str, Path], TaskSummary]]:
    """Markdown, HTML, files (plot, ``task_summary.json``) and numbers of the task section;
    ``None`` for results without a task."""
    ts = task_summary(results, anchor, method)
    if ts is None:
        return None
    files: dict[str, Path] = {}
    plot = folder / f"task_{ts.task}.png"
    try:
        _plot(ts, plot, f"{results.dataset}: {ts.images} image(s), task {ts.task}")
        files["task_plot"] = plot
    except ImportError:
        ts.notes.append("No task plot: matplotlib is not installed.")
    files["task_summary"] = folder / "task_summary.json"
    atomic_write(files["task_summary"], json.dumps(ts.to_json(), indent=1, allow_nan=False) + "\n", force=True)

    md = [f"## Machine task: {ts.task}", "", f"Score: {ts.score_text}. {ts.images} image(s).", ""]
    md += [f"- {n}" for n in ts.notes] + ([""] if ts.notes else [])
    e = html.escape
    hp = [f"<h2>Machine task: {e(ts.task)}</h2>", f"<p>Score: {e(ts.score_text)}. {ts.images} image(s).</p>"]
    if ts.notes:
        hp.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in ts.notes) + "</ul>")
    from .report import html_table, img_tag

    for heading, head, body, notes in _tables(ts):
        md += [f"### {heading}", ""]
        hp.append(f"<h3>{e(heading)}</h3>")
        if head:
            md += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
            md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
            md.append("")
            hp.append(html_table(head, body))
        md += [f"- {n}" for n in notes] + ([""] if notes else [])
        if notes:
            hp.append("<ul>" + "".join(f"<li>{e(n.replace('**', ''))}</li>" for n in notes) + "</ul>")
    if "task_plot" in files:
        md += [f"![task_{ts.task}]({plot.name})", ""]
        hp.append("<p>" + img_tag(plot, f"task_{ts.task}") + "</p>")
    return "\n".join(md), "\n".join(hp), files, ts
