"""The frozen table of machine tasks: name, where the code lives, what it needs.

Like the codec table (:mod:`glocal_codec.codecs.ids`): names are data, never derived from the
order of a dict, and a task's module is imported only when the task is used or listed, so a
missing optional package (``rapidocr-onnxruntime``, ``opencv-python-headless``) disables one
task, not the package. ``version`` is bumped whenever a change makes a task's scores differ
(another rendering of the OCR text, other detector settings): ``eval`` then refuses to mix old
and new records in one ``results.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

__all__ = ["TaskRow", "TASK_TABLE", "TASKS", "INSTALL_TASKS"]

#: How to get the optional packages of the machine tasks.
INSTALL_TASKS = "pip install 'glocal-codec[tasks]'"


@dataclass(frozen=True)
class TaskRow:
    """One task: ``name`` (what users type), ``target`` (``"module:Class"`` under
    ``glocal_codec.eval.tasks``), ``requires`` (modules that must be importable), ``install`` (the
    command that provides them), ``version`` (of its scoring; see the module docs)."""

    name: str
    target: str
    requires: tuple[str, ...]
    install: str
    version: int
    summary: str


TASK_TABLE: tuple[TaskRow, ...] = (
    TaskRow("ocr", "ocr:OcrTask", ("rapidocr_onnxruntime", "onnxruntime", "cv2", "matplotlib"), INSTALL_TASKS, 1,
            "text recognition (PP-OCRv4) of text rendered onto the images; score = 1 - character error rate"),
    TaskRow("faces", "faces:FacesTask", ("cv2",), INSTALL_TASKS, 2,
            "face detection (OpenCV Haar cascade); pseudo ground truth from the original; score = F1 at IoU 0.5"),
    TaskRow("features", "features:FeaturesTask", ("torchvision",), "pip install glocal-codec", 1,
            "ImageNet features (SqueezeNet 1.1 / AlexNet trunk); score = cosine similarity to the original's"),
)

TASKS: Mapping[str, TaskRow] = MappingProxyType({r.name: r for r in TASK_TABLE})
assert len(TASKS) == len(TASK_TABLE), "task names must be unique"
