"""The controls of issue 32 for ``clc``: nearest vs random reference ids, and the zeroed-reference model.

    GLOCAL_CODEC_WEIGHTS=<folder with clc weights + manifest> .venv/bin/python benchmarks/clc_controls.py \
        --label clc --retrieval nearest [--limit N]
    GLOCAL_CODEC_WEIGHTS=<same folder> .venv/bin/python benchmarks/clc_controls.py --label clc_random --retrieval random
    GLOCAL_CODEC_WEIGHTS=<folder with the zero_refs model> .venv/bin/python benchmarks/clc_controls.py --label clc_zero

Encodes Kodak at every clc level with ``ClcCodec(retrieval=...)`` through the public API (rate
from the real file size, the reference ids included), writes ``results/kodak_<label>.json`` in
``kodak_rd.py``'s format and prints the BD-rate against ``results/kodak_msh.json`` and the id
overhead (``len(params)`` of the clc header, in bpp); ``--against LABEL`` adds the BD-rate against
another results file, over the images measured (``--limit`` runs compare on the same images).
``compare_rd.py`` reads the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import glocal_codec as gc
from glocal_codec.bitstream.container import read_container
from glocal_codec.codecs.clc import ClcCodec
from glocal_codec.datasets import dataset_dir, list_images
from glocal_codec.eval import average
from glocal_codec.eval.bdrate import bd_rate
from glocal_codec.eval.metrics import psnr
from glocal_codec.eval.rd import RDPoint
from glocal_codec.imageio import load_image

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--label", required=True, help="results file name: results/kodak_<label>.json")
    p.add_argument("--retrieval", choices=("nearest", "random"), default="nearest")
    p.add_argument("--seed", type=int, default=0, help="seed of the random ids")
    p.add_argument("--limit", type=int, help="first N images only (quick check)")
    p.add_argument("--against", action="append", default=[],
                   help="also the BD-rate against results/kodak_<LABEL>.json (e.g. clc), on the same images")
    a = p.parse_args()
    codec = ClcCodec(retrieval=a.retrieval, seed=a.seed)
    images = list_images(dataset_dir("kodak"))[: a.limit]
    qualities = [c for c in gc.list_codecs() if c.name == "clc"][0].qualities
    points, id_bits = [], []
    for path in images:
        x = load_image(path)[0]
        h, w = x.shape[-2:]
        for q in qualities:
            t0 = time.perf_counter()
            data = gc.encode(x, codec=codec, quality=q)
            t1 = time.perf_counter()
            y = gc.decode_tensor(data)
            t2 = time.perf_counter()
            pt = RDPoint(path.name, a.label, q, len(data), 8 * len(data) / (h * w), psnr(x, y), t1 - t0, t2 - t1)
            points.append(pt)
            id_bits.append(8 * len(read_container(data).params) / (h * w))
            print(f"  {a.label} q{q} {path.name}: {pt.bpp:.4f} bpp {pt.psnr:.2f} dB", flush=True)
    avg = average(points)
    RESULTS.mkdir(exist_ok=True)
    out = {"codec": a.label, "dataset": "kodak", "images": len(images), "retrieval": a.retrieval,
           "weights": os.environ.get("GLOCAL_CODEC_WEIGHTS", "package"),
           "header_params_bpp": round(sum(id_bits) / len(id_bits), 6),
           "average": avg, "points": [asdict(p) for p in points]}
    (RESULTS / f"kodak_{a.label}.json").write_text(json.dumps(out, indent=1) + "\n")
    names = {p.image for p in points}
    print(f"{a.label}: clc header (ids + dictionary digest) {out['header_params_bpp']:.6f} bpp; BD-rate on "
          f"the {len(names)} images measured:")
    for other in ["msh", *a.against]:
        ref = json.loads((RESULTS / f"kodak_{other}.json").read_text())
        print(f"  against {other}: {_bd(_average_over(ref['points'], names), avg):+.2f} %")


def _average_over(points: list[dict], names: set[str]) -> dict:
    """Per-quality mean bpp / PSNR of a results file's points on the images ``names`` only."""
    out: dict = {}
    for p in points:
        if p["image"] in names:
            out.setdefault(p["quality"], []).append((p["bpp"], p["psnr"]))
    return {q: {"bpp": sum(b for b, _ in v) / len(v), "psnr": sum(s for _, s in v) / len(v)} for q, v in out.items()}


def _bd(anchor: dict, test: dict) -> float:
    r = sorted((v["bpp"], v["psnr"]) for v in anchor.values())
    t = sorted((v["bpp"], v["psnr"]) for v in test.values())
    return bd_rate([b for b, _ in r], [s for _, s in r], [b for b, _ in t], [s for _, s in t])


if __name__ == "__main__":
    main()
