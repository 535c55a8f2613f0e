"""Codec plugins: the protocol, the registry and the built-in codecs."""

from .base import NO_WEIGHTS, Codec, Payload
from .ids import CODEC_IDS, CODEC_NAMES, THIRD_PARTY_MIN_ID
from .registry import (
    ENTRY_POINT_GROUP,
    CodecInfo,
    codec_id,
    codec_name,
    list_codecs,
    load_entry_points,
    open_codec,
    register_codec,
    unregister_codec,
)

__all__ = [
    "Codec", "Payload", "NO_WEIGHTS", "CODEC_IDS", "CODEC_NAMES", "THIRD_PARTY_MIN_ID",
    "ENTRY_POINT_GROUP", "CodecInfo", "codec_id", "codec_name", "list_codecs", "load_entry_points",
    "open_codec", "register_codec", "unregister_codec",
]
