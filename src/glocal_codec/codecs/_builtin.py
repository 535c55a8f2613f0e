"""Registers the built-in codecs (imported lazily by the registry)."""

from __future__ import annotations

from .learned import FactorizedCodec, MshCodec
from .registry import register_codec

register_codec("factorized")(FactorizedCodec)
register_codec("msh")(MshCodec)

try:  # classical codecs through Pillow
    from . import classic  # noqa: F401  (registers jpeg, webp, avif, jpeg2000 on import)
except ImportError as err:  # pragma: no cover - Pillow is a hard dependency; keep the package importable
    import logging

    logging.getLogger(__name__).warning("classical codecs unavailable: %s", err)

__all__: list[str] = []
