"""Per-image BD-rates of one codec against others, from an eval ``results.json``.

    .venv/bin/python benchmarks/per_image_bd.py reports/overfit/results.json --codec overfit --anchor msh --anchor webp

``glocal-codec bdrate`` compares the *mean* curves (mean bpp, mean PSNR per level), the published
convention. A per-image codec such as ``overfit`` spends its bits very differently from one image
to the next, so this prints the BD-rate of ``--codec`` against each ``--anchor`` on every image
that both have at every quality level, then the mean and median over images. Only images on
which the test codec finished every level it was run at count (a resumed eval may hold a
partial one). PSNR-RGB by default (``--metric ms_ssim_db`` for MS-SSIM dB). ``--json OUT``
writes the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from glocal_codec.eval.bdrate import Curve, compare


def curves(records: list[dict], codec: str, metric: str) -> dict[str, Curve]:
    """``{image: Curve}`` of ``codec`` (levels sorted by rate)."""
    by_image: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        if r["codec"] == codec and r.get(metric) is not None:
            by_image[r["image"]].append((r["bpp"], r[metric]))
    return {im: Curve.of(*zip(*sorted(pts)), label=codec) for im, pts in by_image.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("results", type=Path)
    p.add_argument("--codec", required=True)
    p.add_argument("--anchor", action="append", required=True)
    p.add_argument("--metric", default="psnr")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    records = json.loads(a.results.read_text())["records"]
    test = curves(records, a.codec, a.metric)
    levels = max((len(c.rate) for c in test.values()), default=0)
    test = {im: c for im, c in test.items() if len(c.rate) == levels}  # finished images only
    table: dict[str, dict[str, float | None]] = {}
    for anchor in a.anchor:
        ref = curves(records, anchor, a.metric)
        for im in sorted(set(test) & set(ref)):
            table.setdefault(im, {})[anchor] = compare(ref[im], test[im]).bd_rate
    print(f"{a.codec}: BD-rate (%) per image, {a.metric}, {len(table)} images x {levels} levels")
    print("| image | " + " | ".join(f"vs {x}" for x in a.anchor) + " |")
    print("|---|" + "---|" * len(a.anchor))
    for im, row in table.items():
        print(f"| {im} | " + " | ".join("—" if row.get(x) is None else f"{row[x]:+.1f}" for x in a.anchor) + " |")
    summary = {}
    for x in a.anchor:
        vals = [row[x] for row in table.values() if row.get(x) is not None]
        if vals:
            summary[x] = {"mean": statistics.fmean(vals), "median": statistics.median(vals), "images": len(vals),
                          "wins": sum(v < 0 for v in vals)}
            print(f"vs {x}: mean {summary[x]['mean']:+.1f} %, median {summary[x]['median']:+.1f} %, "
                  f"better on {summary[x]['wins']} of {len(vals)} images")
    if a.json:
        a.json.write_text(json.dumps({"codec": a.codec, "metric": a.metric, "per_image": table,
                                      "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
