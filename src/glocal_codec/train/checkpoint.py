"""Reading training checkpoints without running code from them.

A ``.pt`` checkpoint is a pickle, and unpickling can execute anything the file asks for; a
checkpoint passed to ``--init-from`` or ``--resume`` may come from anywhere. Every checkpoint is
therefore read with ``torch.load(weights_only=True)``: tensors and plain data (dicts, lists,
numbers, strings) only. A file that needs more is refused with a clear error, never executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

__all__ = ["UnsafeCheckpointError", "load_checkpoint"]


class UnsafeCheckpointError(ValueError):
    """The checkpoint holds objects beyond tensors and plain data (it could run code): refused."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path`` as a dict (model / optimiser state, step, configs), read safely."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(
            f"{path}: refusing to load a checkpoint that holds more than tensors and plain data "
            f"(unpickling it could run code): {str(err).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise UnsafeCheckpointError(f"{path}: not a training checkpoint (a {type(state).__name__}, not a dict)")
    return state
