"""The ``.glc`` container: write, read and validate (layout in ``docs/bitstream.md``).

The reader is strict in the way Pillow's format readers are: it validates every length
against the bytes that are actually present and every shape against fixed limits *before*
anything is allocated, and every problem is a :class:`~.errors.BitstreamError`.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

from .errors import (
    BadMagicError,
    BitstreamError,
    ChecksumError,
    LimitError,
    TruncatedError,
    UnsupportedVersionError,
)
from .varint import decode_varint, encode_varint

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "DIGEST_BYTES",
    "MediaKind",
    "Container",
    "write_container",
    "read_container",
    "header_size",
    "MAX_SIDE",
    "MAX_PIXELS",
    "MAX_FRAMES",
    "MAX_VIDEO_PIXELS",
    "MAX_STREAMS",
]

MAGIC = b"GLC"
FORMAT_VERSION = 1
DIGEST_BYTES = 4
_CRC_BYTES = 4

#: Sane limits, checked before anything is allocated from a number read from a file.
MAX_SIDE = 1 << 16  # 65,536 pixels per side
MAX_PIXELS = 1 << 28  # 268 Mpixel per frame (a 16K x 16K image)
MAX_FRAMES = 1 << 20
#: Video: at most this many pixels in the whole clip (T * H * W), so a header cannot announce an
#: absurd clip (2^35 = 34 Gpixel: 83,000 frames of 854 x 480, 16,500 frames of 1920 x 1080).
MAX_VIDEO_PIXELS = 1 << 35
MAX_CHANNELS = 4
MAX_QUALITY = 1 << 16
MAX_STREAMS = 4096


class MediaKind(enum.IntEnum):
    """What the file holds; decides how many shape dimensions follow."""

    IMAGE = 0  # shape = (C, H, W)
    VIDEO = 1  # shape = (T, C, H, W)

    @property
    def ndim(self) -> int:
        return 3 if self is MediaKind.IMAGE else 4


@dataclass(frozen=True)
class Container:
    """Everything a ``.glc`` file holds, parsed and validated."""

    codec_id: int
    weights_digest: bytes
    media: MediaKind
    shape: tuple[int, ...]
    quality: int
    params: bytes = b""
    streams: tuple[bytes, ...] = ()
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if len(self.weights_digest) != DIGEST_BYTES:
            raise ValueError(f"weights digest must be {DIGEST_BYTES} bytes")
        _check_shape(MediaKind(self.media), tuple(self.shape))

    @property
    def payload_bytes(self) -> int:
        """Bytes of codec parameters and streams, without any container overhead."""
        return len(self.params) + sum(len(s) for s in self.streams)


def _check_shape(media: MediaKind, shape: tuple[int, ...]) -> None:
    if len(shape) != media.ndim:
        raise LimitError(f"{media.name.lower()} shape must have {media.ndim} dims, got {shape}")
    frames = 1
    if media is MediaKind.VIDEO:
        frames, shape = shape[0], shape[1:]
        if not 1 <= frames <= MAX_FRAMES:
            raise LimitError(f"frame count {frames} outside 1..{MAX_FRAMES}")
    c, h, w = shape
    if not 1 <= c <= MAX_CHANNELS:
        raise LimitError(f"channel count {c} outside 1..{MAX_CHANNELS}")
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise LimitError(f"image size {w}x{h} outside 1..{MAX_SIDE} per side")
    if h * w > MAX_PIXELS:
        raise LimitError(f"image size {w}x{h} has more than {MAX_PIXELS} pixels")
    if media is MediaKind.VIDEO and frames * h * w > MAX_VIDEO_PIXELS:
        raise LimitError(f"video of {frames} frames of {w}x{h} has more than {MAX_VIDEO_PIXELS} pixels in all")


def write_container(c: Container) -> bytes:
    """Serialise a container; the result is a complete ``.glc`` file."""
    if len(c.streams) > MAX_STREAMS:
        raise ValueError(f"at most {MAX_STREAMS} streams, got {len(c.streams)}")
    if not 0 <= c.quality < MAX_QUALITY:
        raise ValueError(f"quality {c.quality} outside 0..{MAX_QUALITY - 1}")
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION)
    out += encode_varint(c.codec_id)
    out += c.weights_digest
    out.append(int(c.media))
    for dim in c.shape:
        out += encode_varint(dim)
    out += encode_varint(c.quality)
    out += encode_varint(len(c.params))
    out += c.params
    out += encode_varint(len(c.streams))
    for s in c.streams:
        out += encode_varint(len(s))
        out += s
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def header_size(c: Container) -> int:
    """Container overhead in bytes: file size minus codec parameters and streams."""
    return len(write_container(c)) - c.payload_bytes


class _Reader:
    """Cursor over the file body that checks every read against the bytes present."""

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def varint(self, what: str) -> int:
        value, self.pos = decode_varint(self.buf, self.pos, what)
        return value

    def take(self, n: int, what: str) -> bytes:
        left = len(self.buf) - self.pos
        if n > left:
            raise TruncatedError(f"{what} needs {n} bytes but only {left} are left (truncated file?)")
        chunk = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return chunk


def read_container(data: bytes | bytearray | memoryview) -> Container:
    """Parse and validate a ``.glc`` file.

    Checks, in order: magic, version, field structure (every length against the bytes
    present), limits on shape/quality/stream count, then the CRC-32. Registry and weights
    checks happen one level up (:func:`glocal_codec.api.open_container`), where the registry is.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise BadMagicError("not a .glc file (missing the GLC magic bytes)")
    if len(data) < len(MAGIC) + 1:
        raise TruncatedError("file ends before the format version")
    version = data[len(MAGIC)]
    if version != FORMAT_VERSION:
        if version > FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"file uses .glc format version {version}; this installation reads version "
                f"{FORMAT_VERSION} (upgrade glocal-codec)"
            )
        raise UnsupportedVersionError(f"unknown .glc format version {version}")
    if len(data) < len(MAGIC) + 1 + _CRC_BYTES:
        raise TruncatedError("file is too short to hold a .glc header")
    body = memoryview(data)[: len(data) - _CRC_BYTES]
    crc_ok = zlib.crc32(body) == struct.unpack("<I", data[-_CRC_BYTES:])[0]
    try:
        container = _parse_body(body, version)
    except BitstreamError as err:
        if crc_ok:
            raise
        # A structural error in a file whose checksum fails: say both, the first is the symptom.
        raise type(err)(f"{err}; the CRC-32 does not match either (corrupted or truncated file)") from None
    if not crc_ok:
        raise ChecksumError("CRC-32 mismatch: the file is corrupted")
    return container


def _parse_body(body: memoryview, version: int) -> Container:
    r = _Reader(body)
    r.pos = len(MAGIC) + 1
    codec_id = r.varint("codec id")
    digest = r.take(DIGEST_BYTES, "weights digest")
    media_byte = r.take(1, "media kind")[0]
    try:
        media = MediaKind(media_byte)
    except ValueError:
        raise LimitError(f"unknown media kind {media_byte}") from None
    shape = tuple(r.varint(f"shape[{i}]") for i in range(media.ndim))
    _check_shape(media, shape)
    quality = r.varint("quality")
    if quality >= MAX_QUALITY:
        raise LimitError(f"quality {quality} is beyond {MAX_QUALITY - 1}")
    params = r.take(r.varint("parameter length"), "codec parameters")
    n_streams = r.varint("stream count")
    if n_streams > MAX_STREAMS:
        raise LimitError(f"stream count {n_streams} is beyond {MAX_STREAMS}")
    streams = tuple(r.take(r.varint(f"stream {i} length"), f"stream {i}") for i in range(n_streams))
    if r.pos != len(body):
        raise BitstreamError(f"{len(body) - r.pos} unexpected bytes after the last stream")
    return Container(codec_id, digest, media, shape, quality, params, streams, version)
