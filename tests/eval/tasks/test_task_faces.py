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


def test_hysteresis(faces: FacesTask, monkeypatch: pytest.MonkeyPatch) -> None:
    """A face of the original counts as found when a weaker cluster (> 2 hits) still covers it;
    only full detections (> 5 hits) count as false ones."""
    orig, dec = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    face, other = (10, 10, 40, 40), (100, 100, 40, 40)
    table = {id(orig): [(face, 9)], id(dec): []}
    monkeypatch.setattr(faces, "clusters", lambda x: table[id(x)])
    monkeypatch.setattr(faces, "_last", None)
    inp = faces.prepare(orig, "o")
    table[id(dec)] = [(face, 3), (other, 4)]  # weakened but still there; a weak stray cluster
    assert faces.score(inp, dec).details == {"tp": 1, "fp": 0, "fn": 0, "faces_original": 1, "faces_decoded": 0}
    table[id(dec)] = [((12, 10, 40, 40), 7), (other, 6)]  # a full detection where there was no face
    r = faces.score(inp, dec)
    assert (r.details["tp"], r.details["fp"], r.details["fn"]) == (1, 1, 0) and r.score == pytest.approx(2 / 3)
    table[id(dec)] = []
    assert faces.score(inp, dec).score == 0.0
