"""``glocal``: global + local attention transforms with a channel/checkerboard context model.

Inspired by Wang et al., "S2LIC: Learned Image Compression with the SwinV2 Block, Adaptive
Channel-wise and Global-inter Attention Context" (2024), built from this package's blocks:

* **Transforms** -- ``msh``'s conv/GDN skeleton (stride 16 in all; Ballé et al. 2018) with
  :class:`~glocal_codec.nn.GlocalBlock` stages (SwinV2 shifted-window attention, Liu et al.
  2022, plus attention to 8 x 8 pooled global tokens; linear in the number of pixels) at 1/4,
  1/8 and 1/16, each behind a per-channel LayerScale gate (:class:`~glocal_codec.nn.ScaledResidual`).
* **Hyperprior** -- ``z = h_a(y)`` coded with a factorized density per quality level (CompressAI
  ``EntropyBottleneck``, frozen into float64 tables like ``msh``); ``h_s(z)`` (msh's hyper
  synthesis plus a glocal stage) gives a prior scale and mean for every latent element
  (Ballé et al. 2018, Minnen et al. 2018), which the context model refines.
* **Warm start from msh** -- the layers shared with ``msh`` have its shapes, so
  ``train glocal --init-from msh.safetensors`` (:meth:`GlocalModel.adapt_source`) starts from
  msh's trained weights with every gate and every context correction at zero: the model then
  computes exactly msh's function, and training only has to learn what attention and context
  add. Attention transforms trained from scratch need far more steps than a CPU session has
  (the first glocal, trained that way, reconstructed Kodak at 27.3 dB even unquantised:
  ``benchmarks/transform_ceiling.py``).
* **Context model** -- the latent's channels are split into K slices (uneven by default,
  small ones first, as in He et al., "ELIC", CVPR 2022). Each slice is coded in two
  checkerboard passes (He et al., "Checkerboard Context Model for Efficient Learned Image
  Compression", CVPR 2021): *anchors* first, then *non-anchors*, which also see a 5x5 conv of
  the decoded anchors. An entropy-parameter network (1x1 convs) gets for every slice
    - the hyper features,
    - a channel context from all previously decoded slices (Minnen & Singh, "Channel-wise
      autoregressive entropy models for learned image compression", ICIP 2020), refined by
      channel-wise (transposed) attention -- S2LIC's adaptive channel-wise context,
    - a global-inter summary: attention from each position (queried by its hyper features)
      to <= 64 pooled tokens of the already decoded slices (the hyper features for slice 0),
  and predicts a correction to the hyperprior's Gaussian mean and scale per element. The
  latent is quantised as ``round(y - mean) + mean`` (STE in training; the symbol coded is the
  integer residual).
  Every pass is whole-tensor work: decoding costs 2K network passes, never a per-pixel loop.
* **Variable rate** -- per-quality gain vectors (Cui et al. 2021) as in ``msh``; one model,
  six quality levels (``hyperprior.LAMBDAS``).

Bit-exactness (encoder and decoder must derive identical scale indices): the whole entropy
model (``h_s`` and the slice networks) runs, for coding, on a float64 CPU copy; the encoder
runs exactly the decoder's sequence of passes on the values the decoder will have (the
integer hyper-latent, then ``symbol + mean`` per decoded position), so both compute the same
float64 numbers. Thread-count or CPU/GPU differences in float64 are ~1e-15 relative, far
below the 1.6 % spacing of the 64-entry scale table that the indices are read from; the
analysis transform may run on any device in any precision, since only its rounded output is
transmitted. The same reasoning and approach as ``msh`` (see ``hyperprior.py``). The decoder's
synthesis runs on a fixed-point grid, attention stages included (``synthesis_exact``,
:mod:`glocal_codec.nn.fixed_point_attention`), so decoded pixels are identical on every machine.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..nn import GDN, ChannelAttention, GainUnit, GlobalTokenAttention, ScaledResidual, conv, deconv, glocal_stage
from ..nn import heads_for, ste_round
from compressai.entropy_models import EntropyBottleneck, GaussianConditional  # noqa: E402  (after ..nn: quiet import)

from ..bitstream.errors import CorruptStreamError
from ..nn.fixed_point import FixedPointNet
from ..util import exp_exact
from ..entropy import GaussianCoder, GaussianPassDecoder, LevelCoders, TableCoder, factorized_bits, frozen_tables
from .hyperprior import LAMBDAS, Z_BOUND, ForwardResult, gain_init
from .learned import LearnedImageCodec

__all__ = ["GlocalConfig", "GlocalModel", "GlocalCodec", "GlocalResult"]


def _auto_slices(m: int) -> tuple[int, ...]:
    """Four uneven slices in proportion 1:1:2:2 (small first, ELIC-style): 96 -> 16, 16, 32, 32."""
    if m < 4:
        return (m,)
    a = max(1, m // 6)
    b = max(1, (m - 2 * a) // 2)
    return (a, a, b, m - 2 * a - b)


@dataclass(frozen=True)
class GlocalConfig:
    """Architecture hyper-parameters of :class:`GlocalModel` (stored in the weights manifest)."""

    n: int = 64  # channels of the transforms and of the hyper-latent z
    m: int = 96  # latent channels
    levels: int = len(LAMBDAS)
    slices: tuple[int, ...] = ()  # channel slices of the latent; () = 4 uneven ones; an int K = K even ones
    window: int = 8  # attention window (latent / feature pixels)
    depth: int = 1  # GlocalBlocks per transform stage
    head_dim: int = 32  # channels per attention head
    tokens: int = 8  # global tokens per side (tokens**2 in all)
    ctx: int = 128  # width of the entropy-parameter networks
    attention: bool = True  # False: attention-free conv blocks in the transforms (faster)

    def __post_init__(self) -> None:
        s = self.slices
        if isinstance(s, int):
            k = max(1, min(s, self.m))
            s = tuple(self.m // k + (i >= k - self.m % k) for i in range(k))
        s = tuple(int(v) for v in s) or _auto_slices(self.m)
        if sum(s) != self.m or min(s) < 1:
            raise ValueError(f"slices {s} must be positive and sum to m={self.m}")
        object.__setattr__(self, "slices", s)


@dataclass(frozen=True)
class GlocalResult(ForwardResult):
    """:class:`ForwardResult` plus the quantised latent the synthesis saw."""

    y_hat: torch.Tensor | None = None


def _checkerboard(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 1, h, w) bool: True at anchors ((row + col) even), coded in the first pass."""
    i = torch.arange(h, device=device).view(-1, 1)
    j = torch.arange(w, device=device).view(1, -1)
    return ((i + j) % 2 == 0).view(1, 1, h, w)


#: what ``_EntropyModel.base`` hands to ``params``: first-layer activations, (prior scales, means)
_Base = tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


def _stage(dim: int, depth: int, cfg: GlocalConfig) -> ScaledResidual:
    """A glocal stage (``depth`` GlocalBlocks) behind a LayerScale gate (identity at gate 0)."""
    kw = dict(window=cfg.window, tokens=cfg.tokens, attention=cfg.attention, head_dim=cfg.head_dim)
    return ScaledResidual(glocal_stage(dim, depth, **kw), dim)


class _ChannelContext(nn.Module):
    """Previously decoded slices -> ``ctx`` features: 1x1 projection + channel attention."""

    def __init__(self, in_ch: int, ctx: int, head_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, ctx, 1)
        # no depth-wise conv: pure channel mixing is the point here, and a float64 depth-wise
        # conv is by far the slowest op on the CPU
        self.attn = ChannelAttention(ctx, heads_for(ctx, head_dim), depthwise=False)
        self.act = nn.GELU()

    def forward(self, prev: torch.Tensor) -> torch.Tensor:
        t = self.proj(prev)
        return self.act(t + self.attn(t))


class _ParamNet(nn.Module):
    """Entropy parameters from 1x1 convs: ``MLP(cat(base, spatial))``, first layer split in two.

    ``W [base; sp] = W_b base + W_s sp``: the base part is the same in both checkerboard
    passes, so it is computed once per slice (``pre``); the anchor pass has no spatial context
    (zero, as in He et al. 2021) and skips ``W_s`` entirely.
    """

    def __init__(self, base_ch: int, sp_ch: int, hidden: int, out_ch: int) -> None:
        super().__init__()
        self.base_in = nn.Conv2d(base_ch, hidden, 1)
        self.sp_in = nn.Conv2d(sp_ch, hidden, 1, bias=False)
        self.rest = nn.Sequential(nn.GELU(), nn.Conv2d(hidden, hidden, 1), nn.GELU(), nn.Conv2d(hidden, out_ch, 1))

    def pre(self, base: torch.Tensor) -> torch.Tensor:
        return self.base_in(base)

    def forward(self, pre: torch.Tensor, sp: torch.Tensor | None) -> torch.Tensor:
        return self.rest(pre if sp is None else pre + self.sp_in(sp))


class _EntropyModel(nn.Module):
    """Everything that turns decoded values into Gaussian parameters (float64 CPU copy when coding).

    Only 1x1 convs act on a mix of anchor and non-anchor positions, so a pass's parameters
    at its own positions never depend on values that pass has not decoded yet.
    """

    def __init__(self, cfg: GlocalConfig) -> None:
        super().__init__()
        n, m, ctx = cfg.n, cfg.m, cfg.ctx
        self.slices = cfg.slices
        self.m = m
        hyp = 2 * m  # hyper features: a hyperprior (scale, mean) for every latent channel
        # msh's hyper synthesis (same layers, so msh's weights fit) plus one glocal stage
        self.h_s = nn.Sequential(
            deconv(n, m), nn.LeakyReLU(inplace=True),
            _stage(m, 1, cfg),
            deconv(m, m * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(m * 3 // 2, hyp, 3, 1),
        )
        heads = heads_for(ctx, cfg.head_dim)
        starts = np.cumsum((0,) + cfg.slices)
        self.channel_ctx = nn.ModuleList(
            _ChannelContext(int(starts[k]), ctx, cfg.head_dim) if k else nn.Identity() for k in range(len(cfg.slices))
        )
        self.global_ctx = nn.ModuleList(
            GlobalTokenAttention(hyp, heads, cfg.tokens, context_dim=int(starts[k]) if k else hyp,
                                 inner=ctx, out_dim=ctx)
            for k in range(len(cfg.slices))
        )
        self.spatial_ctx = nn.ModuleList(nn.Conv2d(c, 2 * c, 5, padding=2) for c in cfg.slices)
        self.param = nn.ModuleList(
            _ParamNet(hyp + (ctx if k else 0) + ctx, 2 * c, ctx, 2 * c) for k, c in enumerate(cfg.slices)
        )

    def hyper(self, z_hat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, n, ceil(H/4), ceil(W/4)) -> (N, 2m, H, W) hyper features (prior scales, prior means)."""
        return self.h_s(z_hat)[..., : size[0], : size[1]]

    def base(self, k: int, hyper: torch.Tensor, prev: torch.Tensor | None) -> _Base:
        """What slice ``k``'s parameters need from everything but the slice itself.

        The first-layer activations of its parameter network and the hyperprior's own
        (scale, mean) for its channels, which the network refines.
        """
        if k == 0:
            feats = [hyper, self.global_ctx[0](hyper)]
        else:
            feats = [hyper, self.channel_ctx[k](prev), self.global_ctx[k](hyper, prev)]
        lo, hi = (int(v) for v in np.cumsum((0,) + self.slices)[k: k + 2])
        prior = (hyper[:, lo:hi], hyper[:, self.m + lo: self.m + hi])
        return self.param[k].pre(torch.cat(feats, dim=1)), prior

    def params(self, k: int, base: _Base, anchors: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, means) of slice ``k``; ``anchors`` = decoded anchors (0 elsewhere) for pass 2.

        Hyperprior estimate plus the context network's correction: with the network's last
        layer at zero (``GlocalModel.adapt_source`` from ``msh``) this is exactly msh's prior.
        """
        pre, (prior_scales, prior_means) = base
        sp = None if anchors is None else self.spatial_ctx[k](anchors)
        d_scales, d_means = self.param[k](pre, sp).chunk(2, dim=1)
        return prior_scales + d_scales, prior_means + d_means


#: The Gaussian coder over the default scale table (stateless: one for all models).
_CODER = GaussianCoder()

#: step(k, mask, means, scales) -> quantised slice k (values at ``mask`` positions are used)
_Step = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class GlocalModel(nn.Module):
    """The ``glocal`` network; same interface as :class:`~.hyperprior.MeanScaleHyperprior`.

    ``forward(x, q)`` -> :class:`GlocalResult` (x_hat, likelihoods of y and z, y_hat); the
    :class:`~glocal_codec.codecs.base.LatentModel` contract (``analysis`` / ``synthesis``,
    ``latents(y, q)`` -> [y, z], ``compress`` -> [z stream, y stream], ``decompress``,
    ``rd_terms``, ``build_tables()`` after training); ``encode_latent`` also returns the latent
    the decoder will reconstruct.
    Any input size works (outputs are cropped back); the plugin pads to 64.
    """

    config_class = GlocalConfig
    downsample = 16
    pad_multiple = 64  # stride 16 x hyper stride 4: whole latent and hyper-latent positions
    n_streams = 2
    refine_halo = None  # attention and the context model see the whole latent: no tile-wise refinement
    bound = Z_BOUND

    def __init__(self, cfg: GlocalConfig = GlocalConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        n, m, d = cfg.n, cfg.m, cfg.depth
        # The conv/GDN skeleton is msh's (Minnen et al. 2018; same layers and shapes, so msh's
        # trained weights fit, see adapt_source); glocal stages sit behind LayerScale gates
        # after the GDNs at 1/4 and 1/8 and on the latent at 1/16 (1/2 would cost 4x as much
        # as 1/4: GDN alone there), mirrored in the synthesis. A conv backbone with attention
        # added on top is also how the mixed CNN/transformer codecs are built (Liu et al.,
        # "Learned Image Compression with Mixed Transformer-CNN Architectures", CVPR 2023).
        self.g_a = nn.Sequential(
            conv(3, n), GDN(n),  # /2
            conv(n, n), GDN(n), _stage(n, d, cfg),  # /4
            conv(n, n), GDN(n), _stage(n, d, cfg),  # /8
            conv(n, m), _stage(m, d, cfg),  # /16
        )
        self.g_s = nn.Sequential(
            _stage(m, d, cfg), deconv(m, n), GDN(n, inverse=True),  # /16 -> /8
            _stage(n, d, cfg), deconv(n, n), GDN(n, inverse=True),  # /8 -> /4
            _stage(n, d, cfg), deconv(n, n), GDN(n, inverse=True),  # /4 -> /2
            deconv(n, 3),
        )
        self.h_a = nn.Sequential(  # msh's hyper analysis
            conv(m, n, 3, 1), nn.LeakyReLU(inplace=True), conv(n, n), nn.LeakyReLU(inplace=True), conv(n, n),
        )
        self.entropy = _EntropyModel(cfg)
        self.gain = GainUnit(cfg.levels, m, gain_init(cfg.levels))
        self.ebs = nn.ModuleList(EntropyBottleneck(n) for _ in range(cfg.levels))
        self.gaussian = GaussianConditional(None)
        # z coding tables (float64), frozen by build_tables() and shipped with the weights
        self.register_buffer("tables", torch.zeros(cfg.levels, n, 2 * self.bound + 1, dtype=torch.float64))
        self._coders = LevelCoders(self.bound)
        # the float64 copy lives in a plain dict, not as a module attribute: a registered
        # submodule would join state_dict() / parameters() and follow model.to(device)
        self._ent64: dict[str, _EntropyModel] = {}
        # the fixed-point synthesis (synthesis_exact), built on first use; a plain dict like _ent64
        self._fixed: dict[str, FixedPointNet] = {}

    #: msh's layer index -> this model's, per Sequential (the glocal stages sit in between)
    _FROM_MSH: dict[str, tuple[str, dict[int, int]]] = {
        "g_a": ("g_a", {0: 0, 1: 1, 2: 2, 3: 3, 4: 5, 5: 6, 6: 8}),
        "g_s": ("g_s", {0: 1, 1: 2, 2: 4, 3: 5, 4: 7, 5: 8, 6: 9}),
        "h_a": ("h_a", {0: 0, 2: 2, 4: 4}),
        "h_s": ("entropy.h_s", {0: 0, 2: 3, 4: 5}),
    }

    def adapt_source(self, src: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
        """Map a ``msh`` state dict onto this model (``train glocal --init-from msh.safetensors``).

        msh's transforms, hyper-transforms, gains and z densities go to the same layers here;
        every LayerScale gate and the last layer of every context network are set to zero, so
        the result computes exactly msh's function (same latent, same hyperprior, same rate)
        and training starts from msh's rate-distortion point instead of from scratch. Returns
        ``(state dict, True)`` -- True: the z densities fit this model's latent -- or
        ``(src, False)`` when ``src`` is not msh's (e.g. a glocal checkpoint).
        """
        if "h_s.0.weight" not in src or any(k.startswith("entropy.") for k in src):
            return src, False
        out: dict[str, torch.Tensor] = {}
        for key, value in src.items():
            head, _, rest = key.partition(".")
            if head in self._FROM_MSH:
                idx, _, tail = rest.partition(".")
                new, table = self._FROM_MSH[head]
                if int(idx) not in table:
                    continue
                key = f"{new}.{table[int(idx)]}.{tail}"
            out[key] = value
        for name, mod in self.named_modules():
            if isinstance(mod, ScaledResidual):
                out[f"{name}.gamma"] = torch.zeros_like(mod.gamma)
        for k, net in enumerate(self.entropy.param):
            last = len(net.rest) - 1
            out[f"entropy.param.{k}.rest.{last}.weight"] = torch.zeros_like(net.rest[last].weight)
            out[f"entropy.param.{k}.rest.{last}.bias"] = torch.zeros_like(net.rest[last].bias)
        return out, True

    @property
    def coder(self) -> GaussianCoder:
        """The y coder: stateless and shared (constriction models cannot be pickled or deep-copied)."""
        return _CODER

    # -- caches derived from the weights -----------------------------------------------------
    def _reset_caches(self) -> None:
        self._coders.clear()
        self._ent64.clear()
        self._fixed.clear()

    def __getstate__(self):
        # deepcopy / pickle (EMA copies, torch.save(model)): drop the derived caches, which hold
        # constriction objects that cannot be copied; they are rebuilt on first use
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state["_coders"], state["_ent64"], state["_fixed"] = LevelCoders(self.bound), {}, {}
        return state

    def load_state_dict(self, *args, **kwargs):  # noqa: D102 - derived caches follow the weights
        self._reset_caches()
        return super().load_state_dict(*args, **kwargs)

    def train(self, mode: bool = True):  # noqa: D102 - weights change while training: drop caches
        self._reset_caches()
        return super().train(mode)

    @property
    def latent_channels(self) -> int:
        return self.cfg.m

    def build_tables(self) -> None:
        """Freeze each quality's z density into a float64 probability table (after training)."""
        with torch.no_grad():
            self.tables.copy_(frozen_tables(self.ebs, self.bound))
        self._reset_caches()

    def table_coder(self, q: int) -> TableCoder:
        """The z coder of quality index ``q`` (built from the frozen tables on first use)."""
        return self._coders.get(self.tables, q)

    def entropy64(self) -> _EntropyModel:
        """The float64 CPU copy of the entropy model used for coding (built once, cached)."""
        if "cpu" not in self._ent64:
            with torch.no_grad():
                self._ent64["cpu"] = copy.deepcopy(self.entropy).double().cpu().eval()
        return self._ent64["cpu"]

    # -- transforms --------------------------------------------------------------------------
    def analysis(self, x: torch.Tensor, q: int) -> torch.Tensor:
        """(N, 3, H, W) -> (N, m, ceil(H/16), ceil(W/16)), gain of quality index ``q`` applied."""
        return self.gain(self.g_a(x), q)

    def synthesis(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        """(N, m, h, w) -> (N, 3, 16h, 16w)."""
        return self.g_s(self.gain(y_hat, q, inverse=True))

    def fixed_point(self) -> FixedPointNet:
        """The fixed-point version of ``g_s`` (:mod:`glocal_codec.nn.fixed_point_attention`), cached."""
        if "g_s" not in self._fixed:
            with torch.no_grad():
                self._fixed["g_s"] = FixedPointNet(self.g_s)
        return self._fixed["g_s"]

    def synthesis_exact(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        """The synthesis as the decoder runs it: on the fixed-point grid, attention included
        (:mod:`glocal_codec.nn.fixed_point_attention`), so a file decodes to the same pixels on
        every machine (thread count, CPU kernel set). The inverse gain is one IEEE division by a
        gain computed with :func:`~glocal_codec.util.exp_exact`, as in ``msh``."""
        gain = torch.from_numpy(exp_exact(self.gain.log_gain[q].detach().double().cpu().numpy()))
        y = y_hat.detach().double() / gain.to(y_hat.device).view(1, -1, 1, 1)
        return self.fixed_point()(y).float()

    # -- the context model: one code path for training, encoding and decoding ---------------
    def _run(self, ent: _EntropyModel, hyper: torch.Tensor, step: _Step) -> torch.Tensor:
        """Code every slice in two checkerboard passes; returns the quantised latent."""
        h, w = hyper.shape[-2:]
        anchor = _checkerboard(h, w, hyper.device)
        done: list[torch.Tensor] = []
        for k in range(len(self.cfg.slices)):
            base = ent.base(k, hyper, torch.cat(done, dim=1) if done else None)
            scales, means = ent.params(k, base, None)
            ya = step(k, anchor, means, scales)
            anchors = torch.where(anchor, ya, torch.zeros_like(ya))
            scales, means = ent.params(k, base, anchors)
            yn = step(k, ~anchor, means, scales)
            done.append(torch.where(anchor, ya, yn))
        return torch.cat(done, dim=1)

    def forward(self, x: torch.Tensor, q: int) -> GlocalResult:
        h, w = x.shape[-2:]
        y = self.analysis(x, q)
        z = self.h_a(y)
        _, z_lik = self.ebs[q](z)
        z_hat = ste_round(z) if self.training else torch.round(z)
        hyper = self.entropy.hyper(z_hat, y.shape[-2:])
        ys = y.split(self.cfg.slices, dim=1)
        seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

        def step(k: int, mask: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
            seen.append((mask, means, scales))
            r = ys[k] - means
            return (ste_round(r) if self.training else torch.round(r)) + means

        y_hat = self._run(self.entropy, hyper, step)
        # pass 1 and pass 2 of each slice own complementary positions: merge their parameters
        means = torch.cat([torch.where(a[0], a[1], b[1]) for a, b in zip(seen[::2], seen[1::2])], dim=1)
        scales = torch.cat([torch.where(a[0], a[2], b[2]) for a, b in zip(seen[::2], seen[1::2])], dim=1)
        _, y_lik = self.gaussian(y, scales, means=means)
        x_hat = self.synthesis(y_hat, q)[..., :h, :w]
        return GlocalResult(x_hat, {"y": y_lik, "z": z_lik}, y_hat=y_hat)

    # -- real bits ---------------------------------------------------------------------------
    def _hyper64(self, z_sym: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        return self.entropy64().hyper(torch.from_numpy(z_sym).double(), size)

    # -- encoder-side refinement (engine.refine) --------------------------------------------
    def latents(self, y: torch.Tensor, q: int) -> list[torch.Tensor]:
        return [y, self.h_a(y)]

    def rd_terms(self, latents: list[torch.Tensor], rounding, q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(bits, reconstruction) of ``[y, z]`` quantised by ``rounding``, through the same two
        checkerboard passes per slice that the coder runs."""
        y, z = latents
        z_hat = rounding(z)
        ys = y.split(self.cfg.slices, dim=1)
        bits = [factorized_bits(self.ebs[q], z_hat)]

        def step(k: int, mask: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
            y_hat = rounding(ys[k] - means) + means
            lik = self.gaussian.likelihood_lower_bound(self.gaussian._likelihood(y_hat, scales, means))
            bits.append(torch.where(mask, -torch.log2(lik), torch.zeros_like(lik)).sum())
            return y_hat

        y_hat = self._run(self.entropy, self.entropy.hyper(z_hat, y.shape[-2:]), step)
        return torch.stack(bits).sum(), self.synthesis(y_hat, q)

    def compress(self, latents: list[torch.Tensor], q: int) -> list[bytes]:
        return self.encode_latent(latents[0], q, z=latents[1])[0]

    @torch.no_grad()
    def encode_latent(self, y: torch.Tensor, q: int, z: torch.Tensor | None = None) -> tuple[list[bytes], torch.Tensor]:
        """Streams for ``y`` (and its hyper-latent ``z``, by default ``h_a(y)``) and the float64
        latent the decoder will reconstruct from them."""
        z = self.h_a(y) if z is None else z
        z_sym = torch.round(z).to(torch.int64).cpu().numpy()
        z_stream = self.table_coder(q).encode(z_sym, LevelCoders.channel_index(tuple(z.shape)))
        ys = y.detach().double().cpu().split(self.cfg.slices, dim=1)
        syms: list[np.ndarray] = []
        idxs: list[np.ndarray] = []

        def step(k: int, mask: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
            r = torch.round(ys[k] - means)
            sel = mask.expand_as(means)
            syms.append(r[sel].to(torch.int64).numpy())
            idxs.append(self.coder.scale_index(scales[sel].numpy()))
            return r + means

        y_hat = self._run(self.entropy64(), self._hyper64(z_sym, tuple(y.shape[-2:])), step)
        return [z_stream, self.coder.encode(np.concatenate(syms), np.concatenate(idxs))], y_hat

    @torch.no_grad()
    def decompress(self, streams: list[bytes], shape: tuple[int, ...], q: int) -> torch.Tensor:
        b, m, h, w = shape
        if m != self.cfg.m:
            raise ValueError(f"latent has {m} channels, the model {self.cfg.m}")
        z_shape = (b, self.cfg.n, -(-h // 4), -(-w // 4))
        z_sym = self.table_coder(q).decode(streams[0], LevelCoders.channel_index(z_shape)).reshape(z_shape)
        dec = GaussianPassDecoder(self.coder, streams[1], b * m * h * w)

        def step(k: int, mask: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
            sel = mask.expand_as(means)
            sym = dec.decode(self.coder.scale_index(scales[sel].numpy()))
            out = torch.zeros_like(means)
            out[sel] = torch.from_numpy(sym).to(means.dtype) + means[sel]
            return out

        y_hat = self._run(self.entropy64(), self._hyper64(z_sym.astype(np.int64), (h, w)), step)
        if not torch.isfinite(y_hat).all():  # absurd hyper-latent values in a crafted file
            raise CorruptStreamError("the decoded latent is not finite")
        return y_hat.to(self.gain.log_gain.dtype)


class GlocalCodec(LearnedImageCodec):
    name = "glocal"
    description = ("SwinV2 window + global-token attention transforms, channel/checkerboard context "
                   "(S2LIC-style), variable rate; trained by this project")
    model_class = GlocalModel
