"""Rate-distortion evaluation of video codecs (``glocal-codec eval --video CLIP``).

Every clip x codec x quality is encoded to a real ``.glc`` file and decoded back; the record
holds the file's bytes and bpp (``8 * bytes / (T * H * W)``, header included), PSNR (RGB, 8-bit)
and MS-SSIM per frame and their means, encode seconds (for an INR codec: the fitting time),
decode seconds and decoding frames per second, and the device. Results go to
``results.json`` (format ``glocal-codec-video-eval/1``), written atomically after every item, so
an interrupted run resumes where it stopped. :func:`write_video_report` adds ``summary.md``, a
self-contained ``summary.html`` (plots embedded), rate-distortion plots (bpp vs PSNR, bpp vs
MS-SSIM dB) and a BD-rate table against an anchor (default ``x264``; the report says when another
codec stands in because x264 was not measured).
"""

from __future__ import annotations

import html
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from ..codecs import FittedEncoder, open_codec
from ..util import atomic_write
from .bdrate import bd_quality, bd_rate
from .metrics import ms_ssim, ms_ssim_db, psnr
from .report import curve_style

__all__ = ["VideoRecord", "VIDEO_RESULTS_FORMAT", "DEFAULT_VIDEO_ANCHOR", "evaluate_videos", "load_video_results",
           "write_video_report", "video_summary"]

VIDEO_RESULTS_FORMAT = "glocal-codec-video-eval/1"


@dataclass
class VideoRecord:
    video: str
    codec: str
    quality: int
    frames: int
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: Optional[float]
    encode_s: float
    decode_s: float
    decode_fps: float
    device: str
    psnr_frames: list[float] = field(default_factory=list)
    ms_ssim_frames: list[Optional[float]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.video, self.codec, self.quality)


def load_video_results(path: str | os.PathLike) -> list[VideoRecord]:
    data = json.loads(Path(path).read_text())
    if data.get("format") != VIDEO_RESULTS_FORMAT:
        raise ValueError(f"{path} is not a video results file (format {data.get('format')!r})")
    return [VideoRecord(**r) for r in data["records"]]


def _save(path: Path, records: list[VideoRecord], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"format": VIDEO_RESULTS_FORMAT, **meta,
                                   "records": [asdict(r) for r in sorted(records, key=lambda r: r.key)]}, indent=1),
                 force=True)


def _frame_metrics(x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[Optional[float]]]:
    p, m = [], []
    for a, b in zip(x, y):
        p.append(psnr(a[None], b[None]))
        m.append(ms_ssim(a[None], b[None]))
    return p, m


def evaluate_videos(videos: Sequence[str | os.PathLike], codecs: Sequence[str],
                    qualities: Optional[Sequence[int]] = None, *, results_path: str | os.PathLike,
                    max_frames: Optional[int] = None, size: Optional[tuple[int, int]] = None,
                    device: Optional[str] = None, epochs: Optional[int] = None, fresh: bool = False,
                    progress: Optional[Callable[[int, int, Optional[VideoRecord]], None]] = None,
                    log: Callable[[str], None] = lambda m: None) -> list[VideoRecord]:
    """Measure ``codecs`` on every clip (file or frame folder); resumable through ``results_path``.

    ``epochs`` sets the fitting budget of the INR codecs (those with an ``epochs`` attribute);
    ``max_frames`` / ``size`` cut and rescale the clips the same way for every codec.
    """
    from ..video import decode_video, encode_video, read_video
    from ..video.io import VideoClip

    results_path = Path(results_path)
    done: dict[tuple[str, str, int], VideoRecord] = {}
    if results_path.exists() and not fresh:
        for r in load_video_results(results_path):
            done[r.key] = r
    plan = []
    for name in codecs:
        c = open_codec(name)
        if c.media != "video":
            raise ValueError(f"{name} is an image codec; video evaluation needs video codecs")
        qs = list(qualities) if qualities else list(c.qualities)
        bad = [q for q in qs if q not in c.qualities]
        if bad:
            raise ValueError(f"{name} has no quality level {bad[0]} (levels {list(c.qualities)})")
        plan += [(name, q) for q in qs]
    clips: dict[str, VideoClip] = {}
    for v in videos:
        clips[str(v)] = read_video(v, max_frames=max_frames, size=size)
    total = len(plan) * len(clips)
    meta = {"max_frames": max_frames, "size": list(size) if size else None, "epochs": epochs}
    if progress:
        progress(sum(1 for v in clips for n, q in plan if (Path(v).name, n, q) in done), total, None)
    count = 0
    for vpath, clip in clips.items():
        vname = Path(vpath).name
        x = clip.frames
        t, _, h, w = x.shape
        for name, q in plan:
            count += 1
            if (vname, name, q) in done:
                continue
            c = open_codec(name)
            old_epochs = c.epochs if isinstance(c, FittedEncoder) else None
            if epochs is not None and old_epochs is not None:
                c.epochs = epochs
            try:
                t0 = time.perf_counter()
                data = encode_video(clip, codec=name, quality=q)
                t1 = time.perf_counter()
                out = decode_video(data, device=device, max_pixels=None).frames  # its own file: no bomb guard
                t2 = time.perf_counter()
            finally:
                if old_epochs is not None:
                    c.epochs = old_epochs
            pf, mf = _frame_metrics(x, out)
            ms_vals = [v for v in mf if v is not None]
            rec = VideoRecord(
                video=vname, codec=name, quality=q, frames=t, width=w, height=h, bytes=len(data),
                bpp=8 * len(data) / (t * h * w), psnr=float(sum(pf) / len(pf)),
                ms_ssim=float(sum(ms_vals) / len(ms_vals)) if ms_vals else None,
                encode_s=t1 - t0, decode_s=t2 - t1, decode_fps=t / max(t2 - t1, 1e-9),
                device=str(getattr(c, "device", "cpu")), psnr_frames=pf, ms_ssim_frames=mf)
            done[rec.key] = rec
            _save(results_path, list(done.values()), meta)
            if progress:
                progress(count, total, rec)
    return sorted(done.values(), key=lambda r: r.key)


def video_summary(records: Sequence[VideoRecord]) -> dict[str, dict[int, dict[str, float]]]:
    """codec -> quality -> mean bpp / PSNR / MS-SSIM dB / encode s / decode fps over the clips."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    groups: dict[tuple[str, int], list[VideoRecord]] = {}
    for r in records:
        groups.setdefault((r.codec, r.quality), []).append(r)
    for (codec, q), rs in sorted(groups.items()):
        db = [ms_ssim_db(r.ms_ssim) for r in rs if r.ms_ssim is not None]
        out.setdefault(codec, {})[q] = {
            "clips": len(rs), "bpp": sum(r.bpp for r in rs) / len(rs), "psnr": sum(r.psnr for r in rs) / len(rs),
            "ms_ssim_db": sum(db) / len(db) if db else math.nan,
            "encode_s": sum(r.encode_s for r in rs) / len(rs), "decode_fps": sum(r.decode_fps for r in rs) / len(rs),
        }
    return out


def _bd(summary, anchor: str, codec: str, metric: str) -> tuple[Optional[float], Optional[float], str]:
    a = sorted(summary[anchor].values(), key=lambda s: s["bpp"])
    b = sorted(summary[codec].values(), key=lambda s: s["bpp"])
    args = ([s["bpp"] for s in a], [s[metric] for s in a], [s["bpp"] for s in b], [s[metric] for s in b])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rate, qual = bd_rate(*args), bd_quality(*args)
        except ValueError as e:
            return None, None, str(e)
    return rate, qual, "; ".join(str(w.message) for w in caught)


#: The BD-rate anchor of a video report when none is asked for (and it was measured).
DEFAULT_VIDEO_ANCHOR = "x264"


def write_video_report(records: Sequence[VideoRecord], folder: str | os.PathLike,
                       anchor: Optional[str] = None) -> dict[str, Path]:
    """``summary.md``, ``summary.html`` (self-contained) and the RD plots for video results;
    returns the files written."""
    from .report import anchor_note, html_table, img_tag

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = video_summary(records)
    asked = anchor
    anchor = anchor or (DEFAULT_VIDEO_ANCHOR if DEFAULT_VIDEO_ANCHOR in summary else next(iter(summary), None))
    files = {"summary_md": folder / "summary.md", "summary_html": folder / "summary.html",
             "rd_psnr": folder / "rd_psnr.png", "rd_ms_ssim_db": folder / "rd_ms_ssim_db.png"}
    clips = sorted({r.video for r in records})
    for key, metric, label in (("rd_psnr", "psnr", "PSNR (dB, RGB)"), ("rd_ms_ssim_db", "ms_ssim_db", "MS-SSIM (dB)")):
        fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
        for i, (codec, levels) in enumerate(summary.items()):
            pts = sorted((s["bpp"], s[metric]) for s in levels.values())
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=codec, **curve_style(i))
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (real file size, log scale)")
        ax.set_ylabel(label)
        ax.set_title(f"video: {', '.join(clips)}")
        ax.grid(True, alpha=0.3, which="both")
        if summary:
            ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_write(files[key], lambda tmp: fig.savefig(tmp, format="png"), force=True, suffix=".png")
        plt.close(fig)
    about = ("Rate is the real size of the complete .glc file (header included); PSNR over RGB 8-bit, mean of the "
             "frames; encode time of an INR codec is its fitting time.")
    head = ["codec", "quality", "clips", "bpp", "PSNR (dB)", "MS-SSIM (dB)", "encode s", "decode fps"]
    avg = [[codec, str(q), str(s["clips"]), f"{s['bpp']:.4f}", f"{s['psnr']:.2f}", f"{s['ms_ssim_db']:.2f}",
            f"{s['encode_s']:.1f}", f"{s['decode_fps']:.1f}"] for codec, levels in summary.items()
           for q, s in levels.items()]
    bd_head = ["codec", "BD-rate (%)", "BD-PSNR (dB)", "notes"]
    bd = []
    if anchor is not None and len(summary) > 1:
        for codec in summary:
            if codec == anchor:
                continue
            rate, qual, note = _bd(summary, anchor, codec, "psnr")
            bd.append([codec, "n/a" if rate is None else f"{rate:+.2f}", "n/a" if qual is None else f"{qual:+.3f}", note])
    notes = [about] + ([anchor_note(anchor, asked, DEFAULT_VIDEO_ANCHOR)] if anchor is not None else [])

    lines = [f"# Video evaluation: {', '.join(clips)}", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in avg]
    if bd:
        lines += ["", f"## BD-rate against {anchor} (PSNR, pchip)", "", "| " + " | ".join(bd_head) + " |",
                  "|---|---|---|---|"] + ["| " + " | ".join(row) + " |" for row in bd]
    lines += ["", "## Rate-distortion plots", "", f"![rd_psnr]({files['rd_psnr'].name})",
              f"![rd_ms_ssim_db]({files['rd_ms_ssim_db'].name})"]

    e = html.escape
    page = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>glocal-codec video evaluation: {e(', '.join(clips))}</title>",
            "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}td:first-child{text-align:left}"
            "img{max-width:48%}</style></head><body>",
            f"<h1>Video evaluation: {e(', '.join(clips))}</h1>",
            "<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>",
            "<h2>Averages</h2>", html_table(head, avg)]
    if bd:
        page += [f"<h2>BD-rate against {e(anchor)} (PSNR, pchip)</h2>", html_table(bd_head, bd)]
    page += ["<h2>Rate-distortion plots</h2><p>", img_tag(files["rd_psnr"], "rd_psnr"),
             img_tag(files["rd_ms_ssim_db"], "rd_ms_ssim_db"), "</p></body></html>\n"]
    atomic_write(files["summary_html"], "\n".join(page), force=True)
    atomic_write(files["summary_md"], "\n".join(lines) + "\n", force=True)
    return files
