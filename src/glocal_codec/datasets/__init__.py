"""Datasets: Kodak, CLIC and the user's own image folders -- found locally or downloaded, verified.

Where images come from, in order:

1. ``data_dir`` (``--data-dir``) or ``$GLOCAL_CODEC_DATA``: a folder holding ``kodak/``, ``clic/``
   (and ``train/``). A local copy is used as it is -- nothing is downloaded into it -- but every
   file whose name the catalog knows is still verified (file sha256, or failing that the
   mirror-independent pixel sha256); a missing or mismatching file is an error that names it.
2. Otherwise the download cache (``$GLOCAL_CODEC_CACHE``, default ``~/.cache/glocal-codec``):
   missing files are fetched once from their real locations (:mod:`.catalog`), verified, and
   kept.

Tests and CI point ``GLOCAL_CODEC_DATA`` at ``../shared/data``; nothing from there is committed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..util import file_sha256
from .catalog import DATASETS, KODAK, ArchiveSpec, DatasetSpec, FileSpec
from .download import (
    CACHE_ENV,
    ChecksumError,
    DownloadError,
    Opener,
    cache_dir,
    download,
    extract_images,
)

__all__ = [
    "DATA_ENV",
    "CACHE_ENV",
    "DATASETS",
    "KODAK",
    "DatasetSpec",
    "FileSpec",
    "ArchiveSpec",
    "DatasetNotFoundError",
    "ChecksumError",
    "DownloadError",
    "ImageEntry",
    "Dataset",
    "data_root",
    "dataset_dir",
    "list_images",
    "cache_dir",
    "download",
    "pixels_sha256",
    "verify_file",
    "load_dataset",
    "image_folder",
]

DATA_ENV = "GLOCAL_CODEC_DATA"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_KNOWN = {"kodak": "kodak", "clic": "clic", "train": "train"}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or file is not where it was looked for (and could not be fetched)."""


@dataclass(frozen=True)
class ImageEntry:
    """One image of a dataset. ``id`` is its path relative to the dataset root (POSIX form);
    ``verified`` says how it was checked: ``"sha256"``, ``"pixels"``, ``"archive"`` or ``None``."""

    id: str
    path: Path
    verified: Optional[str] = None


@dataclass(frozen=True)
class Dataset:
    """A resolved dataset: where it is and its images, sorted by id."""

    name: str
    root: Path
    images: tuple[ImageEntry, ...]
    source: str  # "local", "cache" or "folder"
    notes: tuple[str, ...] = field(default=())

    @property
    def paths(self) -> list[Path]:
        return [e.path for e in self.images]


# -- local folders (also used by training) -------------------------------------------------------
def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding local dataset copies: ``data_dir``, else ``$GLOCAL_CODEC_DATA``."""
    root = data_dir or os.environ.get(DATA_ENV)
    if not root:
        raise DatasetNotFoundError(f"no data folder: pass --data-dir or set {DATA_ENV}")
    return Path(root)


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The local folder of dataset ``name`` (``kodak``, ``clic`` or ``train``) under the data root."""
    if name not in _KNOWN:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(_KNOWN)}")
    path = data_root(data_dir) / _KNOWN[name]
    if not path.is_dir():
        raise DatasetNotFoundError(f"dataset {name!r} not found at {path}")
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Images directly in ``folder`` (sorted by name; hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


# -- verification ---------------------------------------------------------------------------------
def pixels_sha256(path: str | os.PathLike) -> str:
    """sha256 of the decoded 8-bit RGB pixels (H x W x 3, row-major): independent of how the
    PNG (or other lossless file) was compressed, so the same for every faithful mirror."""
    with Image.open(path) as img:
        arr = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    return hashlib.sha256(arr.tobytes()).hexdigest()


def verify_file(path: str | os.PathLike, spec: FileSpec) -> str:
    """Check ``path`` against ``spec``; return ``"sha256"`` (same bytes) or ``"pixels"`` (same
    pixels, different file encoding). Raises :class:`ChecksumError` naming the file otherwise."""
    path = Path(path)
    file_digest = file_sha256(path)
    if file_digest == spec.sha256:
        return "sha256"
    try:
        pix = pixels_sha256(path)
    except (OSError, SyntaxError, ValueError) as err:
        raise ChecksumError(f"{path}: not a readable image ({err}); expected {spec.name} with sha256 "
                            f"{spec.sha256}") from None
    if pix == spec.pixels_sha256:
        return "pixels"
    raise ChecksumError(
        f"{path} is not the expected {spec.name}: file sha256 {file_digest} (expected {spec.sha256}) "
        f"and pixel sha256 {pix} (expected {spec.pixels_sha256}); replace the file"
    )


# -- resolution -----------------------------------------------------------------------------------
def _spec(name: str) -> DatasetSpec:
    spec = DATASETS.get(name)
    if spec is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} (or pass a folder with --images)")
    return spec


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download_missing: bool = True,
                 opener: Optional[Opener] = None, verify: bool = True) -> Dataset:
    """Resolve dataset ``name`` to verified local files (see the module docs for the order).

    With a data folder (``data_dir`` or ``$GLOCAL_CODEC_DATA``) nothing is downloaded. Without
    one, missing files are downloaded into the cache unless ``download_missing`` is false.
    """
    spec = _spec(name)
    root = data_dir or os.environ.get(DATA_ENV)
    if root:
        return _load_local(spec, Path(root) / spec.folder, verify=verify)
    return _load_cached(spec, cache_dir() / "datasets" / spec.folder, download_missing, opener)


def image_folder(folder: str | os.PathLike) -> Dataset:
    """The user's own folder of images (sorted by name; no checksums to verify)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder} is not a folder")
    paths = list_images(folder)
    if not paths:
        raise DatasetNotFoundError(f"no images ({', '.join(_IMAGE_SUFFIXES)}) in {folder}")
    return Dataset(folder.name or str(folder), folder, tuple(ImageEntry(p.name, p) for p in paths), "folder")


def _load_local(spec: DatasetSpec, folder: Path, *, verify: bool) -> Dataset:
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"dataset {spec.name!r} not found at {folder} (the folder given by --data-dir / {DATA_ENV}); "
            f"unset {DATA_ENV} to download it into the cache"
        )
    if spec.complete:
        missing = [f.name for f in spec.files if not (folder / f.name).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{spec.name}: {len(missing)} of {len(spec.files)} files missing in {folder}: {', '.join(missing)}"
            )
        entries = [(f.name, folder / f.name) for f in spec.files]
    else:
        subdirs = [a.subdir for a in spec.archives if (folder / a.subdir).is_dir()]
        if subdirs:
            entries = [(f"{d}/{p.name}", p) for d in subdirs for p in list_images(folder / d)]
        else:
            entries = [(p.name, p) for p in list_images(folder)]
        if not entries:
            raise DatasetNotFoundError(f"{spec.name}: no images in {folder}")
    images, unverified = [], []
    for ident, path in sorted(entries):
        known = spec.file(path.name)
        how = verify_file(path, known) if (verify and known is not None) else None
        if known is None:
            unverified.append(ident)
        images.append(ImageEntry(ident, path, how))
    notes = []
    if unverified:
        notes.append(f"{len(unverified)} image(s) with no recorded checksum, used unverified")
    return Dataset(spec.name, folder, tuple(images), "local", tuple(notes))


def _load_cached(spec: DatasetSpec, folder: Path, download_missing: bool, opener: Optional[Opener]) -> Dataset:
    images: list[ImageEntry] = []
    if spec.archives:
        for arc in spec.archives:
            sub = folder / arc.subdir
            if not sub.is_dir():
                if not download_missing:
                    raise DatasetNotFoundError(f"{spec.name}: {sub} not in the cache and downloading is off")
                _fetch_archive(arc, folder, opener)
            images += [ImageEntry(f"{arc.subdir}/{p.name}", p, "archive") for p in list_images(sub)]
        return Dataset(spec.name, folder, tuple(sorted(images, key=lambda e: e.id)), "cache")
    for f in spec.files:
        path = folder / f.name
        how: Optional[str] = None
        if path.is_file():
            try:
                how = verify_file(path, f)
            except ChecksumError:
                how = None  # a damaged cached file is fetched again
        if how is None:
            if not download_missing:
                raise DatasetNotFoundError(
                    f"{spec.name}: {f.name} is not in the cache ({folder}) and downloading is off")
            if f.url is None:
                raise DatasetNotFoundError(f"{spec.name}: {f.name} has no known download location")
            checked: dict[str, str] = {}

            def _verify(tmp: Path, f: FileSpec = f, checked: dict[str, str] = checked) -> None:
                checked["how"] = verify_file(tmp, f)

            try:
                download(f.url, path, verify=_verify, opener=opener)
            except DownloadError as err:
                raise DownloadError(f"{err}; no network? put a copy of {spec.name} in a folder and pass "
                                    f"--data-dir (or set {DATA_ENV})") from None
            how = checked.get("how")
        images.append(ImageEntry(f.name, path, how))
    return Dataset(spec.name, folder, tuple(images), "cache")


def _fetch_archive(arc: ArchiveSpec, folder: Path, opener: Optional[Opener]) -> None:
    zpath = folder / "_archives" / Path(arc.url).name
    if not (zpath.is_file() and zpath.stat().st_size == arc.size and file_sha256(zpath) == arc.sha256):
        try:
            download(arc.url, zpath, sha256=arc.sha256, size=arc.size, opener=opener)
        except DownloadError as err:
            raise DownloadError(f"{err}; no network? put the extracted images in <folder>/clic/{arc.subdir}/ "
                                f"and pass --data-dir <folder>") from None
    extract_images(zpath, folder / arc.subdir)
    zpath.unlink()
