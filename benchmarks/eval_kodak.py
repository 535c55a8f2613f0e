"""The full Kodak evaluation, timed: msh, jpeg, webp, avif and jpeg2000 at every quality level.

    .venv/bin/python benchmarks/eval_kodak.py                       # everything (24 images x 5 codecs)
    .venv/bin/python benchmarks/eval_kodak.py --limit 2 --codec jpeg --codec webp   # a quick check
    .venv/bin/python benchmarks/eval_kodak.py --workers 4 --device cuda

Runs the same code as ``glocal-codec eval --dataset kodak`` (resumable: an existing
``results.json`` in the report folder is continued, pass --fresh to start over), writes the
report (default ``reports/kodak``, not committed) and records what ran and how long it took in
``benchmarks/results/eval_kodak.json``. The Kodak images come from ``$GLOCAL_CODEC_DATA/kodak``
(or ``--data-dir``), else from the download cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from glocal_codec import __version__
from glocal_codec.datasets import Dataset, load_dataset
from glocal_codec.eval.report import bd_table, write_report
from glocal_codec.eval.runner import evaluate, summarize

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CODECS = ["msh", "jpeg", "webp", "avif", "jpeg2000"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", action="append", help=f"codec (repeatable; default {' '.join(CODECS)})")
    p.add_argument("--quality", action="append", type=int, help="quality level (repeatable; default all)")
    p.add_argument("--limit", type=int, help="first N images only (a quick check)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--report", type=Path, default=Path("reports/kodak"))
    p.add_argument("--no-lpips", action="store_true")
    p.add_argument("--fresh", action="store_true", help="ignore an existing results.json")
    p.add_argument("--out", type=Path, default=RESULTS / "eval_kodak.json", help="where to record the timing")
    a = p.parse_args()
    codecs = a.codec or CODECS

    ds = load_dataset("kodak", a.data_dir)
    if a.limit:
        ds = Dataset(ds.name, ds.root, ds.images[: a.limit], ds.source, ds.notes)
    done_before = {"n": 0}

    def progress(done: int, total: int, rec) -> None:  # noqa: ANN001
        if rec is None:
            done_before["n"] = done
            print(f"{done}/{total} items already in {a.report / 'results.json'}", flush=True)
        else:
            print(f"[{done}/{total}] {rec.codec} q{rec.quality} {rec.image}: {rec.bpp:.4f} bpp "
                  f"{rec.psnr:.2f} dB, enc {rec.encode_s:.2f} s dec {rec.decode_s:.2f} s", flush=True)

    t0 = time.perf_counter()
    results = evaluate(ds, codecs, a.quality, results_path=a.report / "results.json", device=a.device,
                       workers=a.workers, lpips=not a.no_lpips, data_dir=a.data_dir, fresh=a.fresh,
                       progress=progress, log=lambda m: print(f"note: {m}", flush=True))
    seconds = time.perf_counter() - t0
    write_report(results, a.report)
    summary = summarize(results.records)
    rows, _ = bd_table(results, "jpeg", "psnr") if "jpeg" in summary else ([], [])
    record = {
        "benchmark": "eval_kodak",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "glocal_codec": __version__,
        "torch": torch.__version__,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "images": len(ds.images),
        "codecs": codecs,
        "qualities": results.run.get("qualities"),
        "workers": a.workers,
        "device": a.device or "default",
        "items_total": len(results.records),
        "items_measured_this_run": len(results.records) - done_before["n"],
        "seconds": round(seconds, 2),
        "lpips": results.metrics.get("lpips", {}).get("backbone"),
        "report": str(a.report),
        "bd_rate_vs_jpeg_psnr_pchip": {r.codec: None if r.bd_rate is None else round(r.bd_rate, 2) for r in rows},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{record['items_measured_this_run']} items in {seconds:.1f} s; recorded in {a.out}")


if __name__ == "__main__":
    main()
