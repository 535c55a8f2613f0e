"""``mcquic``: multi-codebook vector quantisation in a coarse-to-fine cascade, indices coded
with a categorical prior conditioned on the coarser level -- no sequential context model.

After Zhu, Li, Wang et al., "Unified Multivariate Gaussian Mixture for Efficient Neural Image
Compression" (McQuic, CVPR 2022; public code xiaosu-zhu/McQuic): the latent is split into
groups and every group is replaced by its nearest codeword (a multivariate Gaussian mixture
seen in its hard limit), at several resolutions, each level coding the residual of the
reconstruction the coarser ones give. Index maps are entropy coded with probabilities that
depend only on already-decoded *coarser* data, so every position of a level decodes at once.

The network here (all sizes in :class:`McquicConfig`):

* analysis: ``msh``'s four strided GDN stages (three to 1/8, one more to the 1/16 latent
  ``y0``, 192 channels) -- started from the shipped ``msh`` weights;
* cascade: ``y1 = D1(y0)`` at 1/32 and ``y2 = D2(y1)`` at 1/64 (2x2 strided convolutions that
  start as average pooling); level 2 is quantised directly; each finer level ``l`` first
  up-samples the coarser reconstruction (``u_l = U_l(y^_{l+1})``: a 2x2 transposed convolution
  that starts as nearest-neighbour copying, plus a zero-initialised 3x3 residual branch) and
  quantises ``y_l - u_l``;
* the 1/16 level is a residual quantiser of ``stages`` stages, and the quality level is the
  number of stages sent (one network, three rates: q1 = 1 stage ... q3 = 3 stages);
* synthesis: ``msh``'s synthesis pruned to narrower hidden widths (``synth``) so decoding
  costs about half of ``msh``'s -- the last up-sampling stages, at the highest resolutions,
  dominate the decoder's work;
* priors: the 1/64 indices use one static frequency table per codebook; every finer index
  map (each stage of the 1/16 level included) a small convolutional network on the
  reconstruction decoded so far, giving logits for each group's codebook.

Determinism: everything that feeds the range coder or the pixels runs on the fixed-point grid
(:mod:`glocal_codec.nn.fixed_point`): codewords are rounded to ``2**-16``, the up-sampling,
prior and synthesis networks run exactly in float64, and logits become integer tables through
:func:`~glocal_codec.entropy.categorical.pmf_from_logits`. The encoder computes the same
reconstructions to choose the residual indices, so a file decodes to the same pixels on every
machine and thread count.

Not from the paper: McQuic trains its own transforms from scratch on GPUs for days; here the
analysis and synthesis come from ``msh`` (this project's CPU budget) and the quantisers use
EMA codebook updates (:class:`~glocal_codec.nn.vq.MultiCodebookQuantizer`, ``mode="ema"``)
rather than the paper's Gumbel-softmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bitstream.errors import CorruptStreamError
from ..entropy.categorical import CategoricalCoder, pmf_from_logits
from ..nn import GDN, deconv
from ..nn.fixed_point import FixedPointNet, to_grid
from ..nn.vq import MultiCodebookQuantizer
from .hyperprior import ForwardResult, _analysis
from .learned import LatentCodec

__all__ = ["McquicConfig", "McquicModel", "McquicCodec"]

#: Probability precision of the index tables (bits).
_PRECISION = 16


@dataclass(frozen=True)
class McquicConfig:
    """Architecture of :class:`McquicModel` (stored in the weights manifest)."""

    n: int = 128  # analysis channels (msh's)
    m: int = 192  # latent channels at every level
    synth: tuple[int, int, int] = (128, 128, 64)  # hidden widths of the synthesis (msh: 128, 128, 128)
    coarse: tuple[tuple[int, int], ...] = ((4, 64), (4, 256))  # (groups, codebook size) at 1/64, 1/32
    fine_groups: int = 3  # groups of every 1/16 stage
    fine_k: int = 256  # codebook size of every 1/16 stage
    stages: int = 3  # residual stages at 1/16 = quality levels
    hidden: int = 96  # channels of the prior and up-sampling networks
    levels: int = 3  # quality levels (== stages)
    beta: float = 0.25  # commitment weight


def _synthesis(m: int, widths: tuple[int, int, int]) -> nn.Sequential:
    a, b, c = widths
    return nn.Sequential(deconv(m, a), GDN(a, inverse=True), deconv(a, b), GDN(b, inverse=True),
                         deconv(b, c), GDN(c, inverse=True), deconv(c, 3))


def _down(m: int) -> nn.Conv2d:
    d = nn.Conv2d(m, m, 2, stride=2)
    with torch.no_grad():  # starts as 2x2 average pooling, channel by channel
        d.weight.zero_()
        d.weight[torch.arange(m), torch.arange(m)] = 0.25
        d.bias.zero_()
    return d


def _up(m: int) -> nn.ConvTranspose2d:
    u = nn.ConvTranspose2d(m, m, 2, stride=2)
    with torch.no_grad():  # starts as nearest-neighbour up-sampling
        u.weight.zero_()
        u.weight[torch.arange(m), torch.arange(m)] = 1.0
        u.bias.zero_()
    return u


def _refiner(m: int, hidden: int) -> nn.Sequential:
    last = nn.Conv2d(hidden, m, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Conv2d(m, hidden, 3, padding=1), nn.LeakyReLU(0.125), last)


def _prior(m: int, hidden: int, groups: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(m, hidden, 3, padding=1), nn.LeakyReLU(0.125),
                         nn.Conv2d(hidden, hidden, 1), nn.LeakyReLU(0.125), nn.Conv2d(hidden, groups * k, 1))


def _bits(logits: torch.Tensor, idx: torch.Tensor, groups: int, k: int) -> torch.Tensor:
    """Probabilities of ``idx (B, m, H, W)`` under ``logits (B, m*k, H, W)`` (for the rate)."""
    b, _, h, w = logits.shape
    logp = F.log_softmax(logits.view(b, groups, k, h, w), dim=2)
    return logp.gather(2, idx.unsqueeze(2)).squeeze(2).exp()


class McquicModel(nn.Module):
    """The network and entropy model of ``mcquic`` (a :class:`~.base.LatentModel`).

    ``q`` (0-based quality index) = number of 1/16 stages sent minus one.
    """

    config_class = McquicConfig
    downsample = 16
    pad_multiple = 64  # the 1/64 level needs whole positions
    refine_halo = None

    def __init__(self, cfg: McquicConfig = McquicConfig()) -> None:
        super().__init__()
        if cfg.levels != cfg.stages:
            raise ValueError(f"mcquic's quality levels are its 1/16 stages: levels ({cfg.levels}) must equal "
                             f"stages ({cfg.stages})")
        self.cfg = cfg
        n, m, hid = cfg.n, cfg.m, cfg.hidden
        self.g_a = _analysis(n, m)
        self.g_s = _synthesis(m, tuple(cfg.synth))
        self.down = nn.ModuleList([_down(m), _down(m)])  # 1/16 -> 1/32 -> 1/64
        self.up = nn.ModuleList([_up(m), _up(m)])  # up[0]: 1/32 -> 1/16, up[1]: 1/64 -> 1/32
        self.refine = nn.ModuleList([_refiner(m, hid), _refiner(m, hid)])
        (g2, k2), (g1, k1) = cfg.coarse
        vq = dict(mode="ema", beta=cfg.beta, dead_after=50, kmeans_on_first_batch=True)
        self.q2 = MultiCodebookQuantizer(m, g2, k2, **vq)
        self.q1 = MultiCodebookQuantizer(m, g1, k1, **vq)
        self.q0 = nn.ModuleList(MultiCodebookQuantizer(m, cfg.fine_groups, cfg.fine_k, **vq)
                                for _ in range(cfg.stages))
        self.static_logits = nn.Parameter(torch.zeros(g2, k2))  # the 1/64 prior
        self.p1 = _prior(m, hid, g1, k1)
        self.p0 = nn.ModuleList(_prior(m, hid, cfg.fine_groups, cfg.fine_k) for _ in range(cfg.stages))
        self._fixed: dict[str, FixedPointNet] = {}
        self._coder = CategoricalCoder(_PRECISION)

    # -- LatentModel facts ----------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return self.cfg.m

    @property
    def n_streams(self) -> int:
        """One stream per index map: 1/64, 1/32, then every 1/16 stage (stages a level does not
        send are empty)."""
        return 2 + self.cfg.stages

    def level_facts(self, q: int) -> dict[str, str]:
        """What ``glocal-codec info`` says about a file of quality index ``q`` (the manifest keeps it)."""
        (g2, k2), (g1, k1) = self.cfg.coarse
        g0, k0 = self.cfg.fine_groups, self.cfg.fine_k
        bound = (g2 * np.log2(k2) / 4096 + g1 * np.log2(k1) / 1024 + (q + 1) * g0 * np.log2(k0) / 256)
        return {
            "levels": f"1/64, 1/32, 1/16 x {q + 1} stage{'s' if q else ''}",
            "codebooks": f"{g2} + {g1} + {(q + 1) * g0}",
            "codebook sizes": f"{k2} / {k1} / {k0}",
            "uniform bound": f"{bound:.4f} bpp",
        }

    # -- the cascade (float, for training) -----------------------------------------------------
    def _upsample(self, i: int, y_hat: torch.Tensor) -> torch.Tensor:
        u = self.up[i](y_hat)
        return u + self.refine[i](u)

    def forward(self, x: torch.Tensor, q: int, **_: object) -> ForwardResult:
        """Training pass: stages ``0..q`` of the 1/16 level; rates are the priors' cross-entropies."""
        y0 = self.g_a(x)
        y1 = self.down[0](y0)
        y2 = self.down[1](y1)
        lik: dict[str, torch.Tensor] = {}
        aux = []
        stats: dict[str, float] = {}
        r2 = self.q2(y2)
        (g2, k2), (g1, k1) = self.cfg.coarse
        logits2 = self.static_logits.view(1, g2 * k2, 1, 1).expand(y2.shape[0], -1, *y2.shape[-2:])
        lik["i64"] = _bits(logits2, r2.indices, g2, k2)
        aux.append(r2.loss)
        stats["use64"] = float(r2.usage.mean())
        u1 = self._upsample(1, r2.quantized)
        r1 = self.q1(y1 - u1)
        lik["i32"] = _bits(self.p1(u1), r1.indices, g1, k1)
        aux.append(r1.loss)
        stats["use32"] = float(r1.usage.mean())
        cur = self._upsample(0, u1 + r1.quantized)
        g0, k0 = self.cfg.fine_groups, self.cfg.fine_k
        for s in range(q + 1):
            r = self.q0[s](y0 - cur)
            lik[f"i16s{s}"] = _bits(self.p0[s](cur), r.indices, g0, k0)
            aux.append(r.loss)
            stats[f"use16s{s}"] = float(r.usage.mean())
            cur = cur + r.quantized
        return ForwardResult(self.g_s(cur), lik, aux_loss=torch.stack(aux).sum(), stats=stats)

    # -- LatentModel: transforms ---------------------------------------------------------------
    def analysis(self, x: torch.Tensor, q: int) -> torch.Tensor:
        return self.g_a(x)

    def synthesis(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        return self.g_s(y_hat.float())

    def synthesis_exact(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        return self._fp("g_s")(y_hat).float()

    def latents(self, y: torch.Tensor, q: int) -> list[torch.Tensor]:
        return [y]

    def build_tables(self) -> None:
        """Nothing to freeze: the priors are evaluated on the fixed-point grid at coding time."""
        self._fixed.clear()

    def load_state_dict(self, *args, **kwargs):  # noqa: D102 - derived caches follow the weights
        self._fixed.clear()
        return super().load_state_dict(*args, **kwargs)

    # -- exact cascade (encoder and decoder) ---------------------------------------------------
    def _fp(self, name: str) -> FixedPointNet:
        if name not in self._fixed:
            mod = self
            for part in name.split("."):
                mod = getattr(mod, part) if not part.isdigit() else mod[int(part)]
            self._fixed[name] = FixedPointNet(mod if isinstance(mod, nn.Sequential) else nn.Sequential(mod))
        return self._fixed[name]

    def _up_exact(self, i: int, y_hat: torch.Tensor) -> torch.Tensor:
        u = self._fp(f"up.{i}")(y_hat)
        return u + self._fp(f"refine.{i}")(u)  # two grid values: an exact sum

    @staticmethod
    def _codewords(quant: MultiCodebookQuantizer, idx: torch.Tensor) -> torch.Tensor:
        """Codewords of ``idx`` on the 2^-16 grid (float64): exactly what the decoder adds."""
        cw = to_grid(quant.codewords().detach().double().cpu())
        b = idx.shape[0]
        flat = idx.long().transpose(0, 1).reshape(quant.groups, -1)
        q = torch.stack([cw[g][flat[g]] for g in range(quant.groups)])  # (m, N, d)
        return q.reshape(quant.groups, b, -1, quant.dim).permute(1, 0, 3, 2).reshape(
            b, quant.channels, *idx.shape[2:])

    def _tables(self, name: str, cond: torch.Tensor, groups: int, k: int) -> np.ndarray:
        """Integer tables, one row per (group, y, x) in that order, from the prior on ``cond``."""
        logits = self._fp(name)(cond)[0].reshape(groups, k, *cond.shape[-2:])
        return pmf_from_logits(logits.permute(0, 2, 3, 1).reshape(-1, k).numpy(), _PRECISION)

    def _static_tables(self) -> np.ndarray:
        g2, k2 = self.cfg.coarse[0]
        return pmf_from_logits(to_grid(self.static_logits.detach().double().cpu()).numpy(), _PRECISION)

    @staticmethod
    def _groups_index(groups: int, h: int, w: int) -> np.ndarray:
        return np.repeat(np.arange(groups), h * w)

    def _cascade(self, q: int, shape: tuple[int, ...], pick) -> tuple[torch.Tensor, list]:
        """Run the cascade coarse to fine. ``pick(level, quantizer, target_or_None, tables, groups)``
        returns the index map of one level (encoder: nearest codewords, then code; decoder:
        decode). Returns the 1/16 reconstruction (float64, on the grid) and what ``pick`` gave."""
        b, m, h, w = shape
        (g2, k2), (g1, k1) = self.cfg.coarse
        g0, k0 = self.cfg.fine_groups, self.cfg.fine_k
        out = []
        idx2, o = pick(2, self.q2, (h // 4, w // 4), self._static_tables(), self._groups_index(g2, h // 4, w // 4), None)
        out.append(o)
        y2 = self._codewords(self.q2, idx2)
        u1 = self._up_exact(1, y2)
        idx1, o = pick(1, self.q1, (h // 2, w // 2), self._tables("p1", u1, g1, k1), None, u1)
        out.append(o)
        cur = self._up_exact(0, u1 + self._codewords(self.q1, idx1))
        for s in range(q + 1):
            idx, o = pick(0, self.q0[s], (h, w), self._tables(f"p0.{s}", cur, g0, k0), None, cur)
            out.append(o)
            cur = cur + self._codewords(self.q0[s], idx)
        return cur, out

    @torch.no_grad()
    def index_maps(self, y0: torch.Tensor, q: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """The encoder's index maps of latent ``y0`` (1 x m x h x w) at quality index ``q``, coarse
        to fine, each as ``(symbols, integer tables, groups)``: what :meth:`compress` codes (for
        measuring the prior against other tables)."""
        y0 = y0.detach().float().cpu()
        if y0.shape[0] != 1:
            raise ValueError("mcquic codes one image at a time")
        targets = {0: y0}
        targets[1] = self.down[0](y0)
        targets[2] = self.down[1](targets[1])

        def pick(level, quant, hw, tables, groups, cond):
            target = targets[level] if cond is None else targets[level] - cond.float()
            idx = quant.indices(target)
            return idx, (idx[0].numpy().reshape(-1), tables, groups)

        return self._cascade(q, tuple(y0.shape), pick)[1]

    def compress(self, latents: list[torch.Tensor], q: int) -> list[bytes]:
        streams = [self._coder.encode(*m) for m in self.index_maps(latents[0], q)]
        return streams + [b""] * (self.n_streams - len(streams))

    @torch.no_grad()
    def decompress(self, streams: list[bytes], shape: tuple[int, ...], q: int) -> torch.Tensor:
        b, m, h, w = shape
        if b != 1 or m != self.cfg.m or h % 4 or w % 4:
            raise CorruptStreamError(f"mcquic cannot decode a latent of shape {tuple(shape)}")
        if not all(streams[:3 + q]):  # the range coder writes at least one word for any symbol
            raise CorruptStreamError(f"mcquic quality {q + 1}: an index stream that must hold data is empty")
        if any(streams[3 + q:]):
            raise CorruptStreamError(f"mcquic quality {q + 1} sends {q + 1} fine stages, but later streams hold data")
        it = iter(streams)

        def pick(level, quant, hw, tables, groups, cond):
            sym = self._coder.decode(next(it), tables, groups)
            return torch.from_numpy(sym).view(1, quant.groups, *hw), None

        y_hat, _ = self._cascade(q, tuple(shape), pick)
        return y_hat

    # -- training-time helpers -----------------------------------------------------------------
    def adapt_source(self, src: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
        """``train mcquic --init-from msh.safetensors``: msh's analysis as is, and its synthesis
        pruned to ``cfg.synth`` channels (the hidden channels whose weights in and out are
        largest). Quantisers and priors start fresh (k-means on the first batch)."""
        if "g_s.0.weight" not in src or "g_a.0.weight" not in src:
            return src, False
        out = {k: v for k, v in src.items() if k.startswith("g_a.")}
        widths = tuple(self.cfg.synth)
        keep_prev = None  # input channels kept of the current deconvolution
        for layer, width in zip((0, 2, 4), widths):
            w = src[f"g_s.{layer}.weight"]  # ConvTranspose2d: (in, out, k, k)
            nxt = src[f"g_s.{layer + 2}.weight"]
            if keep_prev is not None:
                w = w[keep_prev]
            score = w.pow(2).sum(dim=(0, 2, 3)).sqrt() * nxt.pow(2).sum(dim=(1, 2, 3)).sqrt()
            keep = torch.sort(torch.topk(score, width).indices).values
            out[f"g_s.{layer}.weight"] = w[:, keep].clone()
            out[f"g_s.{layer}.bias"] = src[f"g_s.{layer}.bias"][keep].clone()
            gdn = f"g_s.{layer + 1}"
            out[f"{gdn}.beta"] = src[f"{gdn}.beta"][keep].clone()
            out[f"{gdn}.gamma"] = src[f"{gdn}.gamma"][keep][:, keep].clone()
            for extra in ("beta_reparam.pedestal", "beta_reparam.lower_bound.bound",
                          "gamma_reparam.pedestal", "gamma_reparam.lower_bound.bound"):
                if f"{gdn}.{extra}" in src:
                    out[f"{gdn}.{extra}"] = src[f"{gdn}.{extra}"]
            keep_prev = keep
        out["g_s.6.weight"] = src["g_s.6.weight"][keep_prev].clone()
        out["g_s.6.bias"] = src["g_s.6.bias"].clone()
        return out, False


class McquicCodec(LatentCodec):
    """Codec plugin of :class:`McquicModel`."""

    name = "mcquic"
    description = ("McQuic-style multi-codebook VQ, 1/64-1/32-1/16 cascade, parallel categorical prior; one model, "
                   "levels = 1/16 stages; trained by this project")
    model_class = McquicModel
