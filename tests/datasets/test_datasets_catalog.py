"""Datasets: the catalog, local copies with checksums, downloads into the cache (offline, file://)."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glocal_codec import datasets as D
from glocal_codec.datasets import (
    KODAK,
    ArchiveSpec,
    ChecksumError,
    DatasetNotFoundError,
    DatasetSpec,
    DownloadError,
    cache_dir,
    download,
    image_folder,
    load_dataset,
    pixels_sha256,
    verify_file,
)
from glocal_codec.datasets.download import extract_images


def test_catalog_is_complete_and_well_formed() -> None:
    assert len(KODAK.files) == 24
    assert [f.name for f in KODAK.files] == [f"kodim{i:02d}.png" for i in range(1, 25)]
    for f in KODAK.files:
        assert f.url == f"http://r0k.us/graphics/kodak/kodak/{f.name}"
        assert len(f.sha256) == 64 and len(f.pixels_sha256) == 64
        assert (f.width, f.height) in ((768, 512), (512, 768))
    clic = D.DATASETS["clic"]
    assert {a.url for a in clic.archives} == {
        "https://data.vision.ee.ethz.ch/cvl/clic/professional_valid_2020.zip",
        "https://data.vision.ee.ethz.ch/cvl/clic/mobile_valid_2020.zip",
    }
    assert len(clic.files) == 5 and not clic.complete


def test_local_kodak_and_clic_verify(data_dir: Path) -> None:
    ds = load_dataset("kodak", data_dir)
    assert [e.id for e in ds.images] == [f"kodim{i:02d}.png" for i in range(1, 25)]
    assert {e.verified for e in ds.images} == {"sha256"} and ds.source == "local"
    clic = load_dataset("clic", data_dir)
    assert len(clic.images) == 5 and {e.verified for e in clic.images} == {"sha256"}


def _kodak_copy(data_dir: Path, dest: Path, names: list[str] | None = None) -> Path:
    (dest / "kodak").mkdir(parents=True)
    for f in KODAK.files:
        if names is None or f.name in names:
            os.symlink(data_dir / "kodak" / f.name, dest / "kodak" / f.name)
    return dest


def test_missing_file_is_named(data_dir: Path, tmp_path: Path) -> None:
    root = _kodak_copy(data_dir, tmp_path, [f"kodim{i:02d}.png" for i in range(1, 25) if i != 7])
    with pytest.raises(DatasetNotFoundError, match=r"1 of 24 files missing .*kodim07\.png"):
        load_dataset("kodak", root)
    with pytest.raises(DatasetNotFoundError, match="not found at"):
        load_dataset("kodak", tmp_path / "elsewhere")


def test_same_pixels_other_png_bytes_pass_other_pixels_fail(data_dir: Path, tmp_path: Path) -> None:
    spec = KODAK.files[22]  # kodim23
    src = data_dir / "kodak" / spec.name
    reencoded = tmp_path / "reencoded.png"
    Image.open(src).save(reencoded, compress_level=1)  # another mirror's PNG encoder
    assert hashlib.sha256(reencoded.read_bytes()).hexdigest() != spec.sha256
    assert verify_file(src, spec) == "sha256"
    assert verify_file(reencoded, spec) == "pixels"
    arr = np.asarray(Image.open(src)).copy()
    arr[0, 0, 0] ^= 1
    changed = tmp_path / "changed.png"
    Image.fromarray(arr).save(changed, compress_level=1)
    with pytest.raises(ChecksumError, match="not the expected kodim23.png"):
        verify_file(changed, spec)
    # the same error through load_dataset names the file
    root = _kodak_copy(data_dir, tmp_path / "root", [f.name for f in KODAK.files if f.name != spec.name])
    os.symlink(changed, root / "kodak" / spec.name)
    with pytest.raises(ChecksumError, match="kodim23.png"):
        load_dataset("kodak", root)


def test_download_is_atomic_and_verified(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello glocal" * 1000)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "x.bin"
    assert download(src.as_uri(), dest, sha256=good, size=12000) == dest
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(ChecksumError, match="does not match"):
        download(src.as_uri(), tmp_path / "cache" / "y.bin", sha256="0" * 64)
    with pytest.raises(ChecksumError, match="expected 5"):
        download(src.as_uri(), tmp_path / "cache" / "y.bin", size=5)
    with pytest.raises(DownloadError, match="cannot download"):
        download((tmp_path / "absent.bin").as_uri(), tmp_path / "cache" / "y.bin")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["x.bin"]  # no partial files


def test_kodak_downloads_into_the_cache(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A fake mirror (file:// URLs through a monkeypatched opener) serving re-encoded PNGs:
    the pixel digest accepts them; a corrupt one is rejected and not kept."""
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    files = KODAK.files[:2]
    for f in files:
        Image.open(data_dir / "kodak" / f.name).save(mirror / f.name, compress_level=1)
    small = DatasetSpec("kodak", "kodak", "first two", files)
    monkeypatch.setitem(D.DATASETS, "kodak", small)
    requested = []

    def opener(url: str, timeout: float = 0):
        requested.append(url)
        return __import__("urllib.request").request.urlopen((mirror / Path(url).name).as_uri(), timeout=timeout)

    ds = load_dataset("kodak", opener=opener)
    assert requested == [f.url for f in files]
    assert [e.verified for e in ds.images] == ["pixels", "pixels"] and ds.source == "cache"
    assert (tmp_path / "cache" / "datasets" / "kodak" / "kodim01.png").is_file()
    requested.clear()
    load_dataset("kodak", opener=opener)
    assert requested == []  # cached once
    # a mirror with wrong pixels: rejected, nothing left in the cache
    (tmp_path / "cache" / "datasets" / "kodak" / "kodim02.png").unlink()
    Image.new("RGB", (768, 512)).save(mirror / "kodim02.png")
    with pytest.raises(ChecksumError, match="kodim02.png"):
        load_dataset("kodak", opener=opener)
    assert not (tmp_path / "cache" / "datasets" / "kodak" / "kodim02.png").exists()

    def offline(url: str, timeout: float = 0):
        raise urllib.error.URLError("no network")

    with pytest.raises(DownloadError, match="--data-dir"):
        load_dataset("kodak", opener=offline)
    with pytest.raises(DatasetNotFoundError, match="downloading is off"):
        load_dataset("kodak", download_missing=False)


def test_clic_archive_download_and_extraction(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "cache"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("valid/a.png", "valid/b.png"):
            png = io.BytesIO()
            Image.new("RGB", (8, 8), (10, 20, 30)).save(png, format="PNG")
            z.writestr(name, png.getvalue())
        z.writestr("__MACOSX/valid/._a.png", b"junk")
        z.writestr("valid/readme.txt", b"text")
    archive = tmp_path / "professional_valid_2020.zip"
    archive.write_bytes(buf.getvalue())
    spec = ArchiveSpec(archive.as_uri(), hashlib.sha256(buf.getvalue()).hexdigest(), len(buf.getvalue()),
                       "professional", 2)
    monkeypatch.setitem(D.DATASETS, "clic-professional", DatasetSpec("clic-professional", "clic", "test", (),
                                                                     (spec,), complete=False))
    ds = load_dataset("clic-professional")
    assert [e.id for e in ds.images] == ["professional/a.png", "professional/b.png"]
    assert {e.verified for e in ds.images} == {"archive"}
    assert not (tmp_path / "cache" / "datasets" / "clic" / "_archives" / archive.name).exists()
    # a wrong archive digest is refused
    bad = ArchiveSpec(spec.url, "0" * 64, spec.size, "mobile", 2)
    monkeypatch.setitem(D.DATASETS, "clic-mobile", DatasetSpec("clic-mobile", "clic", "t", (), (bad,), complete=False))
    with pytest.raises(ChecksumError):
        load_dataset("clic-mobile")


def test_extract_images_never_writes_outside(tmp_path: Path) -> None:
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("../../escape.png", b"x")
        z.writestr("/abs/path.png", b"y")
    out = extract_images(zpath, tmp_path / "out")
    assert sorted(p.name for p in out) == ["escape.png", "path.png"]
    assert not (tmp_path.parent / "escape.png").exists()


def test_local_clic_folder_with_unknown_files_is_used_unverified(tmp_path: Path) -> None:
    (tmp_path / "clic").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "clic" / "mine.png")
    ds = load_dataset("clic", tmp_path)
    assert [(e.id, e.verified) for e in ds.images] == [("mine.png", None)]
    assert ds.notes and "unverified" in ds.notes[0]


def test_image_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no images"):
        image_folder(tmp_path)
    for n in ("b.png", "a.jpg", ".hidden.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / n)
    (tmp_path / "notes.txt").write_text("x")
    assert [e.id for e in image_folder(tmp_path).images] == ["a.jpg", "b.png"]
    with pytest.raises(DatasetNotFoundError):
        image_folder(tmp_path / "missing")


def test_pixels_sha256_is_of_the_rgb_array(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    Image.fromarray(arr).save(tmp_path / "t.png")
    assert pixels_sha256(tmp_path / "t.png") == hashlib.sha256(arr.tobytes()).hexdigest()
