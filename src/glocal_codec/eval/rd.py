"""Rate-distortion measurement through the public API: bpp from the real file size."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .. import api
from ..imageio import load_image
from .metrics import psnr

__all__ = ["RDPoint", "measure", "average"]


@dataclass(frozen=True)
class RDPoint:
    image: str
    codec: str
    quality: int
    bytes: int
    bpp: float
    psnr: float
    encode_s: float
    decode_s: float


def measure(images: Iterable[Path], codec: str, qualities: Iterable[int],
            progress: Callable[[RDPoint], None] | None = None, refine: int = 0) -> list[RDPoint]:
    """Encode and decode every image at every quality; rate = len(file) * 8 / pixels.

    ``refine``: encoder-side latent-refinement steps passed to :func:`glocal_codec.encode`.
    """
    points = []
    qualities = list(qualities)
    for path in images:
        x = load_image(path)[0]
        for q in qualities:
            t0 = time.perf_counter()
            data = api.encode(x, codec=codec, quality=q, refine=refine)
            t1 = time.perf_counter()
            y = api.decode_tensor(data)
            t2 = time.perf_counter()
            h, w = x.shape[-2:]
            p = RDPoint(Path(path).name, codec, q, len(data), 8 * len(data) / (h * w), psnr(x, y), t1 - t0, t2 - t1)
            points.append(p)
            if progress:
                progress(p)
    return points


def average(points: list[RDPoint]) -> dict[int, dict[str, float]]:
    """Mean bpp / PSNR / times per quality level (the usual Kodak-average convention)."""
    out: dict[int, dict[str, float]] = {}
    for q in sorted({p.quality for p in points}):
        ps = [p for p in points if p.quality == q]
        out[q] = {
            "bpp": round(sum(p.bpp for p in ps) / len(ps), 4),
            "psnr": round(sum(p.psnr for p in ps) / len(ps), 3),
            "encode_s": round(sum(p.encode_s for p in ps) / len(ps), 3),
            "decode_s": round(sum(p.decode_s for p in ps) / len(ps), 3),
            "images": len(ps),
        }
    return out
