"""Transform ceiling: how well a learned codec's transforms reconstruct with *no* quantisation.

For each learned codec with installed weights, runs ``synthesis(analysis(x))`` on the Kodak
images without rounding the latent (the per-quality gain and inverse gain cancel, so this is one
number per codec) and reports its PSNR beside the PSNR of the real quantised forward pass at the
lowest and highest quality level. The gap between the two says where a codec loses quality:

* ceiling far above the quantised PSNR -- quantisation (rate) limits it, as it should;
* quantised PSNR close to the ceiling at high quality, with a low ceiling -- the transforms
  themselves limit it, and more rate buys little (a flat RD curve).

This is the measurement that showed why the first ``glocal`` (attention transforms trained from
scratch on a CPU) had a flat curve: 30.4 dB ceiling on kodim23 against msh's 35.4 dB.

    GLOCAL_CODEC_DATA=../shared/data python benchmarks/transform_ceiling.py [--limit 24] [--threads 1]

Prints a markdown table and writes ``benchmarks/results/transform_ceiling.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

try:
    import glocal_codec  # noqa: F401
except ImportError:  # running from a checkout without an install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from glocal_codec.codecs.registry import open_codec
from glocal_codec.engine import pad_to_multiple
from glocal_codec.imageio import load_image

RESULTS = Path(__file__).resolve().parent / "results" / "transform_ceiling.json"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    # on 8-bit values, as the evaluation does
    mse = ((a.clamp(0, 1) * 255).round() - (b * 255).round()).square().mean().item()
    return 10 * math.log10(255**2 / max(mse, 1e-10))


def measure(name: str, images: list[Path]) -> dict:
    codec = open_codec(name)
    model = codec.model.eval()
    top = len(codec.qualities) - 1
    rows = {"ceiling": [], "q_low": [], "q_high": []}
    with torch.no_grad():
        for path in images:
            x, _ = load_image(path)
            x = x.unsqueeze(0) if x.dim() == 3 else x
            h, w = x.shape[-2:]
            xp = pad_to_multiple(x, codec.pad_multiple)
            y = model.analysis(xp, 0)
            rows["ceiling"].append(_psnr(model.synthesis(y, 0)[..., :h, :w], x))
            for key, q in (("q_low", 0), ("q_high", top)):
                rows[key].append(_psnr(model(xp, q).x_hat[..., :h, :w], x))
    return {k: sum(v) / len(v) for k, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codecs", nargs="*", default=["factorized", "msh", "glocal"])
    ap.add_argument("--limit", type=int, default=24, help="first N Kodak images")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(os.environ.get("GLOCAL_CODEC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    images = sorted((data / "kodak").glob("*.png"))[: args.limit]
    if not images:
        sys.exit(f"no Kodak images under {data / 'kodak'} (set GLOCAL_CODEC_DATA)")
    out = {"images": len(images), "codecs": {}}
    print("| codec | ceiling PSNR (no quantisation) | PSNR q1 | PSNR top quality |")
    print("|---|---|---|---|")
    for name in args.codecs:
        r = measure(name, images)
        out["codecs"][name] = {k: round(v, 2) for k, v in r.items()}
        print(f"| {name} | {r['ceiling']:.2f} | {r['q_low']:.2f} | {r['q_high']:.2f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
