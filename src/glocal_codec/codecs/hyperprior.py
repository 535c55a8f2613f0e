"""Ballé-family learned codecs: ``factorized`` and ``msh`` (mean-scale hyperprior).

* ``factorized``: Ballé, Laparra, Simoncelli, "End-to-end optimized image compression",
  ICLR 2017 -- GDN transforms, a per-channel non-parametric density on the latent.
* ``msh``: Minnen, Ballé, Toderici, "Joint autoregressive and hierarchical priors for learned
  image compression", NeurIPS 2018, *without* the autoregressive context (their "mean & scale
  hyperprior"): a hyper-latent ``z`` with a factorized prior predicts a Gaussian mean and scale
  for every latent element.

Both are variable-rate: per-quality gain vectors (Cui et al. CVPR 2021, :class:`GainUnit`) let
one set of transforms serve every quality level, with one small density model per level.
Layers and training machinery (GDN, EntropyBottleneck, GaussianConditional) are CompressAI's;
coding goes through :mod:`glocal_codec.entropy` (constriction).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..nn import GDN, GainUnit, conv, deconv, ste_round  # first: imports compressai quietly
from compressai.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: E402

from ..entropy import GaussianCoder, LevelCoders, TableCoder, factorized_bits, frozen_tables
from ..nn.fixed_point import FixedPointNet
from ..util import exp_exact

__all__ = ["ModelConfig", "FactorizedPrior", "MeanScaleHyperprior", "ForwardResult", "RescaledResult", "LAMBDAS", "Z_BOUND", "gain_init"]

#: Rate-distortion trade-off per quality level (loss = bpp + lambda * 255^2 * MSE): the
#: lambdas CompressAI publishes for its quality levels 1-6.
LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)

#: Latent alphabets coded with tables; values beyond go through the coder's escape list.
Z_BOUND = 63
_Y_BOUND = 127


def _full_precision(x: torch.Tensor):
    """Autocast off: densities and likelihoods stay in float32 when training under bf16 autocast.

    bfloat16 keeps ~3 significant digits; the rate term is a sum of -log2 of likelihoods that
    are differences of nearby CDF values, which that precision would mis-state.
    """
    return torch.autocast(x.device.type, enabled=False)


def _widen_float(t: torch.Tensor) -> torch.Tensor:
    """A 16-bit float tensor (an autocast output) as float32; float32/float64 ones as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _scale_grad_from(y: torch.Tensor, start: int, weight: float) -> torch.Tensor:
    """``y`` unchanged in value; channels from ``start`` on pass ``weight`` x their gradient back."""
    new = y[:, start:]
    return torch.cat([y[:, :start], new.detach() + weight * (new - new.detach())], 1)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters, stored in the weights manifest."""

    n: int = 96  # channels of the hidden transform layers
    m: int = 128  # latent channels
    levels: int = len(LAMBDAS)


@dataclass(frozen=True)
class ForwardResult:
    """Training-time output: reconstruction and the likelihood of each latent.

    ``aux_loss`` is a further term the model adds to the rate-distortion loss (``mcquic``'s
    codebook commitment); ``stats`` are numbers the training log averages and prints with the
    loss (``mcquic``'s codebook usage).
    """

    x_hat: torch.Tensor
    likelihoods: dict[str, torch.Tensor]
    aux_loss: torch.Tensor | None = None
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RescaledResult(ForwardResult):
    """A training pass that coded another picture than it reconstructs (``gblsr``'s
    arbitrary-scale steps code a downsampled crop and render the full one): the distortion is
    measured against ``target`` and the rate spread over ``rate_pixels`` coded pixels."""

    target: torch.Tensor | None = None
    rate_pixels: int | None = None


def _analysis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))


def _synthesis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
        deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
    )


def gain_init(levels: int) -> torch.Tensor:
    # Geometric spacing so higher quality starts with a finer quantiser; training refines it.
    return torch.logspace(-1.0, 1.5, levels, base=2.0)


class _Base(nn.Module):
    """Shared pieces: transforms, gains, one EntropyBottleneck per quality level.

    The :class:`~glocal_codec.codecs.base.LatentModel` contract: stride 16 (four stride-2
    convolutions), inputs padded to ``pad_multiple``.
    """

    downsample = 16
    pad_multiple = 16
    n_streams = 1
    refine_halo: int | None = None
    bound: int

    def __init__(self, cfg: ModelConfig, eb_channels: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.g_a = _analysis(cfg.n, cfg.m)
        self.g_s = _synthesis(cfg.n, cfg.m)
        self.gain = GainUnit(cfg.levels, cfg.m, gain_init(cfg.levels))
        self.ebs = nn.ModuleList(EntropyBottleneck(eb_channels) for _ in range(cfg.levels))
        # Coding tables, filled by build_tables() at export and loaded with the weights, so
        # the decoder never recomputes a density (bit-exact whatever the thread count).
        self.register_buffer(
            "tables", torch.zeros(cfg.levels, eb_channels, 2 * self.bound + 1, dtype=torch.float64)
        )
        self._coders = LevelCoders(self.bound)
        # fixed-point copies of the decoder's networks, built on first use; a plain dict keeps
        # them out of state_dict() and .to(device)
        self._fixed: dict[str, FixedPointNet] = {}

    @property
    def latent_channels(self) -> int:
        return self.cfg.m

    def fixed_point(self, name: str) -> FixedPointNet:
        """The fixed-point version of submodule ``name`` (``"g_s"``, ``"h_s"``), cached."""
        if name not in self._fixed:
            self._fixed[name] = FixedPointNet(getattr(self, name))
        return self._fixed[name]

    def synthesis_exact(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        """The synthesis as the decoder runs it: on the fixed-point grid (:mod:`glocal_codec.nn.fixed_point`),
        so a file decodes to the same pixels on every machine. The inverse gain is one IEEE
        division by a gain computed with :func:`~glocal_codec.util.exp_exact`."""
        gain = torch.from_numpy(exp_exact(self.gain.log_gain[q].detach().double().cpu().numpy()))
        y = y_hat.detach().double() / gain.to(y_hat.device).view(1, -1, 1, 1)
        return self.fixed_point("g_s")(y).float()

    def build_tables(self) -> None:
        """Freeze each quality's density into a float64 probability table (after training)."""
        with torch.no_grad():
            self.tables.copy_(frozen_tables(self.ebs, self.bound))
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._coders.clear()
        self._fixed.clear()

    def load_state_dict(self, *args, **kwargs):  # noqa: D102 - derived caches follow the weights
        self._reset_caches()
        return super().load_state_dict(*args, **kwargs)

    def table_coder(self, q: int) -> TableCoder:
        """The factorized coder of quality index ``q`` (built from the frozen tables on first use)."""
        return self._coders.get(self.tables, q)

    channel_index = staticmethod(LevelCoders.channel_index)


class FactorizedPrior(_Base):
    """Ballé 2017: y = g_a(x), coded with a per-channel factorized density."""

    bound = _Y_BOUND
    #: Latents of halo for tile-by-tile refinement (engine.refine_tiled): a latent reaches at most
    #: 2 latents' worth of pixels through g_s, and those pixels read 2 more.
    refine_halo = 4

    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__(cfg, cfg.m)

    def forward(self, x: torch.Tensor, q: int) -> ForwardResult:
        y = _widen_float(self.gain(self.g_a(x), q))
        with _full_precision(x):
            _, y_lik = self.ebs[q](y)  # additive-noise proxy for the rate
        y_hat = ste_round(y)  # decoder sees really-rounded values (mixed quantisation)
        x_hat = self.g_s(self.gain(y_hat, q, inverse=True))
        return ForwardResult(_widen_float(x_hat), {"y": y_lik})

    def analysis(self, x: torch.Tensor, q: int) -> torch.Tensor:
        return self.gain(self.g_a(x), q)

    def synthesis(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        return self.g_s(self.gain(y_hat, q, inverse=True))

    # Encoder-side refinement (engine.refine): the latents the encoder may adjust, their rate
    # and reconstruction under a given rounding, and the coding of refined latents.
    def latents(self, y: torch.Tensor, q: int) -> list[torch.Tensor]:
        return [y]

    def rd_terms(self, latents: list[torch.Tensor], rounding, q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(bits, reconstruction) of ``latents`` quantised by ``rounding``."""
        y_hat = rounding(latents[0])
        return factorized_bits(self.ebs[q], y_hat), self.synthesis(y_hat, q)

    def compress(self, latents: list[torch.Tensor], q: int) -> list[bytes]:
        y = latents[0]
        sym = torch.round(y).to(torch.int64).cpu().numpy()
        return [self.table_coder(q).encode(sym, self.channel_index(tuple(y.shape)))]

    def decompress(self, streams: list[bytes], shape: tuple[int, ...], q: int) -> torch.Tensor:
        sym = self.table_coder(q).decode(streams[0], self.channel_index(shape))
        return torch.from_numpy(sym.astype(np.float32)).view(shape)


class MeanScaleHyperprior(_Base):
    """Minnen 2018 mean-scale hyperprior (no autoregressive context)."""

    bound = Z_BOUND
    pad_multiple = 64  # stride 16 x the hyper-latent's stride 4: whole latent and hyper-latent positions
    n_streams = 2
    #: Latents of halo for tile-by-tile refinement (engine.refine_tiled): a tile's pixels reach 2
    #: latents (g_s) and read latents 2 further; those latents are dequantised around means that
    #: h_s computes from hyper-latents up to 7 latent rows away (measured), so 2 + 2 + 8 = 12.
    refine_halo = 12

    def __init__(self, cfg: ModelConfig = ModelConfig()) -> None:
        super().__init__(cfg, cfg.n)
        n, m = cfg.n, cfg.m
        self.h_a = nn.Sequential(
            conv(m, n, 3, 1), nn.LeakyReLU(inplace=True), conv(n, n), nn.LeakyReLU(inplace=True), conv(n, n)
        )
        self.h_s = nn.Sequential(
            deconv(n, m), nn.LeakyReLU(inplace=True), deconv(m, m * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(m * 3 // 2, 2 * m, 3, 1),
        )
        self.gaussian = GaussianConditional(None)
        self.coder = GaussianCoder()
        # float64 CPU copy of h_s, held in a plain list so it is not a registered submodule
        # (it must stay out of state_dict(), parameters() and .to(device))
        self._h_s64: list[nn.Module] = []

    def forward(self, x: torch.Tensor, q: int, *, grow_from: int | None = None,
                grow_weight: float = 1.0) -> ForwardResult:
        """Training forward pass (noise proxy for the rate, rounded latent for the synthesis).

        ``grow_from`` (training a widened latent, :mod:`glocal_codec.train.widen`): latent channels
        from this index on are still growing. The synthesis sees them with additive uniform noise
        instead of rounding, so a small value is not hidden from it (rounding maps everything
        under 0.5 to 0, and gives the synthesis nothing to learn from), and their rate reaches the
        analysis with its gradient scaled by ``grow_weight`` (the hyperprior still learns their
        densities at full weight). The loop ramps the weight from 0 to 1, then drops ``grow_from``.
        """
        y = _widen_float(self.gain(self.g_a(x), q))
        y_rate = y if grow_from is None else _scale_grad_from(y, grow_from, grow_weight)
        with _full_precision(x):  # the entropy model in float32 even when training under autocast
            z = self.h_a(y_rate)
            z_hat, z_lik = self.ebs[q](z)
            scales, means = self.h_s(z_hat).chunk(2, 1)
            _, y_lik = self.gaussian(y_rate, scales, means=means)
        y_hat = ste_round(y - means) + means
        if grow_from is not None:
            noisy = y[:, grow_from:] + torch.empty_like(y[:, grow_from:]).uniform_(-0.5, 0.5)
            y_hat = torch.cat([y_hat[:, :grow_from], noisy], 1)
        x_hat = self.g_s(self.gain(y_hat, q, inverse=True))
        return ForwardResult(_widen_float(x_hat), {"y": y_lik, "z": z_lik})

    def analysis(self, x: torch.Tensor, q: int) -> torch.Tensor:
        return self.gain(self.g_a(x), q)

    def synthesis(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        return self.g_s(self.gain(y_hat, q, inverse=True))

    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Scale indices and means from the integer hyper-latent.

        Runs on the CPU in float64 whatever device the transforms use: the scale indices
        must be identical in encoder and decoder, and float64 keeps thread-count (and
        CPU/GPU) rounding differences ~1e-15, far below the spacing of the scale table. The
        means come from the fixed-point hyper-synthesis (:mod:`glocal_codec.nn.fixed_point`),
        so the decoded latent ``symbol + mean`` is the same bits on every machine.
        """
        if not self._h_s64:
            self._h_s64.append(copy.deepcopy(self.h_s).double().cpu().eval())
        with torch.no_grad():
            scales, _ = self._h_s64[0](z_hat.double().cpu()).chunk(2, 1)
            _, means = self.fixed_point("h_s")(z_hat.cpu()).chunk(2, 1)
        return self.coder.scale_index(scales.numpy()), means.numpy()

    def latents(self, y: torch.Tensor, q: int) -> list[torch.Tensor]:
        # z is refined as a free variable too (Yang et al. 2020 optimise both levels)
        return [y, self.h_a(y)]

    def rd_terms(self, latents: list[torch.Tensor], rounding, q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(bits, reconstruction) of ``[y, z]`` quantised by ``rounding``, as the coder sees them."""
        y, z = latents
        z_hat = rounding(z)
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat = rounding(y - means) + means  # the coder rounds the residual to the predicted mean
        lik = self.gaussian.likelihood_lower_bound(self.gaussian._likelihood(y_hat, scales, means))
        bits = factorized_bits(self.ebs[q], z_hat) - torch.log2(lik).sum()
        return bits, self.synthesis(y_hat, q)

    def compress(self, latents: list[torch.Tensor], q: int) -> list[bytes]:
        y, z = latents
        z_sym = torch.round(z).to(torch.int64).cpu().numpy()
        z_stream = self.table_coder(q).encode(z_sym, self.channel_index(tuple(z.shape)))
        idx, means = self.entropy_parameters(torch.from_numpy(z_sym))
        y_sym = np.round(y.double().cpu().numpy() - means).astype(np.int64)
        return [z_stream, self.coder.encode(y_sym, idx)]

    def decompress(self, streams: list[bytes], shape: tuple[int, ...], q: int) -> torch.Tensor:
        b, _, h, w = shape
        z_shape = (b, self.cfg.n, -(-h // 4), -(-w // 4))
        z_sym = self.table_coder(q).decode(streams[0], self.channel_index(z_shape)).reshape(z_shape)
        idx, means = self.entropy_parameters(torch.from_numpy(z_sym))
        if idx.shape != tuple(shape):
            raise ValueError(f"hyper-latent predicts {idx.shape}, expected {shape}")
        y_sym = self.coder.decode(streams[1], idx).reshape(shape)
        return torch.from_numpy((y_sym + means).astype(np.float32))

    def _reset_caches(self) -> None:
        super()._reset_caches()
        self._h_s64.clear()
