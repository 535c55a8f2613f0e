"""Rate-distortion of the classical video anchors (x264, x265, av1) on a DAVIS clip.

    nice -n 15 .venv/bin/python benchmarks/video_classic.py [--frames 16] [--codec x264 ...]

Encodes the first ``--frames`` frames of ``$GLOCAL_CODEC_DATA/video/davis2016_480p/blackswan``
(854 x 480 JPEG frames; default data folder ``../shared/data`` beside the checkout) at every
quality level through the public API (:func:`glocal_codec.video.encode_video`), so the rate is
the size of the complete ``.glc`` file (header and frame-rate prefix included), and decodes it
back with :func:`glocal_codec.video.decode_video`. Reports per level:

* ``bpp`` = 8 x file bytes / (T x H x W); ``kbps`` at the clip's frame rate (25 fps assumed for
  a folder of frames);
* ``psnr_rgb``: mean over frames of the RGB PSNR (8-bit, peak 255) against the source frames;
* ``psnr_y``: mean over frames of the PSNR of BT.601 luma (Y' = 0.299 R + 0.587 G + 0.114 B);
* encode / decode seconds, wall-clock and CPU (one thread per encoder; wall-clock depends on
  whatever else the machine is doing, CPU seconds much less).

Writes ``benchmarks/results/video_classic.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

import glocal_codec as gc
from glocal_codec import video

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))


def _psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else 10 * math.log10(1.0 / mse)


def frame_psnrs(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean over frames of RGB PSNR and of BT.601 luma PSNR (tensors T x 3 x H x W in [0, 1])."""
    a, b = a.double(), b.double()
    rgb = [(_psnr(((x - y) ** 2).mean().item())) for x, y in zip(a, b)]
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(3, 1, 1)
    luma = [_psnr((((x - y) * w).sum(0) ** 2).mean().item()) for x, y in zip(a, b)]
    return sum(rgb) / len(rgb), sum(luma) / len(luma)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", type=Path, default=DEFAULT_DATA / "video" / "davis2016_480p" / "blackswan")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--codec", action="append", help="default: every registered video codec")
    p.add_argument("--out", type=Path, default=RESULTS / "video_classic.json")
    a = p.parse_args()

    import av

    clip = video.read_video(a.clip, max_frames=a.frames)
    t, _, h, w = clip.frames.shape
    codecs = a.codec or [c.name for c in gc.list_codecs(media="video")]
    print(f"clip {a.clip.name}: {t} frames {w}x{h} @ {clip.fps} fps; codecs {', '.join(codecs)}", flush=True)
    rows = []
    for name in codecs:
        info = {c.name: c for c in gc.list_codecs(media="video")}[name]
        for q in info.qualities:
            t0, c0 = time.perf_counter(), time.process_time()
            data = video.encode_video(clip, codec=name, quality=q)
            t_enc, c_enc = time.perf_counter() - t0, time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            out = video.decode_video(data)
            t_dec, c_dec = time.perf_counter() - t0, time.process_time() - c0
            psnr_rgb, psnr_y = frame_psnrs(out.frames, clip.frames)
            fi = gc.read_info(data)
            row = {"codec": name, "quality": q, "bytes": len(data), "bpp": fi.bpp,
                   "kbps": 8 * len(data) * float(clip.fps) / t / 1000, "psnr_rgb": psnr_rgb, "psnr_y": psnr_y,
                   "encode_s": t_enc, "decode_s": t_dec, "encode_cpu_s": c_enc, "decode_cpu_s": c_dec}
            rows.append(row)
            print(f"  {name} q{q}: {len(data)} bytes {fi.bpp:.4f} bpp  RGB {psnr_rgb:.2f} dB  Y {psnr_y:.2f} dB  "
                  f"enc {t_enc:.1f} s ({c_enc:.1f} s CPU) dec {t_dec:.2f} s ({c_dec:.2f} s CPU)", flush=True)
        sizes = [r["bytes"] for r in rows if r["codec"] == name]
        if any(x >= y for x, y in zip(sizes, sizes[1:])):
            print(f"  WARNING: {name} rate is not increasing with quality: {sizes}")

    result = {
        "clip": f"davis2016_480p/{a.clip.name}" if a.clip.parent.name == "davis2016_480p" else str(a.clip),
        "frames": t, "width": w, "height": h, "fps": str(clip.fps),
        "metric_notes": "bpp = 8*file bytes/(T*H*W); PSNRs are means over frames (8-bit RGB / BT.601 luma)",
        "pyav": av.__version__,
        "ffmpeg_libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared with other jobs)",
        "timing_notes": "encode_s/decode_s are wall-clock seconds and depend on the machine's load; "
                        "*_cpu_s are the process's CPU seconds (encoders run one thread; includes the "
                        "RGB <-> YUV conversion and the decoder's threads)",
        "results": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n| codec | q | bytes | bpp | PSNR-RGB | PSNR-Y | enc CPU s | dec CPU s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['codec']} | {r['quality']} | {r['bytes']} | {r['bpp']:.4f} | {r['psnr_rgb']:.2f} | "
              f"{r['psnr_y']:.2f} | {r['encode_cpu_s']:.1f} | {r['decode_cpu_s']:.2f} |")
    print(f"\nwritten to {a.out}")


if __name__ == "__main__":
    main()
