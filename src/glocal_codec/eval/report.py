"""Reports from ``results.json``: BD-rate tables, Markdown and HTML summaries, RD plots (matplotlib).

``write_report(results, folder)`` writes, next to ``results.json``:

* ``summary.md`` and ``summary.html``: per-codec averages at every quality level, the BD-rate /
  BD-quality table against the anchor (PSNR and MS-SSIM dB; which anchor, and why, is stated),
  what LPIPS backbone was used. ``summary.html`` is self-contained: the plots are embedded;
* ``rd_psnr.png``, ``rd_ms_ssim_db.png``, ``rd_lpips.png``: bpp against each metric. A metric
  without values (LPIPS after ``--no-lpips``) gets a plot saying so, which the summaries leave
  out. For Kodak the published VTM and BPG curves (:mod:`.anchors`) are drawn dashed for reference.

Every file is written atomically with the permissions of a plain ``open`` (readable by others
under the usual umask).

Averages follow the published convention (mean bpp, mean per-image metric) over the images every
codec was measured on, so that codecs are compared on the same images.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ..util import atomic_write
from .anchors import published_anchors
from .bdrate import Curve, compare
from .runner import EvalError, EvalResults, Summary, summarize

__all__ = [
    "METRICS",
    "curve_style",
    "BDRow",
    "measured_curve",
    "resolve_anchor",
    "bd_table",
    "default_anchor",
    "write_report",
    "REFERENCE_ANCHORS",
    "DEFAULT_ANCHOR",
    "anchor_note",
    "img_tag",
    "html_table",
]

#: Quality metrics BD numbers can be computed for, with their labels.
METRICS = {"psnr": "PSNR (dB)", "ms_ssim_db": "MS-SSIM (dB)"}
#: Published curves drawn in Kodak plots and added to its BD table.
REFERENCE_ANCHORS = ("vtm", "bpg")
#: The BD-rate anchor of a report when none is asked for (and it was measured).
DEFAULT_ANCHOR = "jpeg"
_KODAK_IMAGES = 24


@dataclass(frozen=True)
class BDRow:
    """One line of a BD table: ``codec`` against the anchor."""

    codec: str
    kind: str  # "measured" or "published"
    bd_rate: Optional[float]
    bd_quality: Optional[float]
    overlap: float
    points: int
    notes: tuple[str, ...] = field(default=())


def measured_curve(summary: dict[str, dict[int, Summary]], codec: str, metric: str) -> Curve:
    """A measured codec's average curve (bpp, metric), skipping levels without a finite value."""
    pts = []
    for s in summary.get(codec, {}).values():
        v = getattr(s, metric)
        if v is not None and math.isfinite(v):
            pts.append((s.bpp, v))
    pts.sort()
    return Curve(tuple(p[0] for p in pts), tuple(p[1] for p in pts), codec)


def resolve_anchor(results: EvalResults, summary: dict[str, dict[int, Summary]], anchor: str,
                   metric: str) -> tuple[Curve, str, list[str]]:
    """The anchor curve: a measured codec of ``results`` or a published (Kodak) anchor."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    notes: list[str] = []
    if anchor in summary:
        return measured_curve(summary, anchor, metric), "measured", notes
    pub = published_anchors()
    if anchor in pub:
        if results.dataset != "kodak":
            raise EvalError(f"{anchor!r} is a published Kodak result; these results are for {results.dataset!r} "
                            f"(use a codec measured in them as the anchor)")
        n = _images_used(summary)
        if n and n < _KODAK_IMAGES:
            notes.append(f"measured codecs cover {n} of the {_KODAK_IMAGES} Kodak images; the published "
                         f"{anchor} numbers are averages over all {_KODAK_IMAGES}")
        return pub[anchor].curve(metric), "published", notes
    known = sorted(summary) + sorted(pub) if results.dataset == "kodak" else sorted(summary)
    raise EvalError(f"unknown anchor {anchor!r}; use one of: {', '.join(known)}")


def _images_used(summary: dict[str, dict[int, Summary]]) -> int:
    counts = [s.images for levels in summary.values() for s in levels.values()]
    return min(counts) if counts else 0


def default_anchor(results: EvalResults) -> str:
    """``jpeg`` when it was measured, else the first codec of the run (:func:`anchor_note` says so)."""
    codecs = results.codecs()
    if not codecs:
        raise EvalError("the results hold no records")
    return DEFAULT_ANCHOR if DEFAULT_ANCHOR in codecs else codecs[0]


def anchor_note(anchor: str, asked: Optional[str], default: str = DEFAULT_ANCHOR) -> str:
    """The report's line on its anchor: chosen by the user, the default, or a stand-in for a
    default that was not measured (never a silent fallback)."""
    if asked:
        return f"BD-rate anchor: {anchor} (--anchor)."
    if anchor == default:
        return f"BD-rate anchor: {anchor} (the default)."
    return (f"BD-rate anchor: {anchor}, because the default anchor {default} was not measured in this run "
            f"(add --codec {default}, or choose one with --anchor).")


def img_tag(path: Path, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as a data URI, so an HTML report is one self-contained file."""
    import base64

    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img src='data:image/png;base64,{data}' alt='{html.escape(alt)}'>"


def html_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """An HTML table of escaped text cells."""
    e = html.escape
    h = "".join(f"<th>{e(c)}</th>" for c in head)
    b = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"


def bd_table(results: EvalResults, anchor: str, metric: str = "psnr", method: str = "pchip",
             published: Sequence[str] = ()) -> tuple[list[BDRow], list[str]]:
    """BD-rate / BD-quality of every measured codec (and the ``published`` anchors, Kodak only)
    against ``anchor``. Returns the rows and table-wide notes."""
    summary = summarize(results.records)
    ref, _kind, notes = resolve_anchor(results, summary, anchor, metric)
    rows: list[BDRow] = []
    candidates: list[tuple[str, str, Curve]] = [
        (c, "measured", measured_curve(summary, c, metric)) for c in results.codecs() if c != anchor and c in summary
    ]
    if results.dataset == "kodak":
        pub = published_anchors()
        for name in published:
            if name == anchor or name not in pub:
                continue
            try:
                candidates.append((name, "published", pub[name].curve(metric)))
            except ValueError:
                continue
        n = _images_used(summary)
        if any(k == "published" for _, k, _ in candidates) and n and n < _KODAK_IMAGES and not notes:
            notes.append(f"measured codecs cover {n} of the {_KODAK_IMAGES} Kodak images; published rows are "
                         f"averages over all {_KODAK_IMAGES}")
    for name, kind, curve in candidates:
        r = compare(ref, curve, method)  # type: ignore[arg-type]
        rows.append(BDRow(name, kind, r.bd_rate, r.bd_quality, r.overlap_quality, len(curve.rate), r.notes))
    return rows, notes


# -- writing -------------------------------------------------------------------------------------
def _fmt(v: Optional[float], digits: int = 3, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "inf"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


_MARKERS = ("o", "s", "^", "D", "v")


def curve_style(i: int) -> dict[str, Any]:
    """Matplotlib style of the ``i``-th curve of a plot: the ten tab10 colours, then the same
    colours with another marker and a dashed line, so a report of a dozen codecs has no two
    curves that look alike (the default cycle repeats after ten)."""
    import matplotlib

    colors = matplotlib.colormaps["tab10"].colors
    turn = i // len(colors)
    return {"color": colors[i % len(colors)], "marker": _MARKERS[turn % len(_MARKERS)], "markersize": 4,
            "linestyle": "-" if turn % 2 == 0 else "--"}


def _plot(summary: dict[str, dict[int, Summary]], metric: str, ylabel: str, path: Path, title: str,
          references: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    drawn = 0
    for codec in summary:
        curve = measured_curve(summary, codec, metric)
        if curve.rate:
            ax.plot(curve.rate, curve.quality, label=codec, **curve_style(drawn))
            drawn += 1
    pub = published_anchors()
    for name in references:
        try:
            c = pub[name].curve(metric)
        except (KeyError, ValueError):
            continue
        ax.plot(c.rate, c.quality, linestyle="--", linewidth=1.2, label=f"{name} (published)")
    ax.set_xlabel("bits per pixel (real file size)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if drawn == 0:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), force=True, suffix=".png")
    plt.close(fig)


def _has_values(summary: dict[str, dict[int, Summary]], metric: str) -> bool:
    return any(measured_curve(summary, c, metric).rate for c in summary)


def write_report(results: EvalResults, folder: str | os.PathLike, anchor: Optional[str] = None,
                 method: str = "pchip") -> dict[str, Path]:
    """Write the Markdown / HTML summaries and the three RD plots into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(results.records)
    asked = anchor
    anchor = anchor or default_anchor(results)
    refs = REFERENCE_ANCHORS if results.dataset == "kodak" else ()
    n_images = _images_used(summary)
    title = f"{results.dataset}: {n_images} image(s)"
    files = {
        "rd_psnr": folder / "rd_psnr.png",
        "rd_ms_ssim_db": folder / "rd_ms_ssim_db.png",
        "rd_lpips": folder / "rd_lpips.png",
    }
    plot_note = None
    plots = (("rd_psnr", "psnr", "PSNR-RGB (dB)", refs),
             ("rd_ms_ssim_db", "ms_ssim_db", "MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", refs),
             ("rd_lpips", "lpips", "LPIPS (AlexNet), lower is better", ()))
    # a metric without values (LPIPS after --no-lpips) still gets its file, saying "no values" (no stale
    # plot of an earlier run is left beside the new report), but the summaries do not show it
    empty = {key for key, metric, _, _ in plots if not _has_values(summary, metric)}
    try:
        for key, metric, label, ref in plots:
            _plot(summary, metric, label, files[key], title, ref)
    except ImportError:
        plot_note = "No plots: matplotlib is not installed (pip install 'glocal-codec[eval]')."
        for k in ("rd_psnr", "rd_ms_ssim_db", "rd_lpips"):
            files.pop(k, None)

    tables = []
    for metric in METRICS:
        try:
            rows, notes = bd_table(results, anchor, metric, method, published=refs)
            tables.append((metric, rows, notes, None))
        except EvalError as err:
            tables.append((metric, [], [], str(err)))
    lp = results.metrics.get("lpips", {})
    lp_line = (f"LPIPS backbone: {lp.get('backbone')}" if lp.get("available")
               else f"LPIPS not computed: {lp.get('message', 'unavailable')}")
    small = sorted({r.image for r in results.records if 0 < r.ms_ssim_scales < 5})
    notes_all = [anchor_note(anchor, asked), lp_line,
                 "Rate: the real size of the complete .glc file (container header included)."]
    if plot_note:
        notes_all.append(plot_note)
    if "rd_lpips" in empty and plot_note is None:
        notes_all.append("No LPIPS plot: no LPIPS values in these results (rd_lpips.png says so).")
    if small:
        notes_all.append(f"MS-SSIM used fewer than 5 scales on {len(small)} small image(s); those values are "
                         "not comparable with 5-scale numbers.")

    from .task_report import task_section  # eval --task: task score per bpp, 95 % point, BD, Spearman

    task = task_section(results, folder, anchor, method)
    extra_md, extra_html = (task[0], task[1]) if task else ("", "")
    if task:
        files.update(task[2])
    files["summary_md"] = folder / "summary.md"
    files["summary_html"] = folder / "summary.html"
    shown = {k: v for k, v in files.items() if k not in empty}
    atomic_write(files["summary_md"], force=True,
                 content=_markdown(results, summary, tables, anchor, method, notes_all, shown)
                 + ("\n" + extra_md if extra_md else ""))
    atomic_write(files["summary_html"], force=True,
                 content=_html(results, summary, tables, anchor, method, notes_all, shown, extra_html))
    return files


def _avg_rows(summary: dict[str, dict[int, Summary]]) -> list[list[str]]:
    rows = []
    for codec, levels in summary.items():
        for q, s in levels.items():
            rows.append([codec, str(q), str(s.images), _fmt(s.bpp, 4), _fmt(s.psnr, 2), _fmt(s.ms_ssim, 4),
                         _fmt(s.ms_ssim_db, 2), _fmt(s.lpips, 4), _fmt(s.encode_s, 3), _fmt(s.decode_s, 3)])
    return rows


_AVG_HEAD = ["codec", "quality", "images", "bpp", "PSNR (dB)", "MS-SSIM", "MS-SSIM (dB)", "LPIPS",
             "encode s", "decode s"]


def _bd_rows(rows: list[BDRow], metric: str) -> tuple[list[str], list[list[str]]]:
    qname = "BD-PSNR (dB)" if metric == "psnr" else "BD-MS-SSIM (dB)"
    head = ["codec", "kind", "BD-rate (%)", qname, "overlap", "notes"]
    body = [[r.codec, r.kind, _fmt(r.bd_rate, 2, True), _fmt(r.bd_quality, 3, True), f"{r.overlap:.0%}",
             "; ".join(r.notes)] for r in rows]
    return head, body


def _markdown(results: EvalResults, summary, tables, anchor, method, notes, files) -> str:
    def table(head: list[str], body: list[list[str]]) -> str:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)

    out = [f"# Evaluation: {results.dataset}", "",
           f"{len(results.images)} image(s), codecs: {', '.join(results.codecs())}; "
           f"glocal-codec results format `{'glocal-codec-eval/1'}`.", ""]
    out += [f"- {n}" for n in notes] + [""]
    out += ["## Averages", "", table(_AVG_HEAD, _avg_rows(summary)), ""]
    for metric, rows, tnotes, error in tables:
        out += [f"## BD-rate against {anchor} ({METRICS[metric]}, {method})", ""]
        if error:
            out += [f"Not available: {error}", ""]
            continue
        head, body = _bd_rows(rows, metric)
        out += [table(head, body), ""] + [f"- {n}" for n in tnotes] + ([""] if tnotes else [])
    plots = [k for k in ("rd_psnr", "rd_ms_ssim_db", "rd_lpips") if k in files]
    if plots:
        out += ["## Rate-distortion plots", ""] + [f"![{k}]({files[k].name})" for k in plots] + [""]
    return "\n".join(out)


def _html(results: EvalResults, summary, tables, anchor, method, notes, files, extra: str = "") -> str:
    e = html.escape
    table = html_table

    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>glocal-codec evaluation: {e(results.dataset)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}td:first-child{text-align:left}"
        "img{max-width:32%}</style></head><body>",
        f"<h1>Evaluation: {e(results.dataset)}</h1>",
        f"<p>{len(results.images)} image(s), codecs: {e(', '.join(results.codecs()))}</p>",
        "<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>",
        "<h2>Averages</h2>", table(_AVG_HEAD, _avg_rows(summary)),
    ]
    for metric, rows, tnotes, error in tables:
        parts.append(f"<h2>BD-rate against {e(anchor)} ({e(METRICS[metric])}, {e(method)})</h2>")
        if error:
            parts.append(f"<p>Not available: {e(error)}</p>")
            continue
        head, body = _bd_rows(rows, metric)
        parts.append(table(head, body))
        if tnotes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in tnotes) + "</ul>")
    plots = [k for k in ("rd_psnr", "rd_ms_ssim_db", "rd_lpips") if k in files]
    if plots:
        parts.append("<h2>Rate-distortion plots</h2><p>")
        parts += [img_tag(files[k], k) for k in plots]  # embedded: the page is one self-contained file
        parts.append("</p>")
    if extra:
        parts.append(extra)
    parts.append("</body></html>\n")
    return "\n".join(parts)
