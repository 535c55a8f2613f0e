"""What every video codec plugin shares: the classical ones (``video_classic``) and the INR
codecs (``hnerv``, ``nirvana``, ``pfnr``).

A video codec follows :class:`glocal_codec.codecs.VideoCodec` (``media = "video"``):

* ``encode(x, quality, *, fps=None, progress=None) -> Payload`` takes a ``T x C x H x W`` float
  tensor in [0, 1] (C = 1 or 3); ``Payload.shape`` is ``(T, C, H, W)`` of the *original* clip.
* ``decode(payload, *, progress=None) -> Tensor`` returns ``T x C x H x W`` float in [0, 1].
* The frame rate is *not* the codec's business: the video API stores it in front of the
  codec's parameters (:mod:`glocal_codec.bitstream.video_params`); ``Payload.params`` is the
  codec's own bytes only.

An INR codec fits the same mould: ``encode`` overfits a network to the clip and returns its
quantised, entropy-coded weights as streams (plus e.g. embeddings); its model hyper-parameters
go into ``params``; ``decode`` rebuilds the network and renders the frames.
:class:`VideoCodecBase` gives the checks they all need; :class:`RenderedVideoCodec` turns one
frame-by-frame ``render`` into ``decode`` and the streamed ``decode_frames``, so a long clip is
written to a file holding one frame (or one group of frames), never the clip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Literal, Mapping

import numpy as np

from ..bitstream.errors import CorruptStreamError
from .base import NO_WEIGHTS, Payload, ProgressFn

if TYPE_CHECKING:  # torch is imported where clips are handled: listing the codecs needs none
    import torch

__all__ = ["VideoCodecBase", "RenderedVideoCodec", "ProgressFn"]


class VideoCodecBase:
    """Base class for video codec plugins: quality levels, input and payload checks.

    Subclasses set ``name``, ``description`` and ``levels`` (quality level -> the codec's own
    rate parameter, e.g. a CRF) and implement ``encode`` / ``decode``.
    """

    name: ClassVar[str]
    media: Literal["video"] = "video"
    description: ClassVar[str] = ""
    levels: ClassVar[Mapping[int, Any]]
    default_quality: int = 3

    def __init__(self) -> None:
        self.qualities: tuple[int, ...] = tuple(sorted(self.levels))

    def weights_digest(self, quality: int) -> bytes:
        return NO_WEIGHTS

    def weights_available(self) -> bool:
        return True

    def _check_quality(self, quality: int) -> Any:
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or int(quality) not in self.levels:
            raise ValueError(f"{self.name}: quality must be one of {list(self.qualities)}, got {quality!r}")
        return self.levels[int(quality)]

    def _check_input(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        import torch

        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{self.name}: expected a T x C x H x W tensor with C in (1, 3), got {got}")
        t, c, h, w = (int(v) for v in x.shape)
        if min(t, h, w) < 1:
            raise ValueError(f"{self.name}: empty clip {tuple(x.shape)}")
        return t, c, h, w

    def _check_payload(self, payload: Payload, streams: int | None = 1,
                       params: bool = False) -> tuple[int, int, int, int]:
        shape = tuple(payload.shape)
        if len(shape) != 4 or shape[1] not in (1, 3) or min(shape) < 1:
            raise CorruptStreamError(f"{self.name}: video shape must be (T, C, H, W) with C in (1, 3), got {shape}")
        if streams is not None and len(payload.streams) != streams:
            raise CorruptStreamError(f"{self.name} expects {streams} stream(s), got {len(payload.streams)}")
        if not params and payload.params:
            raise CorruptStreamError(f"{self.name} takes no codec parameters, got {len(payload.params)} bytes")
        t, c, h, w = (int(v) for v in shape)
        return t, c, h, w


class RenderedVideoCodec(VideoCodecBase):
    """A video codec that rebuilds a network from the payload and renders the clip frame by frame
    (the INR codecs). Subclasses implement :meth:`render`; ``decode`` collects its frames, and
    ``decode_frames`` (:class:`~glocal_codec.codecs.FrameStreaming`) yields them as ``H x W x C``
    uint8 while they are consumed, so ``video decode`` never holds the clip. A codec whose payload
    holds several clips (:class:`~glocal_codec.codecs.MultiClip`) renders clip ``index`` and gets
    ``decode_clip`` / ``decode_clip_frames`` from the same two helpers."""

    def render(self, payload: Payload, index: int | None = None) -> Iterator[torch.Tensor]:
        """The frames of clip ``index`` (``None``: the one the header describes) in order, each
        ``C x H x W`` float in [0, 1]; checks the payload before the first frame."""
        raise NotImplementedError

    def clip_shape(self, payload: Payload, index: int | None = None) -> tuple[int, int, int, int]:
        """``(T, C, H, W)`` of clip ``index``: the header's shape (multi-clip codecs override)."""
        return self._check_payload(payload, streams=None, params=True)

    def decode(self, payload: Payload, *, progress: ProgressFn | None = None) -> torch.Tensor:
        return self._collect(payload, None, progress)

    def decode_frames(self, payload: Payload, *, progress: ProgressFn | None = None) -> Iterator[np.ndarray]:
        """The frames of :meth:`decode` one at a time as ``H x W x C`` uint8 (rounded as the video
        API rounds a decoded clip, so streamed and collected files hold the same pixels)."""
        return self._frames_uint8(payload, None, progress)

    def _collect(self, payload: Payload, index: int | None, progress: ProgressFn | None) -> torch.Tensor:
        import torch

        from ..engine.fit import report  # the engine imports torch: not at listing time

        t, c, h, w = self.clip_shape(payload, index)
        out = torch.empty(t, c, h, w)
        n = 0
        for n, frame in enumerate(self.render(payload, index), 1):
            if n > t:
                raise CorruptStreamError(f"{self.name} rendered more than the {t} frames the header says")
            out[n - 1] = frame
            report(progress, n, t)
        if n != t:
            raise CorruptStreamError(f"{self.name} rendered {n} frames, the header says {t}")
        return out

    def _frames_uint8(self, payload: Payload, index: int | None, progress: ProgressFn | None) -> Iterator[np.ndarray]:
        from ..engine.fit import report
        from ..yuv import to_uint8_frames

        t, c, _, _ = self.clip_shape(payload, index)  # checked now, before the first frame is asked for

        def frames() -> Iterator[np.ndarray]:
            for n, frame in enumerate(self.render(payload, index), 1):
                f = to_uint8_frames(frame.unsqueeze(0))[0]
                yield f[:, :, :1] if c == 1 else f
                report(progress, n, t)

        return frames()
