"""The project's own trained weights, shipped inside the package.

Each learned codec has one safetensors file here and an entry in ``manifest.json`` with its
sha256, architecture config, the command that trained it and its measured Kodak RD points.
The first 4 bytes of the sha256 go into every ``.glc`` file the weights make, so a file decoded
with other weights is a clear error instead of garbage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..util import atomic_write, file_sha256

__all__ = [
    "WEIGHTS_DIR",
    "weights_base",
    "weights_path",
    "load_manifest",
    "manifest_entry",
    "file_sha256",
    "save_state",
    "load_state",
    "update_manifest",
]

WEIGHTS_DIR = Path(__file__).resolve().parent
_MANIFEST = "manifest.json"


def weights_base() -> Path:
    """The weights folder: the package's own, or ``$GLOCAL_CODEC_WEIGHTS`` (tests, experiments)."""
    return Path(os.environ.get("GLOCAL_CODEC_WEIGHTS", WEIGHTS_DIR))


def weights_path(codec: str) -> Path:
    """Where the weights of ``codec`` live."""
    return weights_base() / f"{codec}.safetensors"


def load_manifest(base: Path | None = None) -> dict[str, Any]:
    path = (base or weights_base()) / _MANIFEST
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def manifest_entry(codec: str) -> dict[str, Any]:
    return load_manifest().get(codec, {})


def save_state(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> str:
    """Write a state dict as safetensors (atomically); return its sha256.

    Convolution kernels are stored in float16 (half the package size, a change of ~0.01 dB);
    everything else (GDN, densities, gains) keeps its precision, and the float64 coding tables
    stay float64 because encoder and decoder must read identical numbers.
    """
    tensors = {
        k: (v.half() if v.dim() == 4 and v.dtype == torch.float32 else v).detach().cpu().contiguous()
        for k, v in state.items()
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata or {}), force=True, mkdir=True)
    return file_sha256(path)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path), device="cpu")


def update_manifest(codec: str, entry: dict[str, Any], base: Path | None = None) -> None:
    """Merge ``entry`` into the manifest row of ``codec`` (atomic write)."""
    base = base or weights_base()
    manifest = load_manifest(base)
    manifest.setdefault(codec, {}).update(entry)
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write(base / _MANIFEST, text, force=True, mkdir=True)
