"""What every machine task shares: the result types, the base class, the errors.

A task sees the image a codec was given and the image it decoded, and says how well a model
still does its job on the decoded one: a score in [0, 1] (1 = as well as on the original input)
plus JSON details. Tasks with real ground truth (OCR: the task itself renders known text onto
the images) change the input first (:meth:`MachineTask.prepare`); the codecs then compress the
prepared image, so every rate is still that of the file the codec made of exactly what was
scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import torch

__all__ = ["TaskError", "UnknownTaskError", "TaskUnavailableError", "TaskInput", "TaskResult", "MachineTask",
           "to_uint8_rgb"]


class TaskError(ValueError):
    """A machine task cannot be used as asked (a user's or the environment's fault, not a bug)."""


class UnknownTaskError(TaskError):
    """No task of that name."""


class TaskUnavailableError(TaskError):
    """The task exists but cannot run here: a package or a weights file is missing (the message
    says which, and the install command)."""


@dataclass(frozen=True)
class TaskInput:
    """What the codecs are given (``image``: 1 x C x H x W in [0, 1]) and the task's ground truth
    for it (``None`` for tasks whose ground truth is the model's output on the original)."""

    image: torch.Tensor
    truth: Any = None


@dataclass(frozen=True)
class TaskResult:
    """A task's verdict on one decoded image: ``score`` in [0, 1] (``None``: the image cannot be
    scored, e.g. too small for the model; ``details`` says why) and JSON-serialisable details."""

    score: Optional[float]
    details: Mapping[str, Any] = field(default_factory=dict)


def to_uint8_rgb(x: torch.Tensor) -> "Any":
    """1 x C x H x W (or C x H x W) in [0, 1] -> H x W x 3 uint8 numpy array, rounded like the PNG
    a user would get (gray images are repeated into three channels)."""
    import numpy as np

    if x.dim() == 4:
        x = x[0]
    a = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


class MachineTask:
    """Base class of the task plugins. Subclasses set the class attributes and :meth:`score`.

    Class attributes (read by ``glocal-codec tasks`` without building the model):
    ``name``, ``description``, ``model`` (which network), ``weights`` (where its weights come
    from), ``score_text`` (what the score means), ``notes`` (caveats the report prints).
    """

    name: str = ""
    description: str = ""
    model: str = ""
    weights: str = ""
    score_text: str = ""
    notes: tuple[str, ...] = ()
    #: whether :meth:`prepare` changes the image (the codecs then see another data set)
    transforms_input: bool = False
    #: the data set suffix when it does (``kodak`` -> ``kodak+text``)
    input_tag: str = ""

    @classmethod
    def check(cls) -> Optional[str]:
        """``None`` when the task can run here, else why not (beyond missing packages, which the
        registry checks from the table: e.g. a weights file)."""
        return None

    @classmethod
    def located(cls) -> Optional[str]:
        """Where this installation's weights are (a path or a label), when the task looks them up."""
        return None

    def model_id(self) -> str:
        """Identifies the model and settings that made a score (kept in ``results.json``; a change
        drops the old records on resume)."""
        return self.model

    def prepare(self, image: torch.Tensor, image_id: str) -> TaskInput:
        """The image the codecs compress, with its ground truth. Default: unchanged, no truth."""
        return TaskInput(image)

    def score(self, inp: TaskInput, decoded: torch.Tensor) -> TaskResult:
        raise NotImplementedError

    @staticmethod
    def aggregate(results: Sequence[TaskResult]) -> Optional[float]:
        """One score for many images (default: the mean of the per-image scores; ``None`` if any
        is ``None``). Tasks with counts (characters, faces) pool the counts instead."""
        vals = [r.score for r in results]
        if not vals or any(v is None for v in vals):
            return None
        return sum(vals) / len(vals)  # type: ignore[arg-type]
