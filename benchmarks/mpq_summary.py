"""Machine perceptual quality (issue 35): condense an ``eval --task`` report into a small JSON.

    glocal-codec eval --dataset kodak --task features --codec jpeg --codec webp --codec msh --report R
    .venv/bin/python benchmarks/mpq_summary.py R --command "glocal-codec eval ... --report R" --seconds 3600

Reads ``R/results.json`` and writes
``benchmarks/results/mpq_<task>.json``: what ran, on which images, the per codec x quality
averages (bpp, PSNR, MS-SSIM, LPIPS, pooled task score), the bpp at which each codec keeps 95 %
of the uncompressed score, the BD-rate on task score against JPEG and the Spearman correlations.
The full ``results.json`` (per-image records, OCR readings) stays in the report folder: it is
not committed.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Optional

import torch

from glocal_codec import __version__
from glocal_codec.eval.report import DEFAULT_ANCHOR
from glocal_codec.eval.runner import load_results, summarize
from glocal_codec.eval.task_report import task_summary

RESULTS = Path(__file__).resolve().parent / "results"


def _r(v: Optional[float], n: int = 4) -> Optional[float]:
    return None if v is None else round(float(v), n)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", type=Path, help="an `eval --task` report folder (holding results.json)")
    p.add_argument("--command", required=True, help="the command that made it (recorded as is)")
    p.add_argument("--seconds", type=float, help="wall-clock time of that command")
    p.add_argument("--note", action="append", default=[], help="a note to record (repeatable)")
    p.add_argument("--out", type=Path, help="default benchmarks/results/mpq_<task>.json")
    a = p.parse_args()
    res = load_results(a.report / "results.json")
    ts = task_summary(res, DEFAULT_ANCHOR)
    if ts is None:
        raise SystemExit(f"{a.report}/results.json holds no task records")
    summ = summarize(res.records)
    points = []
    for tp in ts.points:
        s = summ[tp.codec][tp.quality]
        points.append({"codec": tp.codec, "quality": tp.quality, "images": tp.images, "bpp": _r(tp.bpp),
                       "task_score": _r(tp.score), "psnr": _r(s.psnr, 3), "ms_ssim": _r(s.ms_ssim),
                       "lpips": _r(s.lpips)})
    summary = ts.to_json()
    summary.pop("points")
    out = a.out or RESULTS / f"mpq_{ts.task}.json"
    doc = {
        "benchmark": f"mpq_{ts.task}",
        "command": a.command,
        "seconds": a.seconds,
        "glocal_codec": __version__,
        "torch": torch.__version__,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "torch_threads": torch.get_num_threads()},
        "dataset": res.dataset,
        "images": sorted(i.id for i in res.images),
        "task": res.run.get("task"),
        "notes": a.note,
        "points": points,
        "summary": summary,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
