"""``vq`` (issue 31): index bits of the learned 4-pass prior against uniform coding, and the
lost-index restoration curve (LPIPS against the dropped fraction P).

    GLOCAL_CODEC_DATA=../shared/data python benchmarks/vq_bench.py [--threads 1] [--levels 4] [--limit N]

Writes ``benchmarks/results/vq_bench.json``:

* ``prior``: per quality level, Kodak-24 totals of the index bits under the shipped prior (ideal
  bits of its integer tables, and the real stream bytes) against uniform coding of the same
  indices (``log2 K`` each), and the saving ``1 - prior / uniform``;
* ``drop``: per level in ``--levels``, mean PSNR and LPIPS of the Kodak decodes with
  ``P`` in ``--drop`` of the index positions marked lost (seed ``--seed``) and restored by the
  prior -- exactly ``glocal-codec decode --drop P --seed S`` -- and the LPIPS rise against P = 0.
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
from glocal_codec.codecs import open_codec
from glocal_codec.datasets import dataset_dir, list_images
from glocal_codec.engine import pad_to_multiple
from glocal_codec.eval.metrics import get_lpips, psnr
from glocal_codec.imageio import load_image

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--levels", type=int, action="append", help="levels of the drop curve (default: the top one)")
    p.add_argument("--drop", type=float, action="append", help="dropped fractions (default 0, 0.1, 0.2, 0.4)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--limit", type=int, help="only the first N Kodak images")
    p.add_argument("--out", type=Path, default=RESULTS / "vq_bench.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    codec = open_codec("vq")
    model = codec.model
    levels = a.levels or [max(codec.qualities)]
    drops = a.drop or [0.0, 0.1, 0.2, 0.4]
    metric, status = get_lpips()
    images = list_images(dataset_dir("kodak"))[: a.limit]
    t0 = time.monotonic()
    prior = {q: {"prior_bits": 0.0, "stream_bytes": 0, "uniform_bits": 0.0, "file_bytes": 0, "pixels": 0}
             for q in codec.qualities}
    drop = {q: {d: {"psnr": [], "lpips": []} for d in drops} for q in levels}
    for path in images:
        x = load_image(path)[0]
        with torch.inference_mode():
            y = model.analysis(pad_to_multiple(x, model.pad_multiple), 0)
        for q in codec.qualities:
            bits, uniform = model.index_bits(y, q - 1)
            data = gc.encode(x, codec="vq", quality=q)
            payload = gc.read_info(data)
            r = prior[q]
            r["prior_bits"] += bits
            r["uniform_bits"] += uniform
            r["stream_bytes"] += payload.bytes - payload.header_bytes
            r["file_bytes"] += len(data)
            r["pixels"] += x.shape[-2] * x.shape[-1]
            if q in levels:
                for d in drops:
                    x_hat = gc.decode_tensor(data, drop=d if d else None, seed=a.seed)
                    x8 = (x_hat * 255).round() / 255
                    drop[q][d]["psnr"].append(psnr(x8, x))
                    drop[q][d]["lpips"].append(metric(x8, x) if metric is not None else float("nan"))
        print(f"{path.name}: {time.monotonic() - t0:.0f} s", flush=True)
    out = {
        "images": len(images), "threads": a.threads, "seed": a.seed, "lpips": status.backbone,
        "machine": f"{platform.machine()} {platform.system()}", "torch": torch.__version__,
        "seconds": round(time.monotonic() - t0, 1),
        "prior": {str(q): {**{k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()},
                           "codes": model.book_size(q - 1),
                           "saving": round(1 - r["prior_bits"] / r["uniform_bits"], 4),
                           "file_bpp": round(8 * r["file_bytes"] / r["pixels"], 5)}
                  for q, r in prior.items()},
        "drop": {str(q): {str(d): {"psnr": round(float(np.mean(v["psnr"])), 3), "lpips": round(float(np.mean(v["lpips"])), 4),
                                   "lpips_rise": round(float(np.mean(v["lpips"]) - np.mean(drop[q][drops[0]]["lpips"])), 4)}
                          for d, v in per.items()} for q, per in drop.items()},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({"prior": {q: v["saving"] for q, v in out["prior"].items()}, "drop": out["drop"]}, indent=1))


if __name__ == "__main__":
    main()
