"""Latent refinement (engine.refine): SGA soft rounding and the refinement loop on a toy loss."""

from __future__ import annotations

import pytest
import torch

from glocal_codec.engine import refine_latents, sga_round


def test_sga_round_stays_between_floor_and_ceiling_and_has_a_gradient() -> None:
    v = (torch.randn(2000, dtype=torch.float64) * 3).requires_grad_(True)
    s = sga_round(v, 0.5, torch.Generator().manual_seed(0))
    assert torch.all(s >= torch.floor(v) - 1e-9) and torch.all(s <= torch.floor(v) + 1 + 1e-9)
    s.sum().backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


def test_sga_round_becomes_hard_rounding_as_the_temperature_falls() -> None:
    v = torch.rand(5000, dtype=torch.float64) * 10 - 5
    v = v[(v - v.floor() - 0.5).abs() > 0.05]  # away from the ties
    s = sga_round(v, 1e-3, torch.Generator().manual_seed(1))
    assert torch.allclose(s, torch.round(v), atol=1e-6)
    # at a high temperature a sizeable share of elements is not at the nearest integer
    hot = sga_round(v, 2.0, torch.Generator().manual_seed(1))
    assert ((hot - torch.round(v)).abs() > 0.25).float().mean() > 0.1


def _toy(target: torch.Tensor):
    """bits: |round(v)| summed (small values are cheap); distortion: distance to ``target``."""
    def objective(latents, rounding):
        r = rounding(latents[0])
        return r.abs().sum(), ((r - target) ** 2).sum()
    return objective


def test_refinement_moves_latents_to_a_lower_loss() -> None:
    torch.manual_seed(0)
    target = torch.randint(-3, 4, (1, 3, 8, 8)).double()
    start = target + 0.7  # hard rounding lands one step off every target value
    obj = _toy(target)
    out = refine_latents([start], obj, lam=0.01, pixels=64, steps=60, lr=0.05)

    def loss(v: torch.Tensor) -> float:
        bits, sse = obj([v], torch.round)
        return float(bits / 64 + 0.01 * 255**2 * sse / (3 * 64))

    assert loss(out[0]) < 0.5 * loss(start)
    assert out[0].requires_grad is False


def test_refinement_never_returns_something_worse_than_the_start() -> None:
    target = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    start = target.clone()  # already optimal: any move can only lose
    out = refine_latents([start], _toy(target), lam=0.01, pixels=16, steps=5, lr=1.0)
    assert torch.equal(out[0], start)


def test_refinement_is_deterministic_and_zero_steps_is_a_copy() -> None:
    target = torch.randint(-2, 3, (1, 2, 6, 6)).double()
    start = target + 0.6
    a = refine_latents([start], _toy(target), lam=0.01, pixels=36, steps=10)
    b = refine_latents([start], _toy(target), lam=0.01, pixels=36, steps=10)
    assert torch.equal(a[0], b[0])
    c = refine_latents([start], _toy(target), lam=0.01, pixels=36, steps=0)
    assert torch.equal(c[0], start) and c[0] is not start
    with pytest.raises(ValueError, match="steps"):
        refine_latents([start], _toy(target), lam=0.01, pixels=36, steps=-1)


def test_refinement_works_inside_inference_mode() -> None:
    # codecs encode under torch.inference_mode(); refinement must still get its gradients
    target = torch.randint(-2, 3, (1, 2, 6, 6)).double()
    with torch.inference_mode():
        out = refine_latents([target + 0.7], _toy(target), lam=0.01, pixels=36, steps=30, lr=0.05)
    assert torch.equal(torch.round(out[0]), target)


def test_refinement_reports_every_step() -> None:
    """``progress(step, steps, "loss ...")`` after each step; the result is the same without it."""
    from glocal_codec.engine import refine_tiled

    target = torch.randint(-2, 3, (1, 2, 6, 6)).double()
    seen: list[tuple] = []
    out = refine_latents([target + 0.6], _toy(target), lam=0.01, pixels=36, steps=4,
                         progress=lambda d, t, s=None: seen.append((d, t, s)))
    assert [(d, t) for d, t, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(s.startswith("loss ") for _, _, s in seen)
    assert torch.equal(out[0], refine_latents([target + 0.6], _toy(target), lam=0.01, pixels=36, steps=4)[0])

    # tile by tile: one count over every tile's steps (a 6 x 6 grid in 4 x 4 tiles: 4 tiles)
    def window_objective(box, window, rounding):
        y0, y1, x0, x1 = box
        r = rounding(window)
        return r.abs().sum(), ((r - target[..., y0:y1, x0:x1]) ** 2).sum()

    seen.clear()
    refine_tiled(target + 0.6, window_objective, 0.01, 3, tile=4, halo=1,
                 progress=lambda d, t, s=None: seen.append((d, t)))
    assert seen == [(k, 12) for k in range(1, 13)]
