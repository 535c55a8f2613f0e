"""``make demo``: encode and decode a real photo with the default learned codec.

Prints codec, file size, bpp, PSNR and encode/decode seconds. The photo is Kodak's kodim23
from ``$GLOCAL_CODEC_DATA/kodak`` when present, else a synthetic test pattern (the demo must
also run on a fresh machine without the datasets).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import api
from .eval.metrics import psnr
from .imageio import load_image

__all__ = ["main"]


def _photo() -> tuple[torch.Tensor, str]:
    root = os.environ.get("GLOCAL_CODEC_DATA")
    if root and (Path(root) / "kodak" / "kodim23.png").is_file():
        path = Path(root) / "kodak" / "kodim23.png"
        return load_image(path)[0], str(path)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 512), torch.linspace(0, 1, 768), indexing="ij")
    x = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(12 * xx * yy)]).unsqueeze(0)
    return x, "synthetic 768x512 pattern (set GLOCAL_CODEC_DATA for a real photo)"


def main(codec: str = api.DEFAULT_CODEC) -> None:
    x, name = _photo()
    h, w = x.shape[-2:]
    print(f"image: {name} ({w}x{h})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.glc"
        t0 = time.perf_counter()
        path.write_bytes(api.encode(x, codec=codec))
        t1 = time.perf_counter()
        y = api.decode_tensor(path.read_bytes())
        t2 = time.perf_counter()
        info = api.read_info(path.read_bytes())
        size = path.stat().st_size
    print(f"codec: {info.codec} (quality {info.quality})")
    print(f"file size: {size} bytes")
    print(f"bpp: {8 * size / (h * w):.4f}")
    print(f"PSNR: {psnr(x, y):.2f} dB")
    print(f"encode: {t1 - t0:.2f} s   decode: {t2 - t1:.2f} s")


if __name__ == "__main__":
    main(*sys.argv[1:2])
