"""Turn a training checkpoint into shipped weights: tables frozen, safetensors, manifest row."""

from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..codecs.base import LevelFacts
from ..codecs.hyperprior import LAMBDAS
from ..weights import save_state, update_manifest, weights_base
from .checkpoint import load_checkpoint
from .loop import build_model, model_config

__all__ = ["export_checkpoint"]


def export_checkpoint(checkpoint: Path, codec: str, out_dir: Path | None = None,
                      command: str = "", notes: dict[str, Any] | None = None) -> Path:
    """Freeze the coding tables of a checkpoint and write ``<codec>.safetensors`` + manifest row."""
    state = load_checkpoint(checkpoint)
    tcfg = state["config"]
    # the model's own config as trained (older checkpoints: n and m of the training config)
    if "model_config" in state:
        cfg = model_config(codec, **state["model_config"])
    else:
        cfg = model_config(codec, tcfg["n"], tcfg["m"])
    model = build_model(codec, cfg)
    model.load_state_dict(state["model"])
    model.eval()
    model.build_tables()
    out_dir = Path(out_dir) if out_dir is not None else weights_base()
    sd = dict(model.state_dict())
    path = out_dir / f"{codec}.safetensors"
    sha = save_state(sd, path, metadata={"codec": codec, "config": str(asdict(cfg))})
    entry: dict[str, Any] = {
        "file": path.name,
        "sha256": sha,
        "config": asdict(cfg),
        "lambdas": list(LAMBDAS),
        "training": {
            "command": command,
            "steps": state["step"],
            "seconds": round(state["seconds"], 1),
            "device": tcfg.get("device", "cpu"),
            "threads": tcfg.get("threads"),
            "batch": tcfg["batch"],
            "crop": tcfg["crop"],
            "lr": tcfg["lr"],
            "data": [Path(d).name for d in tcfg["data"]],
            "torch": torch.__version__,
            "machine": f"{platform.machine()} {platform.system()}",
        },
    }
    if isinstance(model, LevelFacts):  # what `glocal-codec info` shows per level, without the model
        entry["level_facts"] = {str(q + 1): model.level_facts(q) for q in range(cfg.levels)}
    entry.update(notes or {})
    update_manifest(codec, entry, out_dir)
    return path
