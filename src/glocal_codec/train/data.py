"""Training data: random crops from a folder of natural images, held in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["IMAGE_SUFFIXES", "find_images", "CropSampler"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def find_images(root: Path) -> list[Path]:
    """All images below ``root``, sorted (deterministic order)."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


class CropSampler:
    """Random ``crop`` x ``crop`` RGB patches with random flips, from images decoded once.

    The training sets here are small (a few hundred images), so decoding them once into
    uint8 arrays is cheaper than a DataLoader with worker processes on a 2-core machine.
    """

    def __init__(self, paths: list[Path], crop: int, seed: int = 0) -> None:
        if not paths:
            raise ValueError("no training images found")
        self.crop = crop
        self.images = []
        for p in paths:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"))
            if min(arr.shape[:2]) >= crop:
                self.images.append(arr)
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop}")
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, size: int) -> torch.Tensor:
        out = np.empty((size, self.crop, self.crop, 3), np.uint8)
        for i in range(size):
            img = self.images[self.rng.integers(len(self.images))]
            y = self.rng.integers(img.shape[0] - self.crop + 1)
            x = self.rng.integers(img.shape[1] - self.crop + 1)
            patch = img[y : y + self.crop, x : x + self.crop]
            if self.rng.random() < 0.5:
                patch = patch[:, ::-1]
            if self.rng.random() < 0.5:
                patch = patch[::-1]
            out[i] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)
