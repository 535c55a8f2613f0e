"""Regenerate the golden files: one small .glc per image codec and the pixels it decodes to.

    .venv/bin/python tests/golden/regenerate.py     # with the package's own weights (GLOCAL_CODEC_WEIGHTS unset)

Run this only on purpose (new shipped weights, a deliberate format change): the golden test
exists to catch changes that silently alter how *old* files decode. The source image is
synthetic (made here, seeded), so nothing from the shared data sets is committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import glocal_codec as gc

HERE = Path(__file__).resolve().parent

__all__ = ["synthetic_image", "main"]


def synthetic_image(h: int = 64, w: int = 96) -> torch.Tensor:
    """1 x 3 x h x w: smooth gradients, a hard-edged disc, stripes and seeded noise."""
    g = torch.Generator().manual_seed(2024)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    r = 0.6 * xx + 0.3 * yy
    gch = 0.5 + 0.4 * torch.sin(6.0 * xx + 3.0 * yy)
    b = (((xx - 0.6) ** 2 + (yy - 0.4) ** 2) < 0.06).float() * 0.8 + 0.1
    stripes = (torch.sin(40 * xx) > 0).float() * (yy > 0.75).float() * 0.3
    x = torch.stack([r + stripes, gch, b - stripes]) + 0.03 * torch.randn(3, h, w, generator=g)
    return x.clamp(0, 1).unsqueeze(0)


def main() -> None:
    x = synthetic_image()
    expected = {}
    for info in gc.list_codecs(media="image"):
        if not info.weights_available:
            continue
        q = info.default_quality
        data = gc.encode(x, codec=info.name, quality=q)
        (HERE / f"{info.name}.glc").write_bytes(data)
        out = (gc.decode_tensor(data)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(out).save(HERE / f"{info.name}.png")
        expected[info.name] = {"quality": q, "bytes": len(data), "weights_digest": gc.read_info(data).weights_digest}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    print(json.dumps(expected, indent=2))


if __name__ == "__main__":
    main()
