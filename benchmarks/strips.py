"""Thin strips through the learned codecs: folded (since #36) against padded to 64 pixels.

    .venv/bin/python benchmarks/strips.py [--json benchmarks/results/strips.json]

Strips cut from photos (``$GLOCAL_CODEC_DATA``): ``1x5000`` is rows 100-106 of kodim05 laid end
to end (a one-pixel line of a photo, as long as a banner), ``8x1536`` rows 200-207 of kodim05 and
their mirror image side by side, ``4x1152`` rows 400-403 of the held-out photo (``--heldout``,
never used for tuning). Every learned codec that folds, at every level, folded and padded
(``LatentCodec.folds_strips`` switched off: the files the codecs wrote before), and WebP as the
classical reference; bpp from the file size, PSNR-RGB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import glocal_codec as gc
from glocal_codec.codecs import open_codec
from glocal_codec.codecs.learned import LatentCodec

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def strips(heldout: Path | None) -> dict[str, torch.Tensor]:
    k5 = _rgb(DATA / "kodak" / "kodim05.png")
    out = {"1x5000": np.concatenate(list(k5[100:107]), axis=0)[None, :5000],
           "8x1536": np.concatenate([k5[200:208], k5[200:208, ::-1]], axis=1)}
    if heldout is not None:
        out["4x1152 held-out"] = _rgb(heldout)[400:404]
    return {k: torch.from_numpy(np.array(v)).permute(2, 0, 1)[None].float() / 255 for k, v in out.items()}


def _folds(c) -> bool:
    """A codec that folds strips (it pads to more than one latent row)."""
    return isinstance(c, LatentCodec) and c.folds_strips and c.pad_multiple > int(c.model.downsample)


def point(x: torch.Tensor, codec: str, q: int) -> dict:
    data = gc.encode(x, codec=codec, quality=q)
    y = gc.decode_tensor(data)
    mse = float(((y - x) ** 2).mean())
    return {"quality": q, "bpp": 8 * len(data) / (x.shape[-1] * x.shape[-2]),
            "psnr": 10 * math.log10(1 / max(mse, 1e-12))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, default=HERE / "results" / "strips.json")
    p.add_argument("--heldout", type=Path, default=None, help="a photo never used for tuning (any size >= 4 x 1152)")
    p.add_argument("--codec", action="append", help="learned codecs (default: every one that folds)")
    a = p.parse_args()
    torch.set_num_threads(1)
    names = a.codec or [c.name for c in gc.list_codecs() if _folds(open_codec(c.name))]
    rows = []
    for label, x in strips(a.heldout).items():
        rows.append({"strip": label, "codec": "webp", "mode": "classical",
                     "points": [point(x, "webp", q) for q in (1, 3, 5, 7)]})
        for name in names:
            qs = list(open_codec(name).qualities)
            for fold in (True, False):
                LatentCodec.folds_strips = fold
                rows.append({"strip": label, "codec": name, "mode": "folded" if fold else "padded",
                             "points": [point(x, name, q) for q in qs]})
            LatentCodec.folds_strips = True
            r = rows[-2:]
            print(label, name, *(f"{m['mode']}: " + " ".join(f"{pt['bpp']:.2f}/{pt['psnr']:.1f}" for pt in m["points"])
                                 for m in r), flush=True)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"benchmark": "strips", "torch_threads": 1, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
