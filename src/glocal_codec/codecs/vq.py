"""``vq``: extreme compression (< 0.05 bpp) with a VQ autoencoder, k-means codebook reduction,
a learned index prior and lost-index restoration (issue 31).

After Mao et al., "Extreme Image Compression using Fine-tuned VQGANs" (DCC 2024; public code
CUC-MIPG/VQGAN-Compression): a VQGAN (Esser et al., "Taming Transformers for High-Resolution
Image Synthesis", CVPR 2021) turns the image into one index map at 1/16 resolution; smaller
codebooks made by k-means clustering of the trained one, each fine-tuned alone, give the lower
rates; the indices are entropy coded and a transformer restores indices lost in transmission.

The network here (all sizes in :class:`VqConfig`):

* analysis: ``msh``'s four strided GDN stages to the 1/16 latent (``m`` channels; started from
  the shipped ``msh`` weights, this project's CPU budget), one glocal stage (SwinV2 window +
  pooled global-token attention, :mod:`glocal_codec.nn.glocal_block`) behind a LayerScale gate
  that starts closed, and a 1x1 projection to ``dim`` channels;
* quantiser: one codebook (:class:`~glocal_codec.nn.vq.MultiCodebookQuantizer`, ``m = 1``) of
  ``codes`` l2-normalised codewords of ``dim`` channels -- the factorised, normalised codes of
  Yu et al., "Vector-quantized Image Modeling with Improved VQGAN" (ViT-VQGAN), ICLR 2022 --
  EMA updates, k-means initialisation on the first batch, dead-code restart;
* synthesis: a 1x1 projection back to ``m`` channels, ``depth`` glocal blocks, ``msh``'s
  synthesis;
* levels: quality ``L`` (the top) uses the trained codebook; quality ``l < L`` the reduced one
  of ``books[l - 1]`` entries (k-means of the trained codebook, then fine-tuned alone, see
  :mod:`glocal_codec.train.vq_stages`); one weights file holds every codebook;
* prior: a small masked convolutional network on the codewords decoded so far (plus a mask
  channel) giving logits over the level's codebook; indices are coded in four passes, one
  per 2x2 quadrant phase (:data:`PASSES`), each pass decoding all its positions at once (the
  parallel "checkerboard"-style context of He et al., CVPR 2021, with four phases). The same
  network restores lost indices: with a random subset of positions known it predicts the others
  (trained on such masks too), and ``decode --drop P`` keeps its most likely index.

Determinism: the codewords are rounded to the ``2**-16`` grid, the prior and the synthesis run on
the fixed-point grid (:mod:`glocal_codec.nn.fixed_point`: float64 sums of grid values are exact,
attention included), logits become integer tables through
:func:`~glocal_codec.entropy.categorical.pmf_from_logits`, and the restoration's argmax is taken
on those exact logits, so a file decodes to the same pixels on every machine and thread count,
with or without ``--drop``.

Not from the paper: no adversarial phase (the CPU budget of issue 31 did not reach it), a
convolutional prior instead of the restoration transformer, four-pass coding instead of a
uniform distribution, and a 4-million-parameter model trained for about an hour on one core
instead of a pretrained VQGAN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bitstream.errors import CorruptStreamError
from ..entropy.categorical import CategoricalCoder, pmf_from_logits
from ..nn import ScaledResidual, glocal_stage
from ..nn.fixed_point import FixedPointNet, to_grid
from ..nn.vq import MultiCodebookQuantizer
from .base import Payload
from .hyperprior import ForwardResult, _analysis, _synthesis
from .learned import LatentCodec

__all__ = ["VqConfig", "VqModel", "VqCodec", "PASSES", "pass_masks", "drop_mask"]

#: Probability precision of the index tables (bits).
_PRECISION = 16
#: The 2x2 phases ``(row % 2, col % 2)`` in coding order: the diagonal first, so the second pass
#: already has four known neighbours at distance one diagonal and the third and fourth have
#: known horizontal and vertical neighbours.
PASSES: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (0, 1), (1, 0))


@dataclass(frozen=True)
class VqConfig:
    """Architecture of :class:`VqModel` (stored in the weights manifest)."""

    n: int = 128  # analysis / synthesis channels (msh's)
    m: int = 192  # channels at 1/16 around the attention blocks (msh's latent)
    dim: int = 32  # codeword dimension (ViT-VQGAN's factorised codes)
    codes: int = 1024  # entries of the trained codebook (the top level)
    books: tuple[int, ...] = (16, 64, 256)  # reduced codebook sizes of levels 1 .. L-1
    levels: int = 4  # quality levels (len(books) + 1)
    depth: int = 2  # glocal blocks of the synthesis (the analysis has one)
    window: int = 8
    tokens: int = 8
    head_dim: int = 32
    prior_hidden: int = 96  # channels of the index prior
    beta: float = 0.25  # commitment weight
    l1: float = 1.0  # training distortion: l1 * L1 + lpips * LPIPS
    lpips: float = 1.0


def pass_masks(h: int, w: int) -> torch.Tensor:
    """``(len(PASSES), h, w)`` booleans: the positions each pass codes."""
    i = torch.arange(h).view(-1, 1) % 2
    j = torch.arange(w).view(1, -1) % 2
    return torch.stack([(i == a) & (j == b) for a, b in PASSES])


def drop_mask(h: int, w: int, drop: float, seed: int) -> np.ndarray:
    """``(h, w)`` booleans, ``round(drop * h * w)`` of them True (lost): a seeded choice, the same
    on every machine (NumPy's PCG64 stream is fixed for a given seed)."""
    if not 0.0 <= drop <= 1.0:
        raise ValueError(f"drop must be a fraction in [0, 1], got {drop}")
    n = h * w
    lost = np.zeros(n, dtype=bool)
    lost[np.random.default_rng(seed).permutation(n)[: int(round(drop * n))]] = True
    return lost.reshape(h, w)


def _prior_body(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim + 1, hidden, 3, padding=1), nn.LeakyReLU(0.125),
                         nn.Conv2d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.125),
                         nn.Conv2d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.125))


class VqModel(nn.Module):
    """The network and entropy model of ``vq`` (a :class:`~.base.LatentModel`).

    ``q`` (0-based quality index): level ``q`` uses codebook :meth:`book_size` ``(q)``.
    The latent handed between analysis and coder is the projected, *unnormalised* ``dim``-channel
    encoder output; the decoder's latent is the grid codewords.
    """

    config_class = VqConfig
    downsample = 16
    pad_multiple = 16
    refine_halo = None

    def __init__(self, cfg: VqConfig = VqConfig()) -> None:
        super().__init__()
        if cfg.levels != len(cfg.books) + 1:
            raise ValueError(f"vq's levels are its reduced codebooks plus the trained one: levels ({cfg.levels}) "
                             f"must be len(books) + 1 ({len(cfg.books) + 1})")
        if any(not 2 <= k <= cfg.codes for k in cfg.books):
            raise ValueError(f"reduced codebook sizes must be in [2, codes={cfg.codes}], got {cfg.books}")
        self.cfg = cfg
        att = dict(window=cfg.window, tokens=cfg.tokens, head_dim=cfg.head_dim)
        self.g_a = _analysis(cfg.n, cfg.m)  # names as msh's: `--init-from msh.safetensors` copies them
        # gate 0: training starts from msh's analysis exactly and learns how much attention to add
        self.enc_attn = ScaledResidual(glocal_stage(cfg.m, 1, **att), cfg.m, init=0.0)
        self.pre_q = nn.Conv2d(cfg.m, cfg.dim, 1)
        self.quantizer = MultiCodebookQuantizer(cfg.dim, 1, cfg.codes, mode="ema", beta=cfg.beta, normalize=True,
                                                dead_after=50, kmeans_on_first_batch=True)
        self.post_q = nn.Conv2d(cfg.dim, cfg.m, 1)
        self.dec_attn = ScaledResidual(glocal_stage(cfg.m, cfg.depth, **att), cfg.m)
        self.g_s = _synthesis(cfg.n, cfg.m)
        # reduced codebooks (level l < L: books[l]); filled by k-means + fine-tuning after training
        self.books = nn.ParameterList(nn.Parameter(F.normalize(torch.randn(k, cfg.dim), dim=-1))
                                      for k in cfg.books)
        self.prior = _prior_body(cfg.dim, cfg.prior_hidden)
        self.heads = nn.ModuleList(nn.Conv2d(cfg.prior_hidden, k, 1) for k in (*cfg.books, cfg.codes))
        self._fixed: dict[str, FixedPointNet] = {}
        self._coder = CategoricalCoder(_PRECISION)

    # -- LatentModel facts ----------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return self.cfg.dim

    @property
    def n_streams(self) -> int:
        """One stream per coding pass."""
        return len(PASSES)

    def book_size(self, q: int) -> int:
        return self.cfg.codes if q == self.cfg.levels - 1 else self.cfg.books[q]

    def level_facts(self, q: int) -> dict[str, str]:
        k = self.book_size(q)
        return {"codebook": f"{k} codes x {self.cfg.dim} (l2-normalised)",
                "uniform bound": f"{math.log2(k) / 256:.4f} bpp",
                "coding": f"{len(PASSES)} parallel passes, learned prior"}

    # -- codebooks -----------------------------------------------------------------------------
    def codebook(self, q: int) -> torch.Tensor:
        """Level ``q``'s l2-normalised codewords ``(K, dim)`` (float, differentiable)."""
        if q == self.cfg.levels - 1:
            return self.quantizer.codewords()[0]
        c = self.books[q]
        return c / c.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def grid_codebook(self, q: int) -> torch.Tensor:
        """Level ``q``'s codewords on the ``2**-16`` grid (float64): what encoder and decoder use."""
        c = self.codebook(q).detach().double().cpu()
        return to_grid(c / c.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """The projected encoder output ``(B, dim, H/16, W/16)`` (before normalisation)."""
        return self.pre_q(self.enc_attn(self.g_a(x)))

    def decode_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """Pixels from codeword maps ``(B, dim, h, w)`` (float, differentiable)."""
        return self.g_s(self.dec_attn(self.post_q(codes)))

    @torch.no_grad()
    def nearest(self, z: torch.Tensor, q: int) -> torch.Tensor:
        """Index map ``(B, h, w)`` of the nearest (cosine) codewords of ``z (B, dim, h, w)``."""
        c = self.grid_codebook(q)
        zf = F.normalize(z.detach().double().cpu(), dim=1)
        sim = torch.einsum("bdhw,kd->bkhw", zf, c)
        return sim.argmax(1)

    def lookup(self, idx: torch.Tensor, q: int) -> torch.Tensor:
        """Grid codewords ``(B, dim, h, w)`` float64 of an index map ``(B, h, w)``."""
        return self.grid_codebook(q)[idx.long()].permute(0, 3, 1, 2).contiguous()

    # -- training (autoencoder) ------------------------------------------------------------------
    @property
    def distortion_weights(self) -> dict[str, float]:
        """The training distortion: ``train/losses.py`` builds L1 + LPIPS from it (the VQGAN
        objective without its adversarial term) instead of the rate-distortion MSE."""
        return {"l1": self.cfg.l1, "lpips": self.cfg.lpips}

    def forward(self, x: torch.Tensor, q: int = -1, **_: object) -> ForwardResult:
        """Autoencoder training pass with the trained (top-level) codebook; no rate term (the
        rate is fixed by the codebook size; the prior is trained afterwards)."""
        r = self.quantizer(self.encode_latent(x))
        stats = {"usage": float(r.usage.mean()), "perplexity": float(r.perplexity.mean()),
                 "commit": float(r.commitment_loss.detach())}
        return ForwardResult(self.decode_latent(r.quantized), {}, aux_loss=r.loss, stats=stats)

    # -- prior -----------------------------------------------------------------------------------
    def prior_input(self, codes: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """``(B, dim + 1, h, w)``: the known codewords (zero elsewhere) and the known mask."""
        k = known.to(codes.dtype).unsqueeze(1)
        return torch.cat([codes * k, k], dim=1)

    def prior_logits(self, codes: torch.Tensor, known: torch.Tensor, q: int) -> torch.Tensor:
        """Float logits ``(B, K, h, w)`` of every position given the ``known`` ones (training)."""
        return self.heads[q](self.prior(self.prior_input(codes, known)))

    def _fp(self, name: str) -> FixedPointNet:
        if name not in self._fixed:
            if name == "synthesis":
                seq = nn.Sequential(self.post_q, self.dec_attn, *self.g_s)
            else:  # "prior.<q>"
                seq = nn.Sequential(*self.prior, self.heads[int(name.split(".")[1])])
            self._fixed[name] = FixedPointNet(seq)
        return self._fixed[name]

    def exact_logits(self, codes: torch.Tensor, known: torch.Tensor, q: int) -> torch.Tensor:
        """Logits ``(K, h, w)`` float64 on the fixed-point grid (the same on every machine)."""
        return self._fp(f"prior.{q}")(self.prior_input(codes, known))[0]

    def _tables(self, logits: torch.Tensor, where: torch.Tensor) -> np.ndarray:
        """Integer tables of the positions ``where (h, w)``, row-major."""
        rows = logits.permute(1, 2, 0)[where]
        return pmf_from_logits(rows.numpy(), _PRECISION)

    def _passes(self, idx_shape: tuple[int, int], q: int, pick) -> torch.Tensor:
        """Run the coding passes: ``pick(p, tables, where)`` returns the indices of pass ``p`` at
        the positions ``where`` (encoder: the known ones, then code; decoder: decode)."""
        h, w = idx_shape
        idx = torch.zeros(h, w, dtype=torch.long)
        known = torch.zeros(h, w, dtype=torch.bool)
        for p, where in enumerate(pass_masks(h, w)):
            if not where.any():
                pick(p, None, where)
                continue
            logits = self.exact_logits(self.lookup(idx[None], q), known[None], q)
            idx[where] = pick(p, self._tables(logits, where), where)
            known |= where
        return idx

    # -- LatentModel: transforms -----------------------------------------------------------------
    def analysis(self, x: torch.Tensor, q: int) -> torch.Tensor:
        return self.encode_latent(x)

    def synthesis(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        return self.decode_latent(y_hat.float())

    def synthesis_exact(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        return self._fp("synthesis")(y_hat).float()

    def latents(self, y: torch.Tensor, q: int) -> list[torch.Tensor]:
        return [y]

    def build_tables(self) -> None:
        """Nothing to freeze: the prior runs on the fixed-point grid at coding time."""
        self._fixed.clear()

    def load_state_dict(self, *args, **kwargs):  # noqa: D102 - derived caches follow the weights
        self._fixed.clear()
        return super().load_state_dict(*args, **kwargs)

    # -- coding ------------------------------------------------------------------------------------
    def compress(self, latents: list[torch.Tensor], q: int) -> list[bytes]:
        y = latents[0]
        if y.shape[0] != 1:
            raise ValueError("vq codes one image at a time")
        target = self.nearest(y, q)[0]
        streams: list[bytes] = []

        def pick(p, tables, where):
            if tables is None:
                streams.append(b"")
                return None
            sym = target[where]
            streams.append(self._coder.encode(sym.numpy(), tables))
            return sym

        self._passes(tuple(target.shape), q, pick)
        return streams

    def index_bits(self, y: torch.Tensor, q: int) -> tuple[float, float]:
        """(prior bits, uniform bits) of the index map of latent ``y`` at level ``q``: the ideal
        code lengths under the integer tables, against ``log2 K`` per index."""
        target = self.nearest(y, q)[0]
        bits = [0.0]

        def pick(p, tables, where):
            if tables is None:
                return None
            sym = target[where]
            bits[0] += self._coder.ideal_bits(sym.numpy(), tables)
            return sym

        self._passes(tuple(target.shape), q, pick)
        return bits[0], target.numel() * math.log2(self.book_size(q))

    def decode_indices(self, streams: list[bytes], shape: tuple[int, ...], q: int) -> torch.Tensor:
        """The index map ``(h, w)`` of a file's streams."""
        b, c, h, w = shape
        if b != 1 or c != self.cfg.dim:
            raise CorruptStreamError(f"vq cannot decode a latent of shape {tuple(shape)}")
        if len(streams) != len(PASSES):
            raise CorruptStreamError(f"vq expects {len(PASSES)} streams, got {len(streams)}")
        it = iter(streams)

        def pick(p, tables, where):
            s = next(it)
            if tables is None:
                if s:
                    raise CorruptStreamError(f"vq pass {p + 1} codes no position here, but its stream holds data")
                return None
            if not s:  # the range coder writes at least one word for any symbol
                raise CorruptStreamError(f"vq pass {p + 1}: its index stream is empty")
            return torch.from_numpy(self._coder.decode(s, tables, None, int(where.sum())).astype(np.int64))

        return self._passes((h, w), q, pick)

    @torch.no_grad()
    def decompress(self, streams: list[bytes], shape: tuple[int, ...], q: int) -> torch.Tensor:
        return self.lookup(self.decode_indices(streams, shape, q)[None], q)

    @torch.no_grad()
    def restore(self, idx: torch.Tensor, lost: torch.Tensor, q: int) -> torch.Tensor:
        """``idx (h, w)`` with the ``lost`` positions replaced by the prior's most likely index
        given the others (one parallel pass on the exact logits; ties: the lowest index)."""
        if not lost.any():
            return idx
        known = ~lost
        logits = self.exact_logits(self.lookup(idx[None], q), known[None], q)
        best = torch.from_numpy(np.argmax(logits.numpy(), axis=0))
        out = idx.clone()
        out[lost] = best[lost]
        return out

    @torch.no_grad()
    def decompress_dropped(self, streams: list[bytes], shape: tuple[int, ...], q: int,
                           drop: float, seed: int) -> torch.Tensor:
        """:meth:`decompress` with ``drop`` of the positions marked lost (seeded) and restored."""
        idx = self.decode_indices(streams, shape, q)
        lost = torch.from_numpy(drop_mask(*idx.shape, drop, seed))
        return self.lookup(self.restore(idx, lost, q)[None], q)


class VqCodec(LatentCodec):
    """Codec plugin of :class:`VqModel`; implements :class:`~.base.Restorable` (``decode --drop``)."""

    name = "vq"
    description = ("VQGAN-style extreme compression (< 0.05 bpp): one 1/16 index map, k-means-reduced codebooks "
                   "per level, 4-pass learned prior, lost-index restoration (--drop); trained by this project")
    model_class = VqModel

    @torch.inference_mode()
    def decode_dropped(self, payload: Payload, drop: float, seed: int) -> torch.Tensor:
        """Decode with ``drop`` of the index positions marked lost (chosen by ``seed``) and
        restored by the prior: what a channel that loses indices would leave."""
        drop_mask(1, 1, drop, seed)  # the range check, before anything is decoded
        return self._decode_with(payload, lambda s, shape, q: self.model.decompress_dropped(s, shape, q, drop, seed))
