"""A/B of an ``overfit`` encoder option on real files: each image crop and quality is encoded with
the option off and on (``fast`` preset, the same seed), decoded, and scored by the fit's own
objective ``bpp + lambda * MSE`` (lower is better) from the file's bytes and decoded pixels.

    .venv/bin/python benchmarks/overfit_options_ab.py --option learned_up \\
        --images kodim05.png,kodim07.png,$GLOCAL_CODEC_DATA/clic/alberto-montalesi-176097.png,$GLOCAL_CODEC_DATA/clic/jacob-aguilar-friend-343.png

Options: ``learned_up`` (learned upsampling, params version 4) and ``parent_context`` (the
entropy model reads the coarser grid). Crops: the centre 256 x 384 of each image (``--crop``).
Writes ``benchmarks/results/overfit_<option>_ab.json``.

Measured 2026-12-05 (2 threads), ``learned_up``, qualities 2-4: kodim05 -3.1 / -4.9 / -8.0 %,
kodim07 +0.6 / -2.6 / -4.6 %, the held-out CLIC crops alberto +19.2 / +15.2 / +19.4 % and jacob
-0.3 / +1.8 / +0.4 %: mean +2.8 % over 12 pairs -- not a gain.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from glocal_codec.codecs import overfit
from glocal_codec.eval.metrics import psnr
from glocal_codec.imageio import load_image

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--option", choices=["learned_up", "parent_context"], required=True)
    ap.add_argument("--images", default="kodim05.png,kodim07.png", help="Kodak names or paths")
    ap.add_argument("--qualities", default="2,3,4")
    ap.add_argument("--crop", default="256x384", help="centre crop HxW")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ch, cw = (int(v) for v in a.crop.split("x"))
    out = HERE / "results" / f"overfit_{a.option}_ab.json"
    rows = []
    for name in a.images.split(","):
        x = load_image(Path(name) if Path(name).exists() else DATA / "kodak" / name)[0]
        h, w = x.shape[-2:]
        x = x[..., (h - ch) // 2: (h - ch) // 2 + ch, (w - cw) // 2: (w - cw) // 2 + cw].contiguous()
        for q in (int(v) for v in a.qualities.split(",")):
            for on in (False, True):
                codec = overfit.OverfitCodec(preset="fast", **{a.option: on})
                payload = codec.encode(x, q)
                y = codec.decode(payload)
                nbytes = sum(map(len, payload.streams)) + len(payload.params)
                bpp = 8 * nbytes / (ch * cw)
                rows.append({"image": Path(name).name, "q": q, a.option: int(on), "bytes": nbytes,
                             "params_bytes": len(payload.params), "bpp": bpp, "psnr": psnr(y, x),
                             "loss": bpp + overfit.LAMBDAS[q] * float(((y - x) ** 2).mean())})
                print(json.dumps(rows[-1]), flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
