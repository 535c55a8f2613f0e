"""``faces``: does a face detector still find the same faces? F1 at IoU 0.5.

The detector is OpenCV's Viola-Jones Haar cascade ``haarcascade_frontalface_default.xml``, which
ships inside the ``opencv-python(-headless)`` wheel (``cv2.data.haarcascades``; nothing is
downloaded), run on the 8-bit luma with fixed settings (scale step 1.1, faces of at least 24 px)
-- deterministic. The cascade's raw hits are grouped into clusters; a cluster's number of hits
is its confidence. A *detection* is a cluster of more than 5 hits (OpenCV's usual
``minNeighbors=5``).

There is no human ground truth: the detections on the original image are the *pseudo* ground
truth, and a decoded image scores the F1 of its detections against them (greedy one-to-one
matching, highest IoU first, a match needs IoU >= 0.5). The matching uses hysteresis, as
trackers do: a ground-truth face counts as found when a cluster of more than 2 hits covers it,
and a false detection is a full detection (> 5 hits) that covers no ground-truth face.
Without it, the borderline faces Kodak has (6 or 7 hits) flip in and out under changes far
below what anyone sees (JPEG at 39-41 dB lost 3 of 8 faces in a trial), and the score measured
the threshold rather than the codec. An original scores 1 by construction.

Pseudo ground truth favours codecs that keep what *this detector* sees (including its false
positives on texture), not necessarily the real faces. An image where neither finds a face
scores 1 (nothing was lost); over many images the counts are pooled (micro F1 = 2 TP / (2 TP +
FP + FN)), so images without faces only count through false detections.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .base import MachineTask, TaskInput, TaskResult, to_uint8_rgb

__all__ = ["FacesTask", "iou", "match_f1"]

CASCADE = "haarcascade_frontalface_default.xml"
SETTINGS = {"scaleFactor": 1.1, "minSize": (24, 24)}
#: a detection: a cluster of more than DETECT hits; a face is still found with more than KEEP
DETECT = 5
KEEP = 2
IOU = 0.5

Box = tuple[int, int, int, int]  # x, y, w, h


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match_f1(truth: Sequence[Box], found: Sequence[Box], thresh: float = IOU) -> tuple[int, int, int, float]:
    """(TP, FP, FN, F1): greedy one-to-one matching, highest IoU first; F1 = 1 when both are empty."""
    pairs = sorted(((iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    used_t: set[int] = set()
    used_f: set[int] = set()
    for v, i, j in pairs:
        if v < thresh:
            break
        if i in used_t or j in used_f:
            continue
        used_t.add(i)
        used_f.add(j)
    tp = len(used_t)
    fp, fn = len(found) - tp, len(truth) - tp
    return tp, fp, fn, _f1(tp, fp, fn)


def _f1(tp: int, fp: int, fn: int) -> float:
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


class FacesTask(MachineTask):
    name = "faces"
    description = "face detection F1 at IoU 0.5 against the detections on the original (pseudo ground truth)"
    model = f"OpenCV Haar cascade {CASCADE} (Viola-Jones)"
    weights = "inside the opencv-python-headless wheel (cv2.data.haarcascades); never downloaded"
    score_text = ("F1 at IoU 0.5 of the detections against those on the original, with hysteresis (micro-F1 over "
                  "images)")
    notes = ("Pseudo ground truth: the detector's own output on the original image is the reference, so the "
             "score favours codecs that keep what this detector sees (its false positives included), not "
             "necessarily the real faces.",)

    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if self._cascade.empty():
            from .base import TaskUnavailableError

            raise TaskUnavailableError(f"OpenCV could not load {cv2.data.haarcascades + CASCADE}")
        self._lock = threading.Lock()
        self._last: Optional[tuple[torch.Tensor, list[Box]]] = None

    @classmethod
    def located(cls) -> Optional[str]:
        import importlib.util

        spec = importlib.util.find_spec("cv2")
        if spec is None or not spec.submodule_search_locations:
            return None
        return str(Path(list(spec.submodule_search_locations)[0]) / "data" / CASCADE)

    def model_id(self) -> str:
        return f"{self.model}, opencv {self._cv2.__version__}, {SETTINGS}, detect > {DETECT} hits, keep > {KEEP}"

    def clusters(self, x: torch.Tensor) -> list[tuple[Box, int]]:
        """Every cluster of more than ``KEEP`` hits in an image (1 x C x H x W in [0, 1]): its box
        (x, y, w, h) and number of hits, in a fixed order."""
        rgb = to_uint8_rgb(x)
        gray = self._cv2.cvtColor(rgb, self._cv2.COLOR_RGB2GRAY)
        with self._lock:  # a cascade object is not safe to share between threads
            boxes, hits = self._cascade.detectMultiScale2(gray, minNeighbors=KEEP, **SETTINGS)
        if not len(boxes):
            return []
        return sorted((tuple(int(v) for v in b), int(n)) for b, n in zip(boxes, hits))  # type: ignore[misc]

    def detect(self, x: torch.Tensor) -> list[Box]:
        """The faces detected in an image (clusters of more than ``DETECT`` hits)."""
        return [b for b, n in self.clusters(x) if n > DETECT]

    def _truth(self, x: torch.Tensor) -> list[Box]:
        last = self._last
        if last is not None and last[0] is x:
            return last[1]
        boxes = self.detect(x)
        self._last = (x, boxes)
        return boxes

    def score(self, inp: TaskInput, decoded: torch.Tensor) -> TaskResult:
        truth = self._truth(inp.image)
        found = self.clusters(decoded)
        strict = [b for b, n in found if n > DETECT]
        pairs = sorted(((iou(t, f), i, j) for i, t in enumerate(truth) for j, (f, _) in enumerate(found)),
                       reverse=True)
        used_t: set[int] = set()
        used_f: set[int] = set()
        for v, i, j in pairs:
            if v < IOU:
                break
            if i not in used_t and j not in used_f:
                used_t.add(i)
                used_f.add(j)
        tp = len(used_t)
        fn = len(truth) - tp
        fp = sum(1 for j, (_, n) in enumerate(found) if n > DETECT and j not in used_f)
        return TaskResult(round(_f1(tp, fp, fn), 6), {"tp": tp, "fp": fp, "fn": fn, "faces_original": len(truth),
                                                      "faces_decoded": len(strict)})

    @staticmethod
    def aggregate(results: Sequence[TaskResult]) -> Optional[float]:
        if not results:
            return None
        tot: dict[str, Any] = {k: sum(int(r.details.get(k, 0)) for r in results) for k in ("tp", "fp", "fn")}
        return _f1(tot["tp"], tot["fp"], tot["fn"])
