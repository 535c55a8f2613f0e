"""Cost of the fixed-point synthesis (identical pixels on every machine) against the float32 one.

    .venv/bin/python benchmarks/exact_synthesis.py --codec msh --codec factorized --images 4 --threads 2
    .venv/bin/python benchmarks/exact_synthesis.py --codec glocal --images 4 --quality 3 --threads 1 \
        --image /work/heldout/jacob-aguilar-friend-343.png

For each image and quality level, decodes the same file's latents with the model's float32
``synthesis`` and with ``synthesis_exact`` (:mod:`glocal_codec.nn.fixed_point`), and reports the
PSNR of each against the original (the rate is the same file) and the synthesis time (best of
``--repeat``), and the time to decode the latents (entropy decoding, the same for both): the
whole decode's ratio is (latents + fixed-point synthesis) / (latents + float32 synthesis). Images:
the first ``--images`` of Kodak plus the CLIC images with ``--clic`` and any ``--image`` paths. ``glocal``'s exact synthesis includes its attention stages
(:mod:`glocal_codec.nn.fixed_point_attention`); where numba is installed it is also timed with the
fused kernels of :mod:`glocal_codec.nn.fused` switched off (``seconds_exact_unfused``, the same
values: checked), interleaved with the other two. Writes ``benchmarks/results/exact_synthesis.json``;
rows and summaries of codecs not run this time are kept from the previous file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import glocal_codec as gc
from glocal_codec.bitstream import read_container
from glocal_codec.datasets import dataset_dir, list_images
from glocal_codec.imageio import load_image
from glocal_codec.nn import fused
from glocal_codec.util import psnr

RESULTS = Path(__file__).resolve().parent / "results"


def _best(fn, repeat: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--codec", action="append", default=[])
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--clic", action="store_true", help="also the CLIC images (held out: never tuned on)")
    p.add_argument("--image", action="append", default=[], help="also this image file (repeatable)")
    p.add_argument("--quality", type=int, action="append", default=[])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    images = list_images(dataset_dir("kodak"))[: a.images]
    if a.clic:
        images += list_images(dataset_dir("clic"))
    images += [Path(p) for p in a.image]
    rows = []
    names = a.codec or ["msh", "factorized", "glocal"]
    for name in names:
        codec = gc.open_codec(name)
        model = codec.model
        for path in images:
            x = load_image(path)[0]
            h, w = x.shape[-2:]
            for q in a.quality or list(codec.qualities):
                data = gc.encode(x, codec=name, quality=q)
                cont = read_container(data)
                m, ds = model.pad_multiple, model.downsample
                shape = (1, model.latent_channels, -(-h // m) * m // ds, -(-w // m) * m // ds)
                with torch.inference_mode():
                    # the rest of a decode (entropy decoding of the latents), for the whole-decode ratio
                    tdec, y_hat = _best(lambda: model.decompress(list(cont.streams), shape, q - 1), a.repeat)
                    t32, x32 = _best(lambda: model.synthesis(y_hat, q - 1), a.repeat)
                    tfx, xfx = _best(lambda: model.synthesis_exact(y_hat, q - 1), a.repeat)
                    if fused.available():  # the torch-op path of the same ops, interleaved
                        fused._NUMBA = False
                        try:
                            tun, xun = _best(lambda: model.synthesis_exact(y_hat, q - 1), a.repeat)
                        finally:
                            fused._NUMBA = True
                        if not torch.equal(xun, xfx):
                            raise SystemExit(f"{name}: the fused kernels changed the decoded values")
                crop = (..., slice(0, h), slice(0, w))
                row = dict(codec=name, image=Path(path).name, quality=q, bpp=8 * len(data) / (h * w),
                           psnr_float=psnr(x, x32[crop].clamp(0, 1)), psnr_exact=psnr(x, xfx[crop].clamp(0, 1)),
                           seconds_float=round(t32, 3), seconds_exact=round(tfx, 3),
                           seconds_latents=round(tdec, 3))
                if fused.available():
                    row["seconds_exact_unfused"] = round(tun, 3)
                rows.append(row)
                print(f"{name} q{q} {row['image']}: {row['bpp']:.3f} bpp, PSNR {row['psnr_float']:.4f} -> "
                      f"{row['psnr_exact']:.4f} dB, synthesis {t32:.2f} -> {tfx:.2f} s", flush=True)
    summary = {}
    for name in {r["codec"] for r in rows}:
        rs = [r for r in rows if r["codec"] == name]
        summary[name] = dict(
            mean_psnr_change_db=sum(r["psnr_exact"] - r["psnr_float"] for r in rs) / len(rs),
            max_abs_psnr_change_db=max(abs(r["psnr_exact"] - r["psnr_float"]) for r in rs),
            time_ratio=sum(r["seconds_exact"] for r in rs) / sum(r["seconds_float"] for r in rs),
            **({"decode_time_ratio": sum(r["seconds_latents"] + r["seconds_exact"] for r in rs)
                / sum(r["seconds_latents"] + r["seconds_float"] for r in rs)}
               if all("seconds_latents" in r for r in rs) else {}),
            **({"time_ratio_unfused": sum(r["seconds_exact_unfused"] for r in rs) / sum(r["seconds_float"] for r in rs)}
               if all("seconds_exact_unfused" in r for r in rs) else {}),
            threads=a.threads, images=sorted({r["image"] for r in rs}), qualities=sorted({r["quality"] for r in rs}))
        print(name, summary[name])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "exact_synthesis.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    for name, s in old.get("summary", {}).items():  # keep other codecs' earlier measurements
        if name not in names:
            summary.setdefault(name, {"threads": old.get("threads"), **s})
    rows = [r for r in old.get("rows", []) if r["codec"] not in names] + rows
    out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
