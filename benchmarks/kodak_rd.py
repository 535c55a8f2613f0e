"""Kodak rate-distortion of built-in codecs, measured through the public API (real file sizes).

    .venv/bin/python benchmarks/kodak_rd.py --codec msh --codec jpeg --codec webp [--update-manifest]

Writes benchmarks/results/kodak_<codec>.json (per-image points and per-quality averages) and
prints a Markdown table; with --update-manifest the averages of learned codecs go into the
weights manifest (the numbers the README quotes). It then compares every learned codec with
JPEG and WebP *at equal bpp*: the reference curve (Kodak-average bpp vs PSNR) is interpolated
linearly in log(bpp) at each learned point's bpp.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import glocal_codec as gc
from glocal_codec.datasets import dataset_dir, list_images
from glocal_codec.eval import average, measure
from glocal_codec.weights import update_manifest

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def interp_psnr(curve: dict, bpp: float) -> float | None:
    """PSNR of an averaged RD curve at ``bpp`` (log-linear), None outside its range."""
    pts = sorted((v["bpp"], v["psnr"]) for v in curve.values())
    for (b0, p0), (b1, p1) in zip(pts, pts[1:]):
        if b0 <= bpp <= b1:
            t = (math.log(bpp) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return p0 + t * (p1 - p0)
    return None


def run(codec: str, images: list[Path]) -> dict:
    info = {c.name: c for c in gc.list_codecs()}[codec]
    points = measure(images, codec, info.qualities,
                     progress=lambda p: print(f"  {p.codec} q{p.quality} {p.image}: {p.bpp:.3f} bpp {p.psnr:.2f} dB",
                                              flush=True))
    result = {"codec": codec, "dataset": "kodak", "images": len(images), "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or None,
              "average": average(points), "points": [asdict(p) for p in points]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"kodak_{codec}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--codec", action="append", required=True)
    p.add_argument("--limit", type=int, help="first N images only (quick check)")
    p.add_argument("--update-manifest", action="store_true")
    a = p.parse_args()
    images = list_images(dataset_dir("kodak"))[: a.limit]
    results = {}
    for codec in a.codec:
        f = RESULTS / f"kodak_{codec}.json"
        print(f"== {codec}", flush=True)
        results[codec] = run(codec, images)
    # also pick up earlier measurements of the references for the comparison
    for ref in ("jpeg", "webp"):
        f = RESULTS / f"kodak_{ref}.json"
        if ref not in results and f.exists():
            results[ref] = json.loads(f.read_text())
    print("\n| codec | quality | bpp | PSNR (dB) | JPEG at same bpp | WebP at same bpp | enc s | dec s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for codec in a.codec:
        avg = results[codec]["average"]
        for q, v in avg.items():
            refs = []
            for ref in ("jpeg", "webp"):
                r = interp_psnr(results[ref]["average"], v["bpp"]) if ref in results else None
                refs.append("n/a (out of range)" if r is None else f"{r:.2f} ({v['psnr'] - r:+.2f})")
            print(f"| {codec} | {q} | {v['bpp']:.3f} | {v['psnr']:.2f} | {refs[0]} | {refs[1]} | {v['encode_s']:.2f} | {v['decode_s']:.2f} |")
        if a.update_manifest and codec in ("msh", "factorized", "glocal"):
            update_manifest(codec, {"kodak": {str(q): {"bpp": v["bpp"], "psnr": v["psnr"]} for q, v in avg.items()},
                                    "kodak_command": f"python benchmarks/kodak_rd.py --codec {codec} --update-manifest"})


if __name__ == "__main__":
    main()
