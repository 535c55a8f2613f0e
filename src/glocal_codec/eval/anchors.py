"""Published Kodak RD points of well-known codecs, shipped as data (``anchors_kodak.json``).

The numbers are transcribed from InterDigitalInc/CompressAI, ``results/image/kodak/*.json``
(commit 869a9f5): VTM, HM, BPG and AV1 as measured by CompressAI, its own pretrained learned
models (bmshj2018-*, mbt2018*, cheng2020-*), and paper results it transcribed (``paper-*``).
Each entry names its file and URL. They are Kodak averages (mean bpp, mean per-image PSNR-RGB /
MS-SSIM-RGB over the 24 images), the same convention as :mod:`glocal_codec.eval.runner`, so a
measured codec can be compared with them offline: ``glocal-codec bdrate results.json --anchor vtm``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Optional

from .bdrate import Curve

__all__ = ["PublishedAnchor", "published_anchors", "anchor_curve", "ANCHORS_SOURCE"]

ANCHORS_SOURCE = "InterDigitalInc/CompressAI results/image/kodak (commit 869a9f5)"


@dataclass(frozen=True)
class PublishedAnchor:
    """One published Kodak RD curve."""

    name: str
    label: str
    description: str
    url: str
    bpp: tuple[float, ...]
    psnr: tuple[float, ...]
    ms_ssim: Optional[tuple[float, ...]]
    dataset: str = "kodak"

    def curve(self, metric: str = "psnr") -> Curve:
        """The curve for ``metric``: ``psnr`` or ``ms_ssim_db`` (-10 log10(1 - MS-SSIM))."""
        if metric == "psnr":
            return Curve(self.bpp, self.psnr, self.name)
        if metric == "ms_ssim_db":
            if self.ms_ssim is None:
                raise ValueError(f"the published {self.name} results have no MS-SSIM values")
            return Curve(self.bpp, tuple(-10 * math.log10(1 - v) for v in self.ms_ssim), self.name)
        raise ValueError(f"unknown metric {metric!r}; use psnr or ms_ssim_db")


@lru_cache(maxsize=1)
def published_anchors() -> dict[str, PublishedAnchor]:
    """All shipped anchors by name (``vtm``, ``bpg``, ``av1``, ``bmshj2018-hyperprior``, ...)."""
    text = resources.files("glocal_codec.eval").joinpath("anchors_kodak.json").read_text(encoding="utf-8")
    data = json.loads(text)
    out = {}
    for name, e in data["anchors"].items():
        out[name] = PublishedAnchor(
            name=name, label=e.get("label") or name, description=e["description"], url=e["url"],
            bpp=tuple(e["bpp"]), psnr=tuple(e["psnr"]),
            ms_ssim=tuple(e["ms_ssim"]) if e.get("ms_ssim") else None, dataset=data.get("dataset", "kodak"),
        )
    return out


def anchor_curve(name: str, metric: str = "psnr") -> Curve:
    """The published curve ``name`` for ``metric``; ``KeyError`` with the known names if unknown."""
    anchors = published_anchors()
    if name not in anchors:
        raise KeyError(f"no published anchor {name!r}; known: {', '.join(sorted(anchors))}")
    return anchors[name].curve(metric)
