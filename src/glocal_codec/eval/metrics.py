"""Image quality metrics (PSNR now; MS-SSIM and LPIPS arrive with the evaluation issue)."""

from __future__ import annotations

import math

import torch

__all__ = ["psnr"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB over all channels of two images in [0, 1], both first rounded to 8 bits.

    Rounding matches what a user gets from the decoded PNG (the literature's "PSNR-RGB").
    """
    a8 = (a.float().clamp(0, 1) * 255).round()
    b8 = (b.float().clamp(0, 1) * 255).round()
    mse = torch.mean((a8 - b8) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)
