"""Small clips for the video tests: synthetic motion (always) and 8 DAVIS frames (if the data is there).

Not a ``conftest.py`` on purpose: other test folders do ``from conftest import ...`` and expect
the root one, and pytest re-binds the module name ``conftest`` to each folder's conftest it
loads. Test modules here import the fixtures from this module by its unique name.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
BLACKSWAN = DATA / "video" / "davis2016_480p" / "blackswan"


def synthetic_clip(t: int = 8, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """T x 3 x H x W: a smooth textured background panning right/down and a square moving across.

    On the 8-bit grid (like decoded frames), deterministic, no data files needed; textured
    enough that every quality level of every codec costs a different number of bytes.
    """
    g = torch.Generator().manual_seed(seed)
    big_h, big_w = h + 2 * t + 8, w + 3 * t + 8
    noise = torch.rand(1, 3, big_h // 4 + 2, big_w // 4 + 2, generator=g)
    tex = torch.nn.functional.interpolate(noise, size=(big_h, big_w), mode="bicubic", align_corners=False)[0]
    yy, xx = torch.meshgrid(torch.arange(big_h), torch.arange(big_w), indexing="ij")
    waves = 0.5 + 0.25 * torch.sin(xx / 5.0 + torch.tensor([0.0, 2.0, 4.0]).view(3, 1, 1)) * torch.cos(yy / 7.0)
    base = (0.55 * tex + 0.45 * waves).clamp(0, 1)
    frames = []
    for i in range(t):
        f = base[:, 2 * i: 2 * i + h, 3 * i: 3 * i + w].clone()
        s = max(4, min(h, w) // 4)
        y0 = int((h - s) * (0.5 + 0.4 * math.sin(i / 2)))
        x0 = int((w - s) * i / max(1, t - 1))
        f[:, y0: y0 + s, x0: x0 + s] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
        frames.append(f)
    return torch.stack(frames).mul(255).round().div(255)


@pytest.fixture(scope="session")
def motion() -> torch.Tensor:
    """8 frames of 64 x 48 synthetic motion."""
    return synthetic_clip()


@pytest.fixture(scope="session")
def davis_clip():
    """The first 8 frames of DAVIS blackswan, downscaled to 128 x 72 (skips without the data)."""
    if not BLACKSWAN.is_dir():
        pytest.skip(f"DAVIS frames not found at {BLACKSWAN} (set GLOCAL_CODEC_DATA)")
    from glocal_codec.video import read_video

    return read_video(BLACKSWAN, max_frames=8, size=(128, 72))
