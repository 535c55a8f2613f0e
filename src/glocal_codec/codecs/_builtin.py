"""Registers the built-in codecs (imported lazily by the registry)."""

from __future__ import annotations

from .glocal import GlocalCodec
from .learned import FactorizedCodec, MshCodec
from .registry import register_codec

register_codec("factorized")(FactorizedCodec)
register_codec("msh")(MshCodec)
register_codec("glocal")(GlocalCodec)

try:  # classical codecs through Pillow
    from . import classic  # noqa: F401  (registers jpeg, webp, avif, jpeg2000 on import)
except ImportError as err:  # pragma: no cover - Pillow is a hard dependency; keep the package importable
    import logging

    logging.getLogger(__name__).warning("classical codecs unavailable: %s", err)

try:  # classical video codecs (x264, x265, av1) through PyAV, an optional-at-runtime dependency
    from ..video import classic as _video_classic  # noqa: F401  (registers those whose encoder exists)
except ImportError as err:  # PyAV missing: only the video plugins are disabled
    import logging

    logging.getLogger(__name__).warning("video codecs unavailable (PyAV): %s", err)

from ..video.inr import HNeRVCodec, NirvanaCodec, PFNRCodec  # noqa: E402  (INR video codecs: torch only)

register_codec("hnerv")(HNeRVCodec)
register_codec("nirvana")(NirvanaCodec)
register_codec("pfnr")(PFNRCodec)

__all__: list[str] = []
