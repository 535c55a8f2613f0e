"""``features``: do ImageNet features survive the codec? Cosine similarity of feature maps.

The trunk is one of the offline ImageNet networks the project already uses for LPIPS (nothing
is downloaded); the first one found is used, and results say which:

1. SqueezeNet 1.1 ``features`` (torchvision's ``squeezenet1_1-b8a52dc0.pth`` in the torch hub
   cache, or ``$GLOCAL_CODEC_DATA/weights/lpips/squeeze.backbone.pth``, checked by sha256);
2. AlexNet ``features`` (the files LPIPS uses: see :mod:`glocal_codec.eval.metrics`).

Both images are rounded to 8 bits, normalised with the ImageNet mean and standard deviation and
run at their own resolution. The score is the cosine similarity of the two final feature maps
(SqueezeNet: fire9, 512 channels at stride 16; AlexNet: conv5 after ReLU, 256 channels),
flattened over channels *and* positions, so it drops when features move or vanish, not only when
the global average changes (that pooled cosine is in the details). Features are ReLU outputs,
never negative, so the cosine lies in [0, 1]; the original scores 1.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .base import MachineTask, TaskInput, TaskResult

__all__ = ["FeaturesTask", "Trunk", "find_trunk"]

_SQUEEZE_HUB = "squeezenet1_1-b8a52dc0.pth"
_SQUEEZE_DATA = Path("weights/lpips/squeeze.backbone.pth")
_SQUEEZE_DATA_SHA256 = "435cedb387e95bc8291893f61a3a64f0345b8c23a05139aceef43947efb3d52d"
_MIN_SIDE = 32
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Trunk:
    """A located trunk: ``arch`` (``squeezenet1_1`` or ``alexnet``), its file, a label."""

    arch: str
    path: str
    label: str


_found: dict[tuple[str, str], Optional[Trunk]] = {}
_found_lock = threading.Lock()


def find_trunk(data_dir: Optional[str] = None) -> Optional[Trunk]:
    """The first offline ImageNet trunk found (see the module docs), or ``None``."""
    from ...util import file_sha256
    from .. import metrics

    root = data_dir or os.environ.get("GLOCAL_CODEC_DATA") or ""
    key = (root, str(torch.hub.get_dir()))
    with _found_lock:
        if key in _found:
            return _found[key]
    trunk: Optional[Trunk] = None
    hub = Path(torch.hub.get_dir()) / "checkpoints" / _SQUEEZE_HUB
    if hub.is_file() and file_sha256(hub).startswith("b8a52dc0"):
        trunk = Trunk("squeezenet1_1", str(hub), "SqueezeNet 1.1 (torchvision squeezenet1_1-b8a52dc0, ImageNet)")
    elif root and (Path(root) / _SQUEEZE_DATA).is_file() and \
            file_sha256(Path(root) / _SQUEEZE_DATA) == _SQUEEZE_DATA_SHA256:
        trunk = Trunk("squeezenet1_1", str(Path(root) / _SQUEEZE_DATA),
                      "SqueezeNet 1.1 features (LPIPS squeeze.backbone.pth, ImageNet)")
    else:
        alex_hub = metrics._hub_alexnet()
        alex_data = Path(root) / metrics._DATA_ALEXNET if root else None
        if alex_hub.is_file() and file_sha256(alex_hub).startswith("7be5be79"):
            trunk = Trunk("alexnet", str(alex_hub), "AlexNet (torchvision alexnet-owt-7be5be79, ImageNet)")
        elif alex_data is not None and alex_data.is_file() and file_sha256(alex_data) == metrics._DATA_ALEXNET_SHA256:
            trunk = Trunk("alexnet", str(alex_data), "AlexNet features converted from lpips_torch2tf (ImageNet)")
    with _found_lock:
        _found[key] = trunk
    return trunk


def _build(trunk: Trunk) -> torch.nn.Module:
    import torchvision

    from .. import metrics

    if trunk.arch == "squeezenet1_1":
        net = torchvision.models.squeezenet1_1(weights=None).features
        sd = torch.load(trunk.path, map_location="cpu", weights_only=True)
        if any(k.startswith("features.") for k in sd):
            sd = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
        net.load_state_dict(sd, strict=True)
    else:
        full = torchvision.models.alexnet(weights=None).features
        full.load_state_dict(metrics._load_alexnet_features(Path(trunk.path)), strict=True)
        net = full[:12]  # up to conv5 + ReLU (the last max-pool left out)
    return net.eval()


class FeaturesTask(MachineTask):
    name = "features"
    description = "cosine similarity of ImageNet feature maps of the decoded and the original image"
    model = "SqueezeNet 1.1 features (fire9), else AlexNet conv5 (torchvision architectures)"
    weights = ("offline ImageNet trunks used for LPIPS: torch hub squeezenet1_1-b8a52dc0.pth, or "
               "$GLOCAL_CODEC_DATA/weights/lpips/squeeze.backbone.pth (sha256-checked), else the AlexNet files "
               "of LPIPS; never downloaded")
    score_text = "cosine similarity of the flattened final feature maps (1 = identical features)"

    def __init__(self, data_dir: Optional[str] = None) -> None:
        trunk = find_trunk(data_dir)
        if trunk is None:  # open_task checked; a direct construction may still get here
            from .base import TaskUnavailableError

            raise TaskUnavailableError(self.check() or "no ImageNet trunk found")
        self.trunk = trunk
        self.net = _build(trunk)
        self._lock = threading.Lock()
        self._last: Optional[tuple[torch.Tensor, Optional[torch.Tensor]]] = None

    @classmethod
    def check(cls) -> Optional[str]:
        if find_trunk() is not None:
            return None
        return ("no offline ImageNet trunk found: put torchvision's squeezenet1_1-b8a52dc0.pth (or "
                f"alexnet-owt-7be5be79.pth) into {Path(torch.hub.get_dir()) / 'checkpoints'}/, or set "
                f"GLOCAL_CODEC_DATA to a folder holding {_SQUEEZE_DATA}")

    @classmethod
    def located(cls) -> Optional[str]:
        t = find_trunk()
        return None if t is None else f"{t.label}: {t.path}"

    def model_id(self) -> str:
        return f"{self.trunk.arch}: {self.trunk.label}"

    @torch.inference_mode()
    def _features(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        if x.dim() == 3:
            x = x[None]
        if min(x.shape[-2:]) < _MIN_SIDE:
            return None
        x = (x.detach().float().clamp(0, 1) * 255).round() / 255
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_STD).view(1, 3, 1, 1)
        with self._lock:
            return self.net(((x.cpu() - mean) / std)).double()

    def _original(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        last = self._last
        if last is not None and last[0] is x:
            return last[1]
        f = self._features(x)
        self._last = (x, f)
        return f

    def score(self, inp: TaskInput, decoded: torch.Tensor) -> TaskResult:
        fa = self._original(inp.image)
        if fa is None:
            return TaskResult(None, {"reason": f"image smaller than {_MIN_SIDE} px"})
        fb = fa if decoded is inp.image else self._features(decoded)
        assert fb is not None
        cos = torch.nn.functional.cosine_similarity(fa.flatten(), fb.flatten(), dim=0, eps=1e-12)
        pooled = torch.nn.functional.cosine_similarity(fa.mean((2, 3)).flatten(), fb.mean((2, 3)).flatten(),
                                                       dim=0, eps=1e-12)
        score = float(min(1.0, max(0.0, cos.item())))
        return TaskResult(round(score, 6), {"pooled_cosine": round(float(pooled.item()), 6),
                                            "trunk": self.trunk.arch})
