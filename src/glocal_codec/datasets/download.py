"""Downloading into the cache: atomic, size- and checksum-verified, never a partial file.

The cache lives in ``$GLOCAL_CODEC_CACHE`` if set, else ``$XDG_CACHE_HOME/glocal-codec``, else
``~/.cache/glocal-codec``. Files are streamed through :func:`urllib.request.urlopen` (any URL
scheme it knows, ``file://`` included, which is how the tests exercise this code offline) into a
temporary file beside the target, hashed on the way, checked, and only then renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Optional

from ..util import atomic_write

__all__ = [
    "CACHE_ENV",
    "DownloadError",
    "ChecksumError",
    "cache_dir",
    "download",
    "extract_images",
    "Opener",
]

CACHE_ENV = "GLOCAL_CODEC_CACHE"
_CHUNK = 1 << 20
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Anything called like :func:`urllib.request.urlopen` (``opener(url, timeout=...)``) returning a
#: readable, context-managed response.
Opener = Callable[..., object]


class DownloadError(OSError):
    """A file could not be fetched (network, HTTP error, interrupted transfer)."""


class ChecksumError(ValueError):
    """A file's size, sha256 or pixel digest is not the recorded one."""


def cache_dir() -> Path:
    """The root of the download cache (created on first use by :func:`download`)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "glocal-codec"


def download(url: str, dest: str | os.PathLike, *, sha256: Optional[str] = None, size: Optional[int] = None,
             verify: Optional[Callable[[Path], None]] = None, opener: Optional[Opener] = None,
             timeout: float = 60.0, progress: Optional[Callable[[int, Optional[int]], None]] = None) -> Path:
    """Fetch ``url`` into ``dest`` atomically and return ``dest``.

    ``sha256`` / ``size``: the file must have exactly these (``ChecksumError`` otherwise).
    ``verify``: an extra check run on the finished temporary file (e.g. a pixel digest); it
    raises to reject the file. Nothing is left behind on any failure, and an existing ``dest``
    is only replaced by a verified file.
    """
    dest = Path(dest)
    open_url = opener or urllib.request.urlopen

    def fetch(tmp: str) -> None:
        h = hashlib.sha256()
        got = 0
        try:
            with open(tmp, "wb") as out, open_url(url, timeout=timeout) as resp:  # type: ignore[operator]
                total = _content_length(resp)
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    if progress is not None:
                        progress(got, total)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise DownloadError(f"cannot download {url}: {err}") from None
        if size is not None and got != size:
            raise ChecksumError(f"{url}: got {got} bytes, expected {size} (incomplete or changed download)")
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256:
            raise ChecksumError(f"{url}: sha256 {digest} does not match the recorded {sha256}")
        if verify is not None:
            verify(Path(tmp))

    # the one atomic writer: a failed or rejected download leaves nothing, an old dest stays
    atomic_write(dest, fetch, force=True, mkdir=True)
    return dest


def _content_length(resp: object) -> Optional[int]:
    headers = getattr(resp, "headers", None)
    try:
        value = headers.get("Content-Length") if headers is not None else None  # type: ignore[union-attr]
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def extract_images(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract the image members of a zip archive into ``dest`` (flat), atomically.

    Only regular members with an image suffix are taken, by their base name (no member can
    write outside ``dest``); macOS resource forks (``__MACOSX/``, ``._*``) are skipped. The
    images go into a temporary folder that is renamed to ``dest`` once all are written.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        names: set[str] = set()
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                base = Path(info.filename).name
                if info.is_dir() or "__MACOSX" in info.filename or base.startswith("._"):
                    continue
                if Path(base).suffix.lower() not in _IMAGE_SUFFIXES:
                    continue
                if base in names:
                    raise ChecksumError(f"{archive}: two members named {base}")
                names.add(base)
                with z.open(info) as src, open(tmp / base, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except zipfile.BadZipFile as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ChecksumError(f"{archive} is not a valid zip archive: {err}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(dest.iterdir())
