"""The ``.glc`` container format: :func:`write_container`, :func:`read_container` and errors."""

from .container import (
    DIGEST_BYTES,
    FORMAT_VERSION,
    MAGIC,
    MAX_PIXELS,
    MAX_SIDE,
    Container,
    MediaKind,
    header_size,
    read_container,
    write_container,
)
from .errors import (
    BadMagicError,
    BitstreamError,
    ChecksumError,
    CodecUnavailableError,
    CorruptStreamError,
    LimitError,
    TruncatedError,
    UnknownCodecError,
    UnsupportedVersionError,
    WeightsMismatchError,
)
from .varint import decode_varint, encode_varint

__all__ = [
    "CodecUnavailableError",
    "MAGIC", "FORMAT_VERSION", "DIGEST_BYTES", "MAX_SIDE", "MAX_PIXELS",
    "Container", "MediaKind", "header_size", "read_container", "write_container",
    "encode_varint", "decode_varint",
    "BitstreamError", "BadMagicError", "ChecksumError", "CorruptStreamError", "LimitError",
    "TruncatedError", "UnknownCodecError", "UnsupportedVersionError", "WeightsMismatchError",
]
