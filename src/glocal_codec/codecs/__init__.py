"""Codec plugins: the contract, the registry and the codec families (one module each).

Nothing is imported here but the contract and the registry (neither imports torch): each
codec's module is imported when that codec is first opened (see :mod:`.ids`).
"""

from .base import (
    NO_WEIGHTS,
    ClipInfo,
    Codec,
    ExactSynthesis,
    FittedEncoder,
    FrameStreaming,
    LatentModel,
    RefinableLatentModel,
    LevelFacts,
    MultiClip,
    Payload,
    Placeable,
    ProgressFn,
    Presets,
    Refinable,
    Rescalable,
    Restorable,
    DistortionTerms,
    Uint8Codec,
    VideoCodec,
)
from .ids import CODEC_IDS, CODEC_NAMES, CODEC_TABLE, THIRD_PARTY_MIN_ID, CodecRow, Listing
from .registry import (
    ENTRY_POINT_GROUP,
    CodecInfo,
    codec_class,
    codec_digest,
    file_facts,
    codec_id,
    codec_name,
    codec_names,
    list_codecs,
    load_entry_points,
    open_codec,
    register_codec,
    unregister_codec,
)

__all__ = [
    "Codec", "Payload", "NO_WEIGHTS", "Refinable", "Placeable", "Uint8Codec", "VideoCodec", "MultiClip", "ClipInfo",
    "LatentModel", "RefinableLatentModel", "LevelFacts", "ExactSynthesis", "FittedEncoder", "FrameStreaming", "Presets", "ProgressFn", "Rescalable", "Restorable", "DistortionTerms", "CODEC_IDS", "CODEC_NAMES", "CODEC_TABLE", "CodecRow", "Listing", "THIRD_PARTY_MIN_ID",
    "ENTRY_POINT_GROUP", "CodecInfo", "codec_class", "codec_digest", "file_facts", "codec_id", "codec_name", "codec_names", "list_codecs",
    "load_entry_points", "open_codec", "register_codec", "unregister_codec",
]
