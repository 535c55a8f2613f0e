"""Leave the 1:1 grid out or keep it? ``overfit``'s ``fast`` preset at equal fitting time: each
image and quality is fitted without the 1:1 grid at 730 iterations and with it at 500 (the
preset's budgets before its half-size start; none here), the same seed, and scored by the fit's objective
``bpp + lambda * MSE`` (8-bit pixels, bytes of the real file; lower is better), beside the
picture's :func:`~glocal_codec.codecs.overfit.rate_hint` and the bpp it predicts.

    .venv/bin/python benchmarks/overfit_skip_ab.py --quality 3 --threads 1 \\
        --images $GLOCAL_CODEC_DATA/train/wikipedia_photos_half/019.png,kodim23.png

Appends one JSON row per fit to ``benchmarks/results/overfit_skip_ab.jsonl`` (``--out``).
The rows there (2026-12-05) chose and checked ``Preset.skip_below_bpp``: training photos 001,
002, 004, 008, 009, 011, 013, 016, 019, 020, 023, 027, 032, 037, 038, 042, 049 at quality 3 (and a
few at 1, 4, 5), then, not used for choosing, the six Kodak images the rule picks at quality 3 and
the held-out CLIC crop ``alberto-montalesi-176097`` (centre 768 x 512), and a quality-4 line tried and
rejected on six training photos and the same six Kodak images; one torch thread per fit,
two or three fits at a time, so the ``seconds`` are not the preset's. docs/overfit.md has the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

import glocal_codec as gc
from glocal_codec.codecs import overfit
from glocal_codec.imageio import load_image

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))


def scored(x: torch.Tensor, codec: overfit.OverfitCodec, quality: int) -> dict:
    """Encode ``x`` with ``codec`` through a real file: bpp, PSNR (8-bit pixels), the fit's objective
    ``bpp + lambda * MSE`` and the seconds it took (``overfit_coarse_ab.py`` scores its fits the same way)."""
    t = time.perf_counter()
    data = gc.encode(x, codec=codec, quality=quality)
    secs = time.perf_counter() - t
    y = gc.decode_tensor(data)
    npix = x.shape[-1] * x.shape[-2]
    to8 = lambda t: (t.clamp(0, 1) * 255).round() / 255  # noqa: E731
    mse = float((to8(x) - to8(y)).pow(2).mean())
    bpp = 8 * len(data) / npix
    return dict(bpp=round(bpp, 5), psnr=round(-10 * torch.log10(torch.tensor(mse)).item(), 3),
                loss=round(bpp + overfit.LAMBDAS[quality] * mse, 5), seconds=round(secs, 1))


def fit(x: torch.Tensor, quality: int, skip: int) -> dict:
    """One ``fast`` fit with (``skip=0``) or without (``skip=1``) the 1:1 grid, at that variant's budget."""
    codec = overfit.OverfitCodec(preset="fast", iterations=730 if skip else 500, skip=skip,
                                 coarse=0)  # the budgets these rows were measured at, before the half-size start
    return dict(skip=skip, iterations=codec.iterations, **scored(x, codec, quality))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", required=True, help="comma-separated Kodak names or paths")
    ap.add_argument("--quality", type=int, action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "overfit_skip_ab.jsonl")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for name in a.images.split(","):
        path = Path(name) if os.sep in name else DATA / "kodak" / name
        x = load_image(path)[0]
        hint = overfit.rate_hint(x)
        for q in a.quality or [3]:
            rows = [fit(x, q, s) for s in (1, 0)]
            for r in rows:
                r.update(image=path.name, quality=q, rate_hint=round(hint, 4),
                         expected_bpp=round(hint * overfit.RATE_HINT_SCALE[q], 4))
                with a.out.open("a") as f:
                    f.write(json.dumps(r) + "\n")
            print(f"{path.name} q{q}: hint {hint:.3f}, expected {hint * overfit.RATE_HINT_SCALE[q]:.3f} bpp; "
                  f"loss without the 1:1 grid {100 * (rows[0]['loss'] / rows[1]['loss'] - 1):+.1f} %", flush=True)


if __name__ == "__main__":
    main()
