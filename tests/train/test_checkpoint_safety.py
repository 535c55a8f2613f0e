"""A crafted checkpoint cannot run code: ``--init-from``, resume and export refuse it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from glocal_codec.train.checkpoint import UnsafeCheckpointError, load_checkpoint
from glocal_codec.train.export import export_checkpoint
from glocal_codec.train.loop import build_model, init_from, model_config


class _Payload:
    """Unpickling this would create a marker file (a stand-in for arbitrary code)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _crafted(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "x": _Payload(str(marker))}, path)
    return path, marker


def test_malicious_checkpoint_is_refused_everywhere(tmp_path: Path) -> None:
    path, marker = _crafted(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match="could run code"):
        load_checkpoint(path)
    model = build_model("factorized", model_config("factorized", n=8, m=8))
    with pytest.raises(UnsafeCheckpointError):
        init_from(model, path)
    with pytest.raises(UnsafeCheckpointError):
        export_checkpoint(path, "factorized", out_dir=tmp_path)
    assert not marker.exists(), "the payload ran"


def test_plain_checkpoints_still_load(tmp_path: Path) -> None:
    model = build_model("factorized", model_config("factorized", n=8, m=8))
    opt = torch.optim.Adam(model.parameters())
    path = tmp_path / "ok.pt"
    torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "step": 3, "seconds": 1.5,
                "config": {"data": ["a"], "lr": 1e-4, "arch": {}, "qualities": [1, 2]},
                "model_config": {"n": 8, "m": 8, "levels": 6}}, path)
    state = load_checkpoint(path)
    assert state["step"] == 3 and set(state["model"]) == set(model.state_dict())
    assert init_from(build_model("factorized", model_config("factorized", n=8, m=8)), path) > 0
