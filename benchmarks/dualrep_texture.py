"""``dualrep`` (issue 34): what ``--texture`` buys, on real files.

    GLOCAL_CODEC_DATA=../shared/data python benchmarks/dualrep_texture.py [--dataset kodak] \
        [--images DIR] [--shard 0 --shards 2] [--out NAME]
    python benchmarks/dualrep_texture.py --merge NAME-0 NAME-1 --out NAME    # join shards, summarise, plot

Every image is encoded at every quality with ``texture`` 0 (the explicit part alone: ``vq``'s
indices + the semantic map, refined with ``z = 0``) and 1 (the full texture), and at quality 2
also with 0.25, 0.5, 0.75; rate from the file's bytes, PSNR and LPIPS (offline AlexNet) of the
decoded 8-bit image. Writes ``benchmarks/results/<out>.json``: the records, per (quality,
texture) means, and the issue's equal-rate test -- the texture-1 LPIPS against the explicit-only
curve interpolated (linearly in log bpp) at the same bpp, where that curve reaches -- and
``benchmarks/results/<out>.png``: LPIPS against bpp for both curves, and PSNR / LPIPS against
``texture`` at quality 2.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

import glocal_codec as gc
from glocal_codec.codecs.dualrep import DualrepCodec
from glocal_codec.datasets import dataset_dir, list_images
from glocal_codec.eval.metrics import get_lpips, psnr
from glocal_codec.imageio import load_image

RESULTS = Path(__file__).resolve().parent / "results"
TEXTURES = (0.0, 1.0)
SWEEP = (0.25, 0.5, 0.75)
SWEEP_QUALITY = 2


def measure(paths: list[Path]) -> list[dict]:
    lpips, _ = get_lpips()
    codecs = {t: DualrepCodec(texture=t) for t in (*TEXTURES, *SWEEP)}
    out = []
    for p in paths:
        x = load_image(p)[0]
        pixels = x.shape[-1] * x.shape[-2]
        for q in (1, 2, 3, 4):
            for t in TEXTURES + (SWEEP if q == SWEEP_QUALITY else ()):
                t0 = time.perf_counter()
                data = gc.encode(x, codec=codecs[t], quality=q)
                t1 = time.perf_counter()
                y = gc.decode_tensor(data)
                t2 = time.perf_counter()
                y8 = torch.round(y * 255) / 255
                rec = {"image": p.name, "quality": q, "texture": t, "bytes": len(data), "bpp": 8 * len(data) / pixels,
                       "psnr": psnr(x, y8), "lpips": lpips(x, y8) if lpips else None,
                       "encode_s": round(t1 - t0, 3), "decode_s": round(t2 - t1, 3)}
                out.append(rec)
                print(json.dumps(rec), flush=True)
    return out


def _interp_log(xs: list[float], ys: list[float], x: float) -> float | None:
    """``y`` at ``x`` on the piecewise-linear curve in log ``x`` (None outside it)."""
    order = np.argsort(xs)
    lx, ly = np.log(np.asarray(xs)[order]), np.asarray(ys)[order]
    if not lx[0] <= math.log(x) <= lx[-1]:
        return None
    return float(np.interp(math.log(x), lx, ly))


def summarise(records: list[dict]) -> dict:
    keys = sorted({(r["quality"], r["texture"]) for r in records})
    means = []
    for q, t in keys:
        rs = [r for r in records if r["quality"] == q and r["texture"] == t]
        means.append({"quality": q, "texture": t, "images": len(rs),
                      **{k: round(float(np.mean([r[k] for r in rs])), 5)
                         for k in ("bpp", "psnr", "lpips", "encode_s", "decode_s")},
                      "max_bpp": round(max(r["bpp"] for r in rs), 5)})
    explicit = [m for m in means if m["texture"] == 0.0]
    xs, ys = [m["bpp"] for m in explicit], [m["lpips"] for m in explicit]
    equal_rate = []
    for m in means:
        if m["texture"] != 1.0:
            continue
        ref = _interp_log(xs, ys, m["bpp"])
        equal_rate.append({"quality": m["quality"], "bpp": m["bpp"], "lpips": m["lpips"],
                           "explicit_lpips_at_bpp": None if ref is None else round(ref, 5),
                           "ratio": None if ref is None else round(m["lpips"] / ref, 4)})
    sweep = [m for m in means if m["quality"] == SWEEP_QUALITY]
    sweep.sort(key=lambda m: m["texture"])
    mono = {k: bool(np.all(np.diff([m[k] for m in sweep]) >= 0) or np.all(np.diff([m[k] for m in sweep]) <= 0))
            for k in ("psnr", "lpips", "bpp")}
    return {"means": means, "equal_rate": equal_rate, "sweep_quality": SWEEP_QUALITY, "sweep_monotone": mono}


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for t, style in ((0.0, "o-"), (1.0, "s-")):
        ms = sorted((m for m in summary["means"] if m["texture"] == t), key=lambda m: m["bpp"])
        a.plot([m["bpp"] for m in ms], [m["lpips"] for m in ms], style,
               label="explicit only (--texture 0)" if t == 0 else "full texture (--texture 1)")
    a.set_xlabel("bpp (file bytes)")
    a.set_ylabel("LPIPS (lower is better)")
    a.set_title("dualrep, Kodak: qualities 1-4")
    a.legend()
    sw = [m for m in summary["means"] if m["quality"] == summary["sweep_quality"]]
    sw.sort(key=lambda m: m["texture"])
    ts = [m["texture"] for m in sw]
    b.plot(ts, [m["psnr"] for m in sw], "o-", color="tab:blue")
    b.set_xlabel("--texture")
    b.set_ylabel("PSNR (dB)", color="tab:blue")
    b2 = b.twinx()
    b2.plot(ts, [m["lpips"] for m in sw], "s-", color="tab:red")
    b2.set_ylabel("LPIPS", color="tab:red")
    b.set_title(f"quality {summary['sweep_quality']}: the texture control")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="kodak")
    p.add_argument("--images", type=Path, help="a folder of images instead of --dataset")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--merge", nargs="+", help="result names (in benchmarks/results) to join")
    p.add_argument("--out", default="kodak_dualrep_texture")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.merge:
        records = [r for n in a.merge for r in json.loads((RESULTS / f"{n}.json").read_text())["records"]]
    else:
        root = a.images if a.images else dataset_dir(a.dataset)
        paths = list_images(root)[a.shard::a.shards]
        records = measure(paths)
    result = {"machine": platform.machine(), "threads": a.threads, "records": records}
    if a.merge or a.shards == 1:
        result["summary"] = summarise(records)
        plot(result["summary"], RESULTS / f"{a.out}.png")
    (RESULTS / f"{a.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result.get("summary", {}), indent=1))


if __name__ == "__main__":
    main()
