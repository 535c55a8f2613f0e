"""``overfit``: rate-distortion against encode time -- BD-rate against ``msh`` per fitting budget.

    .venv/bin/python benchmarks/overfit_iterations.py [--images 6] [--iterations 250,500,1000]
        [--qualities 2,3,4] [--crop 384x256 | --crop full] [--threads 2] [--seed-from results.json]
        [--preset medium]

Every image is cut to its centre ``--crop`` (a quarter of a Kodak image by default; ``full`` keeps
the whole image: about 1.5 hours per budget on this 2-core machine); ``overfit`` fits it at every budget and
quality, ``msh`` codes it at all its levels, and the BD-rate (PSNR, pchip) of each budget against
``msh`` is averaged over the images. Rates are real file sizes; encode seconds are recorded but
are only comparable on an otherwise idle machine (``benchmarks/overfit_speed.py`` times them). Crops are *pessimistic* for
``overfit``: its networks (about 1 kB) are spread over a quarter of the pixels. Resumable: every
encoded point is saved to benchmarks/results/overfit_iterations.json as it finishes; the plot
goes beside it (overfit_iterations.png); whole images go to overfit_iterations_full.json / .png.
``--seed-from`` takes the points an eval already measured on the same whole images (its
``overfit`` records are the ``fast`` preset, i.e. 500 iterations; its ``msh`` records the anchor)
instead of fitting them again. ``--preset`` fits with another preset's decoder size and random
starts (``medium``: 24-wide synthesis, 2 starts); its points are labelled ``medium@N`` and it is a
separate curve (``fast``'s are ``overfit@N``). Every fit runs ``N`` full-size iterations and no
half-size start (``coarse=0``; ``fast`` itself has one since 2026-12-05), so the curve is the one
measured before it. ``--preset-from`` takes an eval of today's ``fast`` preset on the same whole
images (300 half-size and 420 full-size iterations: the time of 500) and plots it as its own
point at 500 (``fast-now@500``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import glocal_codec as gc
from glocal_codec.codecs.overfit import OverfitCodec
from glocal_codec.eval.bdrate import bd_rate
from glocal_codec.eval.metrics import psnr
from glocal_codec.imageio import load_image

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))
FAST_ITERATIONS = 500  # OverfitCodec's "fast" preset: what an eval's plain ``overfit`` runs


def _out(crop: str) -> Path:
    name = "overfit_iterations_full" if crop == "full" else "overfit_iterations"
    return HERE / "results" / f"{name}.json"


def _crop(x: torch.Tensor, size: str) -> torch.Tensor:
    if size == "full":
        return x
    w, h = (int(v) for v in size.split("x"))
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top: top + h, left: left + w].contiguous()


def _point(x: torch.Tensor, codec, quality: int) -> dict:
    t0 = time.perf_counter()
    data = gc.encode(x, codec=codec, quality=quality)
    secs = time.perf_counter() - t0
    y = gc.decode_tensor(data)
    return {"bpp": 8 * len(data) / (x.shape[-1] * x.shape[-2]), "psnr": psnr(x, y), "encode_s": round(secs, 2)}


def _seed(points: dict, results: Path, overfit_label: str = f"overfit@{FAST_ITERATIONS}") -> int:
    """Copy an eval's ``msh`` and plain ``overfit`` (= ``fast``) records of whole images into
    ``points`` (``overfit`` under ``overfit_label``); returns how many were new."""
    labels = {"msh": "msh", "overfit": overfit_label}
    n = 0
    for r in json.loads(results.read_text())["records"]:
        key = f"{r['image']}|{labels.get(r['codec'], '')}|{r['quality']}"
        if r["codec"] in labels and key not in points:
            points[key] = {"bpp": r["bpp"], "psnr": r["psnr"], "encode_s": round(r["encode_s"], 2),
                           "from": str(results.name)}
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--iterations", default="250,500,1000")
    ap.add_argument("--qualities", default="2,3,4")
    ap.add_argument("--crop", default="384x256")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seed-from", type=Path, help="an eval's results.json on the same whole images")
    ap.add_argument("--preset", default="fast", help="the preset whose decoder size and starts the fits use")
    ap.add_argument("--preset-from", type=Path, help="an eval of today's fast preset on the same whole images")
    a = ap.parse_args()
    if (a.seed_from or a.preset_from) and a.crop != "full":
        raise SystemExit("--seed-from / --preset-from hold whole-image points: use them with --crop full")
    torch.set_num_threads(a.threads)
    budgets = [int(v) for v in a.iterations.split(",")]
    qualities = [int(v) for v in a.qualities.split(",")]
    out = _out(a.crop)
    state = json.loads(out.read_text()) if out.is_file() else {}
    if state.get("crop") not in (None, a.crop):
        raise SystemExit(f"{out} holds {state['crop']} crops; move it away to measure {a.crop}")
    state.update(crop=a.crop, threads=a.threads)
    state.pop("preset", None)  # labels say the preset: overfit@N = fast, <preset>@N otherwise
    tag = "overfit" if a.preset == "fast" else a.preset
    points = state.setdefault("points", {})
    if a.seed_from:
        print(f"{_seed(points, a.seed_from)} points taken from {a.seed_from}")
    if a.preset_from:
        print(f"{_seed(points, a.preset_from, f'fast-now@{FAST_ITERATIONS}')} points taken from {a.preset_from}")
    names = [f"kodim{i:02d}.png" for i in range(1, a.images + 1)]
    for name in names:
        x = _crop(load_image(DATA / "kodak" / name)[0], a.crop)
        for label, codec, levels in [("msh", "msh", range(1, 7))] + \
                [(f"{tag}@{n}", OverfitCodec(preset=a.preset, iterations=n, coarse=0), qualities) for n in budgets]:
            for q in levels:
                key = f"{name}|{label}|{q}"
                if key not in points:
                    points[key] = _point(x, codec, q)
                    print(key, points[key], flush=True)
                    out.write_text(json.dumps(state, indent=1) + "\n")
    summary = state.setdefault("summary", {})
    measured = [(tag, n) for n in budgets] + ([("fast-now", FAST_ITERATIONS)] if a.preset_from else [])
    for label, n in measured:
        bds, secs = [], []
        for name in names:
            ref = [points[f"{name}|msh|{q}"] for q in range(1, 7)]
            test = [points[f"{name}|{label}@{n}|{q}"] for q in qualities]
            try:
                bds.append(bd_rate([p["bpp"] for p in ref], [p["psnr"] for p in ref],
                                   [p["bpp"] for p in test], [p["psnr"] for p in test]))
            except ValueError as e:  # no overlap on this image: said, not hidden
                print(f"{name} @ {n}: {e}")
            secs += [p["encode_s"] for p in test]
        summary[str(n) if label == "overfit" else f"{label}@{n}"] = {"bd_rate_vs_msh_pct": round(sum(bds) / len(bds), 1) if bds else None,
                           "images_with_overlap": len(bds), "mean_encode_s": round(sum(secs) / len(secs), 1)}
    state["summary"] = summary
    out.write_text(json.dumps(state, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    curves: dict[str, list[tuple[int, float]]] = {}
    for key, s in summary.items():
        if s["bd_rate_vs_msh_pct"] is not None:
            preset, _, n = key.rpartition("@")
            curves.setdefault(preset or "fast", []).append((int(n), s["bd_rate_vs_msh_pct"]))
    for preset, pts in curves.items():
        pts.sort()
        names_ = {"fast": "fast recipe, plain fits", "medium": "medium preset",
                  "fast-now": "fast preset today (half-size start)"}
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=names_.get(preset, preset))
    if len(curves) > 1:
        ax.legend()
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("fitting time, in full-size iterations (fast: 500)")
    ax.set_ylabel("BD-rate vs msh (%, PSNR)")
    what = "images" if a.crop == "full" else f"{a.crop} crops"
    ax.set_title(f"overfit on {len(names)} Kodak {what}")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
