"""Metrics pinned against values computed by hand on small tensors (see each test's arithmetic)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from glocal_codec.eval import metrics
from glocal_codec.eval.metrics import (
    MS_SSIM_WEIGHTS,
    get_lpips,
    lpips_distance,
    lpips_status,
    ms_ssim,
    ms_ssim_db,
    ms_ssim_scales,
    psnr,
)


def const(value: int, size: int, channels: int = 3) -> torch.Tensor:
    return torch.full((1, channels, size, size), value / 255.0)


# -- PSNR -----------------------------------------------------------------------------------------
def test_psnr_by_hand() -> None:
    a = const(100, 8)
    # every value off by one 8-bit step: MSE = 1 -> 10 log10(255^2) = 48.1308...
    assert psnr(a, const(101, 8)) == pytest.approx(20 * math.log10(255), abs=1e-9)
    # half of the values off by 2, half equal: MSE = (4 + 0) / 2 = 2
    b = a.clone()
    b[..., :4, :] += 2 / 255
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 2), abs=1e-9)
    assert psnr(a, a) == math.inf


def test_psnr_rounds_to_8_bits() -> None:
    a = const(100, 4)
    assert psnr(a, a + 0.4 / 255) == math.inf  # rounds to the same 8-bit value


# -- MS-SSIM --------------------------------------------------------------------------------------
def _luminance(a: float, b: float) -> float:
    c1 = (0.01 * 255) ** 2
    return (2 * a * b + c1) / (a * a + b * b + c1)


def test_ms_ssim_constant_images_by_hand() -> None:
    # Flat images: every contrast-structure term is (0 + C2) / (0 + C2) = 1, so MS-SSIM is the
    # luminance term at the coarsest scale raised to its weight 0.1333.
    expected = _luminance(100, 120) ** 0.1333  # 0.99779966...
    # 176 px: 5 scales, and every 2x2 pooling sees an even size (pytorch-msssim zero-pads odd
    # sizes, which would darken the borders of the flat image and break the hand computation)
    a, b = const(100, 176, 1), const(120, 176, 1)
    assert ms_ssim(a, b, dtype=torch.float64) == pytest.approx(expected, abs=1e-6)
    # the default float32 (as CompressAI) loses a little to cancellation on flat bright areas
    assert ms_ssim(a, b) == pytest.approx(expected, abs=2e-4)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_small_image_uses_fewer_scales() -> None:
    assert ms_ssim_scales(161, 500) == 5
    assert ms_ssim_scales(160, 500) == 4  # 5 scales need the short side > 160
    assert ms_ssim_scales(64, 64) == 3
    assert ms_ssim_scales(11, 11) == 1
    assert ms_ssim_scales(10, 300) == 0
    # 64 px: 3 scales, weights renormalised: the coarsest gets 0.3001 / (0.0448 + 0.2856 + 0.3001)
    w = MS_SSIM_WEIGHTS[2] / sum(MS_SSIM_WEIGHTS[:3])
    got = ms_ssim(const(100, 64, 1), const(120, 64, 1), dtype=torch.float64)
    assert got == pytest.approx(_luminance(100, 120) ** w, abs=1e-6)
    assert ms_ssim(const(100, 10), const(120, 10)) is None


def test_fewer_scale_code_matches_pytorch_msssim_at_five_scales() -> None:
    from pytorch_msssim import ms_ssim as reference

    g = torch.Generator().manual_seed(1)
    x = (torch.rand(1, 1, 162, 170, generator=g) * 255).round()
    y = (x + torch.randn(1, 1, 162, 170, generator=g) * 12).clamp(0, 255).round()
    ours = metrics._ms_ssim_fewer_scales(x, y, 5)
    assert ours == pytest.approx(reference(x, y, data_range=255).item(), abs=1e-5)  # float32
    assert ms_ssim(x / 255, y / 255) == pytest.approx(ours, abs=1e-5)


def test_ms_ssim_db() -> None:
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(0.9) == pytest.approx(10.0)
    assert ms_ssim_db(1.0) == math.inf
    assert ms_ssim_db(None) is None


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        psnr(const(1, 8), const(1, 9))


# -- LPIPS ----------------------------------------------------------------------------------------
@pytest.fixture()
def lpips_metric(data_dir: Path):
    pytest.importorskip("lpips")
    metric, status = get_lpips(data_dir=data_dir)
    if metric is None:
        pytest.skip(status.message)
    return metric


def _pair(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 8-bit-valued images (the metric rounds to 8 bits; the reference below does not)."""
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(1, 3, size, size, generator=g) * 255).round() / 255
    y = ((x + 0.1 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1) * 255).round() / 255
    return x, y


def test_lpips_zero_for_identical_and_symmetric(lpips_metric) -> None:
    x, y = _pair()
    assert lpips_metric(x, x) == pytest.approx(0.0, abs=1e-7)
    assert lpips_metric(x, y) == pytest.approx(lpips_metric(y, x), abs=1e-6)
    assert lpips_metric(x, y) > 0.01


def test_lpips_matches_the_lpips_package_with_the_same_weights(lpips_metric) -> None:
    """An independent computation: the lpips package's own network, its backbone copied in by hand."""
    import warnings

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    feats = torch.load(lpips_metric.path, map_location="cpu", weights_only=True)
    feats = {k.removeprefix("features."): v for k, v in feats.items()}
    slices = {0: ref.net.slice1, 3: ref.net.slice2, 6: ref.net.slice3, 8: ref.net.slice4, 10: ref.net.slice5}
    with torch.no_grad():
        for idx, sl in slices.items():
            getattr(sl, str(idx)).weight.copy_(feats[f"{idx}.weight"])
            getattr(sl, str(idx)).bias.copy_(feats[f"{idx}.bias"])
        x, y = _pair()
        expected = ref(x * 2 - 1, y * 2 - 1).item()
    assert lpips_metric(x, y) == pytest.approx(expected, abs=1e-6)


def test_lpips_accepts_a_full_torchvision_state_dict(lpips_metric, tmp_path: Path) -> None:
    feats = torch.load(lpips_metric.path, map_location="cpu", weights_only=True)
    full = {f"features.{k.removeprefix('features.')}": v for k, v in feats.items() if "classifier" not in k}
    full["classifier.1.weight"] = torch.zeros(2, 2)  # ignored
    path = tmp_path / "alexnet_full.pth"
    torch.save(full, path)
    metric, status = get_lpips(weights=path)
    assert status.available and metric is not None and "user file" in (status.backbone or "")
    x, y = _pair()
    assert metric(x, y) == pytest.approx(lpips_metric(x, y), abs=1e-6)


def test_lpips_missing_weights_say_which_file_and_where(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("lpips")
    monkeypatch.delenv(metrics.LPIPS_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    empty = tmp_path / "data"
    empty.mkdir()
    status = lpips_status(data_dir=empty)
    assert not status.available
    assert metrics.TORCHVISION_ALEXNET in status.message
    assert str(tmp_path / "hub" / "checkpoints") in status.message
    assert "alexnet_features_from_lpips_torch2tf.pth" in status.message
    x, y = _pair()
    assert lpips_distance(x, y, data_dir=empty) is None  # unavailable, not a failure


def test_lpips_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("lpips")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        lpips_status(weights=tmp_path / "nope.pth")
