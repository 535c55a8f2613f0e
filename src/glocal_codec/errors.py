"""Every exception the package raises on purpose, in one place.

* :class:`BitstreamError` (a ``ValueError``) and its subclasses: the bytes are not a valid
  ``.glc`` file for this installation -- truncated, corrupted, unknown or unavailable codec,
  different weights, newer format, limits exceeded. Decoding any bytes raises only this family.
* :class:`WeightsMissingError`: a learned codec's weights file is not installed (a broken or
  partial install), raised when such a codec is asked to encode.
* :class:`~glocal_codec.imageio.UnsupportedImageError` lives with the image reader.
"""

from __future__ import annotations

from .bitstream.errors import (
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

__all__ = [
    "BitstreamError", "TruncatedError", "ChecksumError", "BadMagicError", "UnsupportedVersionError",
    "UnknownCodecError", "CodecUnavailableError", "WeightsMismatchError", "LimitError", "CorruptStreamError",
    "WeightsMissingError",
]


class WeightsMissingError(RuntimeError):
    """The codec's weights file is not installed (reinstall the package, or train them)."""
