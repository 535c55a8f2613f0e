"""``mcquic``: index bits of the learned cascaded prior against static tables and the uniform
bound, and decode time against ``msh``.

    GLOCAL_CODEC_DATA=../shared/data python benchmarks/mcquic_bench.py [--threads 2] [--speed-images 4]

Writes ``benchmarks/results/mcquic_bench.json``:

* ``prior``: per quality level, Kodak-24 totals of the index bits under (a) the shipped
  learned prior (ideal bits of its integer tables, and the real stream bytes), (b) one static
  frequency table per codebook counted on training crops (``--train-crops`` crops of
  ``../shared/data/train``, never Kodak; the fallback the issue names), (c) the uniform bound
  ``m log2 k`` per position;
* ``speed``: seconds per decode (best of ``--repeat``) of the first ``--speed-images`` Kodak
  images, every mcquic level and msh's level 1 (its lowest rate), through the public API at
  ``--threads`` torch threads. A measurement, not a test: it depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

import glocal_codec as gc
from glocal_codec.codecs import open_codec
from glocal_codec.datasets import dataset_dir, list_images
from glocal_codec.engine import pad_to_multiple
from glocal_codec.entropy.categorical import CategoricalCoder, quantize_pmf
from glocal_codec.imageio import load_image
from glocal_codec.train.data import CropSampler, find_images

RESULTS = Path(__file__).resolve().parent / "results"


def _maps(model, x: torch.Tensor, q: int):
    with torch.no_grad():
        y0 = model.analysis(pad_to_multiple(x, model.pad_multiple), q)
    return model.index_maps(y0, q)


def _ideal(symbols: np.ndarray, tables: np.ndarray, groups: np.ndarray | None) -> float:
    rows = tables[groups] if groups is not None else tables
    p = rows[np.arange(len(symbols)), symbols] / float(tables[0].sum())
    return float(-np.log2(p).sum())


def static_tables(model, crops: torch.Tensor, q: int) -> tuple[list[np.ndarray], list[float]]:
    """Per map, a (groups x k) integer table from index counts over training crops (+1 smoothing),
    and the share of codes the crops use (the least-used codebook of the map)."""
    counts: list[np.ndarray] | None = None
    for x in crops:
        maps = _maps(model, x[None], q)
        if counts is None:
            counts = [np.ones((_groups(model, i), t.shape[1])) for i, (_, t, _) in enumerate(maps)]
        for c, (sym, _, _) in zip(counts, maps):  # symbols are in (group, y, x) order
            np.add.at(c, (np.repeat(np.arange(c.shape[0]), len(sym) // c.shape[0]), sym), 1)
    return [quantize_pmf(c, 16) for c in counts], [float((c > 1).mean(axis=1).min()) for c in counts]


def _groups(model, i: int) -> int:
    cfg = model.cfg
    return (cfg.coarse[0][0], cfg.coarse[1][0])[i] if i < 2 else cfg.fine_groups


def prior_rows(model, images: list[Path], crops: torch.Tensor) -> list[dict]:
    coder = CategoricalCoder(16)
    rows = []
    for q in range(model.cfg.levels):
        static, usage = static_tables(model, crops, q)
        learned = static_bits = uniform = stream = 0.0
        pixels = 0
        for path in images:
            x = load_image(path)[0]
            pixels += x.shape[-2] * x.shape[-1]
            for i, (sym, tables, groups) in enumerate(_maps(model, x, q)):
                learned += _ideal(sym, tables, groups)
                stream += 8 * len(coder.encode(sym, tables, groups))
                g = _groups(model, i)
                static_bits += _ideal(sym, static[i], np.repeat(np.arange(g), len(sym) // g))
                uniform += len(sym) * math.log2(tables.shape[1])
        rows.append({"quality": q + 1, "uniform_bpp": uniform / pixels, "learned_ideal_bpp": learned / pixels,
                     "learned_stream_bpp": stream / pixels, "static_ideal_bpp": static_bits / pixels,
                     "learned_vs_uniform": learned / uniform, "stream_vs_uniform": stream / uniform,
                     "static_vs_uniform": static_bits / uniform,
                     "train_usage_min": dict(zip(["1/64", "1/32"] + [f"1/16 s{s + 1}" for s in range(q + 1)], usage))})
        print(rows[-1], flush=True)
    return rows


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def speed_rows(images: list[Path], levels: int, repeat: int) -> list[dict]:
    rows = []
    for codec, q in [("msh", 1)] + [("mcquic", q) for q in range(1, levels + 1)]:
        secs = []
        for path in images:
            data = gc.encode(load_image(path)[0], codec=codec, quality=q)
            gc.decode_tensor(data)  # warm: fixed-point networks built, caches filled
            secs.append(_best(lambda: gc.decode_tensor(data), repeat))
        rows.append({"codec": codec, "quality": q, "decode_s": sum(secs) / len(secs)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--speed-images", type=int, default=4)
    ap.add_argument("--train-crops", type=int, default=64)
    ap.add_argument("--skip-prior", action="store_true")
    ap.add_argument("--limit", type=int, help="first N Kodak images only (a quick check)")
    ap.add_argument("--out", default=str(RESULTS / "mcquic_bench.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    images = list_images(dataset_dir("kodak"))[: a.limit]
    model = open_codec("mcquic").model
    out: dict = {"threads": a.threads, "machine": f"{platform.machine()} {platform.system()}",
                 "torch": torch.__version__}
    if not a.skip_prior:
        train = Path(os.environ.get("GLOCAL_CODEC_DATA", "../shared/data")) / "train"
        crops = CropSampler(find_images(train), 256, seed=1234).batch(a.train_crops)
        out["prior"] = prior_rows(model, images, crops)
    if a.speed_images:
        out["speed"] = speed_rows(images[: a.speed_images], model.cfg.levels, a.repeat)
        msh = out["speed"][0]["decode_s"]
        for r in out["speed"]:
            r["vs_msh_q1"] = r["decode_s"] / msh
    path = Path(a.out)
    old = json.loads(path.read_text()) if path.is_file() else {}
    # a run of one part keeps the other part's earlier numbers
    Path(a.out).write_text(json.dumps({**old, **out}, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
