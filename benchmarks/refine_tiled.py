"""What tile-by-tile refinement (images over a megapixel) gives up against whole-image refinement.

    .venv/bin/python benchmarks/refine_tiled.py --codec msh --steps 30 --tile 16 --limit 2 --quality 3

Kodak images are under a megapixel, so they are refined whole. To measure the tiled path on the
same images this script lowers the size limit and the tile (``--tile`` latents; the shipped
tile is 40 latents = 640 pixels, so real large images have far fewer tile borders per pixel than
this test), and encodes each image three ways through the public API: plain, refined whole,
refined tile by tile. It prints and writes benchmarks/results/refine_tiled_<codec>_<steps>.json:
bpp, PSNR, the training loss of the real file (bpp + lambda * 255^2 * MSE) and encode seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import glocal_codec as gc
import glocal_codec.codecs.learned as learned
from glocal_codec.codecs.hyperprior import LAMBDAS
from glocal_codec.datasets import dataset_dir, list_images
from glocal_codec.imageio import load_image

RESULTS = Path(__file__).resolve().parent / "results"


def _point(x: torch.Tensor, data: bytes, quality: int, seconds: float) -> dict:
    y = gc.decode_tensor(data)
    h, w = x.shape[-2:]
    mse = float(((y - x) ** 2).mean())
    bpp = 8 * len(data) / (h * w)
    return {"bpp": round(bpp, 4), "psnr": round(-10 * math.log10(mse), 3),
            "loss": round(bpp + LAMBDAS[quality - 1] * 255**2 * mse, 4), "encode_s": round(seconds, 2)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--codec", default="msh")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--tile", type=int, default=16, help="tile side in latents (16 px each)")
    p.add_argument("--limit", type=int, default=2)
    p.add_argument("--quality", type=int, action="append")
    a = p.parse_args()
    images = list_images(dataset_dir("kodak"))[: a.limit]
    rows = []
    for path in images:
        x = load_image(path)[0]
        for q in a.quality or [3]:
            row = {"image": path.name, "quality": q}
            for mode in ("plain", "whole", "tiled"):
                saved = learned.TILE_PIXELS, learned._REFINE_TILE
                if mode == "tiled":
                    learned.TILE_PIXELS, learned._REFINE_TILE = 1, a.tile
                try:
                    t = time.perf_counter()
                    data = gc.encode(x, codec=a.codec, quality=q, refine=0 if mode == "plain" else a.steps)
                    row[mode] = _point(x, data, q, time.perf_counter() - t)
                finally:
                    learned.TILE_PIXELS, learned._REFINE_TILE = saved
            rows.append(row)
            print(json.dumps(row), flush=True)
    gain = {m: sum(r[m]["loss"] - r["plain"]["loss"] for r in rows) / len(rows) for m in ("whole", "tiled")}
    out = {"codec": a.codec, "steps": a.steps, "tile_latents": a.tile, "rows": rows,
           "mean_loss_change": {k: round(v, 4) for k, v in gain.items()},
           "tiled_share_of_whole_gain": round(gain["tiled"] / gain["whole"], 3) if gain["whole"] else None}
    RESULTS.mkdir(exist_ok=True)
    f = RESULTS / f"refine_tiled_{a.codec}_{a.steps}.json"
    f.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "rows"}), f"-> {f}")


if __name__ == "__main__":
    main()
