"""The frame-rate prefix of a video file's parameter field (layout in ``docs/bitstream.md``).

Every ``.glc`` file whose media kind is *video* starts its parameter field (field 9) with the
clip's frame rate, as a reduced fraction of two varints::

    varint fps_numerator  (1 .. 2^31 - 1)
    varint fps_denominator (1 .. 2^31 - 1)
    codec-specific parameter bytes (the rest; empty for x264 / x265 / av1)

It is a container-level convention, not a codec's: :func:`glocal_codec.video.encode_video` adds
it and :func:`glocal_codec.video.decode_video` strips it, so a video codec plugin's
``Payload.params`` never contains it and every video codec (classical or INR) gets the frame
rate stored the same way. 2^31 - 1 is FFmpeg's ``AVRational`` range (int32).
"""

from __future__ import annotations

from fractions import Fraction
from numbers import Rational

from .errors import LimitError
from .varint import decode_varint, encode_varint

__all__ = ["MAX_FPS_TERM", "DEFAULT_FPS", "as_fps", "pack_video_params", "unpack_video_params"]

#: Largest numerator or denominator of a stored frame rate (FFmpeg's int32 ``AVRational``).
MAX_FPS_TERM = (1 << 31) - 1
#: Frame rate assumed for a folder of frames or a tensor when none is given.
DEFAULT_FPS = Fraction(25)


def as_fps(fps: float | int | Fraction | str | None, default: Fraction = DEFAULT_FPS) -> Fraction:
    """Normalise a frame rate (``30``, ``29.97``, ``"30000/1001"``, ``Fraction``) to a ``Fraction``.

    Floats are turned into the nearest fraction with a denominator of at most 1001 (so
    ``29.97`` becomes ``2997/100`` and ``30000/1001`` given as a float stays ``30000/1001``).
    Raises ``ValueError`` for a rate that is not positive or does not fit the stored range.
    """
    if fps is None:
        return default
    if isinstance(fps, bool):
        raise ValueError(f"frame rate must be a number, got {fps!r}")
    try:
        if isinstance(fps, (Fraction, Rational, int)):
            value = Fraction(fps)
        elif isinstance(fps, str):
            value = Fraction(fps.strip())
        else:
            value = Fraction(float(fps)).limit_denominator(1001)
    except (ValueError, ZeroDivisionError, TypeError, OverflowError):
        raise ValueError(f"not a frame rate: {fps!r}") from None
    if value <= 0:
        raise ValueError(f"frame rate must be positive, got {fps!r}")
    if value.numerator > MAX_FPS_TERM or value.denominator > MAX_FPS_TERM:
        value = value.limit_denominator(1001)
        if value <= 0 or value.numerator > MAX_FPS_TERM:
            raise ValueError(f"frame rate {fps!r} is out of range")
    return value


def pack_video_params(fps: Fraction, codec_params: bytes = b"") -> bytes:
    """The parameter field of a video file: frame-rate prefix, then the codec's own bytes."""
    fps = as_fps(fps)
    return encode_varint(fps.numerator) + encode_varint(fps.denominator) + bytes(codec_params)


def unpack_video_params(params: bytes) -> tuple[Fraction, bytes]:
    """Split a video file's parameter field into ``(fps, codec_params)``.

    A field that ends inside a varint is a :class:`~glocal_codec.bitstream.TruncatedError`; a
    zero or out-of-range term is a :class:`~glocal_codec.bitstream.LimitError`.
    """
    num, pos = decode_varint(params, 0, "frame-rate numerator")
    den, pos = decode_varint(params, pos, "frame-rate denominator")
    if not (1 <= num <= MAX_FPS_TERM and 1 <= den <= MAX_FPS_TERM):
        raise LimitError(f"frame rate {num}/{den} outside 1..{MAX_FPS_TERM} per term")
    return Fraction(num, den), bytes(params[pos:])
