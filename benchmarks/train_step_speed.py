"""Seconds per training step of msh, float32 against bfloat16 autocast (``--bf16``), on this machine.

    .venv/bin/python benchmarks/train_step_speed.py [--threads 2] [--m 96 --m 192]

One optimiser step (forward, rate + distortion, backward, Adam) on a batch of 8 random 128 px
crops, the training loop's default shape; the best of 4 timed steps after 2 warm-up steps.
bf16 pays where the CPU has bfloat16 instructions (AVX512-BF16 / AMX) and on GPUs; elsewhere it
can be slower. Writes benchmarks/results/train_step_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from glocal_codec.codecs.hyperprior import LAMBDAS
from glocal_codec.train.loop import build_model, model_config, rd_loss

RESULTS = Path(__file__).resolve().parent / "results" / "train_step_speed.json"


def step_seconds(m: int, n: int, bf16: bool) -> float:
    torch.manual_seed(0)
    model = build_model("msh", model_config("msh", n=n, m=m))
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.rand(8, 3, 128, 128)
    times = []
    for _ in range(6):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            result = model(x, len(LAMBDAS) - 1)
        loss, _, _ = rd_loss(x, result, LAMBDAS[-1])
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return min(times[2:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--m", type=int, action="append")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for m in a.m or [96, 192]:
        f32, b16 = step_seconds(m, a.n, False), step_seconds(m, a.n, True)
        rows.append({"n": a.n, "m": m, "float32_s": round(f32, 3), "bf16_s": round(b16, 3), "speedup": round(f32 / b16, 2)})
        print(rows[-1], flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"threads": a.threads, "machine": platform.machine(), "torch": torch.__version__,
                                   "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
