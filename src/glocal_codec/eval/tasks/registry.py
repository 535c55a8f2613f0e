"""The task registry: ``task_names``, ``list_tasks``, ``task_class``, ``open_task``.

Rows come from the frozen table in :mod:`.table`. Availability is decided without importing
the heavy packages: the required modules must be findable (``importlib.util.find_spec``) and
the task's own :meth:`~.base.MachineTask.check` (weights files) must pass. An unavailable task is
listed with the reason and the install command; opening it raises
:class:`~.base.TaskUnavailableError` with the same text.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass
from typing import Optional

from .base import MachineTask, TaskUnavailableError, UnknownTaskError
from .table import TASK_TABLE, TASKS, TaskRow

__all__ = ["TaskInfo", "task_names", "task_class", "task_status", "list_tasks", "open_task"]

_instances: dict[str, MachineTask] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class TaskInfo:
    """One row of ``glocal-codec tasks``."""

    name: str
    available: bool
    reason: str  # why not ("" when available)
    install: str
    version: int
    summary: str
    model: str
    weights: str
    score: str
    found: Optional[str] = None  # where this installation's weights are (available tasks)


def task_names() -> list[str]:
    """Every task name, in table order."""
    return [r.name for r in TASK_TABLE]


def _row(name: str) -> TaskRow:
    row = TASKS.get(name)
    if row is None:
        raise UnknownTaskError(f"unknown task {name!r}; known: {', '.join(task_names())} (see `glocal-codec tasks`)")
    return row


def task_class(name: str) -> type[MachineTask]:
    """The task's class; imports its module (which imports no heavy package at import time)."""
    row = _row(name)
    module, _, attr = row.target.partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), attr)


def _missing(row: TaskRow) -> list[str]:
    out = []
    for mod in row.requires:
        try:
            if importlib.util.find_spec(mod) is None:
                out.append(mod)
        except (ImportError, ValueError):
            out.append(mod)
    return out


def task_status(name: str) -> Optional[str]:
    """``None`` when task ``name`` can run here, else the reason (with the install command)."""
    row = _row(name)
    missing = _missing(row)
    if missing:
        return f"missing Python package(s) {', '.join(missing)}; install with: {row.install}"
    return task_class(name).check()


def list_tasks() -> list[TaskInfo]:
    """Every task, available or not, in table order."""
    infos = []
    for row in TASK_TABLE:
        cls = task_class(row.name)
        why = task_status(row.name)
        infos.append(TaskInfo(row.name, why is None, why or "", row.install, row.version, row.summary,
                              cls.model, cls.weights, cls.score_text, cls.located() if why is None else None))
    return infos


def open_task(name: str) -> MachineTask:
    """The (cached) task instance; raises :class:`UnknownTaskError` or :class:`TaskUnavailableError`."""
    with _lock:
        inst = _instances.get(name)
    if inst is not None:
        return inst
    why = task_status(name)
    if why is not None:
        raise TaskUnavailableError(f"task {name!r} is not available here: {why}")
    inst = task_class(name)()
    with _lock:
        return _instances.setdefault(name, inst)
