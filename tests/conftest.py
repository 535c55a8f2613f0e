"""Shared test set-up.

Learned codecs need weights. The package ships trained ones; where a codec's shipped weights are
missing (a checkout before training finished), this file builds small *untrained* weights in a
temporary folder so every round-trip, corruption and fuzz test still runs against real models
and real entropy coding. ``UNTRAINED`` names those codecs: quality floors only apply to trained
weights, and tests that check them skip for untrained ones (saying why).

``GLOCAL_CODEC_WEIGHTS`` is set here, before any codec is opened, so the registry's cached
codec instances see the right folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from glocal_codec.codecs.base import LevelFacts
from glocal_codec.train.loop import build_model, model_config, trainable_codecs
from glocal_codec.weights import WEIGHTS_DIR, load_manifest, save_state, update_manifest

#: Every learned image codec of the registry (its plugin class names a model class).
LEARNED = tuple(trainable_codecs())
#: Small stand-in architectures (fields of each codec's own config class; default n=32, m=48).
STANDIN: dict[str, dict] = {
    "glocal": dict(n=16, m=24, window=4, head_dim=8, tokens=4, ctx=24),
    "clc": dict(n=32, m=48, entries=16, inner=32),
    "vq": dict(n=16, m=24, dim=8, codes=64, books=[4, 8, 16], depth=1, window=4, tokens=4, head_dim=8, prior_hidden=16),
}
#: Learned codecs running on untrained stand-in weights in this test session.
UNTRAINED: set[str] = set()

DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _prepare_weights() -> None:
    if os.environ.get("GLOCAL_CODEC_WEIGHTS"):
        return  # the caller chose a folder on purpose
    missing = [c for c in LEARNED if not (WEIGHTS_DIR / f"{c}.safetensors").is_file()]
    if not missing:
        return
    tmp = Path(tempfile.mkdtemp(prefix="glocal-test-weights-"))
    shipped = load_manifest(WEIGHTS_DIR)
    for codec in LEARNED:
        if codec not in missing:
            shutil.copy2(WEIGHTS_DIR / f"{codec}.safetensors", tmp / f"{codec}.safetensors")
            update_manifest(codec, shipped[codec], tmp)
            continue
        torch.manual_seed(0)
        cfg = model_config(codec, **STANDIN.get(codec, dict(n=32, m=48)))
        model = build_model(codec, cfg).eval()
        model.build_tables()
        sha = save_state(dict(model.state_dict()), tmp / f"{codec}.safetensors")
        entry = {"file": f"{codec}.safetensors", "sha256": sha, "config": asdict(cfg), "untrained": True}
        if isinstance(model, LevelFacts):  # as export writes them
            entry["level_facts"] = {str(q + 1): model.level_facts(q) for q in range(cfg.levels)}
        update_manifest(codec, entry, tmp)
        UNTRAINED.add(codec)
    os.environ["GLOCAL_CODEC_WEIGHTS"] = str(tmp)


_prepare_weights()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data folder (Kodak, CLIC, ...); tests needing it skip when it is absent."""
    if not (DATA / "kodak").is_dir():
        pytest.skip(f"shared data not found at {DATA} (set GLOCAL_CODEC_DATA)")
    return DATA


@pytest.fixture(scope="session")
def kodak_crop(data_dir: Path) -> torch.Tensor:
    """A 1x3x96x128 crop of kodim23 (textures, edges, flat sky): small but natural."""
    from glocal_codec.imageio import load_image

    return load_image(data_dir / "kodak" / "kodim23.png")[0][:, :, 200:296, 300:428].contiguous()


#: Fitting budgets for the INR video codecs in the registry-wide tests: enough to exercise every
#: code path through real files, far too little for quality (their own tests fit longer).
INR_TEST_EPOCHS = {"hnerv": 2, "nirvana": 2, "pfnr": 2, "overfit": 10}


@pytest.fixture(autouse=True, scope="session")
def _fast_inr_codecs() -> None:
    from glocal_codec.codecs import open_codec
    from glocal_codec.codecs.registry import UnknownCodecError

    for name, epochs in INR_TEST_EPOCHS.items():
        try:
            c = open_codec(name)
        except UnknownCodecError:
            continue
        if name == "overfit":  # a per-image fit: its budget is in iterations; the environment
            c.iterations = epochs  # variable carries it into subprocesses (test_determinism)
            os.environ["GLOCAL_CODEC_OVERFIT_ITERATIONS"] = str(epochs)
            continue
        c.epochs = epochs


def run_cli(*args: str) -> "subprocess.CompletedProcess[str]":
    """``python -m glocal_codec ARGS`` in a fresh process (what a user's shell runs), output captured."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "glocal_codec", *args], capture_output=True, text=True, timeout=300)
