"""The fixed RGB <-> Y'CbCr conversion of the classical video codecs."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from glocal_codec.yuv import pad_frames, rgb_to_yuv420, rgb_to_yuv444, yuv420_to_rgb, yuv444_to_rgb


def test_444_round_trip_within_two_levels() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)
    back = yuv444_to_rgb(*rgb_to_yuv444(rgb))
    err = np.abs(back.astype(int) - rgb)
    assert err.max() <= 2 and err.mean() < 0.6


def test_420_flat_colours_and_ranges() -> None:
    for colour in ([0, 0, 0], [255, 255, 255], [10, 200, 30], [128, 128, 128], [255, 0, 0]):
        rgb = np.full((1, 4, 6, 3), colour, np.uint8)
        y, u, v = rgb_to_yuv420(rgb)
        assert y.shape == (1, 4, 6) and u.shape == v.shape == (1, 2, 3)
        assert np.abs(yuv420_to_rgb(y, u, v).astype(int) - rgb).max() <= 2
    y, u, v = rgb_to_yuv420(np.zeros((2, 2, 3), np.uint8))
    assert (y == 16).all() and (u == 128).all() and (v == 128).all()  # limited range black
    y, _, _ = rgb_to_yuv420(np.full((2, 2, 3), 255, np.uint8))
    assert (y == 235).all()
    with pytest.raises(ValueError):
        rgb_to_yuv420(np.zeros((3, 4, 3), np.uint8))


def test_smooth_420_round_trip() -> None:
    yy, xx = np.mgrid[0:32, 0:48]
    rgb = np.stack([128 + 90 * np.sin(xx / 9 + yy / 13 + k) for k in range(3)], -1).astype(np.uint8)
    back = yuv420_to_rgb(*rgb_to_yuv420(rgb))
    assert np.abs(back.astype(int) - rgb).mean() < 1.0


def test_decoder_side_is_pinned() -> None:
    """Integer-exact decoding: these bytes must never change (files would decode differently)."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 256, (8, 10), dtype=np.uint8)
    u = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    v = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    digest = hashlib.sha256(yuv420_to_rgb(y, u, v).tobytes()).hexdigest()
    assert digest == PINNED


def test_pad_frames() -> None:
    x = np.arange(2 * 3 * 5 * 3, dtype=np.uint8).reshape(2, 3, 5, 3)
    p = pad_frames(x, 4, 6)
    assert p.shape == (2, 4, 6, 3)
    assert (p[:, :3, :5] == x).all() and (p[:, 3, :5] == x[:, 2]).all() and (p[:, :3, 5] == x[:, :, 4]).all()
    assert pad_frames(x, 3, 5) is x
    with pytest.raises(ValueError):
        pad_frames(x, 2, 5)


PINNED = "6c3fff5953e2e857e658a2a7da76bc9486b2668ecccb43c777ba3197d5e974e6"
