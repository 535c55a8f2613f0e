"""Plugin wrapper shared by the learned image codecs.

Loads the codec's shipped weights (safetensors) once, picks the quality level, pads the input
to the model's ``pad_multiple``, runs the transforms through :mod:`glocal_codec.engine` (tiling
big images) and the latents through the model's entropy coder. Everything model-specific --
stride, latent channels, stream count, refinement halo -- is read from the model, which follows
:class:`~glocal_codec.codecs.base.LatentModel`. Grayscale images go through the RGB network as
three equal channels and come back as one channel.

A learned codec family is a model class plus a subclass naming it::

    class MyCodec(LearnedImageCodec):
        name = "mine"
        description = "..."
        model_class = MyModel        # a LatentModel; its config dataclass is model_class.config_class
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

import torch

from ..bitstream.errors import CorruptStreamError
from ..engine import (FOLD_PARAMS, FoldPlan, crop, fold_plan, pad_to_multiple, refine_latents, refine_tiled,
                      resolve_device, tiled_apply)
from ..errors import WeightsMissingError
from ..weights import load_state, manifest_entry, quality_levels, weights_digest, weights_path
from .base import ExactSynthesis, LatentModel, Payload, ProgressFn, RefinableLatentModel
from .hyperprior import LAMBDAS, FactorizedPrior, MeanScaleHyperprior, ModelConfig

__all__ = ["LatentCodec", "LearnedImageCodec", "FactorizedCodec", "MshCodec", "TILE_PIXELS"]

#: Images with more pixels than this are run through the transforms tile by tile.
TILE_PIXELS = 1024 * 1024
_TILE = 512  # input pixels per tile (rounded up to a multiple of the model's stride)
_HALO = 96  # wider than the 16-stride analysis transform's 61-pixel receptive field
#: Refinement of images above TILE_PIXELS goes tile by tile (engine.refine_tiled): 640 x 640
#: pixels per tile (40 x 40 latents at stride 16), so that a window with the model's halo stays
#: under a megapixel, the size whole-image refinement handles.
_REFINE_TILE_PIXELS = 640


def _up(v: int, m: int) -> int:
    """``v`` rounded up to a multiple of ``m``."""
    return -(-v // m) * m


class LatentCodec:
    """Base for learned image codecs: runs a :class:`~glocal_codec.codecs.base.LatentModel`.

    Implements :class:`~glocal_codec.codecs.Codec` and :class:`~glocal_codec.codecs.Placeable`;
    :class:`LearnedImageCodec` adds encoder-side refinement for models whose latents have a
    differentiable rate (``mcquic``'s codebook indices have none, so it derives from this one).
    """

    name: str
    media: Literal["image"] = "image"
    description: str = ""
    model_class: type
    #: The protocol the model must follow (checked when the weights are loaded).
    contract: type = LatentModel
    #: ``None``: ``glocal-codec train`` (the generic loop) trains ``model_class``. A family with a
    #: recipe of its own names the command here instead (``dualrep``: three stages on ``vq``).
    trainer: str | None = None
    #: Thin strips are folded into near-square pictures (:mod:`glocal_codec.engine.fold`) instead
    #: of being padded to the model's multiple on both axes; a file says so in its header
    #: parameters. A family whose parameters carry something else sets this to False.
    folds_strips: bool = True

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.device = resolve_device(device)
        self._model: torch.nn.Module | None = None
        self._digest: bytes | None = None
        self._lock = threading.Lock()
        self.qualities, self.default_quality = quality_levels(self.name, ModelConfig().levels)

    def to(self, device: str | torch.device) -> "LatentCodec":
        """Run the transforms on ``device`` (the entropy parameters always stay on the CPU)."""
        dev = resolve_device(device)
        with self._lock:
            self.device = dev
            if self._model is not None:
                self._model.to(dev)
        return self

    # -- weights -----------------------------------------------------------------------------
    @property
    def weights_file(self) -> Path:
        return weights_path(self.name)

    def weights_available(self) -> bool:
        return self.weights_file.is_file()

    def weights_digest(self, quality: int) -> bytes:
        if self._digest is None:
            self._digest = weights_digest(self.name)
        return self._digest

    @property
    def model(self) -> LatentModel:
        with self._lock:
            if self._model is None:
                if not self.weights_available():
                    raise WeightsMissingError(
                        f"weights for {self.name!r} not found at {self.weights_file}; train them with "
                        f"`glocal-codec train {self.name}` or reinstall the package"
                    )
                cfg = manifest_entry(self.name).get("config", {})
                # each model names its own config dataclass (glocal has more fields than n, m)
                config_class = getattr(self.model_class, "config_class", ModelConfig)
                # Built outside inference mode even when first used inside encode(): latent
                # refinement back-propagates through these weights, and autograd cannot use
                # inference-mode tensors. The weights themselves never need a gradient.
                with torch.inference_mode(False):
                    model = self.model_class(config_class(**cfg))
                    model.load_state_dict(load_state(self.weights_file))
                    if not isinstance(model, self.contract):
                        raise TypeError(f"{self.model_class.__name__} does not follow the {self.contract.__name__} contract")
                    self._model = model.to(self.device).eval().requires_grad_(False)
            return self._model

    @property
    def pad_multiple(self) -> int:
        return int(self.model.pad_multiple)

    # -- coding ------------------------------------------------------------------------------
    def _check_quality(self, quality: int) -> int:
        if quality not in self.qualities:
            raise ValueError(f"{self.name}: quality must be one of {list(self.qualities)}, got {quality}")
        return quality - 1

    def _transform(self, fn, x: torch.Tensor, analysis: bool) -> torch.Tensor:
        """``fn`` (analysis: pixels -> latents; else latents -> pixels), tile by tile when big."""
        ds = int(self.model.downsample)
        pixels = x.shape[-2] * x.shape[-1] * (1 if analysis else ds * ds)
        if pixels <= TILE_PIXELS:
            return fn(x)
        tile, halo = _up(_TILE, ds), _up(_HALO, ds)
        if analysis:
            return tiled_apply(fn, x, scale=1 / ds, tile=tile, halo=halo, align=ds)
        return tiled_apply(fn, x, scale=ds, tile=tile // ds, halo=halo // ds)

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, quality: int) -> Payload:
        return self._encode(x, quality, 0)

    def _encode(self, x: torch.Tensor, quality: int, refine: int, progress: ProgressFn | None = None) -> Payload:
        # refine > 0 only ever comes from LearnedImageCodec, which has the _refined_* methods
        q = self._check_quality(quality)
        if refine < 0:
            raise ValueError(f"refine must be >= 0 steps, got {refine}")
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected a 1 x C x H x W tensor with C in (1, 3), got {tuple(x.shape)}")
        c, h0, w0 = x.shape[1:]
        plan = fold_plan(h0, w0, self.pad_multiple, int(self.model.downsample)) if self.folds_strips else None
        if plan is not None:
            x = plan.fold(x)
        h, w = x.shape[-2:]  # from here on, the picture the model codes (folded or not)
        xin = x.expand(1, 3, h, w) if c == 1 else x
        xin = pad_to_multiple(xin.to(self.device, torch.float32), self.pad_multiple)
        model = self.model
        tiled = bool(refine) and h * w > TILE_PIXELS
        if tiled and model.refine_halo is None:
            # back-propagating through a whole large image does not fit; tiles need a local model
            raise ValueError(f"{self.name} refines images up to {TILE_PIXELS:,} pixels (its attention and context "
                             f"see the whole latent, so it cannot refine tile by tile); this one has {h * w:,}")
        y = self._transform(lambda t: model.analysis(t, q), xin, analysis=True)
        if tiled:
            streams = self._refined_tiles(xin, y, q, h, w, refine, progress)
        elif refine:
            streams = self._refined_streams(xin, y, q, h, w, refine, progress)
        else:
            streams = model.compress(model.latents(y, q), q)
        return Payload(shape=(c, h0, w0), quality=quality, params=FOLD_PARAMS if plan else b"", streams=tuple(streams))

    @torch.inference_mode()
    def decode(self, payload: Payload) -> torch.Tensor:
        return self._decode_with(payload, self.model.decompress)

    def _decode_with(self, payload: Payload, decompress) -> torch.Tensor:
        """Decode ``payload`` with ``decompress(streams, latent_shape, q) -> y_hat`` (the model's
        own, or a variant such as ``vq``'s lost-index restoration), then the synthesis."""
        q = self._check_quality(payload.quality)
        c, h0, w0 = payload.shape
        model = self.model
        m, ds = int(model.pad_multiple), int(model.downsample)
        plan = self._fold_of(payload.params, h0, w0, m, ds)
        h, w = plan.folded_shape if plan else (h0, w0)
        latent = (1, int(model.latent_channels), _up(h, m) // ds, _up(w, m) // ds)
        if len(payload.streams) != model.n_streams:
            raise CorruptStreamError(f"{self.name} expects {model.n_streams} streams, got {len(payload.streams)}")
        y_hat = decompress(list(payload.streams), latent, q).to(self.device)
        # the fixed-point synthesis where the model has one: the same pixels on every machine
        synth = model.synthesis_exact if isinstance(model, ExactSynthesis) else model.synthesis
        x_hat = self._transform(lambda t: synth(t, q), y_hat, analysis=False)
        x_hat = crop(x_hat, h, w).clamp_(0, 1)
        if plan is not None:
            x_hat = plan.unfold(x_hat)
        if c == 1:
            # back to one channel: the mean of the three (the network sees gray as R=G=B)
            x_hat = x_hat.mean(dim=1, keepdim=True)
        return x_hat.float().cpu()


    def _fold_of(self, params: bytes, h: int, w: int, m: int, ds: int) -> FoldPlan | None:
        """The fold a file's header parameters announce (none, for files without parameters)."""
        if not params:
            return None  # also every file written before strips were folded
        plan = fold_plan(h, w, m, ds) if self.folds_strips else None
        if params != FOLD_PARAMS or plan is None:
            # the only parameters these codecs write: extra or different bytes mean a damaged file
            raise CorruptStreamError(f"{self.name}: unexpected codec parameters {params[:8].hex()} for a {h} x {w} "
                                     "image (only thin strips carry one, the fold marker)")
        return plan


class LearnedImageCodec(LatentCodec):
    """A :class:`LatentCodec` whose model also follows
    :class:`~glocal_codec.codecs.base.RefinableLatentModel`: implements
    :class:`~glocal_codec.codecs.Refinable` (encoder-side latent refinement)."""

    contract = RefinableLatentModel

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, quality: int, *, refine: int = 0) -> Payload:
        """Encode ``x``; ``refine`` > 0 runs that many latent-refinement steps first
        (:mod:`glocal_codec.engine.refine`: slower encode, same decoder, same file format)."""
        return self._encode(x, quality, refine)

    def encode_refined(self, x: torch.Tensor, quality: int, steps: int, *,
                       progress: ProgressFn | None = None) -> Payload:
        """:class:`~glocal_codec.codecs.Refinable`: ``steps`` latent-refinement steps, then code;
        ``progress(done, steps, stats)`` after each step (tile by tile: over all tiles' steps)."""
        with torch.inference_mode():
            return self._encode(x, quality, steps, progress)

    def _refined_streams(self, xin: torch.Tensor, y: torch.Tensor, q: int, h: int, w: int,
                         steps: int, progress: ProgressFn | None = None) -> list[bytes]:
        model = self.model
        with torch.inference_mode(False):
            # normal (not inference-mode) copies: autograd cannot record ops on inference tensors
            x_ref, y = crop(xin, h, w).clone(), y.clone()
            with torch.no_grad():
                start = model.latents(y, q)

            def objective(latents, rounding):
                bits, x_hat = model.rd_terms(list(latents), rounding, q)
                return bits, ((crop(x_hat, h, w) - x_ref) ** 2).sum()

            latents = refine_latents(start, objective, LAMBDAS[q], h * w, steps, progress=progress)
        return model.compress(latents, q)

    def _refined_tiles(self, xin: torch.Tensor, y: torch.Tensor, q: int, h: int, w: int,
                       steps: int, progress: ProgressFn | None = None) -> list[bytes]:
        """Refinement of a large image: the grid latent ``y`` tile by tile, the others held.

        Other latents (``msh``'s hyper-latent) keep the encoder's values: refining them too
        would need windows wide enough for the hyper-synthesis's reach on top of the synthesis's.
        """
        model = self.model
        ds = int(model.downsample)
        align = int(model.pad_multiple) // ds  # hyper-latents have whole positions inside every window
        with torch.inference_mode(False):
            x_ref, y = crop(xin, h, w).clone(), y.clone()
            with torch.no_grad():
                held = model.latents(y, q)[1:]

            y = refine_tiled(y, self._window_objective(x_ref, y.shape[-1], held, q), LAMBDAS[q], steps,
                             tile=_up(max(1, _REFINE_TILE_PIXELS // ds), align), halo=model.refine_halo, align=align,
                             progress=progress)
        return model.compress([y, *held], q)

    def _window_objective(self, x_ref: torch.Tensor, grid_width: int, held: list[torch.Tensor], q: int):
        """(bits, squared error) of a latent window, the held latents cut to the same box.

        ``x_ref`` is the unpadded image; pixels of the window that fall in the padding are left out.
        """
        model = self.model
        ds = int(model.downsample)
        h, w = x_ref.shape[-2:]

        def window_objective(box, window, rounding):
            y0, y1, x0, x1 = box
            others = []
            for t in held:
                r = grid_width // t.shape[-1]  # 4 for msh's hyper-latent
                others.append(t[..., y0 // r:y1 // r, x0 // r:x1 // r])
            bits, x_hat = model.rd_terms([window, *others], rounding, q)
            ref = x_ref[..., y0 * ds:min(y1 * ds, h), x0 * ds:min(x1 * ds, w)]
            return bits, ((x_hat[..., :ref.shape[-2], :ref.shape[-1]] - ref) ** 2).sum()

        return window_objective


class FactorizedCodec(LearnedImageCodec):
    name = "factorized"
    description = "Ballé 2017 factorized prior (GDN transforms), variable rate; trained by this project"
    model_class = FactorizedPrior


class MshCodec(LearnedImageCodec):
    name = "msh"
    description = "Minnen 2018 mean-scale hyperprior, variable rate (gain units); trained by this project"
    model_class = MeanScaleHyperprior
