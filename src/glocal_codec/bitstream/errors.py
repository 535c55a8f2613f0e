"""The one exception family every bad input raises.

Like Pillow's strict readers, the reader of a ``.glc`` file never lets an exception from deep
inside NumPy, torch or constriction escape: any problem with a file is a :class:`BitstreamError`
whose message says what is wrong.
"""

from __future__ import annotations

__all__ = [
    "CodecUnavailableError",
    "BitstreamError",
    "TruncatedError",
    "ChecksumError",
    "BadMagicError",
    "UnsupportedVersionError",
    "UnknownCodecError",
    "WeightsMismatchError",
    "LimitError",
    "CorruptStreamError",
]


class BitstreamError(ValueError):
    """Base class: the bytes are not a valid ``.glc`` file for this installation."""


class TruncatedError(BitstreamError):
    """The file ends before a field or stream it announces."""


class ChecksumError(BitstreamError):
    """The CRC-32 at the end does not match the bytes before it (corruption)."""


class BadMagicError(BitstreamError):
    """The file does not start with the ``.glc`` magic bytes."""


class UnsupportedVersionError(BitstreamError):
    """The file was written by a newer (or unknown) format version."""


class UnknownCodecError(BitstreamError):
    """The codec id in the file is not registered in this installation."""


class CodecUnavailableError(UnknownCodecError):
    """The codec is known (its id is in the table) but cannot run in this installation: a
    missing optional dependency or FFmpeg encoder, or an id reserved for a codec not built yet."""


class WeightsMismatchError(BitstreamError):
    """The file was made with weights other than the ones installed for its codec."""


class LimitError(BitstreamError):
    """A shape, count or length read from the file is beyond the sane limits."""


class CorruptStreamError(BitstreamError):
    """The container is intact but a codec could not decode its payload."""
