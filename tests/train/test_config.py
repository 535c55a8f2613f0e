"""TrainConfig checks its quality levels when built, not at the first draw hours into a run."""

from __future__ import annotations

import pytest

from glocal_codec.codecs.hyperprior import LAMBDAS
from glocal_codec.train import TrainConfig


def test_repeated_levels_are_weights() -> None:
    cfg = TrainConfig(codec="msh", data=["d"], out="o", qualities=[1, 5, 6, 6, 6])
    assert cfg.qualities.count(6) == 3


@pytest.mark.parametrize("bad", [0, -1, len(LAMBDAS) + 1])
def test_level_outside_the_lambda_table(bad: int) -> None:
    with pytest.raises(ValueError, match=f"from 1 to {len(LAMBDAS)}"):
        TrainConfig(codec="msh", data=["d"], out="o", qualities=[2, bad])
