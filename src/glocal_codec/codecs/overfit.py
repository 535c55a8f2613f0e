"""``overfit``: a per-image overfitted neural codec (Cool-chic / C3 family), decoded in integers.

Ladune et al., "COOL-CHIC: Coordinate-based Low Complexity Hierarchical Image Codec" (ICCV 2023)
and its successors (Cool-chic 2-4), Kim et al., "C3: High-performance and low-complexity neural
compression from a single image or video" (CVPR 2024). No pretrained weights: encoding an image
*is* fitting a tiny decoder and a latent pyramid to it; the file carries both.

Representation (:class:`OverfitArch`, stored in ``Payload.params``)
--------------------------------------------------------------------
* **Latent pyramid**: ``n_grids`` one-channel integer grids, grid ``i`` of
  ``ceil(H / 2^i) x ceil(W / 2^i)`` (1:1 down to 1:64 for 7 grids; fewer for tiny images). With
  ``skip`` (params version 5) the finest grids are left out: grid ``i`` is at ``1 : 2^(i + skip)``
  and the stack is upsampled ``skip`` more times, with nothing added, to reach full resolution.
* **Upsampling**: from the coarsest grid up, the stack so far is upsampled x2 with a separable
  symmetric filter (edge-replicated) and the next finer grid is appended, so the synthesis sees
  ``n_grids`` channels at full resolution. The filter is bicubic (taps ``[-9, 67, 225, -27] /
  256``) or, with ``learned_up`` (params version 4, Cool-chic 3's learned upsampling), one
  filter per level whose 4 taps are fitted with the networks (from bicubic) and stored in 1/256
  in the header.
* **Synthesis**: 1x1 conv ``n_grids -> width``, ReLU, 1x1 conv ``width -> 3``, then ``n_res``
  residual blocks ``x + conv3x3(relu(conv3x3(x)))`` on the 3 channels (zero padding).
* **Entropy model** (ARM): every latent gets a Laplace location and scale from a 3-layer MLP
  (``12 -> arm_width -> arm_width -> 2``, ReLU) over 12 causal neighbours in its own grid (two
  rows above, ``-2..+2`` columns, and two to the left; zero outside the grid), gathered as shifted
  slices. One ARM serves every grid. Optionally (``parent_context=True``, params version 3) a
  13th context value: the latent's parent, grid ``i + 1`` at ``(r // 2, c // 2)``; the grids then
  decode coarsest first, each one wavefront pass behind the next coarser one. Off by default: at
  the ``fast`` budget it did not pay (measured, ``docs/overfit.md``).

Multiplications per decoded pixel (``L`` grids, synthesis width ``C``, ARM width ``A``, ``R``
residual blocks, ~4/3 latents per pixel): ``L*C + 3*C + 162*R + 4/3*(12*A + A*A + 2*A)``
(:meth:`OverfitArch.macs_per_pixel`); for 7 grids ``fast`` (C=16, A=16, R=1) 962, ``medium``
(C=24, A=16, R=1) 1,042, ``slow`` (C=40, A=24, R=2) 1,940 -- plus ~40 for the upsampling.
Without the 1:1 grid (``skip`` 1: 6 grids, 1/3 latent per pixel; ``fast`` at qualities 1-2) ``fast``
is 466.

Bitstream
---------
``params``: version byte + varints (:mod:`.overfit_header`, ranges checked on read, before
anything is allocated); the encoder writes version 3 (the tile side, 0 when fitted whole, and
one architecture per tile), versions 1 (whole) and 2 (tiles) are older files' and still decode.
Pictures of more than ``TILE**2`` pixels are fitted tile by tile (at most :data:`TILE` a side,
near-equal sizes, :func:`glocal_codec.engine.tiling.tile_boxes`), each tile with its own networks
and latents, so fitting memory is bounded by a tile (three streams per tile, in tile order; tiles
meet at seams the fit does not see). Streams: 0 = ARM weights, 1 = synthesis weights (both
through :func:`glocal_codec.entropy.params.encode_tensors`: per-output-channel steps, range coded,
biases float16; version 3 in the ``compact`` form, a one-byte step per channel: ~230 bytes less
per file than versions 1-2), 2 = the latents, range coded by :class:`glocal_codec.entropy.laplace.LaplaceCoder`
in wavefront order: position ``(r, c)`` of every grid belongs to pass ``c + 3 r``, whose context
is all decoded by then, so the decoder runs one vectorised pass per anti-diagonal band (about
``W + 3 H`` passes for all grids together), never a Python loop per latent.

What is exact
-------------
Everything at decode is integer arithmetic (fixed point, carried out as float64 on integers
below 2^53, where every summation order gives the same exact result):

* weights: the decoded float weights are put on a fixed-point grid (``2^-12``), deterministic
  IEEE rounding of identical inputs;
* the ARM: integer context, fixed-point layers with floor rescaling, so location/scale *indexes*
  (integer centre, 1/16 mean offset, 64 log-spaced scales) are identical on every machine, and they
  select integer CDF tables (:mod:`glocal_codec.entropy.laplace`, built without ``np.exp``). The
  latents therefore decode **bit-exactly** on any machine, thread count and CPU kernel set;
* upsampling and synthesis: fixed-point too (activations on a ``2^-12`` grid, floor after every
  layer), so the **decoded pixels are bit-identical** as well (the output is a multiple of
  ``1/4096`` before the API rounds to 8 bits). Decoding always runs on the CPU for that reason.

What is not exact: *encoding* is an optimisation in float32 (CPU or GPU, ``to(device)``); it is
deterministic for the same input, preset, quality, device and thread count (seeded, the global
RNG untouched), but another machine or thread count may fit slightly different parameters and
so write a different (equally valid) file. Images up to :data:`SMALL_IMAGE` pixels are fitted in
float64 on one thread, with initial weights drawn without ``uniform_`` and an upsampling by
convolution (torch's vectorised bicubic kernel differs between CPU kernel sets), so their files
are in practice identical across thread counts and ``ATEN_CPU_CAPABILITY`` settings (tested at
the test budget) -- a property of float64 round-off being far below any quantisation step, not
a proof. The float training graph only approximates the
fixed-point decoder (a ``2^-12`` grid), so the encoder's rate/PSNR estimates are approximate; the
file's are exact.

Encoder: rate + lambda * MSE (``bpp + lambda * mse`` over [0, 1] pixels, lambda per quality in
:data:`LAMBDAS`), Adam with warm-up and cosine decay, the latents' learning rate 16x and the
networks' 3x the preset's (:data:`LATENT_LR_SCALE`, :data:`NET_LR_SCALE`). For the first 95 % of
the budget the latents pass through C3's quantiser, ``softround(softround(y) + u)`` with
Kumaraswamy noise ``u`` annealed from peaked to uniform and the soft-rounding temperature from 0.3
to 0.1 (:func:`_noisy_round`); then hard rounding (straight-through). The networks are fitted in
float; the bits their weights ship with are chosen afterwards per network by measuring
rate + lambda * distortion through the fixed-point decoder (:data:`BIT_CHOICES`) -- a
quantisation-aware phase cost more than it saved (measured). ``medium`` / ``slow`` let 2 / 3
random starts compete over the first tenth of the budget and keep the best. ``fast`` starts
coarse to fine where it keeps the 1:1 grid and the picture is expected below 1 bpp: its first
iterations fit the picture at half resolution with every grid but the 1:1 one
(:meth:`OverfitCodec.coarse_budget`), which then joins at zero. Budgets below
:data:`ANALYTIC_BELOW` iterations (tests, previews) start from :func:`_analytic_init`, a
luma/chroma pyramid that already decodes to the image.

Speed: one fitting iteration on a 768x512 image takes about 0.13-0.2 s on this 2-core machine
(``fast``; the ARM's rate in cache-sized row bands with hand-written gradients, :class:`_BandedBits`,
is the largest part), so
``fast`` (300 half-size iterations at ~0.26x the cost, then 420; 500 plain ones at 1 bpp or more; 730 where the 1:1 grid
and three quarters of the latents are left out) encodes a Kodak image in about two minutes; the family needs thousands
of iterations to reach its published numbers (Cool-chic fits ~10k on a GPU).
``benchmarks/overfit_speed.py`` times every preset, ``benchmarks/overfit_iterations.py`` measures
the BD-rate bought by each budget. Decoding takes 0.4-1 s (about 2,300 wavefront passes + the
float64 fixed-point synthesis).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, ClassVar, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bitstream.errors import CorruptStreamError, LimitError
from ..bitstream.varint import decode_varint
from ..engine.fit import cosine_lr, report
from ..engine.tiling import tile_boxes
from ..entropy.laplace import LaplaceCoder, LaplacePassDecoder, laplace_tables
from ..entropy.params import decode_tensors, encode_tensors
from .base import NO_WEIGHTS, Payload
from .overfit_header import CONTEXT, MAX_SKIP, PRESET_SHAPES, TAP_LIMIT, OverfitArch, pack_params, parse_params

__all__ = ["OverfitArch", "OverfitCodec", "PRESETS", "Preset", "LAMBDAS", "rate_hint"]

#: Fixed-point fractional bits of the decoder (upsampled latents, activations, weights).
FRAC = 12
_ONE = float(1 << FRAC)
#: Latent values are kept within +-LATENT_MAX (so residuals fit the Laplace coder's range).
LATENT_MAX = 2047
_ACT_MAX = float(1 << 26)  # activations are clamped here: every product sum stays below 2^53
_W_MAX = 128.0  # |weight| bound (checked on decode, enforced on encode)
_B_MAX = 16384.0
_WAVE = 3  # the wavefront is c + 3 r (see CONTEXT)
#: Bicubic (a = -0.75) x2 upsampling taps in 1/256: even outputs read inputs j-2..j+1, odd j-1..j+2.
_TAPS = (-9, 67, 225, -27)
#: Images up to this many pixels are fitted on one thread (threads only add overhead there, and
#: one thread makes their files independent of the caller's thread count).
SMALL_IMAGE = 128 * 128
#: Budgets below this many iterations start from the analytic pyramid (:func:`_analytic_init`),
#: which decodes to the image at once; longer fits reach a better rate from a random start.
ANALYTIC_BELOW = 150
#: Canvas rows per band of the fitting's rate computation (:class:`_BandedBits`; 64-128 measured best).
BAND_ROWS = 64
#: The largest image this codec decodes (pixels), checked before anything is allocated.
MAX_PIXELS = 1 << 27
#: Pictures of more than ``TILE**2`` pixels are fitted in tiles of at most ``TILE`` a side
#: (:func:`glocal_codec.engine.tiling.tile_boxes`), one after the other: fitting holds about
#: 0.8 kB per pixel (measured), so a 12-Mpixel photo fitted whole would need ~10 GB; a tile ~1 GB.
TILE = 1024


@dataclass(frozen=True)
class Preset:
    """An operating point: fitting budget and decoder size."""

    iterations: int
    synth_width: int
    arm_width: int
    n_res: int
    starts: int = 1
    lr: float = 1e-2
    #: 1: learned x2 upsampling between grids (:attr:`OverfitArch.learned_up`, params version 4)
    learned_up: int = 0
    #: qualities up to this one leave the 1:1 grid out (:attr:`OverfitArch.skip`, params version 5)
    skip_upto: int = 0
    #: the budget of those fits: an iteration without the 1:1 grid costs about 0.68x (its
    #: entropy model runs over a quarter of the latents), so the same time buys more of them
    skip_iterations: int = 0
    #: above ``skip_upto``, a picture whose :func:`rate_hint` at that quality is below this many
    #: bits per pixel leaves the 1:1 grid out too (0: never)
    skip_below_bpp: float = 0.0
    #: iterations fitted at half resolution before the full-size ones (:meth:`OverfitCodec.coarse_budget`)
    coarse: int = 0
    #: the half-size start only for pictures whose :func:`rate_hint` at the quality is below this
    #: many bits per pixel (0: for all)
    coarse_below_bpp: float = 0.0
    #: the budget of fits that keep the 1:1 grid but get no half-size start (0: ``iterations``):
    #: the time of ``coarse`` half-size and ``iterations`` full-size ones
    plain_iterations: int = 0


PRESETS: dict[str, Preset] = {
    # (synthesis width, ARM width, residual blocks) live in the header module, which `info` reads
    # fast: at qualities 1-2 the 1:1 grid is left out and the saved time spent on iterations
    # (measured on training photos at equal time: -6.5 % loss at quality 1, -3.5 % at 3 with a
    # textured photo +19 %, +46 % at 5), and above them for pictures expected below 0.3 bpp (at
    # quality 3, 17 training photos: the five below it all gain, -5 to -24 %, none above it that
    # loses is below it; docs/overfit.md)
    # Fits that keep the 1:1 grid start with 300 iterations at half resolution (~0.26x an
    # iteration's time each; 500 -> 420 full-size ones keep the time): Kodak-24 eval, qualities
    # 3-5, loss -4.2 / -3.3 / -2.1 % (22 / 19 / 17 of 24 images better); fits without the 1:1
    # grid lost (kodim01-12: +5.3 / +2.7 % at qualities 1-2) and keep their plain 730
    # (docs/overfit.md). medium: its two starts at half size did not pay (-2.9 / +5.5 %).
    # Pictures expected at 1 bpp or more fit plainly, 500 iterations: above it the half-size start
    # lost on Kodak-24 (+3.7 % mean at 1.1-1.5 bpp, +4.0 % above) and on held-out photos (+2 to +18 %)
    "fast": Preset(420, *PRESET_SHAPES["fast"], skip_upto=2, skip_iterations=730, skip_below_bpp=0.3, coarse=300,
                   coarse_below_bpp=1.0, plain_iterations=500),
    "medium": Preset(1500, *PRESET_SHAPES["medium"], starts=2),
    "slow": Preset(6000, *PRESET_SHAPES["slow"], starts=3),
}
#: Quality level -> lambda (loss = bpp + lambda * MSE on [0, 1] pixels); higher = more bits.
LAMBDAS: dict[int, float] = {1: 60.0, 2: 150.0, 3: 400.0, 4: 1000.0, 5: 2500.0, 6: 6000.0}
#: Weight bits the encoder tries for each network (:meth:`OverfitCodec._code` keeps the cheapest).
BIT_CHOICES = (6, 7, 8, 9, 10, 11)
# The fitting recipe. Measured on a 256x256 crop of kodim23 (quality 3, 600 iterations, file
# sizes; the first version's recipe gave 0.333 bpp / 26.65 dB there, this one 0.389 bpp / 31.37 dB,
# and 0.362 bpp / 32.18 dB at 2,400 iterations):
#: Adam learning-rate multipliers of the latents and of the networks (over ``Preset.lr``). Adam moves
#: a parameter by about ``lr`` per step whatever its gradient, and the latents live in units of one
#: quantisation step (values of 10-100 are common): at 1e-2 they need thousands of steps to get there.
LATENT_LR_SCALE = 16.0
NET_LR_SCALE = 3.0
#: Fraction of the budget fitted with the noisy soft-rounding quantiser (C3's), the rest with hard
#: rounding (straight-through). A longer hard phase raised the rate (measured: 0.7 -> +29 % bytes).
HARD_FROM = 0.95
#: Kumaraswamy noise parameter at the start (annealed to 1 = uniform): noise peaked around zero early.
NOISE_START = 2.0


#: :func:`rate_hint` -> expected bpp of a ``fast`` fit that keeps the 1:1 grid, per quality level:
#: the geometric mean of the ratio on training photos at qualities 1, 3 and 5 (5, 17 and 5 photos
#: of ``train/wikipedia_photos_half``), geometric interpolation between them, extrapolated to 6
RATE_HINT_SCALE: dict[int, float] = {1: 0.189, 2: 0.348, 3: 0.642, 4: 0.992, 5: 1.533, 6: 2.37}


def rate_hint(x: torch.Tensor) -> float:
    """Bits per pixel of the picture (1 x C x H x W in [0, 1]) as a quality-30 baseline JPEG
    (Pillow, 4:2:0): a rate estimate that takes ~10 ms, for choosing the architecture before a
    fit. It predicts a ``fast`` fit's rate to within about 20 % (log-residual s.d. 0.13-0.2 on
    Kodak and training photos; :data:`RATE_HINT_SCALE` maps it to each quality level)."""
    a = (x.detach()[0].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    a = a.expand(3, *a.shape[-2:]) if a.shape[0] == 1 else a
    # less the file's fixed part (headers, tables: ~600 bytes, a tiny picture's whole rate)
    body = _jpeg30_bytes(a.permute(1, 2, 0).contiguous().numpy()) - _jpeg30_bytes(np.full((8, 8, 3), 128, np.uint8))
    return 8 * max(0, body) / (a.shape[-2] * a.shape[-1])


def _jpeg30_bytes(rgb: np.ndarray) -> int:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=30)
    return buf.tell()


def grid_sizes(h: int, w: int, n: int, skip: int = 0) -> list[tuple[int, int]]:
    """Sizes of the ``n`` latent grids of an ``h x w`` picture, finest first (the finest at
    ``1 : 2**skip``)."""
    return [(-(-h // (1 << i)), -(-w // (1 << i))) for i in range(skip, skip + n)]


def fine_sizes(h: int, w: int, skip: int) -> list[tuple[int, int]]:
    """The sizes :func:`pyramid` upsamples to below the finest grid (coarsest first, ending at ``h x w``)."""
    return grid_sizes(h, w, skip)[::-1]


def default_grids(h: int, w: int, most: int = 7) -> int:
    """Grids for an image: down to about 1:64, never coarser than the image's short side."""
    return max(1, min(most, 1 + int(math.floor(math.log2(max(1, min(h, w)))))))


# -- networks (float, for fitting) ---------------------------------------------------------------


@torch.no_grad()
def _reset_uniform(module: nn.Module) -> None:
    """PyTorch's default init (uniform, bound 1/sqrt(fan_in)) drawn as float64 and scaled with plain
    arithmetic: the same values on every CPU kernel set (``uniform_`` itself is not)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            bound = 1 / math.sqrt(m.weight[0].numel())
            for t in (m.weight, m.bias):
                u = torch.rand(t.shape, dtype=torch.float64)
                t.copy_((u * 2 - 1) * bound)


class Synthesis(nn.Module):
    """Upsampled latents (N, n_grids, H, W) -> image (N, 3, H, W)."""

    def __init__(self, arch: OverfitArch) -> None:
        super().__init__()
        c = arch.synth_width
        self.head = nn.ModuleList([nn.Conv2d(arch.n_grids, c, 1), nn.Conv2d(c, 3, 1)])
        self.res = nn.ModuleList([nn.Conv2d(3, 3, 3, padding=1) for _ in range(2 * arch.n_res)])
        _reset_uniform(self)
        #: learned upsampling taps (one row of 4 per level, coarsest first, in units of 1), started
        #: at the bicubic filter; not part of :meth:`tensors` (the header carries them)
        self.up_taps = (nn.Parameter(torch.tensor(_TAPS, dtype=torch.float64).div(256).repeat(arch.n_grids - 1, 1))
                        if arch.learned_up and arch.n_grids > 1 else None)
        with torch.no_grad():
            self.head[1].bias.fill_(0.5)
            for i in range(1, len(self.res), 2):  # residual branches start near zero
                self.res[i].weight.mul_(0.1)
                self.res[i].bias.zero_()

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        n, l, h, w = feat.shape
        (w0, b0), (w1, b1) = ((m.weight.flatten(1), m.bias[:, None]) for m in self.head)
        # the 1x1 layers as matrix products on the (channels, pixels) view: no transposed copies
        # (2.9x faster forward + backward than the pixels-first layout on a Kodak image)
        x = feat.reshape(l, h * w)
        x = torch.addmm(b1, w1, F.relu(torch.addmm(b0, w0, x))).view(1, 3, h, w)
        if self.res and x.dtype == torch.float32:
            # oneDNN's 3-channel 3x3 convolutions run 2.2x faster (with backward) channels-last
            x = x.contiguous(memory_format=torch.channels_last)
        for i in range(0, len(self.res), 2):
            x = x + self.res[i + 1](F.relu(self.res[i](x)))
        return x

    def level_taps(self) -> list[torch.Tensor] | None:
        """The learned upsampling taps of every level in 1/256 (:func:`pyramid`'s ``taps``), or None."""
        return None if self.up_taps is None else list(self.up_taps * 256)

    def tensors(self) -> list[torch.Tensor]:
        out = []
        for m in [*self.head, *self.res]:
            out += [m.weight, m.bias]
        return out


class ARM(nn.Module):
    """Causal context (N, 12) -> (location, scale index) (N, 2)."""

    def __init__(self, arch: OverfitArch) -> None:
        super().__init__()
        a = arch.arm_width
        self.layers = nn.ModuleList([nn.Linear(arch.context_size(), a), nn.Linear(a, a), nn.Linear(a, 2)])
        _reset_uniform(self)
        with torch.no_grad():
            self.layers[2].weight.mul_(0.1)
            self.layers[2].bias.copy_(torch.tensor([0.0, 20.0]))  # a moderate scale to start

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        h = ctx
        for i, lin in enumerate(self.layers):
            h = F.linear(h, lin.weight, lin.bias)
            if i < len(self.layers) - 1:
                h = F.relu(h)
        return h

    def canvas_bits(self, canvas: torch.Tensor, valid: torch.Tensor, parents: torch.Tensor | None = None) -> torch.Tensor:
        """Bits of every latent of a :class:`Canvas` under this network (a differentiable scalar);
        ``valid`` (1, 1, H_c - 2, W_c - 4) masks the canvas padding out; ``parents``: the canvas of
        every latent's parent (:meth:`Canvas.parents`), when the network reads it."""
        if parents is None:
            parents = canvas.new_zeros(0)
        return _BandedBits.apply(canvas, parents, valid, *self.tensors())

    def tensors(self) -> list[torch.Tensor]:
        out = []
        for lin in self.layers:
            out += [lin.weight, lin.bias]
        return out


#: Bits per latent are capped here (probability floor 2^-20), as the coder's tables cap them.
MAX_BITS = 20.0
_LN2 = math.log(2.0)


def _band_bits(band: torch.Tensor, valid: torch.Tensor, w: list[torch.Tensor], g_band: torch.Tensor,
               g_w: list[torch.Tensor], parent: torch.Tensor | None = None,
               g_parent: torch.Tensor | None = None) -> torch.Tensor:
    """Bits of the latents of canvas rows ``2..`` of ``band`` (its first two rows are context only)
    under the ARM, and their gradients, *added* to ``g_band`` (same shape as ``band``) and ``g_w``;
    ``parent`` / ``g_parent``: the same rows of the parents' canvas and its gradient, when the ARM
    reads the coarser grid.

    The ARM runs on the (features, positions) layout, its context gathered as 12 shifted slices.
    The rate of a latent ``y`` under a discretised Laplace (location ``mu``, scale ``b = 1/r``),
    ``d = |y - mu|``, in closed form (no difference of two exponentials, which cancels for far
    values):

    * ``d >= 1/2``: ``p = e^{-(d - 1/2) r} (1 - e^{-r}) / 2``, so ``bits = ((d - 1/2) r - ln(1 - e^{-r})) / ln 2 + 1``;
    * ``d < 1/2``: ``p = 1 - (e^{-(1/2 - d) r} + e^{-(1/2 + d) r}) / 2``;

    capped at :data:`MAX_BITS`. The derivatives are written out, and so is the MLP's backward
    pass: autograd's version of this band took 1.4x longer (a dozen elementwise passes more, each
    allocating). Checked against autograd in ``tests/codecs/test_overfit.py``.
    """
    n, wc = band.shape[-2] - 2, band.shape[-1] - 4
    c = band[0, 0]
    taps = [c[2 + dr: 2 + dr + n, 2 + dc: 2 + dc + wc] for dr, dc in CONTEXT]
    if parent is not None:
        taps.append(parent[0, 0, 2:, 2:-2])
    h = torch.stack(taps).view(len(taps), -1)
    acts = [h]
    layers = len(w) // 2
    for i in range(layers):
        h = torch.addmm(w[2 * i + 1][:, None], w[2 * i], h)
        if i < layers - 1:
            h = h.clamp_min_(0)  # ReLU
            acts.append(h)
    tab = laplace_tables()
    top = tab.n_scales - 1
    mu_raw, s_raw = h[0], h[1]
    mu = mu_raw.clamp(-LATENT_MAX, LATENT_MAX)
    r = torch.exp(s_raw.clamp(0, top) * -tab.log_step - tab.log_b_min)  # 1 / b
    er = torch.exp(-r)
    e = c[2:, 2:-2].reshape(-1) - mu
    d = e.abs()
    far = d >= 0.5
    bits_far = ((d - 0.5) * r - torch.log1p(-er)) * (1 / _LN2) + 1
    e1 = torch.exp((d - 0.5).clamp_max(0) * r)  # e^{-(1/2 - d) r} (1 where d >= 1/2: unused there)
    e2 = torch.exp((d + 0.5) * -r)
    p_near = (1 - 0.5 * (e1 + e2)).clamp_min(2.0**-MAX_BITS)
    bits = torch.where(far, bits_far, torch.log2(p_near).neg_())
    live = valid.reshape(-1) * (bits < MAX_BITS)  # capped bits have no gradient
    total = (bits.clamp_max(MAX_BITS) * valid.reshape(-1)).sum()
    # d bits / d d and d bits / d r, on both branches
    inv = live / (p_near * _LN2)
    g_d = torch.where(far, r * (live / _LN2), 0.5 * r * (e1 - e2) * inv)
    g_r = torch.where(far, (d - 0.5 - er / (1 - er)) * (live / _LN2), -0.5 * ((0.5 - d) * e1 + (0.5 + d) * e2) * inv)
    g_y = torch.sign(e).mul_(g_d)
    g_mu = torch.where(mu_raw.abs() <= LATENT_MAX, -g_y, 0.0)  # clamp: no gradient outside the range
    g_s = g_r.mul_(r).mul_(-tab.log_step * ((s_raw >= 0) & (s_raw <= top)))  # dr/ds = -log_step r
    g = torch.stack([g_mu, g_s])
    for i in reversed(range(layers)):
        a = acts[i]
        g_w[2 * i].addmm_(g, a.T)
        g_w[2 * i + 1].add_(g.sum(1))
        g = w[2 * i].T @ g
        if i > 0:
            g = torch.ops.aten.threshold_backward(g, a, 0)  # ReLU's: zero where its output is 0
    gb = g_band[0, 0]
    gb[2:, 2:-2] += g_y.view(n, wc)
    g = g.view(len(taps), n, wc)
    for k, (dr, dc) in enumerate(CONTEXT):
        gb[2 + dr: 2 + dr + n, 2 + dc: 2 + dc + wc] += g[k]
    if parent is not None:
        g_parent[0, 0, 2:, 2:-2] += g[-1]
    return total


class _BandedBits(torch.autograd.Function):
    """:meth:`ARM.canvas_bits`: the forward pass computes the bits *and* their gradients, band by
    band of :data:`BAND_ROWS` canvas rows (the backward pass only scales them).

    Why not plain autograd over the whole canvas: for a Kodak image the ARM's hidden activations
    are 16 x 600k floats, streamed through memory about twenty times per iteration; a band's stay
    in cache. Measured on this 2-core machine: 204 ms -> 85 ms per iteration (forward + backward);
    the hand-written gradients of :func:`_band_bits` then took a 64-row band from ~8 to ~6 ms."""

    @staticmethod
    def forward(ctx, canvas: torch.Tensor, parents: torch.Tensor, valid: torch.Tensor, *w: torch.Tensor) -> torch.Tensor:
        canvas, parents = canvas.detach(), parents.detach()
        w = [t.detach() for t in w]
        g_canvas, g_parents = torch.zeros_like(canvas), torch.zeros_like(parents)
        g_w = [torch.zeros_like(t) for t in w]
        total = canvas.new_zeros(())
        rows = canvas.shape[-2] - 2
        for r0 in range(0, rows, BAND_ROWS):
            r1 = min(rows, r0 + BAND_ROWS)
            p = (parents[..., r0: r1 + 2, :], g_parents[..., r0: r1 + 2, :]) if parents.numel() else (None, None)
            total += _band_bits(canvas[..., r0: r1 + 2, :], valid[..., r0:r1, :], w, g_canvas[..., r0: r1 + 2, :], g_w,
                                *p)
        ctx.save_for_backward(g_canvas, g_parents, *g_w)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        g_canvas, g_parents, *g_w = ctx.saved_tensors
        return (g_canvas * grad, g_parents * grad if g_parents.numel() else None, None, *(g * grad for g in g_w))


def _up_kernel(taps=_TAPS) -> torch.Tensor:
    """The four 5x5 phase kernels of x2 upsampling with the symmetric filter ``taps`` (4 values in
    1/256; bicubic by default): outer products of the 1-D phases. Differentiable in ``taps``."""
    t = torch.as_tensor(taps, dtype=torch.float64) if not isinstance(taps, torch.Tensor) else taps
    z = t.new_zeros(1)
    even = torch.cat([t, z])  # inputs j-2 .. j+2
    odd = torch.cat([z, t.flip(0)])
    return torch.stack([torch.outer(a, b) for a in (even, odd) for b in (even, odd)]).unsqueeze(1)


_UP_KERNEL = _up_kernel()


def _up_transposed_taps() -> torch.Tensor:
    """The same x2 bicubic filter as the 8 taps of a stride-2 transposed convolution (output
    ``2 j + 7 - k`` takes input ``j`` times tap ``k``), for fitting: applied along the width and
    then the height, forward + backward about 2x faster than torch's bicubic interpolation on this
    machine (1.4x as one 8x8 kernel)."""
    k = torch.zeros(8, dtype=torch.float64)
    for m, t in zip(range(-2, 2), _TAPS):  # even outputs 2j read inputs j-2 .. j+1
        k[3 - 2 * m] = t / 256
    for m, t in zip(range(-1, 3), _TAPS[::-1]):  # odd outputs 2j+1 read inputs j-1 .. j+2
        k[4 - 2 * m] = t / 256
    return k


_UP_T_TAPS = _up_transposed_taps()


def _up2_fit(x: torch.Tensor, taps: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`up2` in float, as two 1-D transposed convolutions (edge-replicated like it);
    ``taps``: a learned filter's 4 taps in 1/256 (differentiable), else bicubic."""
    n, c, h, w = x.shape
    if taps is None:
        k = _UP_T_TAPS.to(x.device, x.dtype)
    else:  # the same placement as _up_transposed_taps: (t0, t3, t1, t2, t2, t1, t3, t0)
        k = taps.to(x.dtype)[[0, 3, 1, 2, 2, 1, 3, 0]] * (1 / 256)
    y = F.conv_transpose2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 8).expand(c, 1, 1, 8),
                           stride=(1, 2), groups=c)[..., 7: 7 + 2 * w]
    y = F.conv_transpose2d(F.pad(y, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 8, 1).expand(c, 1, 8, 1),
                           stride=(2, 1), groups=c)
    return y[..., 7: 7 + 2 * h, :]


def up2(x: torch.Tensor, fixed: bool = False, taps=None) -> torch.Tensor:
    """x2 upsampling of N x C x h x w (separable symmetric taps, bicubic unless ``taps`` -- 4
    values in 1/256 -- are given; edge-replicated), one conv per call.

    Output = (integer taps * input) / 65536; ``fixed``: ``x`` and ``taps`` hold integers (fixed
    point) and the result is floored back to the same units -- exact, as float64 on integers below
    2^53 (taps within :data:`~.overfit_header.TAP_LIMIT`, inputs within ``_ACT_MAX``: below 2^50)."""
    n, c, h, w = x.shape
    k = (_UP_KERNEL if taps is None else _up_kernel(taps)).to(x.device, x.dtype).repeat(c, 1, 1, 1)
    y = F.pixel_shuffle(F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k, groups=c), 2) * (1 / 65536)
    return torch.floor(y) if fixed else y


def pyramid(latents: list[torch.Tensor], fixed: bool = False, taps=None,
            fine: list[tuple[int, int]] = ()) -> torch.Tensor:
    """Grids (finest first, each N x 1 x h_i x w_i) -> N x n_grids x H x W, coarsest channel first.

    ``fixed``: the decoder's exact fixed-point path (:func:`up2`); otherwise the same filter in
    float (:func:`_up2_fit`), for fitting. ``taps``: one learned filter per level (coarsest
    first, 4 taps in 1/256 each: integers when ``fixed``), else bicubic everywhere. ``fine``: the
    sizes to upsample the stack to after the finest grid (:func:`fine_sizes`, bicubic) when the
    pyramid leaves grids out (:attr:`OverfitArch.skip`)."""

    def upsample(feat: torch.Tensor, size: tuple[int, int], t) -> torch.Tensor:
        if fixed:
            up = up2(feat, True, t)
        elif feat.dtype == torch.float64:  # one convolution: the same result on every CPU kernel set
            up = up2(feat, taps=t)
        else:
            up = _up2_fit(feat, t)
        up = up[..., : size[0], : size[1]]
        return up.clamp(-_ACT_MAX, _ACT_MAX) if fixed else up

    feat = latents[-1] * _ONE if fixed else latents[-1]
    for lvl, y in enumerate(reversed(latents[:-1])):
        feat = upsample(feat, y.shape[-2:], None if taps is None else taps[lvl])
        feat = torch.cat([feat, y * _ONE if fixed else y], dim=1)
    for size in fine:
        feat = upsample(feat, size, None)
    return feat


class Canvas:
    """All latent grids on one zero-padded 2-D canvas, so the ARM runs as a few convolutions.

    Grid 0 on top; the coarser grids side by side below it. Two zero rows above every grid and
    two zero columns on each side keep every causal context inside its own grid.
    """

    def __init__(self, sizes: list[tuple[int, int]]) -> None:
        h0, w0 = sizes[0]
        self.places = [(2, 2)]
        col = 2
        band = h0 + 4
        for h, w in sizes[1:]:
            self.places.append((band, col))
            col += w + 2
        self.height = band + max([h for h, _ in sizes[1:]], default=0)
        self.width = max(w0 + 4, col)
        self.sizes = sizes

    def place(self, latents: list[torch.Tensor]) -> torch.Tensor:
        rows = [F.pad(latents[0], (2, self.width - 2 - latents[0].shape[-1], 2, 2))]
        if len(latents) > 1:
            hb = self.height - (self.sizes[0][0] + 4)
            band = []
            for y in latents[1:]:
                band.append(F.pad(y, (0, 2, 0, hb - y.shape[-2])))
            band = torch.cat(band, dim=-1)
            rows.append(F.pad(band, (2, self.width - 2 - band.shape[-1], 0, 0)))
        else:
            rows[0] = rows[0][..., : self.height, :]
        return torch.cat(rows, dim=-2)

    def parents(self, latents: list[torch.Tensor]) -> torch.Tensor:
        """The canvas of every latent's parent: grid ``i`` at ``(r, c)`` holds grid ``i + 1`` at
        ``(r // 2, c // 2)`` (nearest-neighbour x2, cropped); the coarsest grid's parents are 0."""
        ups = [y.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., : x.shape[-2], : x.shape[-1]]
               for x, y in zip(latents, latents[1:])]
        return self.place(ups + [torch.zeros_like(latents[-1])])

    def mask(self, device) -> torch.Tensor:
        m = torch.zeros(1, 1, self.height, self.width, device=device)
        for (r, c), (h, w) in zip(self.places, self.sizes):
            m[..., r: r + h, c: c + w] = 1
        return m


def _softround(y: torch.Tensor, t: float) -> torch.Tensor:
    f = torch.floor(y).detach()
    r = y - f - 0.5
    return f + 0.5 + torch.tanh(r / t) / (2 * math.tanh(0.5 / t))


def _noisy_round(y: torch.Tensor, temp: float, a: float) -> torch.Tensor:
    """C3's training quantiser (Kim et al. 2024, sec. 3.2; Agustsson & Theis 2020 for the soft
    rounding): ``softround(softround(y) + u)`` with ``u`` Kumaraswamy noise on (-1/2, 1/2) of
    parameter ``a`` (1 = uniform; larger = peaked at 0, its mode stays at 0). The outer soft
    rounding makes the noisy value nearly an integer again, as the decoder will see it."""
    b = (2 ** a * (a - 1) + 1) / a
    u = (1 - (1 - torch.rand_like(y)) ** (1 / b)) ** (1 / a) - 0.5
    return _softround(_softround(y, temp) + u, temp)


_COLOURS = {"Y": (1.0, 1.0, 1.0), "A": (1.0, 0.0, -1.0), "B": (-1.0, 2.0, -1.0)}


@torch.no_grad()
def _analytic_init(img: torch.Tensor, lat: list[torch.Tensor], syn: Synthesis, arm: ARM, arch: OverfitArch,
                   step: float) -> None:
    """A starting point that already decodes to the image (encoder side only; the decoder never
    sees it): a luma Laplacian pyramid over the grids, the two chroma differences on grids 1
    (1:2) and 2 (1:4), a synthesis that maps them back to RGB linearly (ReLU pairs ``+z, -z``)
    and an ARM scale matched to the latents. ``step`` is the latent unit in pixel values."""
    n = len(lat)
    if arch.synth_width < 2 * n:
        return
    r, g, b = img[0, 0:1], img[0, 1:2], img[0, 2:3]
    planes = {"Y": (r + g + b) / 3, "A": (r - b) / 2, "B": (2 * g - r - b) / 6}
    roles = ["Y"] * n
    if n >= 2:
        roles[1] = "A"
    if n >= 3:
        roles[2] = "B"
    approx = None
    for i in reversed(range(n)):
        h, w = lat[i].shape[-2:]
        k = 1 << i
        target = {c: F.avg_pool2d(p.unsqueeze(0), k, k, ceil_mode=True) if k > 1 else p.unsqueeze(0)
                  for c, p in planes.items()}
        if approx is not None:
            approx = up2(approx)[..., :h, :w]
        if roles[i] == "Y":
            resid = target["Y"] - (approx if approx is not None else 0)
            lat[i].copy_(resid / step)
            approx = lat[i] * step if approx is None else approx + lat[i] * step
        else:
            lat[i].copy_(target[roles[i]] / step)
            if approx is None:
                approx = torch.zeros_like(lat[i])
    w0, b0 = syn.head[0].weight, syn.head[0].bias
    w1, b1 = syn.head[1].weight, syn.head[1].bias
    w0[: 2 * n].zero_(), b0[: 2 * n].zero_(), b1.zero_()
    w1.zero_()  # the spare hidden units keep their random input weights and start contributing nothing
    for i in range(n):
        ch = n - 1 - i  # the pyramid lists the coarsest grid first
        w0[2 * i, ch], w0[2 * i + 1, ch] = math.sqrt(step), -math.sqrt(step)
        col = torch.tensor(_COLOURS[roles[i]], device=w1.device) * math.sqrt(step)
        w1[:, 2 * i, 0, 0], w1[:, 2 * i + 1, 0, 0] = col, -col
    for i in range(1, len(syn.res), 2):
        syn.res[i].weight.zero_()
        syn.res[i].bias.zero_()
    tab = laplace_tables()
    spread = float(torch.cat([y.reshape(-1) for y in lat]).abs().mean()) + 0.1
    arm.layers[2].bias[1] = (math.log(spread) - tab.log_b_min) / tab.log_step


# -- fixed point (decoding, and the encoder's final coding pass) ---------------------------------


def _fix_weights(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Float weights/biases -> integer-valued float64 (weights in 2^-FRAC, biases in 2^-2 FRAC)."""
    out = []
    for t in tensors:
        t = t.detach().double().cpu()
        if not bool(torch.isfinite(t).all()):
            raise CorruptStreamError("overfit: a network weight is not finite")
        if t.dim() >= 2:
            if float(t.abs().max()) > _W_MAX:
                raise CorruptStreamError("overfit: a network weight is beyond the decoder's range")
            out.append(torch.round(t * _ONE))
        else:
            if t.numel() and float(t.abs().max()) > _B_MAX:
                raise CorruptStreamError("overfit: a network bias is beyond the decoder's range")
            out.append(torch.round(t * (_ONE * _ONE)))
    return out


def _rescale(acc: torch.Tensor) -> torch.Tensor:
    return torch.floor(acc * (1 / _ONE)).clamp_(-_ACT_MAX, _ACT_MAX)


def arm_fixed(ctx: np.ndarray, w: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Integer contexts (n, 12) -> (location, scale) in 2^-FRAC units (int64), exactly.

    ``w``: :func:`_arm_matrices` (integer-valued float64, weights transposed). Every product sum
    is an integer below 2^53, so any BLAS summation order gives the same result."""
    h = np.asarray(ctx, np.float64) * _ONE
    last = len(w) - 2
    for i in range(0, len(w), 2):
        h = h @ w[i]
        h += w[i + 1]
        h *= 1 / _ONE
        np.floor(h, out=h)
        np.maximum(h, 0.0 if i < last else -_ACT_MAX, out=h)  # ReLU (hidden layers), range bound
        np.minimum(h, _ACT_MAX, out=h)
    out = h.astype(np.int64)
    return out[:, 0], out[:, 1]


def _arm_matrices(w: list[torch.Tensor]) -> list[np.ndarray]:
    return [np.ascontiguousarray(t.numpy().T if t.dim() == 2 else t.numpy(), np.float64) for t in w]


def synth_fixed(feat: torch.Tensor, w: list[torch.Tensor], n_res: int) -> torch.Tensor:
    """Fixed-point synthesis of integer (2^-FRAC) features -> integer (2^-FRAC) pixels."""
    x = _rescale(F.conv2d(feat, w[0], w[1])).clamp_(min=0)
    x = _rescale(F.conv2d(x, w[2], w[3]))
    for r in range(n_res):
        i = 4 + 4 * r
        h = _rescale(F.conv2d(x, w[i], w[i + 1], padding=1)).clamp_(min=0)
        x = (x + _rescale(F.conv2d(h, w[i + 2], w[i + 3], padding=1))).clamp_(-_ACT_MAX, _ACT_MAX)
    return x


def entropy_indexes(mu: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed-point location/scale -> (integer centre, mean offset index, scale index)."""
    tab = laplace_tables()
    half = 1 << (FRAC - 1)
    m0 = np.minimum(np.maximum((mu + half) >> FRAC, -LATENT_MAX), LATENT_MAX)
    frac = np.minimum(np.maximum(mu - (m0 << FRAC), -half), half - 1)
    f = ((frac + half) * tab.mean_steps) >> FRAC
    j = np.minimum(np.maximum((t + half) >> FRAC, 0), tab.n_scales - 1)
    return m0, f, j


class _Wavefront:
    """Decoding order of the latents: pass ``c + 3 r`` of every grid, then grid, then row.

    ``parent``: the entropy model also reads each latent's parent (grid ``g + 1`` at ``(r // 2,
    c // 2)``), so grid ``g`` runs ``n - 1 - g`` passes behind: a parent's pass
    ``c // 2 + 3 (r // 2) + lag_{g+1}`` then always comes before its child's ``c + 3 r + lag_g``,
    and the number of passes grows by ``n - 1`` only."""

    def __init__(self, sizes: list[tuple[int, int]], parent: bool = False) -> None:
        base, flats, grids, passes, rows, cols = 0, [], [], [], [], []
        self.bases, self.widths = [], []
        n = len(sizes)
        for g, (h, w) in enumerate(sizes):
            r, c = np.divmod(np.arange(h * w, dtype=np.int64), w)
            self.bases.append(base)
            self.widths.append(w + 4)
            flats.append(base + (r + 2) * (w + 4) + c + 2)
            passes.append(c + _WAVE * r + ((n - 1 - g) if parent else 0))
            grids.append(np.full(h * w, g, np.int64))
            rows.append(r)
            cols.append(c)
            base += (h + 2) * (w + 4)
        self.size = base
        grid, pas, row = np.concatenate(grids), np.concatenate(passes), np.concatenate(rows)
        #: raster index (grids in order, row-major) of the k-th decoded latent
        self.order = np.lexsort((row, grid, pas))
        self.flat = np.concatenate(flats)[self.order]
        self.grid = grid[self.order]
        self.passes = pas[self.order]
        self.offsets = np.array([[dr * wp + dc for dr, dc in CONTEXT] for wp in self.widths], np.int64)
        self.parent = None
        if parent:  # the parent's place in the buffer; the coarsest grid reads a padding cell (always 0)
            up = [self.bases[g + 1] + (r // 2 + 2) * self.widths[g + 1] + c // 2 + 2
                  for g, (r, c) in enumerate(zip(rows[:-1], cols[:-1]))]
            self.parent = np.concatenate(up + [np.full(rows[-1].size, self.bases[-1], np.int64)])[self.order]
        self.bounds = np.flatnonzero(np.diff(self.passes)) + 1
        self.bounds = np.concatenate([[0], self.bounds, [self.passes.size]])

    def ctx_index(self, a: int, b: int) -> np.ndarray:
        idx = self.flat[a:b, None] + self.offsets[self.grid[a:b]]
        return idx if self.parent is None else np.concatenate([idx, self.parent[a:b, None]], axis=1)


@dataclass(frozen=True)
class _Phase:
    """One stage of a fit: the picture it fits, the grids it uses (``first`` on) and their canvas,
    the sizes to upsample to after the finest of them, and its schedule (``total`` iterations;
    hard rounding from ``hard_from``)."""

    img: torch.Tensor
    first: int
    fine: list[tuple[int, int]]
    canvas: Canvas
    valid: torch.Tensor
    npix: int
    total: int
    hard_from: int

    @classmethod
    def make(cls, img: torch.Tensor, sizes: list[tuple[int, int]], first: int, fine: list[tuple[int, int]],
             total: int, hard_from: int, device: torch.device) -> "_Phase":
        canvas = Canvas(sizes)
        return cls(img, first, list(fine), canvas, canvas.mask(device)[..., 2:, 2:-2],
                   int(img.shape[-1] * img.shape[-2]), total, hard_from)


@contextmanager
def _threads_for(pixels: int, device: torch.device) -> Iterator[None]:
    """One torch thread for small images on the CPU (see :data:`SMALL_IMAGE`), restored after."""
    before = torch.get_num_threads()
    if device.type == "cpu" and pixels <= SMALL_IMAGE and before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


# -- the codec -----------------------------------------------------------------------------------


class OverfitCodec:
    """Cool-chic / C3-style overfitted image codec (see the module docstring).

    ``preset`` (``"fast"``, ``"medium"``, ``"slow"``) sets the decoder size and the fitting budget;
    ``iterations`` overrides the budget (tests and benchmarks use it). ``seed`` makes encoding
    reproducible. ``parent_context``: the entropy model also reads each latent's parent in the
    next coarser grid (:attr:`OverfitArch.parent`, params version 3); off by default, because at
    the ``fast`` budget it did not pay (docs/overfit.md: +0.45 % loss on 11 fits). ``learned_up``:
    learned upsampling filters (:attr:`OverfitArch.learned_up`, params version 4); None = the
    preset's choice, which is off in every preset (measured: +2.8 % on 12 real-file pairs, up to
    +19 % on a held-out photo). The environment variable ``GLOCAL_CODEC_OVERFIT_ITERATIONS`` sets the default
    budget of codecs built without ``iterations`` (so a test suite can make every encode short,
    subprocesses included).
    """

    name: ClassVar[str] = "overfit"
    media: ClassVar[Literal["image"]] = "image"
    description: ClassVar[str] = ("Cool-chic/C3-style overfitted codec: latent pyramid + tiny synthesis + integer "
                                  "autoregressive Laplace model, fitted per image; bit-exact decoding")
    qualities: tuple[int, ...] = tuple(sorted(LAMBDAS))
    default_quality: int = 3
    presets: tuple[str, ...] = tuple(PRESETS)  # the default ("fast") first

    def __init__(self, preset: str = "fast", iterations: int | None = None, seed: int = 0,
                 device: str | torch.device | None = None, parent_context: bool = False,
                 learned_up: bool | None = None, skip: int | None = None, coarse: int | None = None) -> None:
        if preset not in PRESETS:
            raise ValueError(f"overfit: preset must be one of {sorted(PRESETS)}, got {preset!r}")
        self.preset = preset
        env = os.environ.get("GLOCAL_CODEC_OVERFIT_ITERATIONS")
        self._iterations = iterations if iterations is not None else (int(env) if env else None)
        self.seed = seed
        self.parent_context = bool(parent_context)
        #: learned upsampling between grids (None: the preset's choice)
        self.learned_up = learned_up
        if skip is not None and not 0 <= int(skip) <= MAX_SKIP:
            raise ValueError(f"overfit: skip must be within 0-{MAX_SKIP}, got {skip!r}")
        #: finest grids left out (None: the preset's choice for the quality level)
        self.skip = None if skip is None else int(skip)
        if coarse is not None and int(coarse) < 0:
            raise ValueError(f"overfit: coarse must be >= 0, got {coarse!r}")
        #: half-resolution iterations before the full-size fit (None: the preset's)
        self.coarse = None if coarse is None else int(coarse)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        #: largest tile side of pictures fitted in tiles (:data:`TILE`; tests make it small)
        self.tile = TILE

    @property
    def iterations(self) -> int:
        """The fitting budget (the preset's, unless set); fits that leave the 1:1 grid out get the
        preset's :attr:`Preset.skip_iterations` instead (:meth:`budget`)."""
        return self._iterations if self._iterations is not None else PRESETS[self.preset].iterations

    def budget(self, arch: OverfitArch, coarse: int | None = None) -> int:
        """Full-size iterations of a fit with this architecture; ``coarse``: its half-size ones
        (None: as the preset plans them; 0 gives a preset's grid-keeping fit the time they take,
        :attr:`Preset.plain_iterations`)."""
        p = PRESETS[self.preset]
        if self._iterations is None and arch.skip and p.skip_iterations:
            return p.skip_iterations
        if self._iterations is None and coarse == 0 and p.plain_iterations:
            return p.plain_iterations
        return self.iterations

    def coarse_budget(self, arch: OverfitArch, h: int, w: int, expected_bpp: float | None = None) -> int:
        """Iterations at half resolution that start a fit of an ``h x w`` picture: the preset's where
        the fit keeps the 1:1 grid and the picture's expected rate (``expected_bpp``, from
        :func:`rate_hint`; None: unknown) is below :attr:`Preset.coarse_below_bpp`, or ``coarse``
        if given; none for short budgets (the analytic start), learned upsampling or the parent
        context (their filters and contexts differ at half size), pictures under 64 pixels a
        side, or a single 1:1 grid."""
        # the preset's half-size start is for fits that keep the 1:1 grid, at low and mid rates:
        # fits without the grid, and fits above ~1 bpp, lost (docs/overfit.md); ``coarse`` given
        # explicitly applies to all
        p = PRESETS[self.preset]
        high = bool(p.coarse_below_bpp) and expected_bpp is not None and expected_bpp >= p.coarse_below_bpp
        n = self.coarse if self.coarse is not None else (0 if arch.skip or high else p.coarse)
        if (not n or self.budget(arch) < ANALYTIC_BELOW or arch.learned_up or arch.parent or min(h, w) < 64
                or (arch.skip == 0 and arch.n_grids < 2)):
            return 0
        return n

    @iterations.setter
    def iterations(self, value: int | None) -> None:
        if value is not None and int(value) < 1:
            raise ValueError("overfit: iterations must be >= 1")
        self._iterations = None if value is None else int(value)

    def with_preset(self, name: str) -> "OverfitCodec":
        """This codec at another preset (same seed and device; the iteration budget follows the
        preset unless this instance's was set explicitly)."""
        other = OverfitCodec(preset=name, iterations=self._iterations, seed=self.seed, device=self.device,
                             parent_context=self.parent_context, learned_up=self.learned_up, skip=self.skip,
                             coarse=self.coarse)
        other.tile = self.tile
        return other

    def weights_digest(self, quality: int) -> bytes:
        return NO_WEIGHTS

    def weights_available(self) -> bool:
        return True

    def to(self, device: str | torch.device) -> "OverfitCodec":
        self.device = torch.device(device)
        return self

    def _check_quality(self, quality: int) -> int:
        if isinstance(quality, bool) or int(quality) not in LAMBDAS:
            raise ValueError(f"{self.name}: quality must be one of {list(self.qualities)}, got {quality!r}")
        return int(quality)

    def arch_for(self, h: int, w: int, quality: int, hint: float | None = None) -> OverfitArch:
        """The architecture of a fit of an ``h x w`` picture; ``hint``: its :func:`rate_hint`
        (without one, only the preset's low qualities leave the 1:1 grid out)."""
        p = PRESETS[self.preset]
        self._check_quality(quality)
        # the weight bits are placeholders here: :meth:`_code` chooses them by measurement
        n = default_grids(h, w)
        # (previews and tests, under ANALYTIC_BELOW iterations, keep the 1:1 grid: the analytic start needs it)
        low_rate = hint is not None and hint * RATE_HINT_SCALE[quality] < p.skip_below_bpp
        skip = self.skip if self.skip is not None else \
            int((quality <= p.skip_upto or low_rate) and self.iterations >= ANALYTIC_BELOW)
        skip = min(skip, n - 1)  # at least one grid; the coarsest stays where it was
        n -= skip
        learned = self.learned_up if self.learned_up is not None else bool(p.learned_up)
        return OverfitArch(n, p.synth_width, p.arm_width, p.n_res, 8, 8, int(self.parent_context and n > 1), compact=1,
                           learned_up=int(learned and n > 1), skip=skip)

    # -- encoding (fitting) ------------------------------------------------------------------
    def encode(self, x: torch.Tensor, quality: int, *, progress: Callable[..., None] | None = None) -> Payload:
        q = self._check_quality(quality)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{self.name}: expected a 1 x C x H x W tensor with C in (1, 3), got {got}")
        c, h, w = (int(v) for v in x.shape[1:])
        tile = self.tile if h * w > self.tile * self.tile else 0
        boxes = tile_boxes(h, w, tile) if tile else [(0, h, 0, w)]
        archs, streams = [], []
        for k, (y0, y1, x0, x1) in enumerate(boxes):
            part = None if progress is None else _tile_progress(progress, k, len(boxes))
            arch, coded = self._encode_whole(x[..., y0:y1, x0:x1], q, part)
            archs.append(arch)
            streams += coded
        return Payload(shape=(c, h, w), quality=q, params=pack_params(archs, tile), streams=streams)

    def _encode_whole(self, x: torch.Tensor, q: int, progress) -> tuple[OverfitArch, tuple[bytes, bytes, bytes]]:
        """Fit and code one picture (or tile) as a whole: its architecture and three streams."""
        h, w = (int(v) for v in x.shape[-2:])
        p = PRESETS[self.preset]
        # the rate hint (a JPEG encode, ~30 ms) where a preset rule reads it
        wanted = q > p.skip_upto and self.iterations >= ANALYTIC_BELOW and (
            (self.skip is None and p.skip_below_bpp) or (self.coarse is None and p.coarse and p.coarse_below_bpp))
        hint = rate_hint(x) if wanted else None
        arch = self.arch_for(h, w, q, hint)
        # small images: float64 (and one thread, below), so that the optimisation's rounding
        # noise is far below anything that could flip a quantised value on another CPU
        dtype = torch.float64 if self.device.type == "cpu" and h * w <= SMALL_IMAGE else torch.float32
        img = x.detach().to(torch.float64).clamp(0, 1).expand(1, 3, h, w).to(self.device, dtype)
        with _threads_for(h * w, self.device), torch.random.fork_rng(devices=[]), torch.inference_mode(False), \
                torch.enable_grad():
            torch.manual_seed(self.seed)
            latents, synth, arm = self._fit(img, arch, LAMBDAS[q], progress,
                                            None if hint is None else hint * RATE_HINT_SCALE[q])
        with _threads_for(h * w, torch.device("cpu")):
            return self._code(latents, synth, arm, arch, img, LAMBDAS[q])

    def _fit(self, img: torch.Tensor, arch: OverfitArch, lam: float, progress,
             expected_bpp: float | None = None) -> tuple[list[torch.Tensor], Synthesis, ARM]:
        p = PRESETS[self.preset]
        dev = self.device
        h, w = img.shape[-2:]
        sizes = grid_sizes(h, w, arch.n_grids, arch.skip)
        coarse = self.coarse_budget(arch, h, w, expected_bpp)
        total = self.budget(arch, coarse)
        warm = min(total, max(1, total // 10)) if p.starts > 1 else 0
        full = _Phase.make(img, sizes, 0, fine_sizes(h, w, arch.skip), total, int(total * HARD_FROM), dev)

        def new_state(seed: int, analytic: bool):
            torch.manual_seed(seed)
            lat = [torch.zeros(1, 1, a, b, device=dev, dtype=img.dtype) for a, b in sizes]
            syn, am = Synthesis(arch).to(dev, img.dtype), ARM(arch).to(dev, img.dtype)
            if analytic and not arch.skip:  # (the analytic pyramid starts at 1:1)
                _analytic_init(img, lat, syn, am, arch, 0.8 / math.sqrt(lam))
            for y in lat:
                y.requires_grad_(True)
            # the analytic start is already near its optimum: small steps keep it there
            return lat, syn, am, self._adam(lat, syn, am, 1.0 if analytic else LATENT_LR_SCALE,
                                            0.2 if analytic else NET_LR_SCALE)

        def step(state, it: int, ph: "_Phase") -> tuple[float, float, float]:
            lat, syn, am, opt = state
            frac = it / max(1, ph.hard_from)
            hard = it >= ph.hard_from
            lr = cosine_lr(it, ph.total, p.lr, warmup=0.02)
            for g in opt.param_groups:
                g["lr"] = lr * g["scale"]
            used = lat[ph.first:]
            if hard:
                yq = [y + (torch.round(y) - y).detach() for y in used]
            else:
                temp = 0.3 * (1 - frac) + 0.1 * frac
                a = NOISE_START * (1 - frac) + frac
                yq = [_noisy_round(y, temp, a) for y in used]
            feat = pyramid(yq, taps=syn.level_taps(), fine=ph.fine)
            if ph.first:  # the grids left out of this phase (still zero) as zero channels, finest last
                feat = F.pad(feat, (0, 0, 0, 0, 0, ph.first))
            x_hat = syn(feat)
            mse = F.mse_loss(x_hat, ph.img)
            bits = am.canvas_bits(ph.canvas.place(yq), ph.valid, ph.canvas.parents(yq) if arch.parent else None)
            loss = bits / ph.npix + lam * mse
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for y in used:
                    y.clamp_(-LATENT_MAX, LATENT_MAX)
            return float(loss.detach()), float(bits.detach()) / ph.npix, float(mse.detach())

        if coarse:
            # coarse to fine: the picture at half resolution first, fitted by the same networks and
            # by every grid but the 1:1 one (those grids are the half picture's own pyramid) at about
            # 0.3x an iteration's cost; the 1:1 grid joins at zero, where it would start anyway.
            # Random starts (``Preset.starts``) compete here, where they are cheap.
            half = F.avg_pool2d(F.pad(img, (0, w % 2, 0, h % 2), mode="replicate"), 2)
            first = 0 if arch.skip else 1
            ph = _Phase.make(half, sizes[first:], first, fine_sizes(*half.shape[-2:], max(0, arch.skip - 1)),
                             coarse, 2 * coarse, dev)
            cands = []
            for s in range(p.starts):
                lat, syn, am, opt = new_state(self.seed * 1000 + s, False)
                st = (lat, syn, am, self._adam(lat[first:], syn, am, LATENT_LR_SCALE, NET_LR_SCALE))
                for it in range(coarse):
                    loss, bpp, mse = step(st, it, ph)
                    if progress is not None and it % 10 == 9:
                        report(progress, 0, total, f"half size: {bpp:.3f} bpp, "
                                                   f"{10 * math.log10(1 / max(mse, 1e-12)):.2f} dB")
                # Adam's moments carry over to the full-size phase (its own warm-up and decay follow)
                for t, m in st[3].state.items():
                    opt.state[t] = m
                cands.append((loss, s, (lat, syn, am, opt)))
            state = min(cands, key=lambda c: (c[0], c[1]))[2]
            start = 0
        elif warm:
            cands = []
            for s in range(p.starts):
                st = new_state(self.seed * 1000 + s, False)
                for it in range(warm):
                    loss = step(st, it, full)[0]
                cands.append((loss, s, st))
            state = min(cands, key=lambda c: (c[0], c[1]))[2]
            start = warm
        else:
            state = new_state(self.seed * 1000, total < ANALYTIC_BELOW)
            start = 0
        for it in range(start, total):
            loss, bpp, mse = step(state, it, full)
            if progress is not None and (it % 10 == 9 or it == total - 1):
                report(progress, it + 1, total, f"{bpp:.3f} bpp, {10 * math.log10(1 / max(mse, 1e-12)):.2f} dB, "
                                                f"loss {loss:.4f}")
        lat, syn, am, _ = state
        return ([torch.round(y.detach()).clamp(-LATENT_MAX, LATENT_MAX).float().cpu() for y in lat],
                syn.cpu().float(), am.cpu().float())

    @staticmethod
    def _adam(lat: list[torch.Tensor], syn: Synthesis, arm: ARM, lat_scale: float, net_scale: float):
        return torch.optim.Adam([{"params": lat, "scale": lat_scale},
                                 {"params": [*syn.parameters(), *arm.parameters()], "scale": net_scale}],
                                lr=0.0, betas=(0.9, 0.999))  # (every step sets the rate)

    def _code(self, latents: list[torch.Tensor], synth: Synthesis, arm: ARM, arch: OverfitArch,
              img: torch.Tensor, lam: float) -> tuple[OverfitArch, tuple[bytes, ...]]:
        """Quantise and code everything; the weight bits of each network are chosen by measuring
        bytes + lambda * distortion (synthesis) or bytes + latent bits (ARM) for every choice in
        :data:`BIT_CHOICES`, through the decoder's own fixed-point arithmetic."""
        with torch.no_grad():
            arm_t = [t.clamp(-_W_MAX, _W_MAX) if t.dim() >= 2 else t.clamp(-_B_MAX, _B_MAX) for t in arm.tensors()]
            syn_t = [t.clamp(-_W_MAX, _W_MAX) if t.dim() >= 2 else t.clamp(-_B_MAX, _B_MAX) for t in synth.tensors()]
        sizes = [tuple(y.shape[-2:]) for y in latents]
        wf = _Wavefront(sizes, bool(arch.parent))
        raster = torch.cat([y.reshape(-1) for y in latents]).numpy().astype(np.int64)
        buf = np.zeros(wf.size, np.int64)
        values = raster[wf.order]
        buf[wf.flat] = values
        ctx = buf[wf.ctx_index(0, values.size)]
        coder = LaplaceCoder()
        best = None
        for bits in BIT_CHOICES:  # the ARM: its bytes + the latents' bits under it
            s_arm = encode_tensors(arm_t, bits, compact=bool(arch.compact))
            # the decoder's own view of the ARM: what it will read back from the file
            w_arm = _arm_matrices(_fix_weights(decode_tensors(s_arm, arch.arm_shapes(), bits, bool(arch.compact))))
            m0, f, j = entropy_indexes(*arm_fixed(ctx, w_arm))
            cost = 8 * len(s_arm) + coder.ideal_bits(values - m0, j, f)
            if best is None or cost < best[0]:
                best = (cost, bits, s_arm, (m0, f, j))
        _, arm_bits, s_arm, (m0, f, j) = best
        s_lat = coder.encode(values - m0, j, f, wf.passes)
        if arch.learned_up:  # the taps to 1/256, as the header stores them
            ints = torch.round(synth.up_taps.detach().double() * 256).clamp(-TAP_LIMIT, TAP_LIMIT)
            arch = replace(arch, up_taps=tuple(int(v) for v in ints.reshape(-1)))
        ref = img.detach().double().cpu()
        feat = pyramid([y.double().reshape(1, 1, *y.shape[-2:]) for y in latents], fixed=True, taps=arch.level_taps(),
                       fine=fine_sizes(*ref.shape[-2:], arch.skip))
        npix = ref.shape[-1] * ref.shape[-2]
        best = None
        for bits in BIT_CHOICES:  # the synthesis: its bytes + lambda * the decoded image's error
            s_syn = encode_tensors(syn_t, bits, compact=bool(arch.compact))
            w_syn = _fix_weights(decode_tensors(s_syn, arch.synth_shapes(), bits, bool(arch.compact)))
            x = synth_fixed(feat, w_syn, arch.n_res).clamp(0, _ONE) * (1 / _ONE)
            cost = 8 * len(s_syn) + lam * float(((x - ref) ** 2).mean()) * npix
            if best is None or cost < best[0]:
                best = (cost, bits, s_syn)
        _, synth_bits, s_syn = best
        return replace(arch, arm_bits=arm_bits, synth_bits=synth_bits), (s_arm, s_syn, s_lat)

    # -- decoding ----------------------------------------------------------------------------
    def _parse(self, payload: Payload) -> tuple[int, int, int, list[tuple[tuple[int, int, int, int], OverfitArch]]]:
        """Checks of a payload before anything sizeable is allocated: ``(c, h, w, tiles)``, each
        tile its box and architecture (one tile covering the picture when it was fitted whole)."""
        if payload.quality not in LAMBDAS:
            raise CorruptStreamError(f"{self.name} has no quality level {payload.quality}")
        shape = tuple(payload.shape)
        if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) < 1:
            raise CorruptStreamError(f"{self.name}: image shape must be (C, H, W) with C in (1, 3), got {shape}")
        c, h, w = (int(v) for v in shape)
        if h * w > MAX_PIXELS:
            raise LimitError(f"{self.name}: a {w}x{h} image is beyond the decoder's limit of {MAX_PIXELS:,} pixels")
        tile, archs = parse_params(payload.params)
        n_tiles = -(-h // tile) * -(-w // tile) if tile else 1  # counted before any list is built
        if n_tiles != len(archs):
            raise CorruptStreamError(f"{self.name}: the header describes {len(archs)} tiles, a {w}x{h} picture in "
                                     f"tiles of {tile} has {n_tiles}")
        boxes = tile_boxes(h, w, tile) if tile else [(0, h, 0, w)]
        if len(payload.streams) != 3 * len(boxes):
            raise CorruptStreamError(f"{self.name} expects {3 * len(boxes)} streams, got {len(payload.streams)}")
        for k, ((y0, y1, x0, x1), arch) in enumerate(zip(boxes, archs)):
            if arch.n_grids + arch.skip > default_grids(y1 - y0, x1 - x0, 8):
                raise LimitError(f"{self.name}: {arch.n_grids} latent grids (skipping {arch.skip}) for a "
                                 f"{x1 - x0}x{y1 - y0} image")
            s_arm, s_syn, _ = payload.streams[3 * k: 3 * k + 3]
            for data, shapes, what in ((s_arm, arch.arm_shapes(), "ARM"), (s_syn, arch.synth_shapes(), "synthesis")):
                n, _ = decode_varint(data, 0, f"{what} weight count")
                want = sum(int(np.prod(s)) for s in shapes)
                if n != want:  # before the weights are decoded
                    raise CorruptStreamError(f"{self.name}: the {what} stream holds {n} weights, the header implies "
                                             f"{want}")
        return c, h, w, list(zip(boxes, archs))

    @staticmethod
    def _networks(arch: OverfitArch, s_arm: bytes, s_syn: bytes) -> tuple[list[np.ndarray], list[torch.Tensor]]:
        w_arm = _arm_matrices(_fix_weights(decode_tensors(s_arm, arch.arm_shapes(), arch.arm_bits, bool(arch.compact))))
        w_syn = _fix_weights(decode_tensors(s_syn, arch.synth_shapes(), arch.synth_bits, bool(arch.compact)))
        return w_arm, w_syn

    @torch.inference_mode()
    def decode(self, payload: Payload) -> torch.Tensor:
        c, h, w, tiles = self._parse(payload)
        out = torch.empty(1, 3, h, w) if len(tiles) > 1 else None
        for k, ((y0, y1, x0, x1), arch) in enumerate(tiles):
            s_arm, s_syn, s_lat = payload.streams[3 * k: 3 * k + 3]
            w_arm, w_syn = self._networks(arch, s_arm, s_syn)
            th, tw = y1 - y0, x1 - x0
            latents = [torch.from_numpy(g.astype(np.float64)).reshape(1, 1, *g.shape)
                       for g in _decode_latents(grid_sizes(th, tw, arch.n_grids, arch.skip), s_lat, w_arm, arch.parent)]
            with _threads_for(th * tw, torch.device("cpu")):
                feat = pyramid(latents, fixed=True, taps=arch.level_taps(), fine=fine_sizes(th, tw, arch.skip))
                x = synth_fixed(feat, w_syn, arch.n_res)
            x = (x.clamp(0, _ONE) * (1 / _ONE)).float()
            if out is None:
                out = x
            else:
                out[..., y0:y1, x0:x1] = x
        if c == 1:
            out = out.mean(dim=1, keepdim=True)
        return out.contiguous()

    def decode_latents(self, payload: Payload) -> list[np.ndarray]:
        """The integer latent grids of a payload (finest first; tile after tile), exactly as
        :meth:`decode` reads them."""
        _, _, _, tiles = self._parse(payload)
        out = []
        for k, ((y0, y1, x0, x1), arch) in enumerate(tiles):
            s_arm, s_syn, s_lat = payload.streams[3 * k: 3 * k + 3]
            w_arm, _ = self._networks(arch, s_arm, s_syn)
            out += _decode_latents(grid_sizes(y1 - y0, x1 - x0, arch.n_grids, arch.skip), s_lat, w_arm, arch.parent)
        return out


def _tile_progress(progress: Callable[..., None], k: int, n: int) -> Callable[..., None]:
    """A tile's fitting progress as a share of the whole picture's (``n`` tiles, this is ``k``)."""

    def part(done: int, total: int | None, text: str | None = None) -> None:
        if total is None:
            report(progress, done, None, text)
        else:
            report(progress, k * total + done, n * total, text if n == 1 else f"tile {k + 1}/{n}: {text}")

    return part


def _decode_latents(sizes: list[tuple[int, int]], data: bytes, w_arm: list[np.ndarray],
                    parent: int = 0) -> list[np.ndarray]:
    """Wavefront decoding of the latent grids: one vectorised pass per band ``c + 3 r`` (plus the
    grid's lag when the entropy model reads the coarser grid, see :class:`_Wavefront`)."""
    wf = _Wavefront(sizes, bool(parent))
    buf = np.zeros(wf.size, np.int64)
    dec = LaplacePassDecoder(data)
    for a, b in zip(wf.bounds[:-1].tolist(), wf.bounds[1:].tolist()):
        mu, t = arm_fixed(buf[wf.ctx_index(a, b)], w_arm)
        m0, f, j = entropy_indexes(mu, t)
        v = m0 + dec.decode(j, f)
        if v.size and np.abs(v).max() > LATENT_MAX:
            raise CorruptStreamError(f"overfit: a decoded latent is beyond +-{LATENT_MAX}")
        buf[wf.flat[a:b]] = v
    dec.finish()
    out = []
    for g, (gh, gw) in enumerate(sizes):
        wp = wf.widths[g]
        out.append(buf[wf.bases[g]: wf.bases[g] + (gh + 2) * wp].reshape(gh + 2, wp)[2:, 2:-2].copy())
    return out
