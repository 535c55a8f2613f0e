"""The local spectral renderer (nn/spectral.py): geometry, continuity, band limit, exactness."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from glocal_codec.nn.fixed_point import to_grid
from glocal_codec.nn.spectral import (
    CELL, Bandwidth, cos_sin_exact, fourier_basis, mode_orders, phase_head, render, render_exact,
)


def test_cos_sin_exact_accuracy():
    x = torch.linspace(-60, 60, 20001, dtype=torch.float64)
    c, s = cos_sin_exact(x)
    assert float((c - torch.cos(x)).abs().max()) < 1e-14
    assert float((s - torch.sin(x)).abs().max()) < 1e-14


def test_basis_layout():
    assert mode_orders(8) == [0, 1, 1, 2, 2, 3, 3, 4]
    t = torch.tensor([0.25])
    b = fourier_basis(t, 5, 1.0)[0]
    assert torch.allclose(b, torch.tensor([1, math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 1.0]), atol=1e-6)


def test_bandwidth_is_bounded_and_starts_at_init():
    bw = Bandwidth(1.0)
    assert abs(float(bw().detach()) - 1.0) < 1e-6
    with torch.no_grad():
        bw.raw.fill_(1e3)
    assert float(bw().detach()) <= 2.0 + 1e-6


def test_native_grid_and_sizes():
    coef = torch.randn(2, 3, 4, 4, 5, 7)
    out = render(coef, CELL * 5, CELL * 7, torch.tensor(1.0))
    assert out.shape == (2, 3, 10, 14)
    assert render(coef, 33, 9, torch.tensor(1.0)).shape == (2, 3, 33, 9)


def test_no_step_at_cell_borders_on_a_ramp():
    """A ramp coded as per-cell constants and slopes renders without a jump at cell borders."""
    h = w = 8
    coef = torch.zeros(1, 1, 4, 4, h, w)
    centres = (torch.arange(w, dtype=torch.float32) * CELL + CELL / 2)
    coef[0, 0, 0, 0] = centres.view(1, w).expand(h, w) / (CELL * w)
    # the first-order sine term carries the slope inside each cell: sin(pi t) ~ pi t near 0
    coef[0, 0, 0, 2] = CELL / (CELL * w) / math.pi
    out = render(coef, 4 * CELL * h, 4 * CELL * w, torch.tensor(1.0))[0, 0, 5]
    steps = out[1:] - out[:-1]
    # every step of the x4 render is close to the ramp's slope: no jump where cells meet
    interior = steps[8:-8]
    assert float(interior.max()) < 2.0 * float(interior.mean())
    assert float(interior.min()) > 0


def test_phase_head_reproduces_a_pixel_shuffle():
    torch.manual_seed(0)
    n, k = 6, 8
    phase = torch.randn(3, 2, 2, n, 3, 3, dtype=torch.float64)
    feat = torch.randn(1, n, 5, 6, dtype=torch.float64)
    # the pixel-shuffle output: one 3x3 convolution per phase
    shuffle = torch.zeros(1, 3, 10, 12, dtype=torch.float64)
    for py in range(2):
        for px in range(2):
            shuffle[..., py::2, px::2] = F.conv2d(feat, phase[:, py, px], padding=1)
    head = phase_head(phase, k)
    coef = F.conv2d(feat, head, padding=1).reshape(1, 3, k, k, 5, 6)
    out = render(coef, 10, 12, torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(out, shuffle, atol=1e-9)


def test_band_limit_below_scale_one():
    coef = torch.zeros(1, 1, 8, 8, 6, 6)
    coef[0, 0, 0, 0] = 0.5
    coef[0, 0, 7, 7] = 1.0  # the highest mode only
    full = render(coef, 12, 12, torch.tensor(1.0))
    half = render(coef, 6, 6, torch.tensor(1.0))
    assert float((full - 0.5).abs().max()) > 0.1
    assert torch.allclose(half, torch.full_like(half, 0.5), atol=1e-6)


def _grid_coef(seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return to_grid(torch.randn(1, 3, 8, 8, 12, 16, dtype=torch.float64))


def test_exact_render_matches_float_render():
    coef = _grid_coef()
    ref = render(coef.float(), 24, 32, torch.tensor(1.0))
    out = render_exact(coef, (0, 24), (0, 32), (12, 16), (1.0, 1.0), 1.0)
    assert float((out - ref.double()).abs().max()) < 1e-3


def test_exact_render_windows_agree_with_the_whole():
    coef = _grid_coef(1)
    scale = (48 / 24, 61 / 32)
    whole = render_exact(coef, (0, 48), (0, 61), (12, 16), scale, 0.75)
    part = render_exact(coef[..., 2:11, 5:14], (13, 37), (22, 50), (12, 16), scale, 0.75, offset=(2, 5))
    assert torch.equal(part, whole[..., 13:37, 22:50])


def test_exact_render_refuses_a_window_that_misses_cells():
    coef = _grid_coef()
    with pytest.raises(ValueError):
        render_exact(coef[..., 4:, :], (0, 24), (0, 32), (12, 16), (1.0, 1.0), 1.0, offset=(4, 0))


_PROBE = """
import hashlib, torch
from glocal_codec.nn.fixed_point import to_grid
from glocal_codec.nn.spectral import render_exact
torch.manual_seed(0)
coef = to_grid(torch.randn(1, 3, 8, 8, 12, 16, dtype=torch.float64) * 3)
out = render_exact(coef, (0, 57), (0, 75), (12, 16), (57 / 24, 75 / 32), 1.3)
from glocal_codec.nn.spectral import render_exact_any
out = torch.cat([out.flatten(), render_exact_any(coef, (0, 9), (0, 11), (12, 16), (9 / 24, 11 / 32), 1.3, (24, 32)).flatten()])
print(hashlib.sha256(out.numpy().tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_exact_render_is_the_same_bits_everywhere():
    """Same bytes with one thread, the default, and torch's plain kernels in a fresh process."""
    digests = set()
    for env in ({"OMP_NUM_THREADS": "1"}, {}, {"ATEN_CPU_CAPABILITY": "default"}):
        res = subprocess.run([sys.executable, "-c", _PROBE], env={**os.environ, **env}, capture_output=True,
                             text=True, check=True)
        digests.add(res.stdout.strip())
    assert len(digests) == 1
    assert hashlib.sha256(b"").hexdigest() not in digests


def test_reduction_below_scale_one_is_pillows_antialiased_bicubic():
    """Below scale 1 the native render is reduced like Pillow's BICUBIC resize (float mode)."""
    import numpy as np
    from PIL import Image

    from glocal_codec.nn.spectral import render_exact_any

    torch.manual_seed(0)
    coef = to_grid(torch.randn(1, 1, 8, 8, 12, 16, dtype=torch.float64) * 0.3)
    native = render_exact(coef, (0, 24), (0, 32), (12, 16), (1.0, 1.0), 1.0)
    for oh, ow in [(12, 16), (6, 8), (9, 13)]:
        out = render_exact_any(coef, (0, oh), (0, ow), (12, 16), (oh / 24, ow / 32), 1.0, (24, 32))
        ref = Image.fromarray(native[0, 0].numpy().astype(np.float32), mode="F").resize((ow, oh), Image.Resampling.BICUBIC)
        assert float(np.abs(out[0, 0].numpy() - np.asarray(ref)).max()) < 1e-4
    whole = render_exact_any(coef, (0, 9), (0, 13), (12, 16), (9 / 24, 13 / 32), 1.0, (24, 32))
    part = render_exact_any(coef, (3, 7), (4, 11), (12, 16), (9 / 24, 13 / 32), 1.0, (24, 32))
    assert torch.equal(whole[..., 3:7, 4:11], part)
