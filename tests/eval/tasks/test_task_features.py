"""``features``: cosine of ImageNet feature maps, from the offline trunk (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glocal_codec.eval.tasks import open_task
from glocal_codec.eval.tasks.features import find_trunk


@pytest.fixture(scope="module")
def task(data_dir: Path):  # noqa: ANN201
    if find_trunk() is None:
        pytest.skip("no offline ImageNet trunk here")
    return open_task("features")


def test_original_scores_one_and_damage_lowers_it(task, kodak_crop: torch.Tensor) -> None:  # noqa: ANN001
    inp = task.prepare(kodak_crop, "crop")
    assert inp.image is kodak_crop
    ref = task.score(inp, kodak_crop)
    assert ref.score == 1.0 and ref.details["pooled_cosine"] == 1.0
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(kodak_crop.shape, generator=g)
    light = task.score(inp, (kodak_crop + 0.02 * noise).clamp(0, 1)).score
    heavy = task.score(inp, (kodak_crop + 0.2 * noise).clamp(0, 1)).score
    assert 0 <= heavy < light < 1
    flat = task.score(inp, torch.full_like(kodak_crop, kodak_crop.mean().item())).score
    assert flat < heavy


def test_model_id_names_the_trunk(task) -> None:  # noqa: ANN001
    assert task.model_id().startswith(("squeezenet1_1", "alexnet"))
    assert task.located() and Path(task.trunk.path).is_file()


def test_gray_and_too_small(task) -> None:  # noqa: ANN001
    g = torch.rand(1, 1, 40, 48, generator=torch.Generator().manual_seed(2))
    assert task.score(task.prepare(g, "g"), g).score == 1.0
    tiny = torch.rand(1, 3, 20, 40)
    r = task.score(task.prepare(tiny, "t"), tiny)
    assert r.score is None and "smaller than" in r.details["reason"]
