"""Encode (fitting) time per preset and decode time of ``overfit`` on one Kodak image (CPU).

    .venv/bin/python benchmarks/overfit_speed.py [--image kodim23.png] [--presets fast,medium,slow]
        [--iterations 20] [--quality 3] [--threads 2]

With ``--iterations N`` every preset fits N and 2N iterations (after an untimed warm-up fit, and
from the random start the real budgets use) and its full encode time is extrapolated
(``fixed + per_iteration * preset iterations``, both measured); without it every
preset runs its whole budget (slow: hours on 2 cores). Decoding is timed on the file actually
written (min of 3). PSNR / bpp are only meaningful for full budgets. The machine's load average
is recorded: on a shared 2-core machine, a busy neighbour doubles every number. Results go to
benchmarks/results/overfit_speed.json.

Measured 2026-12-03 on this 2-core VM (shared with a training run; load average ~2), kodim23
(768x512), quality 3, one torch thread, ``--iterations 6`` (extrapolated encode times):

=======  =====  ===========  ==========  ===============  ========
preset   iters  MACs/pixel   s / iter    encode (extrap.)  decode
=======  =====  ===========  ==========  ===============  ========
fast       600      962         0.50       5.1 min          0.62 s
medium   2,000    1,042         0.83       28 min           0.78 s
slow     6,000    1,940         1.33       2.2 h            0.96 s
=======  =====  ===========  ==========  ===============  ========

One full ``fast`` encode of kodim23 at quality 3 (same day, one thread, load ~2.3): 567 s,
8,782 payload bytes = 0.179 bpp, PSNR 27.18 dB, decode 0.63 s -- 600 iterations are far too few
for this family (Cool-chic fits ~10k); the issue's 2-minute ``fast`` target is not met.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from glocal_codec.codecs import overfit
from glocal_codec.codecs.overfit import PRESETS, OverfitCodec
from glocal_codec.imageio import load_image
from glocal_codec.util import psnr

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="kodim23.png")
    ap.add_argument("--presets", default="fast,medium,slow")
    ap.add_argument("--iterations", type=int, default=None, help="fit this many iterations and extrapolate")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x = load_image(DATA / "kodak" / a.image)[0]
    h, w = x.shape[-2:]
    rows = []
    if a.iterations:
        # short fits would start from the analytic pyramid (a cheaper first step): time the real path
        overfit.ANALYTIC_BELOW = 0
    for name in a.presets.split(","):
        budget = PRESETS[name].iterations
        timings = {}
        if a.iterations:
            # a first, untimed fit pays the one-time costs (oneDNN primitives, allocator warm-up) that
            # a single encode pays once: left in, they would shrink the difference below
            OverfitCodec(preset=name, iterations=2).encode(x, a.quality)
        for n in ([a.iterations, 2 * a.iterations] if a.iterations else [budget]):
            codec = OverfitCodec(preset=name, iterations=n)
            t0 = time.perf_counter()
            payload = codec.encode(x, a.quality)
            timings[n] = time.perf_counter() - t0
        if a.iterations:
            per_it = (timings[2 * a.iterations] - timings[a.iterations]) / a.iterations
            fixed = timings[a.iterations] - per_it * a.iterations
            encode_s = fixed + per_it * budget
        else:
            per_it, fixed, encode_s = timings[budget] / budget, None, timings[budget]
        dec = []
        for _ in range(3):
            t0 = time.perf_counter()
            y = codec.decode(payload)
            dec.append(time.perf_counter() - t0)
        nbytes = sum(len(s) for s in payload.streams) + len(payload.params)
        row = {"preset": name, "iterations_run": a.iterations or budget, "preset_iterations": budget,
               "seconds_per_iteration": round(per_it, 3), "fixed_seconds": None if fixed is None else round(fixed, 3),
               "encode_seconds": round(encode_s, 1), "extrapolated": bool(a.iterations),
               "decode_seconds": round(min(dec), 3), "payload_bytes": nbytes,
               "bpp": round(8 * nbytes / (h * w), 4), "psnr": round(psnr(x, y), 2),
               "macs_per_pixel": None}
        from glocal_codec.codecs.overfit import OverfitArch

        row["macs_per_pixel"] = round(OverfitArch.from_bytes(payload.params).macs_per_pixel())
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"image": a.image, "quality": a.quality, "threads": a.threads, "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()], "rows": rows}
    if not a.no_save:
        path = HERE / "results" / "overfit_speed.json"
        path.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
