"""Classical video anchors through PyAV (FFmpeg): ``x264``, ``x265`` and ``av1``.

Each is a video codec plugin: one stream holding the encoder's raw **elementary stream** (no
mp4/mkv wrapper, so the rate is the codec's own bits plus the ``.glc`` overhead):

========= ============ ===================================== =====================================
codec     id  encoder  stream                                quality level -> CRF (1 .. 6)
========= ============ ===================================== =====================================
``x264``  64 libx264   H.264 Annex-B byte stream             38, 34, 30, 26, 22, 18
``x265``  65 libx265   H.265 Annex-B byte stream             40, 36, 32, 28, 24, 20
``av1``   66 libsvtav1 AV1 low-overhead OBU stream (Annex    63, 56, 48, 40, 32, 22
                       section 5, with temporal delimiters)
========= ============ ===================================== =====================================

Common settings: 8-bit 4:2:0 (``yuv420p``) from RGB by :mod:`.yuv` (BT.601 limited range,
2 x 2 mean chroma; integer-exact back to RGB), the encoders' default GOP structure
(B-frames / hierarchical prediction, one key frame at the start of a short clip), one thread
(``threads=1``, x265 ``pools=none:frame-threads=1``, SVT ``lp=1``) so the output bytes do not
depend on the machine's core count, presets x264 ``medium``, x265 ``medium``, SVT-AV1 ``8``.
Metadata the decoder does not need is left out: x265 ``info=0`` (no version SEI) and, for
x264, the user-data SEI NAL unit in which libx264 writes its version and option string
(~600 bytes) is removed after encoding.

Frame sizes: 4:2:0 needs even sizes, and the encoders have minimum sizes (x265: 16, SVT-AV1: 4
pixels), so a frame is padded at the bottom/right by edge replication to
``max(min_side, size rounded up to even)`` and the decoder crops back to the header's size.

Decoding is strict: the stream must start like the expected format; the demuxer's idea of the
frame size must equal the padded size *before* any frame is decoded; every decoded frame must
be ``yuv420p`` of that size; there must be exactly ``T`` frames (decoding stops at the first
extra one). Anything else, and any FFmpeg error, is a :class:`CorruptStreamError`.
``decode_frames`` yields the frames one at a time (``FrameStreaming``): ``video decode`` writes
them to the output as they come, holding a few frames, not the clip.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping

import av
import numpy as np

from ..bitstream.errors import CodecUnavailableError, CorruptStreamError
from ..bitstream.video_params import as_fps
from ..yuv import pack_i420, pad_frames, rgb_to_yuv420, to_uint8_frames, yuv420_to_rgb
from .base import Payload
from .video_base import ProgressFn, VideoCodecBase

if TYPE_CHECKING:  # torch is imported by decode: opening (and listing) these codecs needs none
    import torch

__all__ = ["PyAVVideoCodec", "X264Codec", "X265Codec", "Av1Codec", "strip_x264_version_sei", "available_encoders"]

# SVT-AV1 prints its configuration banner to stderr unless told otherwise (errors only).
os.environ.setdefault("SVT_LOG", "1")

#: The UUID libx264 puts in front of its version/options user-data SEI.
_X264_SEI_UUID = bytes.fromhex("dc45e9bde6d948b7962cd820d923eeef")


def available_encoders() -> dict[str, bool]:
    """Which of the encoders these plugins need PyAV's FFmpeg has."""
    names = ("libx264", "libx265", "libsvtav1", "libaom-av1", "libdav1d")
    return {n: n in av.codecs_available for n in names}


def _annexb_units(data: bytes) -> list[tuple[int, int, int]]:
    """``(segment_start, nal_start, segment_end)`` of each NAL unit of an Annex-B stream.

    A segment is the start code (3 bytes, or 4 with the leading zero) plus the NAL unit.
    Emulation prevention guarantees ``00 00 01`` never occurs inside a NAL unit.
    """
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i)
        i = data.find(b"\x00\x00\x01", i + 3)
    units = []
    for k, p in enumerate(starts):
        seg = p - 1 if p > 0 and data[p - 1] == 0 else p
        end = starts[k + 1] if k + 1 < len(starts) else len(data)
        if k + 1 < len(starts) and starts[k + 1] > 0 and data[starts[k + 1] - 1] == 0:
            end = starts[k + 1] - 1
        units.append((seg, p + 3, end))
    return units


def _is_x264_version_sei(nal: bytes) -> bool:
    """NAL type 6 (SEI) whose first message is user data unregistered (5) with x264's UUID."""
    if len(nal) < 2 or nal[0] & 0x1F != 6:
        return False
    pos = 1
    ptype = 0
    while pos < len(nal) and nal[pos] == 0xFF:
        ptype += 255
        pos += 1
    if pos >= len(nal):
        return False
    ptype += nal[pos]
    pos += 1
    if ptype != 5:
        return False
    while pos < len(nal) and nal[pos] == 0xFF:
        pos += 1
    pos += 1  # last payload-size byte
    return nal[pos: pos + 16] == _X264_SEI_UUID


def strip_x264_version_sei(data: bytes) -> bytes:
    """Remove libx264's version/options SEI NAL unit(s) from an H.264 Annex-B stream.

    The SEI is informative only (H.264 D.1.6: user data unregistered); decoders ignore it.
    """
    units = _annexb_units(data)
    keep = [data[s:e] for s, n, e in units if not _is_x264_version_sei(data[n:e])]
    prefix = data[: units[0][0]] if units else data
    return prefix + b"".join(keep)


class PyAVVideoCodec(VideoCodecBase):
    """Base class: an FFmpeg encoder writing a raw elementary stream (see the module docs)."""

    #: FFmpeg encoder and the raw muxer/demuxer for its elementary stream.
    encoder: ClassVar[str]
    raw_format: ClassVar[str]
    #: Names the demuxed stream's decoder may have.
    decoders: ClassVar[tuple[str, ...]]
    #: Smallest frame side the encoder accepts (frames are padded up to it).
    min_side: ClassVar[int] = 2
    preset: ClassVar[str] = "medium"
    default_quality = 3

    def __init__(self) -> None:
        # A missing encoder (or, for AV1, software decoder) in this FFmpeg disables this plugin
        # only: files made with it then read as "codec ... not available in this installation".
        have = av.codecs_available
        if self.encoder not in have or not any(d in have for d in self.decoders if d != "av1"):
            raise CodecUnavailableError(f"{self.name}: this FFmpeg build has no {self.encoder} encoder "
                                        f"or no {'/'.join(self.decoders)} decoder")
        super().__init__()

    def _options(self, crf: Any) -> dict[str, str]:
        raise NotImplementedError

    def _clean(self, stream: bytes) -> bytes:
        return stream

    def _looks_valid(self, stream: bytes) -> bool:
        """Annex-B: starts with a start code."""
        return stream.startswith(b"\x00\x00\x00\x01") or stream.startswith(b"\x00\x00\x01")

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) the encoder sees: even, and at least ``min_side``."""
        return max(self.min_side, height + height % 2), max(self.min_side, width + width % 2)

    # -- encode ---------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, quality: int, *, fps: Fraction | float | None = None,
               progress: ProgressFn | None = None) -> Payload:
        """Encode a ``T x C x H x W`` clip (float in [0, 1]) into one elementary stream."""
        crf = self._check_quality(quality)
        t, c, h, w = self._check_input(x)
        rate = as_fps(fps)
        ph, pw = self.padded_size(h, w)
        rgb = to_uint8_frames(x)
        buf = io.BytesIO()
        try:
            with av.open(buf, "w", format=self.raw_format) as out:
                stream = out.add_stream(self.encoder, rate=rate)
                stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
                cc = stream.codec_context
                cc.time_base = Fraction(1) / rate
                cc.color_range = 1  # limited ("MPEG") range
                cc.colorspace = 6  # SMPTE 170M = BT.601 matrix
                stream.options = self._options(crf)
                for i in range(t):
                    frame = pad_frames(rgb[i: i + 1], ph, pw)
                    y, u, v = rgb_to_yuv420(frame[0])
                    vf = av.VideoFrame.from_ndarray(pack_i420(y, u, v), format="yuv420p")
                    vf.pts = i
                    for packet in stream.encode(vf):
                        out.mux(packet)
                    if progress is not None:
                        progress(i + 1, t)
                for packet in stream.encode():
                    out.mux(packet)
        except av.error.FFmpegError as err:
            raise ValueError(f"{self.name}: {self.encoder} could not encode the clip: {err}") from err
        data = self._clean(buf.getvalue())
        return Payload(shape=(t, c, h, w), quality=int(quality), params=b"", streams=(data,))

    # -- decode ---------------------------------------------------------------------------
    def decode(self, payload: Payload, *, progress: ProgressFn | None = None) -> torch.Tensor:
        """Decode the stream to ``T x C x H x W`` float in [0, 1] (strict: see the module docs)."""
        import torch

        frames = list(self.decode_frames(payload, progress=progress))
        out = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
        return out.to(torch.float32).div_(255.0).contiguous()

    def decode_frames(self, payload: Payload, *, progress: ProgressFn | None = None) -> Iterator[np.ndarray]:
        """The frames of :meth:`decode` one at a time, as ``H x W x C`` uint8 (the
        :class:`~glocal_codec.codecs.FrameStreaming` protocol): the stream is checked here, each
        frame as it is decoded, the frame count at the end."""
        t, c, h, w = self._check_payload(payload)
        data = payload.streams[0]
        if not data:
            raise CorruptStreamError(f"{self.name}: the stream is empty")
        if not self._looks_valid(data):
            raise CorruptStreamError(f"{self.name}: the stream does not start like a {self.raw_format} stream")
        return self._frames(data, (t, c, h, w), progress)

    def _frames(self, data: bytes, shape: tuple[int, int, int, int],
                progress: ProgressFn | None) -> Iterator[np.ndarray]:
        t, c, h, w = shape
        ph, pw = self.padded_size(h, w)
        n = 0
        try:
            with av.open(io.BytesIO(data), "r", format=self.raw_format) as cont:
                if not cont.streams.video:
                    raise CorruptStreamError(f"{self.name}: no video stream in the payload")
                st = cont.streams.video[0]
                cc = st.codec_context
                if cc.name not in self.decoders:
                    raise CorruptStreamError(f"{self.name}: payload holds {cc.name}, expected {self.decoders[0]}")
                if cc.width and cc.height and (cc.width, cc.height) != (pw, ph):
                    raise CorruptStreamError(
                        f"{self.name}: stream is {cc.width}x{cc.height}, the header implies {pw}x{ph}")
                for frame in cont.decode(st):
                    if n >= t:
                        raise CorruptStreamError(f"{self.name}: stream holds more than the header's {t} frames")
                    if (frame.width, frame.height) != (pw, ph) or frame.format.name != "yuv420p":
                        raise CorruptStreamError(
                            f"{self.name}: decoded a {frame.width}x{frame.height} {frame.format.name} frame, "
                            f"expected {pw}x{ph} yuv420p")
                    planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]
                              for p in frame.planes]
                    rgb = yuv420_to_rgb(*planes)[:h, :w]
                    if c == 1:  # the mean of R, G, B, rounded (what float32 mean + round gives)
                        rgb = np.round(rgb.astype(np.float32).sum(axis=2, keepdims=True) / np.float32(3))
                    n += 1
                    yield np.ascontiguousarray(rgb, dtype=np.uint8)
                    if progress is not None:
                        progress(n, t)
        except CorruptStreamError:
            raise
        except Exception as err:  # noqa: BLE001 - anything FFmpeg / PyAV raises on hostile bytes
            raise CorruptStreamError(f"{self.name}: cannot decode the stream: {type(err).__name__}: {err}") from None
        if n != t:
            raise CorruptStreamError(f"{self.name}: stream holds {n} frames, the header says {t}")


class X264Codec(PyAVVideoCodec):
    """H.264 / AVC through libx264 (preset medium, CRF ladder), Annex-B stream without the version SEI."""

    name = "x264"
    description = "H.264 (libx264 via PyAV), 4:2:0, preset medium, CRF"
    encoder = "libx264"
    raw_format = "h264"
    decoders = ("h264",)
    levels: ClassVar[Mapping[int, int]] = {1: 38, 2: 34, 3: 30, 4: 26, 5: 22, 6: 18}

    def _options(self, crf: Any) -> dict[str, str]:
        return {"crf": str(crf), "preset": self.preset, "threads": "1"}

    def _clean(self, stream: bytes) -> bytes:
        return strip_x264_version_sei(stream)


class X265Codec(PyAVVideoCodec):
    """H.265 / HEVC through libx265 (preset medium, CRF ladder), Annex-B stream, no info SEI."""

    name = "x265"
    description = "H.265 (libx265 via PyAV), 4:2:0, preset medium, CRF"
    encoder = "libx265"
    raw_format = "hevc"
    decoders = ("hevc",)
    min_side = 16
    levels: ClassVar[Mapping[int, int]] = {1: 40, 2: 36, 3: 32, 4: 28, 5: 24, 6: 20}

    def _options(self, crf: Any) -> dict[str, str]:
        return {"crf": str(crf), "preset": self.preset,
                "x265-params": "log-level=error:info=0:pools=none:frame-threads=1"}


class Av1Codec(PyAVVideoCodec):
    """AV1 through SVT-AV1 (preset 8, CRF ladder), low-overhead OBU stream, decoded by dav1d."""

    name = "av1"
    description = "AV1 (SVT-AV1 via PyAV, dav1d decoder), 4:2:0, preset 8, CRF"
    encoder = "libsvtav1"
    raw_format = "obu"
    decoders = ("libdav1d", "libaom-av1", "av1")
    min_side = 4
    preset = "8"
    levels: ClassVar[Mapping[int, int]] = {1: 63, 2: 56, 3: 48, 4: 40, 5: 32, 6: 22}

    def _options(self, crf: Any) -> dict[str, str]:
        return {"crf": str(crf), "preset": self.preset, "svtav1-params": "lp=1"}

    def _looks_valid(self, stream: bytes) -> bool:
        """A low-overhead OBU stream starts with a temporal delimiter OBU (``12 00``)."""
        return stream.startswith(b"\x12\x00")
