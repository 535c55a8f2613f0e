"""Multi-process training through torchrun: two CPU processes on the gloo backend.

The loop's own end-of-run check compares every rank's parameter checksum (DistributedDataParallel
must keep the replicas identical); this test runs a few steps of a small ``glocal`` and of
``msh`` and reads the checkpoint rank 0 wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = [
    pytest.mark.slow,  # torchrun process groups: two interpreters that train, tens of seconds each
    pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch built without the gloo backend"),
]


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_images")
    rng = np.random.default_rng(0)
    for i in range(4):
        base = rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)  # smooth-ish: upsampled noise
        Image.fromarray(base).resize((80, 72), Image.BILINEAR).save(root / f"im{i}.png")
    return root


def _torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "glocal_codec.train", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


@pytest.mark.parametrize("codec,arch", [
    ("glocal", ["--arch", "n=16", "--arch", "m=16", "--arch", "slices=2", "--arch", "window=4", "--arch", "head_dim=8",
                "--arch", "tokens=2", "--arch", "ctx=16"]),
    ("msh", ["--arch", "n=16", "--arch", "m=16"]),
])
def test_two_gloo_processes_train_in_sync(codec, arch, tiny_images, tmp_path):
    out = tmp_path / "run"
    r = _torchrun([codec, str(out), "--data", str(tiny_images), "--steps", "3", "--batch", "1", "--crop", "64",
                   "--threads", "1", "--log-every", "1", "--ckpt-every", "100", *arch], tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 processes (effective batch 2)" in r.stderr
    assert "2 replicas in sync" in r.stderr  # the loop compared both ranks' parameters
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 3
    assert state["model_config"]["n"] == 16


def test_resume_under_torchrun_continues(tiny_images, tmp_path):
    out = tmp_path / "run"
    common = ["msh", str(out), "--data", str(tiny_images), "--batch", "1", "--crop", "64", "--threads", "1",
              "--arch", "n=16", "--arch", "m=16"]
    assert _torchrun([*common, "--steps", "2"], tmp_path).returncode == 0
    r = _torchrun([*common, "--steps", "4", "--resume"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed" in r.stderr
    assert torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)["step"] == 4
