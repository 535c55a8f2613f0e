"""Coarse to fine or not? ``overfit`` fits that first spend ``C`` iterations on the picture at
half resolution (every grid but the 1:1 one, about 0.3x an iteration's time) and then ``N`` at full
size, against the preset's plain fit, scored by the fit's objective ``bpp + lambda * MSE`` (8-bit
pixels, bytes of the real file; lower is better), with the seconds each fit took.

    .venv/bin/python benchmarks/overfit_coarse_ab.py --quality 3 --threads 1 --skip 0 \\
        --variant 0:500 --variant 400:380 --images $GLOCAL_CODEC_DATA/train/wikipedia_photos_half/001.png

``--variant C:N`` (repeatable): ``C`` half-resolution iterations, then ``N`` full-size ones.
``--skip``: leave the 1:1 grid out (1) or keep it (0), as the preset would choose for the picture.
Appends one JSON row per fit to ``benchmarks/results/overfit_coarse_ab.jsonl`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from overfit_skip_ab import scored  # same directory: the same scoring as the skip A/B

from glocal_codec.codecs import overfit
from glocal_codec.imageio import load_image

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))


def fit(x: torch.Tensor, quality: int, skip: int, coarse: int, iterations: int, preset: str) -> dict:
    """One fit: ``coarse`` half-size iterations, then ``iterations`` full-size ones."""
    codec = overfit.OverfitCodec(preset=preset, iterations=iterations, skip=skip, coarse=coarse)
    return dict(preset=preset, skip=skip, coarse=coarse, iterations=iterations, **scored(x, codec, quality))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True, help="comma-separated Kodak names or paths")
    ap.add_argument("--quality", type=int, action="append", default=[])
    ap.add_argument("--variant", action="append", default=[], help="C:N (half-size, then full-size iterations)")
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "overfit_coarse_ab.jsonl")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    variants = [tuple(int(v) for v in s.split(":")) for s in a.variant or ["0:500", "400:380"]]
    for name in a.images.split(","):
        path = Path(name) if os.sep in name else DATA / "kodak" / name
        x = load_image(path)[0]
        for q in a.quality or [3]:
            for c, n in variants:
                r = fit(x, q, a.skip, c, n, a.preset)
                r.update(image=path.name, quality=q, threads=a.threads)
                with a.out.open("a") as f:
                    f.write(json.dumps(r) + "\n")
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
