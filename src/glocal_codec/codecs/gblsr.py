"""``gblsr``: a mean-scale hyperprior whose synthesis ends in a local spectral representation.

After "GB-LSR: A Fast Local Spectral Image Representation with a Single Global Bandwidth for
Continuous Reconstruction and Super-Resolution" (public code KempnerInstitute/gblsr), which
writes its representation as a float tensor: here it is the decoder side of a real codec. The
analysis, hyperprior and entropy coding are ``msh``'s (Minnen et al. 2018 without context; the
same latent and file layout); the synthesis runs msh's first three up-sampling stages to a
feature map at 1/2 resolution, and a 3x3 convolution turns every feature position (a 2x2 pixel
cell) into ``3 x K x K`` coefficients of a truncated Fourier basis with one global bandwidth
(:mod:`glocal_codec.nn.spectral`). Those coefficients render the picture at any pixel grid:
the native one, a denser one (``decode --scale 2``: super-resolution from the same file) or a
sparser one (antialiased). The scale is a decoding choice, never stored in the file.

Trained by fine-tuning ``msh`` (``train gblsr --init-from msh.safetensors --warmup-steps N``)
with the rate-distortion loss plus an arbitrary-scale term: with probability ``sr_prob`` a
step encodes a bicubic-downsampled crop (scale ``r`` in ``[1.25, max_scale]``) and renders it
back at the crop's full size, so the distortion is measured against the original pixels.

Decoding is exact on every machine: the coefficients come from the fixed-point synthesis
(:mod:`glocal_codec.nn.fixed_point`) and the renderer sums exact float64 products
(:func:`~glocal_codec.nn.spectral.render_exact`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..bitstream.errors import CorruptStreamError
from ..engine import pad_to_multiple
from ..nn import GDN, deconv, ste_round
from ..nn.spectral import (CELL, Bandwidth, bicubic_down, coefficient_grid, phase_head, render, render_exact,
                           render_exact_any)
from .base import Payload
from .hyperprior import MeanScaleHyperprior, RescaledResult, _full_precision, _widen_float
from .learned import LearnedImageCodec

__all__ = ["GblsrConfig", "SpectralHyperprior", "GblsrCodec"]

_COLORS = 3


@dataclass(frozen=True)
class GblsrConfig:
    """Architecture and training hyper-parameters of :class:`SpectralHyperprior` (in the manifest)."""

    n: int = 128  # channels of the transforms and of the hyper-latent
    m: int = 192  # latent channels
    levels: int = 6
    modes: int = 8  # basis functions per axis (K): 1 constant + cos/sin pairs up to order K/2
    sr_prob: float = 0.5  # share of training steps that render a downsampled crop at full size
    max_scale: float = 4.0  # largest training scale of those steps


class SpectralHyperprior(MeanScaleHyperprior):
    """msh's analysis and hyperprior; synthesis to per-cell Fourier coefficients, rendered anywhere.

    Follows :class:`~glocal_codec.codecs.base.LatentModel` (``synthesis`` renders the native
    grid) and :class:`~glocal_codec.codecs.base.ExactSynthesis`.
    """

    config_class = GblsrConfig
    #: msh's 12 latents, plus one: the coefficient convolution and the four-cell blend each
    #: reach one more cell (half a latent) at the 1/2-resolution grid.
    refine_halo = 13

    def __init__(self, cfg: GblsrConfig = GblsrConfig()) -> None:
        super().__init__(cfg)  # msh's layers from n, m, levels
        n, m, k = cfg.n, cfg.m, cfg.modes
        if k < 1:
            raise ValueError(f"modes must be >= 1, got {k}")
        # msh's synthesis up to 1/2 resolution (the same layer indices, so msh's weights load
        # into 0-5), then the coefficient head in place of msh's last up-sampling convolution
        self.g_s = nn.Sequential(
            deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True), nn.Conv2d(n, _COLORS * k * k, 3, padding=1),
        )
        self.bandwidth = Bandwidth(1.0)

    # -- the representation ---------------------------------------------------------------------
    def coefficients(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        """``(B, 3, K, K, 8h, 8w)`` coefficients of latents ``y_hat`` (float, differentiable)."""
        return coefficient_grid(self.g_s(self.gain(y_hat, q, inverse=True)), _COLORS, self.cfg.modes)

    def coefficients_exact(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        """The decoder's coefficients: float64 on the fixed-point grid (see ``synthesis_exact``)."""
        from ..util import exp_exact

        gain = torch.from_numpy(exp_exact(self.gain.log_gain[q].detach().double().cpu().numpy()))
        y = y_hat.detach().double() / gain.to(y_hat.device).view(1, -1, 1, 1)
        return coefficient_grid(self.fixed_point("g_s")(y), _COLORS, self.cfg.modes)

    def bandwidth_exact(self) -> float:
        """The bandwidth as the decoder uses it: rounded to 2^-16 (one IEEE computation, then a grid)."""
        from ..util import exp_exact
        import numpy as np

        log_lo, log_hi = math.log(self.bandwidth.lo), math.log(self.bandwidth.hi)
        raw = float(self.bandwidth.raw.detach())
        sig = 1.0 / (1.0 + float(exp_exact(np.array([-raw]))[0]))
        s = float(exp_exact(np.array([log_lo + (log_hi - log_lo) * sig]))[0])
        return round(s * 2**16) / 2**16

    def synthesis(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        coef = self.coefficients(y_hat, q)
        h, w = coef.shape[-2:]
        return render(coef, CELL * h, CELL * w, self.bandwidth())

    def synthesis_exact(self, y_hat: torch.Tensor, q: int) -> torch.Tensor:
        coef = self.coefficients_exact(y_hat, q)
        h, w = coef.shape[-2:]
        return render_exact(coef, (0, CELL * h), (0, CELL * w), (h, w), (1.0, 1.0), self.bandwidth_exact()).float()

    # -- training ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, q: int, **_: object) -> RescaledResult:
        """Training pass. With probability ``sr_prob`` the input is a bicubic-downsampled copy of
        ``x`` (scale drawn from ``[1.25, max_scale]``, torch's global generator) and the
        reconstruction is rendered at ``x``'s size: the arbitrary-scale term."""
        n, _, hh, ww = x.shape
        target = x
        if self.training and float(torch.rand(())) < self.cfg.sr_prob:
            r = 1.25 + (self.cfg.max_scale - 1.25) * float(torch.rand(()))
            sh, sw = max(16, round(hh / r)), max(16, round(ww / r))
            small = bicubic_down(x, sh, sw).clamp(0, 1)
        else:
            small, sh, sw = x, hh, ww
        xin = pad_to_multiple(small, self.pad_multiple)
        y = _widen_float(self.gain(self.g_a(xin), q))
        with _full_precision(x):
            z = self.h_a(y)
            z_hat, z_lik = self.ebs[q](z)
            scales, means = self.h_s(z_hat).chunk(2, 1)
            _, y_lik = self.gaussian(y, scales, means=means)
        y_hat = ste_round(y - means) + means
        coef = _widen_float(self.coefficients(y_hat, q))
        # the full crop as the small one's continuation at scale hh / sh (pixel centres aligned
        # the way antialiased bicubic resizing aligns them)
        x_hat = render(coef, hh, ww, self.bandwidth(), scale_y=hh / sh, scale_x=ww / sw)
        return RescaledResult(x_hat, {"y": y_lik, "z": z_lik}, target=target, rate_pixels=n * sh * sw)

    def adapt_source(self, src: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
        """``train gblsr --init-from msh.safetensors``: msh's tensors, and a coefficient head
        computed from msh's last up-sampling layer so that the native render *is* msh's output.

        msh's last layer is a 5x5 transposed convolution with stride 2: each 2x2 cell of output
        pixels is a 3x3 convolution of the 1/2-resolution features, one kernel per pixel phase;
        :func:`~glocal_codec.nn.spectral.phase_head` turns those four kernels into basis
        coefficients. Training starts at msh's rate-distortion point (``True``: msh's z
        densities fit this latent). A gblsr source is returned unchanged (``False``).
        """
        if "h_s.0.weight" not in src or "bandwidth.raw" in src:
            return src, False
        out = {k: v for k, v in src.items() if not k.startswith("g_s.6.")}
        w, b = src["g_s.6.weight"].double(), src["g_s.6.bias"].double()  # (n, 3, 5, 5), (3,)
        n = w.shape[0]
        phase = torch.zeros(_COLORS, 2, 2, n, 3, 3, dtype=torch.float64)
        for py in range(2):
            for px in range(2):
                for uy in range(3):
                    for ux in range(3):
                        ky, kx = py + 4 - 2 * uy, px + 4 - 2 * ux  # feature offset u - 1 <-> kernel tap
                        if ky <= 4 and kx <= 4:
                            phase[:, py, px, :, uy, ux] = w[:, :, ky, kx].t()
        k = self.cfg.modes
        out["g_s.6.weight"] = phase_head(phase, k).float()
        bias = torch.zeros(_COLORS, k, k, dtype=torch.float64)
        bias[:, 0, 0] = b
        out["g_s.6.bias"] = bias.reshape(-1).float()
        return out, True


class GblsrCodec(LearnedImageCodec):
    """Implements :class:`~glocal_codec.codecs.base.Rescalable` besides the learned-codec contract."""

    name = "gblsr"
    description = "GB-LSR spectral synthesis on msh: decode at any scale (--scale); trained by this project"
    model_class = SpectralHyperprior
    #: renders at any output size from the unfolded latent grid, so strips are padded, not folded
    folds_strips = False

    #: latents per decoding tile and of halo around it (msh's synthesis reaches ~3 latents)
    _TILE_LATENTS = 32
    _HALO_LATENTS = 4
    #: smallest output scale (the reduction filter must stay inside the tile halo of 64 pixels)
    MIN_SCALE = 1 / 16
    #: output pixels per side of one render call (~0.3 GB of float64 temporaries at most)
    _RENDER_CHUNK = 512

    @torch.inference_mode()
    def decode(self, payload: Payload) -> torch.Tensor:
        c, h, w = payload.shape
        return self.decode_resized(payload, h, w)

    @torch.inference_mode()
    def decode_resized(self, payload: Payload, height: int, width: int) -> torch.Tensor:
        """Render the coded picture at ``height x width`` (any size; the scale per axis is
        ``height / H`` and ``width / W``). Exact on every machine; tile by tile, so memory
        follows the tile, not the output."""
        q = self._check_quality(payload.quality)
        c, h, w = payload.shape
        if height < 1 or width < 1:
            raise ValueError(f"output size must be positive, got {height} x {width}")
        if min(height / h, width / w) < self.MIN_SCALE:
            # the reduction filter reads 2 / scale native pixels around each output pixel: beyond
            # the decoding tiles' halo below this scale
            raise ValueError(f"{self.name} renders at scales down to {self.MIN_SCALE:g}; for smaller pictures "
                             "decode at a scale >= that and resize the result")
        model = self.model
        if payload.params:
            raise CorruptStreamError(f"{self.name} files carry no codec parameters, found {len(payload.params)} bytes")
        if len(payload.streams) != model.n_streams:
            raise CorruptStreamError(f"{self.name} expects {model.n_streams} streams, got {len(payload.streams)}")
        m, ds = int(model.pad_multiple), int(model.downsample)
        lh, lw = -(-h // m) * m // ds, -(-w // m) * m // ds
        y_hat = model.decompress(list(payload.streams), (1, int(model.latent_channels), lh, lw), q)
        sy, sx = height / h, width / w
        per_latent = ds // CELL  # cells per latent along an axis
        cells = (lh * per_latent, lw * per_latent)
        bw = model.bandwidth_exact()
        out = torch.empty(1, _COLORS, height, width, dtype=torch.float32)
        t, halo = self._TILE_LATENTS, self._HALO_LATENTS

        def first_pixel(latent: int, scale: float, n_out: int) -> int:
            # the first output pixel whose centre lies at or after this latent's first native pixel
            return min(max(math.ceil(latent * ds * scale - 0.5), 0), n_out)

        for ty in range(0, lh, t):
            r0, r1 = first_pixel(ty, sy, height), first_pixel(min(ty + t, lh), sy, height)
            if ty + t >= lh:
                r1 = height
            for tx in range(0, lw, t):
                c0, c1 = first_pixel(tx, sx, width), first_pixel(min(tx + t, lw), sx, width)
                if tx + t >= lw:
                    c1 = width
                if r0 >= r1 or c0 >= c1:
                    continue
                ya, yb = max(ty - halo, 0), min(ty + t + halo, lh)
                xa, xb = max(tx - halo, 0), min(tx + t + halo, lw)
                coef = model.coefficients_exact(y_hat[..., ya:yb, xa:xb].to(self.device), q).cpu()
                for i0 in range(r0, r1, self._RENDER_CHUNK):  # bounded memory at large scales
                    i1 = min(i0 + self._RENDER_CHUNK, r1)
                    for j0 in range(c0, c1, self._RENDER_CHUNK):
                        j1 = min(j0 + self._RENDER_CHUNK, c1)
                        out[..., i0:i1, j0:j1] = render_exact_any(
                            coef, (i0, i1), (j0, j1), cells, (sy, sx), bw, (h, w),
                            offset=(ya * per_latent, xa * per_latent)).float()
        out.clamp_(0, 1)
        return out.mean(dim=1, keepdim=True) if c == 1 else out
