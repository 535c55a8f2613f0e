"""The frozen table of codecs: the id written into every ``.glc`` file, and where the code lives.

One row per codec family member: its name, its id, and the ``module:attribute`` (relative to
:mod:`glocal_codec.codecs`) of its plugin class or factory. The registry imports a module only
when that codec is first opened or listed, so ``import glocal_codec`` stays light and a codec
whose dependency is missing (PyAV for the video codecs) disables only itself.

Ids are data, never derived from registration or dict order: renumbering would make old files
decode with the wrong codec. Add new rows; never change or reuse an existing id. A row whose
target is ``None`` reserves an id for a codec that is not built yet. Ids from
:data:`THIRD_PARTY_MIN_ID` up are left to plugins of other packages, which declare their own
(entry points, see ``docs/plugins.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

__all__ = ["CodecRow", "CODEC_TABLE", "CODEC_IDS", "CODEC_NAMES", "THIRD_PARTY_MIN_ID"]


@dataclass(frozen=True)
class CodecRow:
    """One codec: ``name`` (what users type), ``codec_id`` (what files carry), ``target``
    (``"module:Attr"`` under ``glocal_codec.codecs``; ``None``: id reserved, no code yet)."""

    name: str
    codec_id: int
    target: str | None


CODEC_TABLE: tuple[CodecRow, ...] = (
    # classical image codecs (Pillow)
    CodecRow("jpeg", 1, "classic:JpegCodec"),
    CodecRow("webp", 2, "classic:WebpCodec"),
    CodecRow("avif", 3, "classic:AvifCodec"),
    CodecRow("jpeg2000", 4, "classic:Jpeg2000Codec"),
    # learned image codecs
    CodecRow("factorized", 16, "learned:FactorizedCodec"),
    CodecRow("msh", 17, "learned:MshCodec"),
    CodecRow("glocal", 18, "glocal:GlocalCodec"),
    CodecRow("clc", 19, None),
    CodecRow("mcquic", 20, None),
    CodecRow("vq", 21, None),
    CodecRow("gblsr", 22, None),
    CodecRow("overfit", 23, "overfit:OverfitCodec"),
    # video codecs
    CodecRow("x264", 64, "video_classic:X264Codec"),
    CodecRow("x265", 65, "video_classic:X265Codec"),
    CodecRow("av1", 66, "video_classic:Av1Codec"),
    CodecRow("hnerv", 80, "hnerv:HNeRVCodec"),
    CodecRow("nirvana", 81, "nirvana:NirvanaCodec"),
    CodecRow("pfnr", 82, "pfnr:PFNRCodec"),
)

CODEC_IDS: Mapping[str, int] = MappingProxyType({r.name: r.codec_id for r in CODEC_TABLE})
CODEC_NAMES: Mapping[int, str] = MappingProxyType({r.codec_id: r.name for r in CODEC_TABLE})
assert len(CODEC_NAMES) == len(CODEC_IDS) == len(CODEC_TABLE), "codec names and ids must be unique"

#: Plugins from other packages pick an id at or above this (two varint bytes).
THIRD_PARTY_MIN_ID = 1024
