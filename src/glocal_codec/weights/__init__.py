"""The project's own trained weights, shipped inside the package.

Each learned codec has one safetensors file here and an entry in ``manifest.json`` with its
sha256, architecture config, the command that trained it and its measured Kodak RD points.
The first 4 bytes of the sha256 go into every ``.glc`` file the weights make, so a file decoded
with other weights is a clear error instead of garbage.

Reading the manifest and the digest needs no torch (``glocal-codec list`` and ``info`` use them);
torch and safetensors are imported by :func:`save_state` and :func:`load_state` only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import WeightsMissingError
from ..util import atomic_write, file_sha256

if TYPE_CHECKING:
    import torch

__all__ = [
    "WEIGHTS_DIR",
    "weights_base",
    "weights_path",
    "load_manifest",
    "manifest_entry",
    "quality_levels",
    "weights_digest",
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


def quality_levels(codec: str, default_levels: int) -> tuple[tuple[int, ...], int]:
    """``(qualities, default_quality)`` of a learned codec: levels ``1..config.levels`` of its
    manifest entry (``default_levels`` without one) and the entry's ``default_quality`` (else
    level 4, or the last level if there are fewer)."""
    entry = manifest_entry(codec)
    levels = int(entry.get("config", {}).get("levels", default_levels))
    return tuple(range(1, levels + 1)), int(entry.get("default_quality", min(4, levels)))


def weights_digest(codec: str) -> bytes:
    """The 4-byte digest that files made with the installed weights of ``codec`` carry: the first
    bytes of the weights file's sha256 (with the manifest's ``requires``: of the sha256 of its own
    digest and theirs). :class:`WeightsMissingError` when the file is missing."""
    path = weights_path(codec)
    if not path.is_file():
        raise WeightsMissingError(f"weights for {codec!r} not found at {path}")
    own = bytes.fromhex(file_sha256(path))[:4]
    # a codec built on another's weights (dualrep on vq) names them under "requires": both decide
    # the pixels, so the digest covers both and a file made with either one changed is refused
    deps = manifest_entry(codec).get("requires", [])
    if not deps:
        return own
    return hashlib.sha256(own + b"".join(weights_digest(d) for d in deps)).digest()[:4]


def save_state(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> str:
    """Write a state dict as safetensors (atomically); return its sha256.

    Convolution kernels are stored in float16 (half the package size, a change of ~0.01 dB);
    everything else (GDN, densities, gains) keeps its precision, and the float64 coding tables
    stay float64 because encoder and decoder must read identical numbers.
    """
    import torch
    from safetensors.torch import save_file

    tensors = {
        k: (v.half() if v.dim() == 4 and v.dtype == torch.float32 else v).detach().cpu().contiguous()
        for k, v in state.items()
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata or {}), force=True, mkdir=True)
    return file_sha256(path)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def update_manifest(codec: str, entry: dict[str, Any], base: Path | None = None) -> None:
    """Merge ``entry`` into the manifest row of ``codec`` (atomic write)."""
    base = base or weights_base()
    manifest = load_manifest(base)
    manifest.setdefault(codec, {}).update(entry)
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write(base / _MANIFEST, text, force=True, mkdir=True)
