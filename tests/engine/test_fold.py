"""Folding thin strips: the plan is a pure function of the shape, and unfold inverts fold."""

from __future__ import annotations

import itertools

import pytest
import torch

from glocal_codec.engine import fold_plan


@pytest.mark.parametrize("h,w", [(1, 5000), (5000, 1), (3, 200), (2, 100000), (20, 5000), (1, 65), (9, 777)])
@pytest.mark.parametrize("stride", [1, 16])
def test_unfold_inverts_fold(h: int, w: int, stride: int) -> None:
    plan = fold_plan(h, w, 64, stride)
    assert plan is not None and plan.band >= stride
    x = torch.rand(1, 3, h, w)
    y = plan.fold(x)
    assert tuple(y.shape[-2:]) == plan.folded_shape
    # the repeated rows are averaged: a sum of equal values, exact up to float rounding
    assert torch.allclose(plan.unfold(y), x, rtol=0, atol=1e-6)
    if plan.repeat == 1:
        assert torch.equal(plan.unfold(y), x)


def test_a_one_pixel_strip_is_stretched_to_a_latent_row() -> None:
    plan = fold_plan(1, 5000, 64, 16)
    assert (plan.repeat, plan.band, plan.folded_shape) == (16, 16, (64, 1280))
    x = torch.rand(1, 1, 1, 5000)
    y = plan.fold(x)
    assert torch.equal(y[..., :16, :], x[..., :1280].expand(1, 1, 16, 1280))  # a band: the row, 16 times
    assert fold_plan(20, 5000, 64, 16).repeat == 1


@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (1, 64), (64, 64), (40, 5000), (768, 512), (100, 37)])
def test_pictures_that_are_not_strips_are_not_folded(h: int, w: int) -> None:
    assert fold_plan(h, w, 64) is None


def test_folding_at_least_halves_the_padded_area() -> None:
    for (h, w), stride in itertools.product([(1, 5000), (3, 200), (2, 100000), (20, 5000)], (1, 16)):
        plan = fold_plan(h, w, 64, stride)
        fh, fw = plan.folded_shape
        up = lambda v: -(-v // 64) * 64  # noqa: E731
        assert 2 * up(fh) * up(fw) <= up(h) * up(w)
        assert fw % 64 == 0 and fh == plan.count * plan.band


def test_a_tall_strip_is_the_transposed_wide_one() -> None:
    wide, tall = fold_plan(1, 5000, 64, 16), fold_plan(5000, 1, 64, 16)
    assert not wide.transpose and tall.transpose
    assert (wide.segment, wide.count) == (tall.segment, tall.count) and wide.folded_shape == tall.folded_shape
    x = torch.rand(1, 1, 1, 5000)
    assert torch.equal(tall.fold(x.transpose(-2, -1)), wide.fold(x))


def test_the_plan_of_a_huge_strip_is_found_quickly() -> None:
    plan = fold_plan(1, 1 << 27, 64, 16)  # the pixel limit, as one row: a bounded search
    assert plan is not None and plan.count * plan.segment >= 1 << 27


def test_fold_checks_the_shape() -> None:
    with pytest.raises(ValueError):
        fold_plan(1, 5000, 64, 16).fold(torch.rand(1, 3, 1, 4000))
    with pytest.raises(ValueError):
        fold_plan(0, 10, 64)
    with pytest.raises(ValueError):
        fold_plan(1, 10, 64, 0)
