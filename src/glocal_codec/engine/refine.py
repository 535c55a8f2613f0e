"""Encoder-side latent refinement: spend encode time, keep the decoder and the file format.

An amortised encoder maps each image to a latent in one pass; the latent that minimises that
image's own rate-distortion loss is usually a little different (the "amortisation gap").
Refinement starts from the encoder's latents and runs gradient steps on

    bits(round(latents)) / pixels + lambda * 255^2 * MSE(synthesis(round(latents)), x)

through the frozen decoder and entropy model. Rounding has no useful gradient, so the steps go
through *stochastic Gumbel annealing* (SGA): each element is soft-rounded to a Gumbel-softmax
mix of its floor and ceiling whose temperature falls towards hard rounding (Yang, Bamler, Mandt,
"Improving Inference for Neural Image Compression", NeurIPS 2020; per-image latent optimisation
also in Campos et al., "Content adaptive optimization for neural image compression", CVPR-W
2019). The result is coded exactly as the encoder's own latents are, so
any decoder of the same weights reads it.

Written here, not taken from a library: CompressAI has no latent refinement, and the codec
models differ only in the loss they hand over (``objective``), which the caller supplies.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

__all__ = ["sga_round", "refine_latents", "refine_tiled", "Objective", "WindowObjective", "Progress"]

#: ``progress(done, total, stats=None)`` after each step (:class:`glocal_codec.codecs.ProgressFn`):
#: ``stats`` is the step's loss, e.g. ``"loss 1.234"``.
Progress = Callable[..., None]

#: ``objective(latents, rounding) -> (bits, squared error sum)``; ``rounding`` maps a tensor of
#: (possibly mean-shifted) latent values to their quantised stand-in.
Objective = Callable[[Sequence[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]],
                     "tuple[torch.Tensor, torch.Tensor]"]


def sga_round(v: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Soft rounding of ``v`` by stochastic Gumbel annealing at temperature ``tau``.

    The floor and the ceiling get logits ``-atanh(distance) / tau`` (Yang et al. 2020):
    the nearer integer is likelier, and as ``tau -> 0`` the sample becomes hard rounding.
    """
    f = torch.floor(v)
    r = (v - f).clamp(1e-6, 1 - 1e-6)
    logits = torch.stack([-torch.atanh(r), -torch.atanh(1 - r)]) / tau
    u = torch.rand(logits.shape, generator=generator, device=v.device, dtype=v.dtype)
    gumbel = -torch.log(-torch.log(u.clamp(1e-9, 1 - 1e-9)))
    w = torch.softmax(logits + gumbel, dim=0)
    return f + w[1]


def _hard_round(v: torch.Tensor) -> torch.Tensor:
    return torch.round(v)


def refine_latents(latents: Sequence[torch.Tensor], objective: Objective, lam: float, pixels: int,
                   steps: int, lr: float = 1e-2, seed: int = 0, *,
                   progress: Progress | None = None) -> list[torch.Tensor]:
    """Run ``steps`` SGA steps on ``latents`` and return the better of them and the start.

    ``lam`` weighs MSE on the 0-255 scale against bits per pixel, as in training. The learning
    rate follows a cosine from ``lr`` to 0 and the temperature falls from 0.5 as
    ``0.5 * exp(-3 t)`` (floored at 0.05). Both the starting latents and the refined ones are
    scored with hard rounding at the end and the lower loss wins, so refinement never returns
    something worse (by the model's own rate estimate) than the encoder's output. The noise is
    seeded: the same input gives the same file on the same machine and thread count (the
    float32 gradient steps may round differently elsewhere; decoding stays bit-exact).
    ``progress(t, steps, "loss ...")`` is called after step ``t`` (1 .. ``steps``).
    """
    if steps < 0:
        raise ValueError(f"refinement steps must be >= 0, got {steps}")
    start = [t.detach().clone() for t in latents]
    if steps == 0:
        return start

    def loss(ls: Sequence[torch.Tensor], rounding: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        bits, sse = objective(ls, rounding)
        return bits / pixels + lam * 255.0**2 * sse / (3 * pixels)

    with torch.inference_mode(False), torch.enable_grad():
        params = [t.clone().requires_grad_(True) for t in start]
        opt = torch.optim.Adam(params, lr=lr)
        gen = torch.Generator(device=start[0].device).manual_seed(seed)

        for t in range(steps):
            tau = max(0.5 * math.exp(-3.0 * t / steps), 0.05)
            value = loss(params, lambda v: sga_round(v, tau, gen))
            grads = torch.autograd.grad(value, params)  # latents only: no weight gradients
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * (t + 1) / steps))
            if progress is not None:
                progress(t + 1, steps, f"loss {float(value.detach()):.4g}")
        with torch.no_grad():
            before = float(loss(start, _hard_round))
            after = float(loss(params, _hard_round))
    return [p.detach() for p in params] if after < before else start


#: ``window_objective(box, window, rounding) -> (bits, squared error sum)`` for the latent window
#: ``box = (y0, y1, x0, x1)`` (latent rows/columns) holding the values ``window``.
WindowObjective = Callable[[tuple[int, int, int, int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor]],
                           "tuple[torch.Tensor, torch.Tensor]"]


def refine_tiled(grid: torch.Tensor, window_objective: WindowObjective, lam: float, steps: int, *,
                 tile: int, halo: int, align: int = 1, pixels_per_latent: int = 256,
                 lr: float = 1e-2, progress: Progress | None = None) -> torch.Tensor:
    """Refine a 1 x C x H x W latent grid one tile at a time, for images too large to refine whole.

    Each tile of ``tile`` x ``tile`` latents is refined inside a window that adds ``halo``
    latents on every side (rounded outwards to multiples of ``align``, e.g. 4 where a
    hyper-latent has a quarter of the resolution). Only the tile's latents move; the halo holds
    its current values (already-refined tiles included, Gauss-Seidel style) and is rounded hard,
    as the coder will round it. When the halo covers the reach of the synthesis and of the
    entropy parameters twice over (every output a tile latent touches is computed from its
    complete support), the window's loss differs from the whole image's by a constant, so each
    tile takes exactly the steps whole-image refinement would take with the rest held
    (``tests/engine/test_refine.py`` checks the gradients). Memory and time depend on the window,
    not the image. Tiles are seeded by their index: the result is deterministic.
    ``progress(done, tiles * steps, stats)`` counts the steps of all tiles together.
    """
    if tile < 1 or halo < 0 or tile % align:
        raise ValueError("tile must be a positive multiple of align, halo >= 0")
    out = grid.detach().clone()
    _, _, gh, gw = out.shape
    total = -(-gh // tile) * -(-gw // tile) * steps
    k = 0
    for ty0 in range(0, gh, tile):
        for tx0 in range(0, gw, tile):
            ty1, tx1 = min(ty0 + tile, gh), min(tx0 + tile, gw)
            wy0, wx0 = max(ty0 - halo, 0) // align * align, max(tx0 - halo, 0) // align * align
            wy1 = min(-(-(ty1 + halo) // align) * align, gh)
            wx1 = min(-(-(tx1 + halo) // align) * align, gw)
            box = (wy0, wy1, wx0, wx1)
            held = out[..., wy0:wy1, wx0:wx1].clone()
            mask = torch.zeros_like(held, dtype=torch.bool)
            mask[..., ty0 - wy0:ty1 - wy0, tx0 - wx0:tx1 - wx0] = True

            def objective(ls, rounding, held=held, mask=mask, box=box):
                window = torch.where(mask, ls[0], held)

                def masked(v: torch.Tensor) -> torch.Tensor:
                    # grid-shaped values: soft rounding on the tile, hard on the halo; any other
                    # latent (a held hyper-latent) is rounded hard
                    return torch.where(mask, rounding(v), torch.round(v)) if v.shape == mask.shape else torch.round(v)

                return window_objective(box, window, masked)

            pixels = (wy1 - wy0) * (wx1 - wx0) * pixels_per_latent

            def tile_progress(done: int, _steps: int, stats: str | None = None, base: int = k * steps) -> None:
                progress(base + done, total, stats)

            refined = refine_latents([held], objective, lam, pixels, steps, lr=lr, seed=k,
                                     progress=tile_progress if progress is not None else None)[0]
            out[..., ty0:ty1, tx0:tx1] = refined[..., ty0 - wy0:ty1 - wy0, tx0 - wx0:tx1 - wx0]
            k += 1
    return out
