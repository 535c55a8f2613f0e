"""Kodak rate-distortion with and without encoder-side latent refinement (real file sizes).

    .venv/bin/python benchmarks/refine_rd.py --codec msh --steps 30 [--limit N]

Encodes every image at every quality twice through the public API, once as usual and once
with ``refine=STEPS`` (:mod:`glocal_codec.engine.refine`), decodes both with the one decoder,
and writes benchmarks/results/refine_<codec>_<steps>[_first<N>].json: per-quality averages of
both runs, the BD-rate of the refined curve against the plain one, and of both against JPEG and
WebP over the same images (their per-image points from benchmarks/results/kodak_{jpeg,webp}.json,
measured by kodak_rd.py). ``--reuse`` re-summarises a results file without encoding again.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

import glocal_codec as gc
from glocal_codec.datasets import dataset_dir, list_images
from glocal_codec.eval import RDPoint, average, measure
from glocal_codec.eval.bdrate import bd_rate

from kodak_rd import interp_psnr  # same directory: the equal-bpp comparison kodak_rd.py prints

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _bd(anchor: dict, test: dict) -> float:
    a, t = sorted(anchor.values(), key=lambda v: v["bpp"]), sorted(test.values(), key=lambda v: v["bpp"])
    return round(bd_rate([v["bpp"] for v in a], [v["psnr"] for v in a], [v["bpp"] for v in t], [v["psnr"] for v in t]), 2)


def _reference(name: str, images: set[str]) -> dict | None:
    """A classical codec's Kodak-average curve over ``images`` only, from kodak_rd.py's points."""
    f = RESULTS / f"kodak_{name}.json"
    if not f.exists():
        return None
    points = [RDPoint(**p) for p in json.loads(f.read_text())["points"] if p["image"] in images]
    return average(points) if {p.image for p in points} == images else None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--codec", default="msh")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--limit", type=int, help="first N images only (quick check)")
    p.add_argument("--reuse", action="store_true",
                   help="re-summarise the points already in the results file instead of encoding again")
    a = p.parse_args()
    name = f"refine_{a.codec}_{a.steps}" + (f"_first{a.limit}" if a.limit else "")
    out = RESULTS / f"{name}.json"
    images = list_images(dataset_dir("kodak"))[: a.limit]
    runs: dict[int, list[RDPoint]] = {}
    if a.reuse:
        stored = json.loads(out.read_text())["points"]
        runs = {0: [RDPoint(**x) for x in stored["plain"]], a.steps: [RDPoint(**x) for x in stored["refined"]]}
    else:
        info = {c.name: c for c in gc.list_codecs()}[a.codec]
        for steps in (0, a.steps):
            print(f"== {a.codec}, refine={steps}", flush=True)
            runs[steps] = measure(images, a.codec, info.qualities, refine=steps,
                                  progress=lambda p: print(f"  q{p.quality} {p.image}: {p.bpp:.4f} bpp "
                                                           f"{p.psnr:.3f} dB ({p.encode_s:.1f} s)", flush=True))
    names = {x.image for x in runs[0]}
    plain, refined = average(runs[0]), average(runs[a.steps])
    result = {"codec": a.codec, "dataset": "kodak", "images": len(names), "steps": a.steps,
              "threads": int(os.environ.get("OMP_NUM_THREADS", 0)) or None,
              "plain": plain, "refined": refined, "bd_rate_refined_vs_plain": _bd(plain, refined),
              "command": f"python benchmarks/refine_rd.py --codec {a.codec} --steps {a.steps}"
                         + (f" --limit {a.limit}" if a.limit else ""),
              "points": {"plain": [asdict(x) for x in runs[0]], "refined": [asdict(x) for x in runs[a.steps]]}}
    refs = {r: c for r in ("jpeg", "webp") if (c := _reference(r, names)) is not None}
    print(f"\n{a.codec}, {a.steps} refinement steps, {len(names)} Kodak images")
    print("\n| quality | plain bpp | plain PSNR | refined bpp | refined PSNR | refine s/image |"
          + "".join(f" {r} at refined bpp |" for r in refs))
    print("|---:|---:|---:|---:|---:|---:|" + "---:|" * len(refs))
    for q in plain:
        v0, v1 = plain[q], refined[q]
        cells = []
        for r in refs:
            ref = interp_psnr(refs[r], v1["bpp"])
            cells.append("n/a" if ref is None else f"{ref:.2f} ({v1['psnr'] - ref:+.2f})")
        print(f"| {q} | {v0['bpp']:.4f} | {v0['psnr']:.3f} | {v1['bpp']:.4f} | {v1['psnr']:.3f} | "
              f"{v1['encode_s']:.1f} |" + "".join(f" {c} |" for c in cells))
    print(f"\nBD-rate refined vs plain: {result['bd_rate_refined_vs_plain']:+.2f} %")
    for r, ref in refs.items():  # the reference curve over the same images
        result[f"bd_rate_plain_vs_{r}"] = _bd(ref, plain)
        result[f"bd_rate_refined_vs_{r}"] = _bd(ref, refined)
        print(f"BD-rate vs {r} (same images): plain {result[f'bd_rate_plain_vs_{r}']:+.2f} %, "
              f"refined {result[f'bd_rate_refined_vs_{r}']:+.2f} %")
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
