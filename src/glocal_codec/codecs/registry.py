"""Codec registry: ``register_codec``, ``open_codec``, ``list_codecs``.

Built-in codecs register on import of :mod:`glocal_codec.codecs`; third-party codecs through the
entry-point group ``glocal_codec.codecs`` (like Pillow's image plugins), loaded on first use.
An entry point may point at a module that calls :func:`register_codec` itself, or at a codec
class / factory carrying a ``codec_id`` attribute (>= ``THIRD_PARTY_MIN_ID``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Iterable

from ..bitstream.errors import UnknownCodecError
from .base import Codec
from .ids import CODEC_IDS, CODEC_NAMES, THIRD_PARTY_MIN_ID

__all__ = [
    "ENTRY_POINT_GROUP",
    "CodecInfo",
    "register_codec",
    "unregister_codec",
    "open_codec",
    "list_codecs",
    "codec_id",
    "codec_name",
    "load_entry_points",
]

ENTRY_POINT_GROUP = "glocal_codec.codecs"
_log = logging.getLogger(__name__)

Factory = Callable[[], Codec]


@dataclass(frozen=True)
class _Entry:
    name: str
    codec_id: int
    factory: Factory


@dataclass(frozen=True)
class CodecInfo:
    """One row of ``glocal-codec list``."""

    name: str
    codec_id: int
    media: str
    qualities: tuple[int, ...]
    default_quality: int
    weights_available: bool
    description: str
    refinable: bool = False  # accepts encoder-side latent refinement (encode --refine N)


_registry: dict[str, _Entry] = {}
_by_id: dict[int, str] = {}
_instances: dict[str, Codec] = {}
_lock = threading.Lock()
_entry_points_loaded = False


def register_codec(name: str, *, codec_id: int | None = None) -> Callable[[Factory], Factory]:
    """Class/factory decorator registering a codec under ``name``.

    Built-in names take their id from the frozen table in :mod:`.ids`; a third-party codec
    must pass its own ``codec_id`` (>= ``THIRD_PARTY_MIN_ID``).
    """

    def deco(factory: Factory) -> Factory:
        cid = codec_id if codec_id is not None else CODEC_IDS.get(name)
        if cid is None:
            raise ValueError(
                f"codec {name!r} is not in the built-in id table; pass codec_id >= {THIRD_PARTY_MIN_ID}"
            )
        if name in CODEC_IDS and cid != CODEC_IDS[name]:
            raise ValueError(f"codec {name!r} has the fixed id {CODEC_IDS[name]}, not {cid}")
        if name not in CODEC_IDS and (cid < THIRD_PARTY_MIN_ID or cid in CODEC_NAMES):
            raise ValueError(f"third-party codec {name!r} needs an id >= {THIRD_PARTY_MIN_ID}, got {cid}")
        with _lock:
            other = _by_id.get(cid)
            if other is not None and other != name:
                raise ValueError(f"codec id {cid} is already taken by {other!r}")
            _registry[name] = _Entry(name, cid, factory)
            _by_id[cid] = name
            _instances.pop(name, None)
        return factory

    return deco


def unregister_codec(name: str) -> None:
    """Remove a codec (used by tests that register temporary plugins)."""
    with _lock:
        entry = _registry.pop(name, None)
        if entry is not None:
            _by_id.pop(entry.codec_id, None)
        _instances.pop(name, None)


def load_entry_points(entry_points: Iterable[metadata.EntryPoint] | None = None) -> list[str]:
    """Import third-party plugins from the ``glocal_codec.codecs`` entry-point group.

    A plugin that fails to import is logged and skipped: one broken plugin must not take the
    package down. Returns the names that were registered.
    """
    global _entry_points_loaded
    if entry_points is None:
        _entry_points_loaded = True
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    loaded = []
    for ep in entry_points:
        try:
            obj = ep.load()
        except Exception as err:  # noqa: BLE001 - a broken plugin is reported, not fatal
            _log.warning("codec plugin %r failed to load: %s", ep.name, err)
            continue
        if ep.name not in _registry and callable(obj):
            cid = getattr(obj, "codec_id", None)
            if cid is None:
                _log.warning("codec plugin %r has no codec_id attribute; skipped", ep.name)
                continue
            try:
                register_codec(ep.name, codec_id=int(cid))(obj)
            except ValueError as err:
                _log.warning("codec plugin %r rejected: %s", ep.name, err)
                continue
        if ep.name in _registry:
            loaded.append(ep.name)
    return loaded


def _ensure_loaded() -> None:
    from . import _builtin  # noqa: F401 - registers the built-in codecs

    if not _entry_points_loaded:
        load_entry_points()


def codec_id(name: str) -> int:
    """The id written into files for codec ``name``."""
    _ensure_loaded()
    if name not in _registry:
        raise UnknownCodecError(f"unknown codec {name!r}; known: {', '.join(sorted(_registry))}")
    return _registry[name].codec_id


def codec_name(cid: int) -> str:
    """The registered name for a codec id read from a file."""
    _ensure_loaded()
    name = _by_id.get(cid)
    if name is None:
        hint = f" ({CODEC_NAMES[cid]!r}, not available in this installation)" if cid in CODEC_NAMES else ""
        raise UnknownCodecError(f"unknown codec id {cid}{hint}")
    return name


def open_codec(name: str) -> Codec:
    """Return the (cached) codec instance registered as ``name``."""
    _ensure_loaded()
    with _lock:
        inst = _instances.get(name)
        if inst is not None:
            return inst
        entry = _registry.get(name)
    if entry is None:
        raise UnknownCodecError(f"unknown codec {name!r}; known: {', '.join(sorted(_registry))}")
    inst = entry.factory()
    with _lock:
        _instances.setdefault(name, inst)
        return _instances[name]


def list_codecs(media: str | None = None) -> list[CodecInfo]:
    """Every registered codec, sorted by id (the frozen table's order)."""
    _ensure_loaded()
    infos = []
    for name in sorted(_registry, key=lambda n: _registry[n].codec_id):
        c = open_codec(name)
        if media is not None and c.media != media:
            continue
        infos.append(
            CodecInfo(
                name=name,
                codec_id=_registry[name].codec_id,
                media=c.media,
                qualities=tuple(c.qualities),
                default_quality=c.default_quality,
                weights_available=c.weights_available(),
                description=c.description,
                refinable=bool(getattr(c, "refinable", False)),
            )
        )
    return infos
