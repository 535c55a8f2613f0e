"""``dualrep``: ultra-low-bitrate coding with an explicit part and a texture sent by reverse-channel
coding (issue 34).

After "Dual-Representation Image Compression at Ultra-Low Bitrates via Explicit Semantics and
Implicit Textures": an *explicit* part fixes what the image shows, an *implicit* part adds
texture by reverse-channel coding (the decoder draws candidates from a shared-seed prior, the
encoder sends which one), and a control trades one against the other. The paper's explicit part
conditions a pretrained diffusion model, which is not reachable here; this codec keeps the
two-part structure with models trained by this project:

* **explicit**: the shipped ``vq`` codec's index map at level ``q`` (16 / 64 / 256 / 1,024 codes,
  its own 4-pass learned prior and streams), plus a **semantic map**: ``vq``'s encoder features
  averaged over 32x32 blocks and assigned to one of ``clusters`` k-means centroids (fitted on the
  training set), range coded with tables conditioned on the block's ``vq`` index (mapped to the
  16-code level, so every level shares them);
* **implicit**: a texture latent ``z`` (``tex`` channels at 1/16) with posterior
  ``q = N(mu, sigma^2)`` from a small encoder that sees the image and the explicit decode, and the
  prior ``p = N(0, 1)``; one sample of ``q`` is sent by minimal random coding
  (:class:`~glocal_codec.entropy.rcc.GaussianRCC`, about ``KL(q || p)`` bits);
* **refiner** (decoder side): the explicit decode plus a residual predicted from it, the
  ``vq`` codewords, the semantic map, the level and ``z``.

``texture`` (``encode --texture t``, in [0, 1], written in the file) scales the KL budget:
``q_s = N(s mu, sigma^(2 s))`` runs from ``p`` (``s = 0``) to ``q`` (``s = 1``) and ``s`` is chosen
so that ``KL(q_s || p) = t min(KL(q || p), TEXTURE_KL_BPP x pixels)``; ``t = 0`` sends nothing and decodes with ``z = 0`` (the
prior's mean: the explicit part alone, refined). The refiner is trained on all three cases
(mean, partial and full posterior; :mod:`glocal_codec.train.dualrep_stages`).

Determinism: the ``vq`` part is ``vq``'s (exact); the semantic tables are integer tables of stored
logits; the RCC sample is bit-identical by construction; the refiner runs on the fixed-point grid
(:mod:`glocal_codec.nn.fixed_point`). The same file decodes to the same pixels on every machine.

Not from the paper: no diffusion model, no text or segmentation semantics (k-means of this
project's own encoder features), a residual refiner of 0.42 M parameters trained 44 minutes on two CPU threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bitstream.errors import CorruptStreamError
from ..engine import crop, pad_to_multiple, tiled_apply
from ..entropy.categorical import CategoricalCoder, pmf_from_logits
from ..entropy.rcc import GaussianRCC
from ..nn.fixed_point import FixedPointNet, to_grid
from .base import Payload
from .dualrep_header import pack_params, unpack_params
from .learned import TILE_PIXELS, LatentCodec

__all__ = ["DualrepConfig", "DualrepModel", "DualrepCodec", "SEM_BLOCK", "TEXTURE_KL_BPP", "pooled_features", "posterior_at",
           "kl_bits", "RCC_SEED"]

#: The texture's KL budget at ``--texture 1`` (bits per pixel): the rate the refiner was trained
#: at. Photos unlike the training crops ask for 2-3x more (Kodak: +0.018-0.028 bpp of stream
#: uncapped, with no LPIPS gain measured), which would take levels 3-4 over 0.05 bpp.
TEXTURE_KL_BPP = 0.008
#: Side of a semantic block in pixels (two 1/16 latent positions).
SEM_BLOCK = 32
#: The seed shared by encoder and decoder for the texture's candidates ("dual" in ASCII).
RCC_SEED = 0x6475616C
_PRECISION = 16
_TILE_LATENT = 40  # decode tile: 40 x 40 latent positions (640 x 640 pixels)
_HALO_LATENT = 6  # 96 pixels: vq's synthesis reach, as the learned codecs' tiling


@dataclass(frozen=True)
class DualrepConfig:
    """Architecture of :class:`DualrepModel` (stored in the weights manifest)."""

    levels: int = 4  # quality q uses vq level q
    dim: int = 32  # vq codeword channels
    feat: int = 192  # vq encoder feature channels (the semantic backbone)
    clusters: int = 16  # semantic clusters
    contexts: int = 16  # vq level-1 codes: the semantic map's context
    tex: int = 4  # texture channels at 1/16
    enc: int = 64  # texture encoder width
    cond: int = 64  # conditioning width at 1/16
    hidden: int = 48  # refiner width at 1/4
    rcc_bits: int = 12  # 4,096 candidates per chunk


def pooled_features(f: torch.Tensor) -> torch.Tensor:
    """``vq``'s 1/16 encoder features ``(B, C, h, w)`` -> l2-normalised block means
    ``(B, C, ceil(h/2), ceil(w/2))`` (one per :data:`SEM_BLOCK` pixels)."""
    return F.normalize(F.avg_pool2d(f, 2, ceil_mode=True), dim=1)


def posterior_at(mu: torch.Tensor, sigma: torch.Tensor, s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``q_s = N(s mu, sigma^(2s))``: the standard normal at ``s = 0``, ``q`` at ``s = 1``."""
    return mu * s, sigma.pow(s)


def kl_bits(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Elementwise ``KL(N(mu, sigma^2) || N(0, 1))`` in bits."""
    return (0.5 * (mu * mu + sigma * sigma - 1.0) - torch.log(sigma)) / math.log(2.0)


def _leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.125)


class DualrepModel(nn.Module):
    """The texture encoder, the refiner and the semantic model of ``dualrep`` (``vq`` is separate)."""

    config_class = DualrepConfig

    def __init__(self, cfg: DualrepConfig = DualrepConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg
        # encoder side (float): image + explicit decode -> 1/16 features; + codewords, level -> q
        self.tex_enc = nn.Sequential(nn.Conv2d(6, c.enc // 2, 5, 2, 2), _leaky(), nn.Conv2d(c.enc // 2, c.enc * 3 // 4, 5, 2, 2),
                                     _leaky(), nn.Conv2d(c.enc * 3 // 4, c.enc, 3, 2, 1), _leaky(),
                                     nn.Conv2d(c.enc, c.enc, 3, 2, 1))
        self.tex_head = nn.Sequential(_leaky(), nn.Conv2d(c.enc + c.dim + c.levels, c.enc, 3, 1, 1), _leaky(),
                                      nn.Conv2d(c.enc, 2 * c.tex, 3, 1, 1))
        # decoder side (fixed point): plain Sequentials of Conv2d / ConvTranspose2d / LeakyReLU
        n_in = c.dim + c.clusters + c.levels + c.tex
        self.cond_net = nn.Sequential(nn.Conv2d(n_in, c.cond, 3, 1, 1), _leaky(), nn.Conv2d(c.cond, c.cond, 3, 1, 1),
                                      _leaky(), nn.ConvTranspose2d(c.cond, c.hidden, 8, 4, 2))
        self.img_net = nn.Sequential(nn.Conv2d(3, c.hidden, 8, 4, 2))
        self.trunk = nn.Sequential(_leaky(), nn.Conv2d(2 * c.hidden, c.hidden, 3, 1, 1), _leaky(),
                                   nn.Conv2d(c.hidden, c.hidden, 3, 1, 1), _leaky(),
                                   nn.Conv2d(c.hidden, c.hidden, 3, 1, 1), _leaky(),
                                   nn.ConvTranspose2d(c.hidden, 16, 8, 4, 2), _leaky(), nn.Conv2d(16, 3, 3, 1, 1))
        # q starts narrow (sigma = e^-2): z carries the encoder's mean from the first step, so the
        # refiner learns to use it before the KL term squeezes it (a wide start, sigma = 1, left the
        # refiner ignoring z: posterior collapse within 350 steps)
        nn.init.constant_(self.tex_head[-1].bias[c.tex:], -2.0)
        nn.init.zeros_(self.trunk[-1].weight)  # starts as the explicit decode itself
        nn.init.zeros_(self.trunk[-1].bias)
        # a linear path from z to pixels: each texture value adds a learned 32 x 32 pattern
        # (overlapping its neighbours'). Through the deep path alone z stayed unused for 1,000
        # steps (its gradient passes a zero-initialised output layer and three convolutions);
        # this one gives the encoder a useful code from the first step, the deep path refines it.
        self.tex_up = nn.Sequential(nn.ConvTranspose2d(c.tex, 3, 32, 16, 8, bias=False))
        # semantic model: centroids and the map's context tables (logits per vq level-1 code)
        self.register_buffer("centroids", F.normalize(torch.randn(c.clusters, c.feat), dim=1))
        self.register_buffer("sem_logits", torch.zeros(c.contexts, c.clusters, dtype=torch.float64))
        # vq index of each level -> nearest level-1 code (computed once at training; exact integers)
        self.register_buffer("ctx_maps", torch.zeros(c.levels, 1024, dtype=torch.int32))
        self._fixed: dict[str, FixedPointNet] = {}

    def load_state_dict(self, *args, **kwargs):  # noqa: D102 - derived caches follow the weights
        self._fixed.clear()
        return super().load_state_dict(*args, **kwargs)

    # -- semantic map ------------------------------------------------------------------------------
    def assign(self, pooled: torch.Tensor) -> torch.Tensor:
        """Cluster ids ``(B, hs, ws)`` of pooled features (encoder side)."""
        return torch.einsum("bchw,kc->bkhw", pooled.float(), self.centroids.float()).argmax(1)

    def sem_context(self, idx: torch.Tensor, q: int) -> torch.Tensor:
        """Context ``(hs, ws)`` of each semantic block: the level-1 code of its top-left ``vq`` index."""
        return self.ctx_maps[q][idx[::2, ::2].long()].long()

    def sem_tables(self) -> np.ndarray:
        return pmf_from_logits(self.sem_logits.double().numpy(), _PRECISION)

    # -- conditioning ------------------------------------------------------------------------------
    def cond_stack(self, codes: torch.Tensor, sem: torch.Tensor, q: int, z: torch.Tensor) -> torch.Tensor:
        """``(B, dim + clusters + levels + tex, h, w)`` at 1/16: codewords, one-hot semantic map
        (each block over its 2x2 positions), one-hot level, texture latent."""
        b, _, h, w = codes.shape
        onehot = F.one_hot(sem.long(), self.cfg.clusters).permute(0, 3, 1, 2).to(codes.dtype)
        onehot = onehot.repeat_interleave(2, 2).repeat_interleave(2, 3)[..., :h, :w]
        level = torch.zeros(b, self.cfg.levels, h, w, dtype=codes.dtype, device=codes.device)
        level[:, q] = 1
        return torch.cat([codes, onehot, level, z.to(codes.dtype)], 1)

    # -- texture encoder (float, encoder side) -----------------------------------------------------
    def posterior(self, feats: torch.Tensor, codes: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)`` of ``q(z | x, explicit)``, each ``(B, tex, h, w)``, from the 1/16 features
        ``feats = tex_enc(cat[x, explicit decode])`` (local: tiled on large images)."""
        b, _, h, w = codes.shape
        level = torch.zeros(b, self.cfg.levels, h, w, dtype=feats.dtype, device=feats.device)
        level[:, q] = 1
        out = self.tex_head(torch.cat([feats, codes.to(feats.dtype), level], 1))
        mu, log_sigma = out.chunk(2, 1)
        return mu, log_sigma.clamp(-4.0, 1.0).exp()

    # -- refiner -----------------------------------------------------------------------------------
    def refine(self, xv: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The explicit decode ``xv`` plus the predicted residual (float, for training)."""
        z = cond[:, -self.cfg.tex:]
        return xv + self.trunk(torch.cat([self.img_net(xv), self.cond_net(cond)], 1)) + self.tex_up(z)

    def _fp(self, name: str) -> FixedPointNet:
        if name not in self._fixed:
            self._fixed[name] = FixedPointNet(getattr(self, name))
        return self._fixed[name]

    def refine_exact(self, xv: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """:meth:`refine` on the fixed-point grid (float64): the same pixels on every machine."""
        xg = to_grid(xv.double())
        feats = torch.cat([self._fp("img_net")(xg), self._fp("cond_net")(cond)], 1)
        return xg + self._fp("trunk")(feats) + self._fp("tex_up")(cond[:, -self.cfg.tex:])


class DualrepCodec(LatentCodec):
    """Codec plugin of ``dualrep``: ``vq``'s explicit part + semantic map + RCC texture.

    ``texture`` (``[0, 1]``, default 1) is an encoder option: ``DualrepCodec(texture=0.7)``, or
    ``glocal-codec encode --texture 0.7``. Files carry it; the decoder needs nothing else.
    """

    name = "dualrep"
    description = ("dual representation (< 0.05 bpp): vq indices + semantic map (explicit), texture latent sent by "
                   "reverse-channel coding (implicit, --texture 0..1); trained by this project")
    model_class = DualrepModel
    #: its header parameters carry the texture level; strips are padded, not folded
    folds_strips = False
    contract = nn.Module
    trainer = "python -m glocal_codec.train.dualrep_stages"

    def __init__(self, device: str | torch.device | None = None, *, texture: float = 1.0) -> None:
        super().__init__(device)
        t = float(texture)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"texture must be in [0, 1], got {texture}")
        self.texture = round(t * 255) / 255  # what the file can carry
        self._vq = None

    @property
    def vq(self):
        """The ``vq`` codec whose index maps are the explicit part."""
        if self._vq is None:
            from .vq import VqCodec

            self._vq = VqCodec(self.device)
        return self._vq

    def to(self, device: str | torch.device) -> "DualrepCodec":
        super().to(device)
        self.vq.to(device)
        return self

    def weights_available(self) -> bool:
        return super().weights_available() and self.vq.weights_available()

    # -- shared pieces -----------------------------------------------------------------------------
    def _explicit(self, codes: torch.Tensor, q: int) -> torch.Tensor:
        """``vq``'s exact synthesis of grid codewords, as the 8-bit image its decoder gives."""
        vqm = self.vq.model
        xv = vqm.synthesis_exact(codes, q).clamp(0, 1)
        return torch.round(xv * 255) / 255

    def _decoder(self, stack: torch.Tensor, q: int) -> torch.Tensor:
        """Pixels of a conditioning stack (its first ``dim`` channels are the codewords)."""
        model = self.model
        xv = self._explicit(stack[:, :model.cfg.dim], q)
        return model.refine_exact(xv, stack)

    def _tiled(self, fn, x: torch.Tensor, scale: int) -> torch.Tensor:
        """``fn`` over tiles of a 1/16 map when the image is large (bounded memory; ``engine``)."""
        if x.shape[-2] * x.shape[-1] * scale * scale <= TILE_PIXELS:
            return fn(x)
        return tiled_apply(fn, x, scale=scale, tile=_TILE_LATENT, halo=_HALO_LATENT)

    # -- coding ------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, x: torch.Tensor, quality: int) -> Payload:
        q = self._check_quality(quality)
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected a 1 x C x H x W tensor with C in (1, 3), got {tuple(x.shape)}")
        c, h, w = x.shape[1:]
        model, vqc = self.model, self.vq
        vqm = vqc.model
        xin = pad_to_multiple((x.expand(1, 3, h, w) if c == 1 else x).to(self.device, torch.float32), 16)
        f = vqc._transform(lambda t: vqm.enc_attn(vqm.g_a(t)), xin, analysis=True)
        y = vqm.pre_q(f)
        vq_streams = vqm.compress([y], q)
        idx = vqm.nearest(y, q)[0]
        codes = vqm.lookup(idx[None], q)
        # semantic map, coded under its context tables
        sem = model.assign(pooled_features(f))[0].cpu()
        ctx = model.sem_context(idx, q)
        sem_stream = CategoricalCoder(_PRECISION).encode(sem.numpy().ravel(), model.sem_tables(), ctx.numpy().ravel())
        # texture: the explicit decode the decoder will see, then q, then one RCC sample
        tex_stream = b""
        if self.texture > 0:
            xv = self._tiled(lambda t: self._explicit(t, q), codes, 16).float()
            xpair = torch.cat([xin, xv.to(xin.device)], 1)
            if xpair.shape[-2] * xpair.shape[-1] <= TILE_PIXELS:
                feats = model.tex_enc(xpair)
            else:  # local convolutions: tile by tile, bounded memory
                feats = tiled_apply(model.tex_enc, xpair, scale=1 / 16, tile=512, halo=96, align=16)
            mu, sigma = model.posterior(feats, codes.float().to(feats.device), q)
            budget = self.texture * min(float(kl_bits(mu.double(), sigma.double()).sum()), TEXTURE_KL_BPP * h * w)
            s = _budget_scale(mu.double(), sigma.double(), budget)
            mu_s, sigma_s = posterior_at(mu.double(), sigma.double(), s)
            prior = np.zeros(mu_s.shape)  # p = N(0, 1), in the latent's shape (the decoder knows it)
            res = GaussianRCC(model.cfg.rcc_bits, strict=False).encode(mu_s.cpu().numpy(), sigma_s.cpu().numpy(),
                                                                        prior, prior + 1.0, seed=RCC_SEED)
            tex_stream = res.data
        streams = (*vq_streams, sem_stream, tex_stream)
        return Payload(shape=(c, h, w), quality=quality, streams=streams, params=pack_params(self.texture))

    @torch.inference_mode()
    def decode(self, payload: Payload) -> torch.Tensor:
        q = self._check_quality(payload.quality)
        unpack_params(payload.params)  # a damaged header is an error even though decode needs nothing of it
        c, h, w = payload.shape
        model, vqm = self.model, self.vq.model
        hz, wz = -(-h // 16), -(-w // 16)
        n_vq = vqm.n_streams
        if len(payload.streams) != n_vq + 2:
            raise CorruptStreamError(f"dualrep expects {n_vq + 2} streams, got {len(payload.streams)}")
        idx = vqm.decode_indices(list(payload.streams[:n_vq]), (1, vqm.cfg.dim, hz, wz), q)
        codes = vqm.lookup(idx[None], q)
        ctx = model.sem_context(idx, q)
        sem = CategoricalCoder(_PRECISION).decode(payload.streams[n_vq], model.sem_tables(), ctx.numpy().ravel())
        sem = torch.from_numpy(sem.reshape(ctx.shape))[None]
        tex = payload.streams[n_vq + 1]
        if tex:
            prior = np.zeros((1, model.cfg.tex, hz, wz))
            z = torch.from_numpy(GaussianRCC.decode(tex, prior, prior + 1.0, seed=RCC_SEED))
        else:
            z = torch.zeros(1, model.cfg.tex, hz, wz, dtype=torch.float64)
        stack = model.cond_stack(codes, sem, q, z).to(self.device)
        x_hat = self._tiled(lambda t: self._decoder(t, q), stack, 16)
        x_hat = crop(x_hat, h, w).clamp_(0, 1)
        if c == 1:
            x_hat = x_hat.mean(dim=1, keepdim=True)
        return x_hat.float().cpu()


def _budget_scale(mu: torch.Tensor, sigma: torch.Tensor, bits: float, iters: int = 40) -> float:
    """The ``s`` in [0, 1] with ``KL(q_s || p) = bits`` (bisection; KL grows with ``s``), 1 when
    ``q`` itself fits."""
    if float(kl_bits(mu, sigma).sum()) <= bits:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if float(kl_bits(*posterior_at(mu, sigma, mid)).sum()) < bits:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
