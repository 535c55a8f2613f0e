"""What narrower synthesis weights would cost: PSNR of the float32 synthesis with every conv /
linear weight of ``g_s`` rounded to ``b`` bits per output channel (symmetric, step
``max|w| / (2**(b-1) - 1)``), against the shipped weights, on the same decoded latents.

    .venv/bin/python benchmarks/weight_bits.py --codec glocal --images 4 --quality 2 --quality 4 --bits 8 --bits 10

An int8 GEMM (``torch._int_mm``) is exact in any summation order, like the float64 GEMMs of the
fixed-point decoders, and several times faster; it needs 8-bit operands. This measures the
weights' share of that change (issue 36: the fixed-point decoder may cost at most 0.5 % BD-rate).
Writes ``benchmarks/results/weight_bits.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
from torch import nn

import glocal_codec as gc
from glocal_codec.bitstream import read_container
from glocal_codec.datasets import dataset_dir, list_images
from glocal_codec.imageio import load_image
from glocal_codec.util import psnr

RESULTS = Path(__file__).resolve().parent / "results"


def rounded(model: nn.Module, bits: int, prefix: str = "g_s") -> nn.Module:
    """A copy of ``model`` whose ``prefix`` conv / linear weights are rounded per output channel."""
    out = copy.deepcopy(model)
    for name, mod in out.named_modules():
        if name.startswith(prefix) and isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = mod.weight.data
            axis = 1 if isinstance(mod, nn.ConvTranspose2d) else 0  # the output channels
            step = w.abs().amax(dim=[d for d in range(w.dim()) if d != axis], keepdim=True) / (2 ** (bits - 1) - 1)
            mod.weight.data = torch.where(step > 0, torch.round(w / step.clamp_min(1e-30)) * step, w)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--codec", default="glocal")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--quality", type=int, action="append", default=[])
    p.add_argument("--bits", type=int, action="append", default=[])
    a = p.parse_args()
    model = gc.open_codec(a.codec).model
    variants = {b: rounded(model, b) for b in (a.bits or [8, 10])}
    rows = []
    for path in list_images(dataset_dir("kodak"))[: a.images]:
        x = load_image(path)[0]
        h, w = x.shape[-2:]
        for q in a.quality or [2, 4]:
            data = gc.encode(x, codec=a.codec, quality=q)
            m, ds = model.pad_multiple, model.downsample
            shape = (1, model.latent_channels, -(-h // m) * m // ds, -(-w // m) * m // ds)
            with torch.inference_mode():
                y = model.decompress(list(read_container(data).streams), shape, q - 1)
                base = psnr(x, model.synthesis(y, q - 1)[..., :h, :w].clamp(0, 1))
                change = {str(b): psnr(x, mb.synthesis(y, q - 1)[..., :h, :w].clamp(0, 1)) - base
                          for b, mb in variants.items()}
            rows.append(dict(image=path.name, quality=q, bpp=8 * len(data) / (h * w), psnr=base, psnr_change_db=change))
            print(path.name, q, f"{base:.3f} dB", {b: f"{v:+.4f}" for b, v in change.items()}, flush=True)
    summary = {b: dict(mean_db=sum(r["psnr_change_db"][b] for r in rows) / len(rows),
                       worst_db=min(r["psnr_change_db"][b] for r in rows)) for b in map(str, variants)}
    print(summary)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "weight_bits.json").write_text(json.dumps({"codec": a.codec, "summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
