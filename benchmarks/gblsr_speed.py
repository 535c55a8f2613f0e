"""Decode time of ``gblsr`` at several output scales, beside ``msh``, on one Kodak image.

    GLOCAL_CODEC_DATA=../shared/data python benchmarks/gblsr_speed.py [--image kodim01.png] [--quality 3]

Writes ``benchmarks/results/gblsr_speed.json``: seconds per decode (best of ``--repeat``) at the
torch thread count given, for msh's fixed-point decoder and gblsr's exact renderer at scales
0.5, 1, 2 and 4. A measurement, not a test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import glocal_codec as gc
from glocal_codec.imageio import load_image


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="kodim01.png")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gblsr_speed.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    root = Path(os.environ.get("GLOCAL_CODEC_DATA", "../shared/data"))
    x = load_image(root / "kodak" / a.image)[0]
    rows = []
    msh = gc.encode(x, codec="msh", quality=a.quality)
    rows.append({"codec": "msh", "scale": 1.0, "bytes": len(msh), "decode_s": _best(lambda: gc.decode_tensor(msh), a.repeat)})
    data = gc.encode(x, codec="gblsr", quality=a.quality)
    for s in (0.5, 1.0, 2.0, 4.0):
        out = gc.decode_tensor(data, scale=s, max_pixels=None)
        rows.append({"codec": "gblsr", "scale": s, "bytes": len(data), "output": list(out.shape[-2:]),
                     "decode_s": _best(lambda: gc.decode_tensor(data, scale=s, max_pixels=None), a.repeat)})
    result = {"image": a.image, "quality": a.quality, "threads": a.threads, "torch": torch.__version__,
              "machine": f"{platform.machine()} {platform.system()}", "rows": rows}
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    for r in rows:
        print(f"{r['codec']:6} x{r['scale']:<4g} {r['decode_s']:.2f} s")


if __name__ == "__main__":
    main()
