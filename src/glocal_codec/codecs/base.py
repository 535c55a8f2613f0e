"""The codec plugin contract (see DESIGN.md, "The codec plugin", and ``docs/plugins.md``).

* :class:`Codec` -- what every plugin is: name, media kind, quality levels, weights digest,
  ``encode`` / ``decode`` between tensors and a :class:`Payload`.
* Optional abilities are explicit protocols, checked with ``isinstance`` (never ``hasattr``):
  :class:`Refinable` (encoder-side latent refinement), :class:`Placeable` (``.to(device)``),
  :class:`VideoCodec` (clips, frame rate and progress keywords), :class:`MultiClip` (several
  clips in one payload: ``pfnr``), :class:`FrameStreaming` (frame-by-frame video decode).
* :class:`LatentModel` -- the network contract of a learned image codec, which
  :class:`~glocal_codec.codecs.learned.LearnedImageCodec` runs: its stride, transforms,
  latent coding and rate terms. Nothing outside the model hard-codes a stride.

Codecs never see file bytes: the API wraps a :class:`Payload` into the ``.glc`` container.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Literal, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing the contract (and the registry) never imports torch
    import numpy as np
    import torch

__all__ = [
    "Payload", "Codec", "NO_WEIGHTS", "Refinable", "Placeable", "Uint8Codec", "VideoCodec", "MultiClip", "ClipInfo",
    "LatentModel", "RefinableLatentModel", "LevelFacts", "ExactSynthesis", "FittedEncoder", "Presets", "ProgressFn", "Rounding", "Rescalable", "Restorable", "DistortionTerms", "FrameStreaming",
]

#: Weights digest written by codecs that have no weights (classical codecs).
NO_WEIGHTS = b"\x00\x00\x00\x00"


class ProgressFn(Protocol):
    """``progress(done, total, stats=None)``: ``total`` may be None (unknown); ``stats`` a short
    text (e.g. ``"28.1 dB"``) that a progress bar can show beside the count."""

    def __call__(self, done: int, total: int | None, stats: str | None = None) -> None: ...


#: Quantisation used while refining: ``rounding(t) -> t`` (straight-through or annealed).
Rounding = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class Payload:
    """What a codec produces and consumes; the container adds id, digest and checksum.

    ``shape`` is the shape of the *original* input (C, H, W for images, T, C, H, W for video),
    so a codec that pads internally can crop back; ``params`` are small codec-specific header
    bytes; ``streams`` the entropy-coded byte streams.
    """

    shape: tuple[int, ...]
    quality: int
    params: bytes = b""
    streams: tuple[bytes, ...] = ()


@runtime_checkable
class Codec(Protocol):
    """An image or video codec plugin.

    Image codecs: ``encode`` takes a float tensor in [0, 1] of shape 1 x C x H x W (C = 1 or 3)
    and a quality level from ``qualities``; ``decode`` returns the same shape. Higher quality =
    more bits. Video codecs follow :class:`VideoCodec`.
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


@runtime_checkable
class Refinable(Protocol):
    """Encoder-side refinement: ``steps`` optimisation steps on the latents before coding.

    Slower encode, same decoder, same file format (:mod:`glocal_codec.engine.refine`).
    ``progress`` (optional; callers pass it only when they have one) is called after every
    step, ``progress(done, steps, stats)``.
    """

    def encode_refined(self, x: torch.Tensor, quality: int, steps: int, *,
                       progress: ProgressFn | None = None) -> Payload: ...


@runtime_checkable
class Presets(Protocol):
    """Named encoder operating points (``overfit``: ``fast`` / ``medium`` / ``slow``): the encoder's
    time-for-quality trade, never the file format. ``presets`` lists them (the default first);
    ``with_preset(name)`` returns the codec set to one (``encode --preset``, eval labels such as
    ``overfit+slow``); a codec whose ``encode`` takes ``progress`` reports its fitting through it."""

    presets: tuple[str, ...]

    def with_preset(self, name: str) -> "Presets": ...


@runtime_checkable
class Uint8Codec(Protocol):
    """An image codec that codes 8-bit pixels as they are (the classical codecs, through Pillow).

    ``encode_uint8(arr, quality)`` takes, and ``decode_uint8(payload)`` returns, an ``H x W x C``
    ``uint8`` numpy array (C = 1 or 3). They give the same files and the same pixels as ``encode``
    / ``decode`` on the equivalent float tensor, and need no torch: the API uses them for 8-bit
    inputs (image files, PIL images, ``uint8`` arrays), so ``glocal-codec encode -c jpeg`` and the
    decoding of a JPEG ``.glc`` start without importing torch.
    """

    def encode_uint8(self, arr: np.ndarray, quality: int) -> Payload: ...

    def decode_uint8(self, payload: Payload) -> np.ndarray: ...


@runtime_checkable
class Placeable(Protocol):
    """A codec whose networks can move to another device (``"cuda"``, ``"cpu"``)."""

    def to(self, device: str | torch.device) -> "Placeable": ...


@runtime_checkable
class VideoCodec(Protocol):
    """A video codec (``media == "video"``): clips are ``T x C x H x W`` float tensors in [0, 1].

    ``fps`` is the clip's frame rate (the API stores it in the container, never in
    ``Payload.params``); ``progress`` is called per frame or per fitting step.
    """

    def encode(self, x: torch.Tensor, quality: int, *, fps=None, progress: ProgressFn | None = None) -> Payload: ...

    def decode(self, payload: Payload, *, progress: ProgressFn | None = None) -> torch.Tensor: ...


@runtime_checkable
class FrameStreaming(Protocol):
    """A video codec that decodes frame by frame (every built-in one): ``decode_frames`` yields the
    header's ``T`` frames in order as ``H x W x C`` uint8 arrays, the pixels ``decode`` gives, and
    raises the same errors, possibly after some frames. The video API streams them into the
    output file, so such a decode holds a few frames, not the clip."""

    def decode_frames(self, payload: Payload, *, progress: ProgressFn | None = None) -> Iterator[np.ndarray]: ...


@dataclass(frozen=True)
class ClipInfo:
    """One clip of a :class:`MultiClip` payload."""

    frames: int
    channels: int


@runtime_checkable
class MultiClip(Protocol):
    """A video codec whose payload can hold several clips, added one after another (``pfnr``).

    Works on payloads, never on file bytes: the API reads and writes the container.
    ``append`` returns a new payload whose earlier clips decode exactly as before.
    """

    def append(self, payload: Payload, x: torch.Tensor, *, progress: ProgressFn | None = None) -> Payload: ...

    def clips(self, payload: Payload) -> list[ClipInfo]: ...

    def decode_clip(self, payload: Payload, index: int, *, progress: ProgressFn | None = None) -> torch.Tensor: ...

    def decode_clip_frames(self, payload: Payload, index: int, *,
                           progress: ProgressFn | None = None) -> Iterator[np.ndarray]: ...


@runtime_checkable
class LatentModel(Protocol):
    """The network of a learned image codec, as :class:`~.learned.LearnedImageCodec` runs it.

    * ``downsample`` -- pixels per latent position (16 for the Ballé family; 8 for a VQ codec);
    * ``pad_multiple`` -- inputs are padded to a multiple of this (``downsample`` x the
      hyper-latent's stride, so every latent has whole positions);
    * ``latent_channels`` -- channels of the latent ``y``;
    * ``n_streams`` -- byte streams a file of this model carries;
    * ``refine_halo`` -- latents of context a tile needs for tile-by-tile refinement, or
      ``None`` when the model sees the whole latent (attention, context models);
    * ``analysis(x, q)`` / ``synthesis(y_hat, q)`` -- the transforms at quality index ``q``;
    * ``latents(y, q)`` -- every latent the coder sends, ``y`` first (e.g. ``[y, z]``);
    * ``compress(latents, q)`` -> streams; ``decompress(streams, y_shape, q)`` -> ``y_hat``;
    * ``build_tables()`` -- freeze densities into coding tables after training.
    """

    downsample: int
    pad_multiple: int
    latent_channels: int
    n_streams: int
    refine_halo: int | None

    def analysis(self, x: torch.Tensor, q: int) -> torch.Tensor: ...

    def synthesis(self, y_hat: torch.Tensor, q: int) -> torch.Tensor: ...

    def latents(self, y: torch.Tensor, q: int) -> list[torch.Tensor]: ...

    def compress(self, latents: list[torch.Tensor], q: int) -> list[bytes]: ...

    def decompress(self, streams: list[bytes], shape: tuple[int, ...], q: int) -> torch.Tensor: ...

    def build_tables(self) -> None: ...


@runtime_checkable
class RefinableLatentModel(LatentModel, Protocol):
    """A :class:`LatentModel` whose latents have a differentiable rate, so the encoder can refine
    them (:class:`~.learned.LearnedImageCodec`, ``encode --refine N``):
    ``rd_terms(latents, rounding, q)`` -> (bits, reconstruction), differentiable."""

    def rd_terms(self, latents: list[torch.Tensor], rounding: Rounding, q: int) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class LevelFacts(Protocol):
    """A :class:`LatentModel` that describes the structure of each quality level (``mcquic``:
    levels, codebooks, codebook sizes). Export writes the facts into the weights manifest, so
    ``glocal-codec info`` shows them for a file without importing the model."""

    def level_facts(self, q: int) -> dict[str, str]: ...


@runtime_checkable
class DistortionTerms(Protocol):
    """A :class:`LatentModel` trained on its own distortion instead of the rate-distortion MSE:
    ``distortion_weights`` maps term names to weights (``vq``: ``{"l1": 1, "lpips": 1}``, the
    VQGAN objective); the training loop builds it with :func:`glocal_codec.train.losses.make_distortion`."""

    @property
    def distortion_weights(self) -> Mapping[str, float]: ...


@runtime_checkable
class ExactSynthesis(Protocol):
    """A :class:`LatentModel` whose decoder-side synthesis gives the same pixels on every machine
    (thread count, CPU kernel set, GPU): :class:`~.learned.LearnedImageCodec` decodes with
    ``synthesis_exact`` when the model has it (:mod:`glocal_codec.nn.fixed_point`)."""

    def synthesis_exact(self, y_hat: torch.Tensor, q: int) -> torch.Tensor: ...


@runtime_checkable
class Rescalable(Protocol):
    """An image codec whose files render at any output size, not only the coded one (``gblsr``:
    ``decode --scale 2`` is super-resolution from the same file; below 1 a band-limited render).
    The size is the decoder's choice and is never stored in the file."""

    def decode_resized(self, payload: Payload, height: int, width: int) -> torch.Tensor: ...


@runtime_checkable
class Restorable(Protocol):
    """An image codec that can decode a file as if part of its coded symbols had been lost in
    transmission and restore them from the rest (``vq``: ``decode --drop 0.2 --seed 7`` marks
    20 % of the index positions lost, chosen by the seed, and its prior fills them in). The
    losses are simulated by the decoder; the file itself is complete and unchanged."""

    def decode_dropped(self, payload: Payload, drop: float, seed: int) -> torch.Tensor: ...


@runtime_checkable
class FittedEncoder(Protocol):
    """A codec whose encoder fits a network to each input (the INR video codecs): ``epochs``
    passes over the clip. Callers may change ``epochs`` to trade time for quality (``video
    encode --epochs``, ``eval --epochs``). The same input, settings and thread count give the
    same file on one machine; across machines the fitted weights, and so the bytes, may differ
    (the optimisation is float arithmetic), while any given file decodes the same everywhere.
    """

    epochs: int
