"""Image quality metrics: PSNR, MS-SSIM (and in dB), LPIPS.

Every metric sees what a user gets from the decoded PNG: both images are first rounded to
8 bits (the convention of CompressAI's ``compute_metrics`` and the published Kodak numbers).

* **PSNR** over all RGB values, peak 255 (the literature's "PSNR-RGB").
* **MS-SSIM** (Wang, Simoncelli, Bovik 2003) through ``pytorch_msssim`` with its defaults
  (11-tap Gaussian window, sigma 1.5, K = (0.01, 0.03), the five scale weights
  0.0448 0.2856 0.3001 0.2363 0.1333), ``data_range=255``; also as
  ``-10 log10(1 - MS-SSIM)`` dB. Five scales need the short side > 160 px; for smaller images
  the scales that fit are used, with their weights renormalised to sum to one (the value is
  then *not* comparable with 5-scale numbers; :func:`ms_ssim_scales` says how many were
  used); below 11 px there is no MS-SSIM (``None``). Computed in float32 like CompressAI's
  evaluation (float64 is ~15x slower on the CPU; the difference is below 1e-4).
* **LPIPS** (Zhang et al. 2018, https://github.com/richzhang/PerceptualSimilarity), v0.1 with
  the AlexNet trunk, from the ``lpips`` package. Its AlexNet backbone (ImageNet weights) is
  normally downloaded by torchvision; this module never downloads. It looks, in order, at

  1. a file given explicitly (``weights=`` / ``--lpips-weights`` / ``$GLOCAL_CODEC_LPIPS_WEIGHTS``):
     a torchvision AlexNet ``state_dict`` (keys ``features.N.*``) or its ``features`` part (``N.*``);
  2. the torch hub cache: ``<torch.hub.get_dir()>/checkpoints/alexnet-owt-7be5be79.pth``
     (torchvision's ``AlexNet_Weights.IMAGENET1K_V1`` file, checked by its sha256 prefix);
  3. ``$GLOCAL_CODEC_DATA/weights/lpips/alexnet_features_from_lpips_torch2tf.pth``: AlexNet
     ``features`` converted from the lpips_torch2tf Keras export (see ``../shared/data/SOURCES.md``:
     "very likely exact, not byte-verified"), checked by sha256.

  The linear heads are the package's own ``lpips/weights/v0.1/alex.pth`` (or the identical
  ``weights/lpips/v0.1/alex.pth`` under the data folder). When no backbone is found LPIPS is
  *unavailable*: :func:`lpips_status` says which file is missing and where to put it, and every
  LPIPS value is ``None`` -- a run never fails for it.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..util import file_sha256, psnr

__all__ = [
    "MS_SSIM_WEIGHTS",
    "LPIPS_WEIGHTS_ENV",
    "TORCHVISION_ALEXNET",
    "psnr",
    "ms_ssim",
    "ms_ssim_scales",
    "ms_ssim_db",
    "LpipsStatus",
    "LpipsMetric",
    "lpips_status",
    "get_lpips",
    "lpips_distance",
]

#: pytorch_msssim's (and Wang et al.'s) scale weights, finest first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN = 11
LPIPS_WEIGHTS_ENV = "GLOCAL_CODEC_LPIPS_WEIGHTS"
#: torchvision's ImageNet AlexNet file name; ``7be5be79`` is the start of its sha256.
TORCHVISION_ALEXNET = "alexnet-owt-7be5be79.pth"
_DATA_ALEXNET = Path("weights/lpips/alexnet_features_from_lpips_torch2tf.pth")
_DATA_ALEXNET_SHA256 = "b8cc4763045a660cab61aa25f1e5bcde6c07c3f4dd8521157f0b9662eea82bb2"
_DATA_HEADS = Path("weights/lpips/v0.1/alex.pth")
_HEADS_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
#: AlexNet ``features`` index -> the LPIPS slice holding it.
_ALEX_SLICES = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


def _to8(x: torch.Tensor) -> torch.Tensor:
    return (x.detach().float().clamp(0, 1) * 255).round()


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def ms_ssim_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales (at most 5) fit an image: the short side must exceed
    ``10 * 2**(scales-1)`` (the 11-tap window at the coarsest scale); 0 when none fit."""
    side = min(height, width)
    for n in range(len(MS_SSIM_WEIGHTS), 0, -1):
        if side > (_WIN - 1) * 2 ** (n - 1):
            return n
    return 0


def ms_ssim(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype = torch.float32) -> Optional[float]:
    """MS-SSIM of two images in [0, 1] (rounded to 8 bits, ``data_range=255``); see the module docs.

    ``None`` when the image is too small for even one scale (short side <= 10 px). ``dtype``:
    float32 (default, as CompressAI; flat bright areas can be off by ~1e-4 from cancellation in
    the variance terms) or float64 (exact to ~1e-7, much slower on the CPU).
    """
    _check(a, b)
    x, y = _to8(a).to(dtype), _to8(b).to(dtype)
    if x.dim() == 3:
        x, y = x[None], y[None]
    n = ms_ssim_scales(x.shape[-2], x.shape[-1])
    if n == 0:
        return None
    from pytorch_msssim import ms_ssim as _ms_ssim

    if n == len(MS_SSIM_WEIGHTS):
        return float(_ms_ssim(x, y, data_range=255, size_average=True).item())
    return _ms_ssim_fewer_scales(x, y, n)


def _ms_ssim_fewer_scales(x: torch.Tensor, y: torch.Tensor, n: int) -> float:
    """MS-SSIM with ``n`` < 5 scales, same computation as ``pytorch_msssim.ms_ssim`` (which
    insists on five): contrast-structure terms at the finer scales, full SSIM at the coarsest,
    combined with the first ``n`` weights renormalised to sum to one."""
    import torch.nn.functional as F
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    weights = torch.tensor(MS_SSIM_WEIGHTS[:n], dtype=x.dtype)
    weights = weights / weights.sum()
    win = _fspecial_gauss_1d(_WIN, 1.5).repeat([x.shape[1], 1, 1, 1])
    terms = []
    for i in range(n):
        ssim_c, cs = _ssim(x, y, win=win, data_range=255, size_average=False, K=(0.01, 0.03))
        if i < n - 1:
            terms.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
    terms.append(torch.relu(ssim_c))
    val = torch.prod(torch.stack(terms, 0) ** weights.view(-1, 1, 1), dim=0)
    return float(val.mean().item())


def ms_ssim_db(value: Optional[float]) -> Optional[float]:
    """``-10 log10(1 - MS-SSIM)``: the dB scale RD plots use; ``inf`` at 1, ``None`` for ``None``."""
    if value is None:
        return None
    if value >= 1.0:
        return float("inf")
    return -10.0 * math.log10(1.0 - value)


# -- LPIPS ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LpipsStatus:
    """Whether LPIPS can be computed, with which backbone, or why not."""

    available: bool
    backbone: Optional[str] = None  # a label for reports: which AlexNet weights
    path: Optional[str] = None
    message: str = ""


class LpipsMetric:
    """LPIPS v0.1 (AlexNet) with an explicitly loaded backbone. Call it with two images in [0, 1]."""

    def __init__(self, backbone: Path, label: str, heads: Path, device: str | torch.device = "cpu") -> None:
        import lpips

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated"
            model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True,
                                model_path=str(heads), verbose=False)
        feats = _load_alexnet_features(backbone)
        target = model.state_dict()
        for idx, slice_no in _ALEX_SLICES.items():
            for kind in ("weight", "bias"):
                key = f"net.slice{slice_no}.{idx}.{kind}"
                src = feats[f"{idx}.{kind}"]
                if target[key].shape != src.shape:
                    raise ValueError(f"{backbone}: {idx}.{kind} has shape {tuple(src.shape)}, "
                                     f"AlexNet needs {tuple(target[key].shape)}")
                target[key] = src
        model.load_state_dict(target)
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.label = label
        self.path = str(backbone)
        self._lock = threading.Lock()

    @torch.inference_mode()
    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> Optional[float]:
        _check(a, b)
        x, y = _to8(a) / 255.0, _to8(b) / 255.0
        if x.dim() == 3:
            x, y = x[None], y[None]
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        if min(x.shape[-2:]) < 32:
            return None  # too small for AlexNet's strides and pools
        with self._lock:
            d = self.model(x.to(self.device), y.to(self.device), normalize=True)
        return float(d.mean().item())


def _load_alexnet_features(path: Path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise ValueError(f"{path} is not a state_dict")
    if any(k.startswith("features.") for k in sd):
        sd = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    missing = [f"{i}.{k}" for i in _ALEX_SLICES for k in ("weight", "bias") if f"{i}.{k}" not in sd]
    if missing:
        raise ValueError(f"{path} is not an AlexNet state_dict (missing {', '.join(missing)})")
    return sd


def _heads_path(data_dir: Optional[Path]) -> Optional[Path]:
    try:
        import lpips

        p = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
        if p.is_file():
            return p
    except ImportError:
        pass
    if data_dir is not None and (data_dir / _DATA_HEADS).is_file() and file_sha256(data_dir / _DATA_HEADS) == _HEADS_SHA256:
        return data_dir / _DATA_HEADS
    return None


def _hub_alexnet() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_ALEXNET


def lpips_status(weights: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None) -> LpipsStatus:
    """Find LPIPS's AlexNet backbone (see the module docs for the order) without loading it.

    An explicitly given ``weights`` file that does not exist raises ``FileNotFoundError`` (a
    typo should not silently fall back to other weights); everything else that is missing
    gives ``available=False`` and a message naming the file and where to put it.
    """
    try:
        import lpips  # noqa: F401
    except ImportError:
        return LpipsStatus(False, message="LPIPS unavailable: the 'lpips' package is not installed "
                                          "(pip install 'glocal-codec[eval]')")
    explicit = weights or os.environ.get(LPIPS_WEIGHTS_ENV)
    root = data_dir or os.environ.get("GLOCAL_CODEC_DATA")
    root_path = Path(root) if root else None
    if _heads_path(root_path) is None:
        return LpipsStatus(False, message="LPIPS unavailable: the linear heads lpips/weights/v0.1/alex.pth "
                                          "are missing from the lpips package; reinstall lpips")
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"LPIPS weights file not found: {p}")
        return LpipsStatus(True, f"user file {p.name}", str(p))
    hub = _hub_alexnet()
    if hub.is_file():
        if file_sha256(hub).startswith(TORCHVISION_ALEXNET.split("-")[-1].split(".")[0]):
            return LpipsStatus(True, "torchvision alexnet-owt-7be5be79 (ImageNet)", str(hub))
        warnings.warn(f"{hub} does not match its sha256 prefix; ignored for LPIPS", stacklevel=2)
    if root_path is not None:
        p = root_path / _DATA_ALEXNET
        if p.is_file() and file_sha256(p) == _DATA_ALEXNET_SHA256:
            return LpipsStatus(True, "AlexNet features converted from lpips_torch2tf (Keras)", str(p))
    where = [str(hub)]
    if root_path is not None:
        where.append(str(root_path / _DATA_ALEXNET))
    return LpipsStatus(False, message=(
        f"LPIPS unavailable: AlexNet weights not found (looked at {' and '.join(where)}). Put torchvision's "
        f"{TORCHVISION_ALEXNET} (https://download.pytorch.org/models/{TORCHVISION_ALEXNET}) into "
        f"{hub.parent}/, or pass --lpips-weights FILE, or set GLOCAL_CODEC_DATA to a folder holding "
        f"{_DATA_ALEXNET}"))


_cache: dict[tuple[str, str, str], tuple[Optional[LpipsMetric], LpipsStatus]] = {}
_cache_lock = threading.Lock()


def get_lpips(weights: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None,
              device: str | torch.device = "cpu") -> tuple[Optional[LpipsMetric], LpipsStatus]:
    """The LPIPS metric (built once per weights choice and device), or ``None`` with the reason."""
    root = data_dir or os.environ.get("GLOCAL_CODEC_DATA")
    explicit = weights or os.environ.get(LPIPS_WEIGHTS_ENV)
    key = (str(explicit or ""), str(root or ""), str(device))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            return hit
        status = lpips_status(weights, data_dir)
        metric = None
        if status.available and status.path is not None:
            heads = _heads_path(Path(root) if root else None)
            assert heads is not None
            metric = LpipsMetric(Path(status.path), status.backbone or "", heads, device)
        _cache[key] = (metric, status)
        return metric, status


def lpips_distance(a: torch.Tensor, b: torch.Tensor, weights: str | os.PathLike | None = None,
                   data_dir: str | os.PathLike | None = None) -> Optional[float]:
    """LPIPS (AlexNet, v0.1) between two images in [0, 1]; ``None`` when it is unavailable."""
    metric, _ = get_lpips(weights, data_dir)
    return None if metric is None else metric(a, b)
