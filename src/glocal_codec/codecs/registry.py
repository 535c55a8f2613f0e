"""Codec registry: ``open_codec``, ``list_codecs``, ``register_codec``.

Built-in codecs are rows of the frozen table in :mod:`.ids` (name, id, ``module:Class``); their
modules are imported on first use, so nothing here imports a codec. Third-party codecs
register through the entry-point group ``glocal_codec.codecs`` (like Pillow's image plugins),
loaded on first use: an entry point names a codec class / factory carrying a ``codec_id``
attribute (>= ``THIRD_PARTY_MIN_ID``), or a module that calls :func:`register_codec` itself.
A codec whose module cannot be imported, or whose factory raises
:class:`~glocal_codec.errors.CodecUnavailableError` (a missing FFmpeg encoder, say), is
*unavailable*: it is left out of :func:`list_codecs`, and opening it or a file it made is a
clear :class:`CodecUnavailableError` that says why.

:func:`list_codecs` and :func:`codec_digest` describe a built-in codec from its row's
:class:`~.ids.Listing` when it has one and the codec has not been opened yet, so ``glocal-codec
list`` and ``glocal-codec info`` import no codec module that needs torch.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Callable, Iterable

from ..bitstream.errors import CodecUnavailableError, UnknownCodecError
from .base import NO_WEIGHTS, Codec, Presets, Refinable
from .ids import CODEC_IDS, CODEC_NAMES, CODEC_TABLE, THIRD_PARTY_MIN_ID, Listing

__all__ = [
    "ENTRY_POINT_GROUP",
    "CodecInfo",
    "register_codec",
    "unregister_codec",
    "open_codec",
    "codec_class",
    "codec_names",
    "list_codecs",
    "codec_id",
    "codec_name",
    "codec_digest",
    "file_facts",
    "load_entry_points",
]

ENTRY_POINT_GROUP = "glocal_codec.codecs"
_log = logging.getLogger(__name__)

Factory = Callable[[], Codec]


@dataclass(frozen=True)
class _Entry:
    name: str
    codec_id: int
    factory: Factory | None  # None: a built-in row whose module is imported on first use
    target: str | None = None
    listing: Listing | None = None  # a built-in row's facts for list_codecs (no import)


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
    has_weights: bool = False  # a learned codec (weights shipped with the package)
    presets: tuple[str, ...] = ()  # encoder presets (encode --preset NAME), the default first


_registry: dict[str, _Entry] = {
    row.name: _Entry(row.name, row.codec_id, None, row.target, row.listing) for row in CODEC_TABLE if row.target
}
_by_id: dict[int, str] = {e.codec_id: e.name for e in _registry.values()}
_instances: dict[str, Codec] = {}
_unavailable: dict[str, str] = {}  # name -> why it cannot be opened here
_lock = threading.RLock()
_entry_points_loaded = False


def register_codec(name: str, *, codec_id: int | None = None) -> Callable[[Factory], Factory]:
    """Class/factory decorator registering a codec under ``name`` at run time.

    Third-party codecs pass their own ``codec_id`` (>= ``THIRD_PARTY_MIN_ID``). A name of the
    frozen table may be re-registered with its own id only (tests swap in stand-ins that way).
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
            _unavailable.pop(name, None)
        return factory

    return deco


def unregister_codec(name: str) -> None:
    """Remove a run-time registration (tests' temporary plugins); built-in rows come back."""
    with _lock:
        entry = _registry.pop(name, None)
        if entry is not None:
            _by_id.pop(entry.codec_id, None)
        _instances.pop(name, None)
        _unavailable.pop(name, None)
        row = next((r for r in CODEC_TABLE if r.name == name and r.target), None)
        if row is not None:
            _registry[name] = _Entry(row.name, row.codec_id, None, row.target, row.listing)
            _by_id[row.codec_id] = name


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
    if not _entry_points_loaded:
        load_entry_points()


def _unknown(name: str) -> UnknownCodecError:
    known = ", ".join(sorted(n for n in _registry if n not in _unavailable))
    if name in CODEC_IDS and name not in _registry:
        return CodecUnavailableError(f"codec {name!r} (id {CODEC_IDS[name]}) is reserved but not built yet")
    return UnknownCodecError(f"unknown codec {name!r}; known: {known}")


def codec_class(name: str) -> Factory:
    """The class (or factory) registered as ``name``, importing its module if needed.

    Cheap: nothing is instantiated and no weights are read. Raises
    :class:`CodecUnavailableError` when the module cannot be imported here.
    """
    _ensure_loaded()
    with _lock:
        entry = _registry.get(name)
    if entry is None:
        raise _unknown(name)
    if entry.factory is not None:
        return entry.factory
    if name in _unavailable:
        raise CodecUnavailableError(f"codec {name!r} is not available in this installation: {_unavailable[name]}")
    module, _, attr = entry.target.partition(":")
    try:
        factory = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
    except ImportError as err:  # an optional dependency (PyAV, an encoder library) is missing
        with _lock:
            _unavailable[name] = f"{type(err).__name__}: {err}"
        raise CodecUnavailableError(f"codec {name!r} is not available in this installation: {err}") from None
    return factory


def codec_id(name: str) -> int:
    """The id written into files for codec ``name``."""
    _ensure_loaded()
    entry = _registry.get(name)
    if entry is None:
        raise _unknown(name)
    return entry.codec_id


def codec_name(cid: int) -> str:
    """The registered name for a codec id read from a file."""
    _ensure_loaded()
    name = _by_id.get(cid)
    if name is None:
        if cid in CODEC_NAMES:
            raise CodecUnavailableError(f"codec id {cid} ({CODEC_NAMES[cid]!r}) is not available in this installation")
        raise UnknownCodecError(f"unknown codec id {cid}")
    return name


def codec_names() -> list[str]:
    """Every registered name (available or not), in id order; imports nothing."""
    _ensure_loaded()
    return sorted(_registry, key=lambda n: _registry[n].codec_id)


def open_codec(name: str) -> Codec:
    """Return the (cached) codec instance registered as ``name``."""
    with _lock:
        inst = _instances.get(name)
        if inst is not None:
            return inst
    factory = codec_class(name)
    try:
        inst = factory()
    except CodecUnavailableError as err:
        with _lock:
            _unavailable[name] = str(err)
        raise
    with _lock:
        _instances.setdefault(name, inst)
        return _instances[name]


def _listing(name: str) -> Listing | None:
    """The row's listing of a built-in codec not opened yet (an opened one answers for itself)."""
    with _lock:
        entry = _registry.get(name)
        if entry is None or entry.factory is not None or entry.listing is None or name in _instances:
            return None
        return entry.listing


def file_facts(name: str, params: bytes) -> dict[str, str]:
    """What ``glocal-codec info`` shows about a file's codec parameters: the built-in row's
    ``Listing.param_facts`` reader (torch-free), else nothing. Damaged parameters raise a
    :class:`~glocal_codec.bitstream.BitstreamError`."""
    row = next((r for r in CODEC_TABLE if r.name == name), None)
    if row is None or row.listing is None or row.listing.param_facts is None:
        return {}
    import importlib

    module, fn = row.listing.param_facts.split(":")
    return dict(getattr(importlib.import_module(f"{__package__}.{module}"), fn)(params))


def codec_digest(name: str, quality: int) -> bytes:
    """The weights digest that files of codec ``name`` at ``quality`` made here carry
    (:data:`~.base.NO_WEIGHTS` for codecs without weights): ``open_codec(name).weights_digest(quality)``,
    read without opening the codec where its row has a :class:`~.ids.Listing`.
    Raises :class:`~glocal_codec.errors.WeightsMissingError` when the weights are not installed."""
    listing = _listing(name)
    if listing is None:
        return open_codec(name).weights_digest(quality)
    if not listing.weights:
        return NO_WEIGHTS
    from ..weights import weights_digest

    return weights_digest(name)


def _info_from_listing(name: str, listing: Listing) -> CodecInfo:
    qualities, default = tuple(listing.qualities), listing.default_quality
    available = True
    if listing.weights:
        from ..weights import quality_levels, weights_path

        qualities, default = quality_levels(name, len(listing.qualities))
        available = weights_path(name).is_file()
    return CodecInfo(name=name, codec_id=_registry[name].codec_id, media=listing.media, qualities=qualities,
                     default_quality=default, weights_available=available, description=listing.description,
                     refinable=listing.refinable, has_weights=listing.weights, presets=tuple(listing.presets))


def _info_from_codec(name: str, c: Codec) -> CodecInfo:
    return CodecInfo(
        name=name,
        codec_id=_registry[name].codec_id,
        media=c.media,
        qualities=tuple(c.qualities),
        default_quality=c.default_quality,
        weights_available=c.weights_available(),
        description=c.description,
        refinable=isinstance(c, Refinable),
        presets=tuple(c.presets) if isinstance(c, Presets) else (),
        has_weights=c.weights_digest(c.default_quality) != NO_WEIGHTS if c.weights_available() else True,
    )


def list_codecs(media: str | None = None) -> list[CodecInfo]:
    """Every codec available in this installation, sorted by id (the frozen table's order).

    Built-in codecs whose row has a :class:`~.ids.Listing` are described from it until they are
    opened (no module import, no torch); the others are opened.
    """
    infos = []
    for name in codec_names():
        listing = _listing(name)
        if listing is not None:
            if media is None or listing.media == media:
                infos.append(_info_from_listing(name, listing))
            continue
        try:
            c = open_codec(name)
        except CodecUnavailableError as err:
            _log.info("codec %s unavailable: %s", name, err)
            continue
        if media is None or c.media == media:
            infos.append(_info_from_codec(name, c))
    return infos
