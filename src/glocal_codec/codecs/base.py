"""The codec plugin protocol (see DESIGN.md, "The codec plugin")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence, runtime_checkable

import torch

__all__ = ["Payload", "Codec", "NO_WEIGHTS"]

#: Weights digest written by codecs that have no weights (classical codecs).
NO_WEIGHTS = b"\x00\x00\x00\x00"


@dataclass(frozen=True)
class Payload:
    """What a codec produces and consumes; the container adds id, digest and checksum.

    ``shape`` is the shape of the *original* input (C, H, W for images), so a codec that pads
    internally can crop back; ``params`` are small codec-specific header bytes; ``streams`` the
    entropy-coded byte streams.
    """

    shape: tuple[int, ...]
    quality: int
    params: bytes = b""
    streams: tuple[bytes, ...] = ()


@runtime_checkable
class Codec(Protocol):
    """An image or video codec plugin.

    ``encode`` takes a float tensor in [0, 1] of shape 1 x C x H x W (C = 1 or 3) and a quality
    level from ``qualities``; ``decode`` returns the same shape. Higher quality = more bits.

    Optional: a codec whose ``refinable`` attribute is true also accepts
    ``encode(x, quality, refine=N)``, N encoder-side refinement steps that change the latents
    but not the format (:mod:`glocal_codec.engine.refine`); ``glocal_codec.encode(...,
    refine=N)`` refuses other codecs with a clear error.
    """

    name: str
    media: Literal["image", "video"]
    qualities: Sequence[int]
    default_quality: int
    description: str

    def weights_digest(self, quality: int) -> bytes:
        """4-byte digest of the weights used for ``quality`` (``NO_WEIGHTS`` if none)."""
        ...

    def weights_available(self) -> bool:
        """Whether the weights this codec needs are installed."""
        ...

    def encode(self, x: torch.Tensor, quality: int) -> Payload: ...

    def decode(self, payload: Payload) -> torch.Tensor: ...
