"""Peak memory and time to encode/decode a 4000x3000 image on the CPU (issue: images as people have them).

    .venv/bin/python benchmarks/large_image.py [--codec msh] [--quality 4]
    .venv/bin/python benchmarks/large_image.py --codec overfit --quality 3 --iterations 20

``--iterations`` sets the fitting budget of ``overfit`` (memory, not quality: it fits the picture
in 1024-pixel tiles one after the other, so its peak does not grow with the picture).

The image is a 4000x3000 upscale of kodim23 (Lanczos) so the content is photographic. Peak
resident memory is read from the kernel (ru_maxrss) in a fresh process per step, and written to
benchmarks/results/large_image.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child(codec: str, quality: int, src: str, tmp: str) -> None:
    import torch
    from PIL import Image

    import glocal_codec as gc

    img = Image.open(src).convert("RGB").resize((4000, 3000), Image.LANCZOS)
    t0 = time.perf_counter()
    data = gc.encode(img, codec=codec, quality=quality)
    t1 = time.perf_counter()
    Path(tmp).write_bytes(data)
    out = gc.decode(Path(tmp).read_bytes())
    t2 = time.perf_counter()
    assert out.size == (4000, 3000)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"codec": codec, "quality": quality, "bytes": len(data),
                      "bpp": 8 * len(data) / 12e6, "encode_s": round(t1 - t0, 1), "decode_s": round(t2 - t1, 1),
                      "peak_rss_mib": round(rss_mib), "threads": torch.get_num_threads()}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--codec", default="msh")
    p.add_argument("--quality", type=int, default=4)
    p.add_argument("--iterations", type=int, default=None, help="overfit's fitting budget")
    p.add_argument("--child", action="store_true")
    p.add_argument("--src", default=str(Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parent.parent / "shared/data"))
                                        / "kodak/kodim23.png"))
    a = p.parse_args()
    if a.child:
        _child(a.codec, a.quality, a.src, "/tmp/glocal_large.glc")
        return
    env = dict(os.environ)
    if a.iterations:
        env["GLOCAL_CODEC_OVERFIT_ITERATIONS"] = str(a.iterations)
    res = subprocess.run([sys.executable, __file__, "--child", "--codec", a.codec, "--quality", str(a.quality),
                          "--src", a.src], capture_output=True, text=True, check=True, env=env)
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["machine"] = f"{os.cpu_count()} cores, {platform.machine()}"
    if a.iterations:
        row["iterations"] = a.iterations
    print(row)
    out = HERE / "results" / "large_image.json"
    out.parent.mkdir(exist_ok=True)
    rows = json.loads(out.read_text()) if out.exists() else []
    rows = [r for r in rows if (r["codec"], r["quality"]) != (a.codec, a.quality)] + [row]
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
