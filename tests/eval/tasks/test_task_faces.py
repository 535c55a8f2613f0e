"""``faces``: matching, F1, pooling, and the Haar cascade on a real face (kodim04)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from glocal_codec.eval.tasks import TaskResult
from glocal_codec.eval.tasks.faces import FacesTask, iou, match_f1


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_match_f1() -> None:
    assert match_f1([], []) == (0, 0, 0, 1.0)  # nothing to find, nothing found: nothing lost
    assert match_f1([(0, 0, 10, 10)], []) == (0, 0, 1, 0.0)
    assert match_f1([], [(0, 0, 10, 10)]) == (0, 1, 0, 0.0)
    # one-to-one: two detections on one face give one TP and one FP
    tp, fp, fn, f1 = match_f1([(0, 0, 10, 10)], [(0, 0, 10, 10), (1, 0, 10, 10)])
    assert (tp, fp, fn) == (1, 1, 0) and f1 == pytest.approx(2 / 3)
    # IoU below 0.5 is a miss and a false detection
    assert match_f1([(0, 0, 10, 10)], [(6, 0, 10, 10)])[:3] == (0, 1, 1)


def test_micro_f1_pools_counts() -> None:
    rs = [TaskResult(1.0, {"tp": 0, "fp": 0, "fn": 0}), TaskResult(0.0, {"tp": 0, "fp": 0, "fn": 2}),
          TaskResult(1.0, {"tp": 2, "fp": 0, "fn": 0})]
    assert FacesTask.aggregate(rs) == pytest.approx(2 * 2 / (2 * 2 + 2))  # not the mean 2/3


@pytest.fixture(scope="module")
def faces() -> FacesTask:
    pytest.importorskip("cv2")
    return FacesTask()


def test_real_face_kept_and_lost(faces: FacesTask, data_dir: Path) -> None:
    from glocal_codec.imageio import load_image

    x = load_image(data_dir / "kodak" / "kodim04.png")[0]
    inp = faces.prepare(x, "kodim04.png")
    assert inp.image is x and inp.truth is None
    ref = faces.score(inp, inp.image)
    assert ref.score == 1.0 and ref.details["faces_original"] >= 1 and ref.details["tp"] == ref.details["faces_original"]
    # a flat grey image has no face: every pseudo-ground-truth face is missed
    lost = faces.score(inp, torch.full_like(x, 0.5))
    assert lost.score == 0.0 and lost.details["fn"] == ref.details["faces_original"]
    # detection is deterministic
    assert faces.detect(x) == faces.detect(x.clone())


def test_gray_and_tiny_images(faces: FacesTask) -> None:
    x = torch.rand(1, 1, 16, 20, generator=torch.Generator().manual_seed(0))
    r = faces.score(faces.prepare(x, "t"), x)
    assert r.score == 1.0 and r.details["faces_original"] == 0
