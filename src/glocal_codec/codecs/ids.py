"""The frozen table of codec ids written into every ``.glc`` file.

Ids are data, never derived from registration or dict order: renumbering would make old files
decode with the wrong codec. Add new rows; never change or reuse an existing id.
Ids from :data:`THIRD_PARTY_MIN_ID` up are left to plugins, which declare their own.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

__all__ = ["CODEC_IDS", "CODEC_NAMES", "THIRD_PARTY_MIN_ID"]

CODEC_IDS: Mapping[str, int] = MappingProxyType(
    {
        # classical image codecs (Pillow)
        "jpeg": 1,
        "webp": 2,
        "avif": 3,
        "jpeg2000": 4,
        # learned image codecs
        "factorized": 16,
        "msh": 17,
        "glocal": 18,
        "clc": 19,
        "mcquic": 20,
        "vq": 21,
        "gblsr": 22,
        # video codecs
        "x264": 64,
        "x265": 65,
        "av1": 66,
        "hnerv": 80,
        "nirvana": 81,
        "pfnr": 82,
    }
)

CODEC_NAMES: Mapping[int, str] = MappingProxyType({v: k for k, v in CODEC_IDS.items()})
assert len(CODEC_NAMES) == len(CODEC_IDS), "codec ids must be unique"

#: Plugins from other packages pick an id at or above this (two varint bytes).
THIRD_PARTY_MIN_ID = 1024
