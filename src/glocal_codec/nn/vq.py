"""Multi-codebook vector quantisation, shared by the ``mcquic`` and ``vq`` codecs.

The C channels of a latent ``(B, C, *spatial)`` (usually ``(B, C, H, W)``) are split into
``m`` contiguous groups of ``d = C / m`` channels; at every position each group is replaced by
its nearest codeword in its own codebook of ``k`` entries, so one position costs
``m * log2(k)`` bits before entropy coding and the index map is ``(B, m, *spatial)``.

Training modes (``mode=``):

* ``"ste"`` -- van den Oord et al., "Neural Discrete Representation Learning" (VQ-VAE),
  NeurIPS 2017: the straight-through estimator copies the decoder's gradient to the encoder;
  the codebook learns from the *codebook loss* ``||sg[z] - q||^2`` and the encoder is held
  near its codes by the *commitment loss* ``beta * ||z - sg[q]||^2``.
* ``"ema"`` -- Razavi et al., "Generating Diverse High-Fidelity Images with VQ-VAE-2",
  NeurIPS 2019 (appendix of van den Oord et al. 2017): codewords are exponential moving
  averages of the encoder outputs assigned to them (Laplace-smoothed counts); no codebook
  loss, only the commitment loss.
* ``"gumbel"`` -- Zhu et al., "Unified Multivariate Gaussian Mixture for Efficient Neural
  Image Compression" (McQuic), CVPR 2022: logits are negative squared distances divided by a
  learnable per-codebook temperature, a code is drawn by hard Gumbel-softmax (Jang et al.
  2017, Maddison et al. 2017) and the output is the one-hot sample (straight-through on the
  soft sample) times the codebook, so the distortion itself trains codebook, temperature and
  encoder. At evaluation time the nearest codeword is taken, deterministically.

``normalize=True`` l2-normalises codewords and inputs (cosine distance; Yu et al.,
"Vector-quantized Image Modeling with Improved VQGAN" (ViT-VQGAN), ICLR 2022), which keeps
codes in use and is what issue 31's VQGAN (Esser et al., "Taming Transformers for
High-Resolution Image Synthesis" (VQGAN), CVPR 2021) asks for.

Also here: seeded k-means (k-means++ seeding, Arthur & Vassilvitskii 2007, then Lloyd
iterations) to initialise codebooks from a batch of latents (:meth:`kmeans_init`, also used
for issue 31's codebook reduction via :func:`kmeans`); dead-code restart (codes unused for
``dead_after`` training updates are re-initialised to random current encoder outputs); usage
and perplexity per codebook (:meth:`MultiCodebookQuantizer.usage`, :func:`codebook_stats`);
and :class:`ResidualQuantizer`, a stack of quantisers each coding the residual of the ones
before it (the cascade of McQuic's levels; Zeghidour et al. 2021 SoundStream, Lee et al.
2022 RQ-VAE).

Coding: :meth:`~MultiCodebookQuantizer.indices` is a deterministic nearest-codeword search
(encoder only); :meth:`~MultiCodebookQuantizer.dequantize` is a gather from the effective
codebook (decoder), so the decoder reproduces exactly the codewords of the quantised output.
The forward pass returns those codewords bit for bit (the straight-through terms are added as
``x - x.detach()``, an exact zero). l2-normalised codebooks are normalised in float64 and
rounded once, so the same stored codebook gives the same codewords on any kernel set.

Not here: synchronising dead-code restarts of a *parameter* codebook across data-parallel
ranks (DDP broadcasts buffers, so EMA codebooks stay in sync; ``ste``/``gumbel`` restarts
would need a broadcast from rank 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CodebookStats",
    "MultiCodebookQuantizer",
    "QuantizerMode",
    "QuantizerResult",
    "ResidualQuantizer",
    "ResidualQuantizerResult",
    "codebook_stats",
    "kmeans",
]

QuantizerMode = Literal["ste", "ema", "gumbel"]
_MODES = ("ste", "ema", "gumbel")

# nearest-codeword search is chunked so that one chunk's distance matrix stays below this
_CHUNK_ELEMS = 1 << 22


@dataclass(frozen=True)
class CodebookStats:
    """How a set of codebooks is used: one entry per codebook (group).

    ``usage`` is the fraction of the ``k`` codes hit at least once, ``perplexity`` is
    ``exp(H)`` of the empirical code distribution (``k`` when uniform, 1 when one code takes
    everything), ``counts`` the raw ``(m, k)`` histogram.
    """

    usage: Tensor
    perplexity: Tensor
    counts: Tensor

    def as_dict(self, prefix: str = "vq") -> dict[str, float]:
        """Flat floats for a training log: mean and per-codebook usage and perplexity."""
        out = {
            f"{prefix}/usage": float(self.usage.mean()),
            f"{prefix}/perplexity": float(self.perplexity.mean()),
        }
        for g in range(self.usage.numel()):
            out[f"{prefix}/usage/{g}"] = float(self.usage[g])
            out[f"{prefix}/perplexity/{g}"] = float(self.perplexity[g])
        return out


@dataclass(frozen=True)
class QuantizerResult:
    """What :meth:`MultiCodebookQuantizer.forward` returns.

    quantized: ``(B, C, *spatial)``, exactly the codewords of ``indices``, with gradients to
        the input (straight-through) and, in ``gumbel`` mode, to codebook and temperature.
    indices: ``(B, m, *spatial)`` int64 (sampled ones in ``gumbel`` training).
    loss: the auxiliary loss to add to the training objective
        (``codebook_loss + beta * commitment_loss``; the codebook term is zero for ``ema``).
    codebook_loss, commitment_loss: the unweighted terms (mean squared error per element).
    usage, perplexity: ``(m,)`` statistics of this batch (detached).
    """

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor
    usage: Tensor
    perplexity: Tensor


@dataclass(frozen=True)
class ResidualQuantizerResult:
    """What :meth:`ResidualQuantizer.forward` returns: the sum of all levels' codewords,
    one index map per level, the summed auxiliary loss and each level's own result."""

    quantized: Tensor
    indices: tuple[Tensor, ...]
    loss: Tensor
    levels: tuple[QuantizerResult, ...]


def codebook_stats(indices: Tensor, codebook_size: int) -> CodebookStats:
    """Usage and perplexity per codebook of an index map ``(B, m, *spatial)``."""
    if indices.dim() < 2:
        raise ValueError(f"indices must be (B, m, ...), got shape {tuple(indices.shape)}")
    m = indices.shape[1]
    flat = indices.detach().transpose(0, 1).reshape(m, -1)
    counts = torch.zeros(m, codebook_size, dtype=torch.float64, device=indices.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    return _stats_from_counts(counts)


def _stats_from_counts(counts: Tensor) -> CodebookStats:
    total = counts.sum(-1, keepdim=True).clamp_min(1.0)
    p = counts / total
    entropy = -torch.special.xlogy(p, p).sum(-1)
    return CodebookStats(
        usage=(counts > 0).to(torch.float64).mean(-1),
        perplexity=entropy.exp(),
        counts=counts,
    )


def _sq_dist(x: Tensor, c: Tensor, *, full: bool) -> Tensor:
    """Squared distances ``(G, N, K)`` between ``x (G, N, d)`` and ``c (G, K, d)``.

    Without ``full`` the per-row constant ``||x||^2`` is left out (argmin and softmax do not
    need it).
    """
    d = torch.baddbmm((c * c).sum(-1).unsqueeze(1), x, c.transpose(1, 2), alpha=-2.0)
    if full:
        d = (d + (x * x).sum(-1, keepdim=True)).clamp_min_(0.0)
    return d


@torch.no_grad()
def _nearest(x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Index of the nearest codeword and the squared distance to it, chunked over N."""
    g, n, _ = x.shape
    k = c.shape[1]
    chunk = max(1, _CHUNK_ELEMS // max(1, g * k))
    idx = torch.empty(g, n, dtype=torch.long, device=x.device)
    dist = torch.empty(g, n, dtype=x.dtype, device=x.device)
    for s in range(0, n, chunk):
        dd = _sq_dist(x[:, s : s + chunk], c, full=True)
        v, i = dd.min(-1)
        idx[:, s : s + chunk] = i
        dist[:, s : s + chunk] = v
    return idx, dist


def _gather(c: Tensor, idx: Tensor) -> Tensor:
    """``c (G, K, d)``, ``idx (G, N)`` -> ``(G, N, d)``."""
    return torch.gather(c, 1, idx.unsqueeze(-1).expand(-1, -1, c.shape[-1]))


def _normalize64(c: Tensor) -> Tensor:
    """l2-normalise the last dim in float64, rounded once to ``c``'s dtype."""
    c64 = c.double()
    return (c64 / c64.norm(dim=-1, keepdim=True).clamp_min(1e-12)).to(c.dtype)


@torch.no_grad()
def kmeans(
    points: Tensor,
    k: int,
    *,
    iters: int = 10,
    generator: torch.Generator | None = None,
    spherical: bool = False,
) -> tuple[Tensor, Tensor]:
    """Seeded k-means on ``G`` independent point sets at once.

    ``points`` is ``(G, N, d)`` (or ``(N, d)`` for one set). Seeding is k-means++ (Arthur &
    Vassilvitskii, "k-means++: The Advantages of Careful Seeding", SODA 2007), then ``iters``
    Lloyd iterations; a cluster that empties keeps its previous centroid. ``spherical``
    normalises points and centroids (cosine k-means). With fewer distinct points than ``k``
    some centroids repeat. Returns ``(centroids (G, k, d), counts (G, k))`` in float32, the
    counts being the final cluster sizes.
    """
    squeeze = points.dim() == 2
    if squeeze:
        points = points.unsqueeze(0)
    if points.dim() != 3 or points.shape[1] == 0:
        raise ValueError(f"points must be (G, N, d) with N > 0, got {tuple(points.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    x = points.detach().float()
    if spherical:
        x = F.normalize(x, dim=-1)
    g, n, d = x.shape
    rows = torch.arange(g, device=x.device)

    # greedy k-means++ seeding: draw `trials` candidates with probability proportional to
    # D(x)^2 and keep the one that lowers the potential most (as scikit-learn does)
    trials = 2 + int(math.log(k))
    first = torch.randint(n, (g,), generator=generator, device=x.device)
    cent = torch.empty(g, k, d, device=x.device)
    cent[:, 0] = x[rows, first]
    min_d2 = (x - cent[:, :1]).pow(2).sum(-1)
    for j in range(1, k):
        w = min_d2.clone()
        w[w.sum(-1) <= 0] = 1.0  # every point already a centre: draw uniformly
        cand = torch.multinomial(w, trials, replacement=True, generator=generator)  # (g, t)
        cand_d2 = (x.unsqueeze(1) - x[rows.unsqueeze(1), cand].unsqueeze(2)).pow(2).sum(-1)
        new_min = torch.minimum(min_d2.unsqueeze(1), cand_d2)  # (g, t, n)
        best = new_min.sum(-1).argmin(-1)
        cent[:, j] = x[rows, cand[rows, best]]
        min_d2 = new_min[rows, best]

    counts = torch.zeros(g, k, device=x.device)
    for _ in range(max(0, iters)):
        idx, _ = _nearest(x, cent)
        sums = torch.zeros_like(cent).scatter_add_(1, idx.unsqueeze(-1).expand(-1, -1, d), x)
        counts = torch.zeros(g, k, device=x.device).scatter_add_(1, idx, torch.ones_like(x[..., 0]))
        filled = counts > 0
        new = sums / counts.clamp_min(1.0).unsqueeze(-1)
        cent = torch.where(filled.unsqueeze(-1), new, cent)
        if spherical:
            cent = F.normalize(cent, dim=-1)
    if iters <= 0:
        idx, _ = _nearest(x, cent)
        counts = torch.zeros(g, k, device=x.device).scatter_add_(1, idx, torch.ones_like(x[..., 0]))
    if squeeze:
        return cent[0], counts[0]
    return cent, counts


class MultiCodebookQuantizer(nn.Module):
    """``m`` codebooks of ``k`` codewords, one per group of ``C / m`` channels.

    Args:
        channels: C, the latent's channel count (dim 1).
        groups: m; must divide ``channels``.
        codebook_size: k, entries per codebook.
        mode: ``"ste"`` (codebook + commitment losses), ``"ema"`` (EMA codebook updates) or
            ``"gumbel"`` (hard Gumbel-softmax with a learnable temperature, McQuic).
        beta: weight of the commitment loss in :attr:`QuantizerResult.loss`.
        decay: EMA decay (``ema`` mode).
        eps: Laplace smoothing of the EMA counts.
        normalize: l2-normalised codewords and inputs (cosine distance).
        dead_after: re-initialise codes unused for this many training updates (forward calls
            in training mode) to random encoder outputs of the current batch; ``None`` or 0
            turns restarts off.
        temperature: initial Gumbel temperature (``gumbel`` mode); learnt per codebook.
        kmeans_on_first_batch: run :meth:`kmeans_init` on the first training batch.
        init_scale: standard deviation of the random initial codewords.
    """

    codebook: Tensor
    ema_count: Tensor
    ema_sum: Tensor
    initialized: Tensor
    unused_steps: Tensor
    usage_counts: Tensor

    def __init__(
        self,
        channels: int,
        groups: int,
        codebook_size: int,
        *,
        mode: QuantizerMode = "ste",
        beta: float = 0.25,
        decay: float = 0.99,
        eps: float = 1e-5,
        normalize: bool = False,
        dead_after: int | None = 100,
        temperature: float = 1.0,
        kmeans_on_first_batch: bool = False,
        init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if groups < 1 or channels % groups:
            raise ValueError(f"groups ({groups}) must be >= 1 and divide channels ({channels})")
        if codebook_size < 2:
            raise ValueError(f"codebook_size must be >= 2, got {codebook_size}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.channels = channels
        self.groups = groups
        self.codebook_size = codebook_size
        self.dim = channels // groups
        self.mode: QuantizerMode = mode
        self.beta = float(beta)
        self.decay = float(decay)
        self.eps = float(eps)
        self.normalize = bool(normalize)
        self.dead_after = int(dead_after or 0)
        self.kmeans_on_first_batch = bool(kmeans_on_first_batch)

        init = torch.randn(groups, codebook_size, self.dim) * init_scale
        if self.normalize:
            init = F.normalize(init, dim=-1)
        if mode == "ema":
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(groups, codebook_size))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)  # type: ignore[assignment]
        if mode == "gumbel":
            self.log_temperature = nn.Parameter(torch.full((groups,), math.log(temperature)))
        self.register_buffer("initialized", torch.tensor(not self.kmeans_on_first_batch))
        self.register_buffer(
            "unused_steps", torch.zeros(groups, codebook_size, dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "usage_counts", torch.zeros(groups, codebook_size, dtype=torch.float64), persistent=False
        )

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, groups={self.groups}, codebook_size={self.codebook_size}, "
            f"mode={self.mode!r}, normalize={self.normalize}, dead_after={self.dead_after}"
        )

    # ------------------------------------------------------------------ layout helpers
    @property
    def bits_per_position(self) -> float:
        """The uniform bound ``m * log2(k)`` bits per spatial position."""
        return self.groups * math.log2(self.codebook_size)

    @property
    def temperature(self) -> Tensor:
        """The Gumbel temperature per codebook (``gumbel`` mode; ones otherwise)."""
        if self.mode == "gumbel":
            return self.log_temperature.exp()
        return torch.ones(self.groups, device=self.codebook.device)

    def codewords(self) -> Tensor:
        """The effective codebook ``(m, k, d)`` (l2-normalised when ``normalize``)."""
        return _normalize64(self.codebook) if self.normalize else self.codebook

    def _check(self, x: Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise ValueError(
                f"expected (B, {self.channels}, ...) input, got shape {tuple(x.shape)}"
            )

    def _split(self, x: Tensor) -> Tensor:
        """``(B, C, *S)`` -> ``(m, B * prod(S), d)``; group g holds channels ``g*d:(g+1)*d``."""
        b = x.shape[0]
        return x.reshape(b, self.groups, self.dim, -1).permute(1, 0, 3, 2).reshape(
            self.groups, -1, self.dim
        )

    def _merge(self, z: Tensor, shape: torch.Size) -> Tensor:
        """Inverse of :meth:`_split`."""
        b = shape[0]
        return z.reshape(self.groups, b, -1, self.dim).permute(1, 0, 3, 2).reshape(shape)

    def _merge_indices(self, idx: Tensor, shape: torch.Size) -> Tensor:
        """``(m, N)`` -> ``(B, m, *S)``."""
        b = shape[0]
        return idx.reshape(self.groups, b, *shape[2:]).transpose(0, 1).contiguous()

    # ------------------------------------------------------------------ coding
    @torch.no_grad()
    def indices(self, x: Tensor) -> Tensor:
        """Nearest-codeword indices ``(B, m, *spatial)`` int64 (deterministic; the encoder)."""
        self._check(x)
        z = self._split(x.detach().float())
        if self.normalize:
            z = F.normalize(z, dim=-1)
        idx, _ = _nearest(z, self.codewords().detach().float())
        return self._merge_indices(idx, x.shape)

    def dequantize(self, indices: Tensor) -> Tensor:
        """Codewords ``(B, C, *spatial)`` of an index map ``(B, m, *spatial)`` (the decoder).

        A gather from :meth:`codewords`: exactly the values of the quantised output (float32
        codebooks: compare with a float32 forward). Differentiable in the codebook, so a
        codebook can be fine-tuned on fixed index maps (issue 31's codebook reduction).
        """
        if indices.dim() < 2 or indices.shape[1] != self.groups:
            raise ValueError(
                f"expected (B, {self.groups}, ...) indices, got shape {tuple(indices.shape)}"
            )
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise TypeError(f"indices must be integers, got {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"indices out of range [0, {self.codebook_size})")
        b = indices.shape[0]
        idx = indices.long().transpose(0, 1).reshape(self.groups, -1)
        q = _gather(self.codewords(), idx)
        shape = torch.Size((b, self.channels, *indices.shape[2:]))
        return self._merge(q, shape)

    # ------------------------------------------------------------------ statistics
    def usage(self, reset: bool = False) -> CodebookStats:
        """Usage and perplexity per codebook over every forward since :meth:`reset_usage`.

        Training loops call :meth:`reset_usage` before an evaluation pass and log this after.
        """
        stats = _stats_from_counts(self.usage_counts.clone())
        if reset:
            self.reset_usage()
        return stats

    def reset_usage(self) -> None:
        """Forget the accumulated code counts."""
        self.usage_counts.zero_()

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def kmeans_init(
        self, data: Tensor, *, iters: int = 10, seed: int = 0, max_points: int = 32768
    ) -> None:
        """Set every codebook to k-means centroids of its group of ``data`` ``(B, C, *S)``.

        k-means++ seeding and ``iters`` Lloyd iterations, seeded by ``seed``, on at most
        ``max_points`` positions drawn at random (the same for all groups).
        """
        self._check(data)
        z = self._split(data.detach().float())
        gen = torch.Generator(device=z.device)
        gen.manual_seed(int(seed))
        n = z.shape[1]
        if n > max_points:
            keep = torch.randperm(n, generator=gen, device=z.device)[:max_points]
            z = z[:, keep]
        cent, counts = kmeans(
            z, self.codebook_size, iters=iters, generator=gen, spherical=self.normalize
        )
        self._set_codes(torch.ones_like(counts, dtype=torch.bool), cent)
        self.initialized.fill_(True)
        self.unused_steps.zero_()

    @torch.no_grad()
    def _set_codes(self, mask: Tensor, values: Tensor) -> None:
        """Overwrite codewords where ``mask (m, k)``; ``values`` is ``(m, k, d)`` or ``(n, d)``."""
        vals = values.to(self.codebook.dtype)
        if vals.dim() == 3:
            vals = vals[mask]
        self.codebook.data[mask] = vals
        if self.mode == "ema":
            self.ema_sum[mask] = vals
            self.ema_count[mask] = 1.0

    @torch.no_grad()
    def _restart_dead(self, z: Tensor) -> None:
        """Codes unused for ``dead_after`` updates take random vectors of ``z (m, N, d)``."""
        dead = self.unused_steps >= self.dead_after
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        g_idx = dead.nonzero()[:, 0]  # row-major, matches boolean-mask assignment order
        pick = torch.randint(z.shape[1], (n_dead,), device=z.device)
        new = z[g_idx, pick].float()
        if n_dead > z.shape[1]:  # more dead codes than vectors: break the ties
            new = new + 1e-3 * new.std().clamp_min(1e-6) * torch.randn_like(new)
        if self.normalize:
            new = F.normalize(new, dim=-1)
        self._set_codes(dead, new)
        self.unused_steps[dead] = 0

    @torch.no_grad()
    def _ema_update(self, z: Tensor, idx: Tensor) -> None:
        onehot_counts = torch.zeros_like(self.ema_count).scatter_add_(
            1, idx, torch.ones_like(idx, dtype=self.ema_count.dtype)
        )
        sums = torch.zeros_like(self.ema_sum).scatter_add_(
            1, idx.unsqueeze(-1).expand(-1, -1, self.dim), z.to(self.ema_sum.dtype)
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(onehot_counts)
            torch.distributed.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(onehot_counts, alpha=1.0 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        n = self.ema_count.sum(-1, keepdim=True)
        smoothed = (self.ema_count + self.eps) / (n + self.codebook_size * self.eps) * n
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(-1))

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> QuantizerResult:
        """Quantise ``x (B, C, *spatial)``; see :class:`QuantizerResult`."""
        self._check(x)
        shape = x.shape
        z = self._split(x.float())
        if self.normalize:
            z = F.normalize(z, dim=-1)
        training = self.training
        if training and not bool(self.initialized):
            self.kmeans_init(x)
        if training and self.dead_after > 0:
            self._restart_dead(z.detach())

        cb = self.codewords()
        if self.mode == "gumbel" and training:
            logits = -_sq_dist(z, cb, full=False) / self.log_temperature.exp().view(-1, 1, 1)
            u = torch.rand_like(logits).clamp_(1e-20, 1.0 - 1e-7)
            noisy = logits - torch.log(-torch.log(u))
            idx = noisy.argmax(-1)
            soft = noisy.softmax(-1)
            onehot = F.one_hot(idx, self.codebook_size).to(soft.dtype)
            # onehot + (soft - sg[soft]) is exactly onehot, with the soft sample's gradient
            q_out = torch.bmm(onehot + (soft - soft.detach()), cb)
            q = _gather(cb, idx)
        else:
            idx, _ = _nearest(z.detach(), cb.detach())
            q = _gather(cb, idx)
            # exactly q, gradient identity to x (x - sg[x] is an exact zero)
            q_out = q.detach() + (z - z.detach())

        commitment = F.mse_loss(z, q.detach())
        if self.mode == "ste":
            codebook_loss = F.mse_loss(q, z.detach())
        else:
            codebook_loss = torch.zeros((), device=x.device)
        loss = codebook_loss + self.beta * commitment

        with torch.no_grad():
            counts = torch.zeros(
                self.groups, self.codebook_size, dtype=torch.float64, device=x.device
            ).scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
            self.usage_counts += counts
            batch = _stats_from_counts(counts)
            if training:
                if self.dead_after > 0:
                    self.unused_steps += 1
                    self.unused_steps[counts > 0] = 0
                if self.mode == "ema":
                    self._ema_update(z.detach(), idx)

        return QuantizerResult(
            quantized=self._merge(q_out, shape).to(x.dtype),
            indices=self._merge_indices(idx, shape),
            loss=loss,
            codebook_loss=codebook_loss,
            commitment_loss=commitment,
            usage=batch.usage,
            perplexity=batch.perplexity,
        )


class ResidualQuantizer(nn.Module):
    """A cascade of quantisers: level ``i`` codes what levels ``< i`` left over.

    The output is the sum of every level's codewords; gradients reach the input through the
    first level (straight-through), later levels see the detached residual (their codebook
    and commitment losses still train their codebooks). Decoding sums the levels' gathers in
    the same order, so :meth:`dequantize` reproduces the output exactly.
    """

    def __init__(self, quantizers: Sequence[MultiCodebookQuantizer]) -> None:
        super().__init__()
        if not quantizers:
            raise ValueError("ResidualQuantizer needs at least one quantizer")
        channels = {q.channels for q in quantizers}
        if len(channels) != 1:
            raise ValueError(f"all levels must have the same channel count, got {channels}")
        self.channels = channels.pop()
        self.levels = nn.ModuleList(quantizers)

    @classmethod
    def build(
        cls, levels: int, channels: int, groups: int, codebook_size: int, **kwargs: object
    ) -> ResidualQuantizer:
        """``levels`` identical :class:`MultiCodebookQuantizer` s (``kwargs`` passed on)."""
        return cls(
            [
                MultiCodebookQuantizer(channels, groups, codebook_size, **kwargs)  # type: ignore[arg-type]
                for _ in range(levels)
            ]
        )

    def _levels(self) -> list[MultiCodebookQuantizer]:
        return list(self.levels)  # type: ignore[arg-type]

    @property
    def bits_per_position(self) -> float:
        return sum(q.bits_per_position for q in self._levels())

    def forward(self, x: Tensor) -> ResidualQuantizerResult:
        results: list[QuantizerResult] = []
        residual = x
        total: Tensor | None = None
        for i, q in enumerate(self._levels()):
            r = q(residual if i == 0 else residual.detach())
            results.append(r)
            total = r.quantized if total is None else total + r.quantized
            residual = residual.detach() - r.quantized.detach()
        assert total is not None
        return ResidualQuantizerResult(
            quantized=total,
            indices=tuple(r.indices for r in results),
            loss=torch.stack([r.loss for r in results]).sum(),
            levels=tuple(results),
        )

    @torch.no_grad()
    def indices(self, x: Tensor) -> tuple[Tensor, ...]:
        out = []
        residual = x.detach()
        for q in self._levels():
            idx = q.indices(residual)
            out.append(idx)
            residual = residual - q.dequantize(idx).to(residual.dtype)
        return tuple(out)

    def dequantize(self, indices: Sequence[Tensor]) -> Tensor:
        levels = self._levels()
        if len(indices) != len(levels):
            raise ValueError(f"expected {len(levels)} index maps, got {len(indices)}")
        total = levels[0].dequantize(indices[0])
        for q, idx in zip(levels[1:], indices[1:]):
            total = total + q.dequantize(idx)
        return total

    @torch.no_grad()
    def kmeans_init(self, data: Tensor, *, iters: int = 10, seed: int = 0) -> None:
        """k-means for each level in turn on the residual the levels below leave."""
        residual = data.detach().float()
        for i, q in enumerate(self._levels()):
            q.kmeans_init(residual, iters=iters, seed=seed + i)
            residual = residual - q.dequantize(q.indices(residual))

    def usage(self, reset: bool = False) -> tuple[CodebookStats, ...]:
        return tuple(q.usage(reset=reset) for q in self._levels())

    def reset_usage(self) -> None:
        for q in self._levels():
            q.reset_usage()
