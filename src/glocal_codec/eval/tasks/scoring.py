"""The runner's side of the machine tasks: prepared inputs, reference scores, record fields.

Kept here so that :mod:`glocal_codec.eval.runner` only calls three functions. The score of the
uncompressed input (the task run on the very image the codecs were given) is computed once per
image and process and stored in every record's details as ``reference``: the report measures
each codec against it (the bpp at which 95 % of it is kept).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Optional

import torch

from .base import MachineTask, TaskInput, TaskResult
from .registry import open_task
from .table import TASKS

__all__ = ["prepare", "record_fields", "run_info", "dataset_name"]

_refs: dict[tuple[str, str, str], TaskResult] = {}
_lock = threading.Lock()


def _fingerprint(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def prepare(name: str, x: torch.Tensor, image_id: str) -> tuple[MachineTask, TaskInput, TaskResult]:
    """Task ``name``'s input for an image, and the score of that input itself (cached)."""
    task = open_task(name)
    inp = task.prepare(x, image_id)
    key = (name, image_id, _fingerprint(inp.image))
    with _lock:
        ref = _refs.get(key)
    if ref is None:
        ref = task.score(inp, inp.image)
        with _lock:
            _refs[key] = ref
    return task, inp, ref


def record_fields(task: MachineTask, inp: TaskInput, ref: TaskResult, decoded: torch.Tensor) -> dict[str, Any]:
    """``task``, ``task_score`` and ``task_details`` (with the ``reference``) of one record."""
    res = task.score(inp, decoded)
    details = dict(res.details)
    details["reference"] = {"score": ref.score, **{k: v for k, v in ref.details.items() if k != "read"}}
    return {"task": task.name, "task_score": res.score, "task_details": details}


def run_info(name: str) -> dict[str, Any]:
    """What ``results.json`` keeps about the task of a run (its identity for resuming)."""
    task = open_task(name)
    row = TASKS[name]
    return {"name": name, "version": row.version, "model": task.model_id(), "weights": task.weights,
            "score": task.score_text, "input": "rendered" if task.transforms_input else "unchanged"}


def dataset_name(name: Optional[str], dataset: str) -> str:
    """The data set's name in the results: ``kodak``, or ``kodak+text`` for a task that renders
    onto the images (so its results are never mistaken for, or compared with, plain Kodak ones)."""
    if not name:
        return dataset
    task = open_task(name)
    return f"{dataset}+{task.input_tag}" if task.transforms_input else dataset
