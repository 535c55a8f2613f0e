"""Rate-distortion and fitting speed of the INR video codecs beside x264 / x265 / AV1.

    nice -n 5 .venv/bin/python benchmarks/video_inr.py [--clip DIR] [--frames 16] [--size 320x180]
        [--epochs N] [--codec hnerv --codec nirvana ...] [--device cuda]

Runs the project's own video evaluation (:func:`glocal_codec.eval.video_eval.evaluate_videos`,
the code behind ``glocal-codec eval --video``) on one natural clip -- by default the first 16
frames of Big Buck Bunny from ``$GLOCAL_CODEC_DATA/video/bunny_nerv_640x360`` scaled to
320x180 so that fitting every level of every INR codec fits a CPU session -- writes the report
to ``reports/video_inr`` (resumable) and records in ``benchmarks/results/video_inr.json``:

* per codec and level: bpp (real file size), PSNR, MS-SSIM dB, encode seconds (for an INR: the
  fitting time), decode frames per second;
* BD-rate of every codec against x264 (PSNR, pchip) where the curves overlap;
* the encode-time ratio NIRVANA / HNeRV at equal PSNR (NIRVANA's claim: faster encoding than
  HNeRV at equal quality): HNeRV's log encode time interpolated at each NIRVANA point's PSNR.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from glocal_codec import __version__
from glocal_codec.eval.video_eval import _bd, evaluate_videos, video_summary, write_video_report

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))
CODECS = ["x264", "x265", "av1", "hnerv", "nirvana"]


def time_ratio_at_equal_psnr(summary: dict, fast: str, slow: str) -> list[dict]:
    """For each ``fast`` level inside ``slow``'s PSNR range: encode-time ratio fast / slow."""
    if fast not in summary or slow not in summary:
        return []
    s = sorted(summary[slow].values(), key=lambda v: v["psnr"])
    ps, lt = np.array([v["psnr"] for v in s]), np.log([v["encode_s"] for v in s])
    out = []
    for q, v in sorted(summary[fast].items()):
        if ps[0] <= v["psnr"] <= ps[-1]:
            t_slow = float(np.exp(np.interp(v["psnr"], ps, lt)))
            out.append({"level": q, "psnr": round(v["psnr"], 3), f"{fast}_encode_s": round(v["encode_s"], 2),
                        f"{slow}_encode_s_at_same_psnr": round(t_slow, 2), "ratio": round(v["encode_s"] / t_slow, 3)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", type=Path, default=DATA / "video" / "bunny_nerv_640x360")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", default="320x180", help="WxH, or 'native'")
    p.add_argument("--epochs", type=int, default=None,
                   help="fitting budget for every INR codec (default: each codec's own default; units differ)")
    p.add_argument("--codec", action="append")
    p.add_argument("--quality", action="append", type=int)
    p.add_argument("--device", default=None)
    p.add_argument("--report", type=Path, default=Path("reports/video_inr"))
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS / "video_inr.json")
    a = p.parse_args()
    size = None if a.size == "native" else tuple(int(v) for v in a.size.lower().split("x"))
    codecs = a.codec or CODECS
    t0 = time.perf_counter()

    def progress(done: int, total: int, rec) -> None:  # noqa: ANN001
        if rec is not None:
            print(f"[{done}/{total}] {rec.codec} q{rec.quality}: {rec.bpp:.4f} bpp {rec.psnr:.2f} dB "
                  f"encode {rec.encode_s:.1f} s decode {rec.decode_fps:.1f} fps", flush=True)

    if a.device:
        from glocal_codec.codecs import open_codec

        for name in codecs:
            c = open_codec(name)
            if hasattr(c, "to"):
                c.to(a.device)
    records = evaluate_videos([a.clip], codecs, a.quality, results_path=a.report / "results.json",
                              max_frames=a.frames, size=size, epochs=a.epochs, fresh=a.fresh, progress=progress,
                              device=a.device)
    write_video_report(records, a.report)
    summary = video_summary(records)
    bd = {}
    if "x264" in summary:
        for codec in summary:
            if codec != "x264":
                rate, qual, note = _bd(summary, "x264", codec, "psnr")
                bd[codec] = {"bd_rate_pct": None if rate is None else round(rate, 2),
                             "bd_psnr_db": None if qual is None else round(qual, 3), "note": note}
    record = {
        "benchmark": "video_inr",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "glocal_codec": __version__, "torch": torch.__version__,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "clip": a.clip.name, "frames": a.frames, "size": a.size, "epochs": a.epochs,
        "seconds": round(time.perf_counter() - t0, 1),
        "levels": {c: {str(q): {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
                                for k, v in s.items()} for q, s in lv.items()} for c, lv in summary.items()},
        "bd_rate_vs_x264_psnr_pchip": bd,
        "nirvana_over_hnerv_encode_time_at_equal_psnr": time_ratio_at_equal_psnr(summary, "nirvana", "hnerv"),
    }
    RESULTS.mkdir(exist_ok=True)
    a.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("bd_rate_vs_x264_psnr_pchip",
                                             "nirvana_over_hnerv_encode_time_at_equal_psnr")}, indent=1))


if __name__ == "__main__":
    main()
