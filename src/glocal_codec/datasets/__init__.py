"""Datasets: where local copies are found (``GLOCAL_CODEC_DATA`` / ``--data-dir``).

Download with checksums (Kodak, CLIC) is the evaluation issue's work; for now this module finds
the local copies that tests, training and the Kodak measurements use.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "data_root", "dataset_dir", "list_images", "DatasetNotFoundError"]

DATA_ENV = "GLOCAL_CODEC_DATA"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_KNOWN = {"kodak": "kodak", "clic": "clic", "train": "train"}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder is not where it was looked for."""


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding local dataset copies: ``data_dir``, else ``$GLOCAL_CODEC_DATA``."""
    root = data_dir or os.environ.get(DATA_ENV)
    if not root:
        raise DatasetNotFoundError(f"no data folder: pass --data-dir or set {DATA_ENV}")
    return Path(root)


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    if name not in _KNOWN:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(_KNOWN)}")
    path = data_root(data_dir) / _KNOWN[name]
    if not path.is_dir():
        raise DatasetNotFoundError(f"dataset {name!r} not found at {path}")
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Images directly in ``folder`` (sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
