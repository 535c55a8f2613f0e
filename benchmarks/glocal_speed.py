"""Encode / decode time of ``glocal`` against ``msh`` on one 768x512 Kodak image (CPU).

    .venv/bin/python benchmarks/glocal_speed.py [--threads 1] [--reps 3] [--image kodim01.png]
        [--glocal window=8,ctx=128]

Both models are built from their default shipped configs (msh: n=64, m=96; glocal: GlocalConfig())
with random weights: speed does not depend on training, except through the entropy coder's
workload, which is small for both. Timings are the minimum over ``--reps`` interleaved runs
(the two models alternate, so background load hits both alike). Written to
benchmarks/results/glocal_speed.json. Issue 4 asks for glocal's decode time <= 3x msh's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from glocal_codec.codecs.glocal import GlocalConfig, GlocalModel
from glocal_codec.codecs.hyperprior import MeanScaleHyperprior, ModelConfig
from glocal_codec.engine import pad_to_multiple
from glocal_codec.imageio import load_image

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--image", default="kodim01.png")
    ap.add_argument("--glocal", default="", help="GlocalConfig overrides, e.g. window=8,ctx=96")
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    over = {k: (int(v) if v.lstrip("-").isdigit() else v == "True" if v in ("True", "False") else v)
            for k, v in (kv.split("=") for kv in a.glocal.split(",") if kv)}
    x = pad_to_multiple(load_image(DATA / "kodak" / a.image)[0][:, :3].contiguous(), 64)
    models = {"msh": MeanScaleHyperprior(ModelConfig(n=64, m=96)), "glocal": GlocalModel(GlocalConfig(**over))}
    times: dict[str, list[tuple[float, float, float]]] = {k: [] for k in models}
    # counted before any coding (msh caches a float64 copy of h_s as a submodule on first use)
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    for m in models.values():
        m.eval()
        m.build_tables()
    with torch.inference_mode():
        for _ in range(a.reps):
            for name, m in models.items():
                t0 = time.perf_counter()
                y = m.analysis(x, 3)
                streams = m.compress(m.latents(y, 3), 3)
                t1 = time.perf_counter()
                y_hat = m.decompress(streams, tuple(y.shape), 3)
                t2 = time.perf_counter()
                m.synthesis(y_hat, 3)
                t3 = time.perf_counter()
                times[name].append((t1 - t0, t3 - t1, t2 - t1))
    result = {
        "image": a.image, "shape": list(x.shape), "threads": a.threads, "reps": a.reps,
        "torch": torch.__version__, "machine": f"{platform.machine()} {platform.system()} {os.cpu_count()} cpus",
        "load_average": os.getloadavg()[0],
    }
    for name, m in models.items():
        t = times[name]
        result[name] = {
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(m.cfg).items()},
            "params": params[name],
            "encode_s": round(min(e for e, _, _ in t), 3),
            "decode_s": round(min(d for _, d, _ in t), 3),
            "decode_latent_s": round(min(dl for _, _, dl in t), 3),
        }
        print(f"{name:7s} params {result[name]['params']:>9,d}  encode {result[name]['encode_s']:.2f} s  "
              f"decode {result[name]['decode_s']:.2f} s (entropy decoding {result[name]['decode_latent_s']:.2f} s)")
    ratio = result["glocal"]["decode_s"] / result["msh"]["decode_s"]
    result["decode_ratio"] = round(ratio, 2)
    print(f"glocal / msh decode time: {ratio:.2f}x (threads {a.threads}, load average {result['load_average']:.1f})")
    if not a.no_save:
        out = HERE / "results" / "glocal_speed.json"
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
