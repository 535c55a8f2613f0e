"""``glocal-codec tasks`` and ``glocal-codec eval --task`` (issue 35)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from glocal_codec.cli import app
from glocal_codec.eval.tasks.features import find_trunk


def test_tasks_lists_availability_models_and_weights() -> None:
    r = CliRunner().invoke(app, ["tasks"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    for name in ("ocr", "faces", "features"):
        assert f"task {name}" in text
    assert "PP-OCRv4" in text and "Haar cascade" in text and "SqueezeNet" in text
    assert "never downloaded" in text
    r = CliRunner().invoke(app, ["tasks", "--json"])
    rows = json.loads(r.stdout)
    assert [t["name"] for t in rows] == ["ocr", "faces", "features"]
    assert all({"available", "install", "model", "weights", "found"} <= set(t) for t in rows)


def test_unavailable_task_shows_its_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from glocal_codec.eval.tasks import registry

    monkeypatch.setattr(registry, "_missing", lambda row: ["cv2"] if "cv2" in row.requires else [])
    r = CliRunner().invoke(app, ["tasks"])
    text = " ".join(r.stdout.split())
    assert "available no: missing Python package(s) cv2" in text
    assert "install pip install 'glocal-codec[tasks]'" in text


@pytest.fixture
def two_images(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:64, 0:80]
    for k in range(2):
        base = np.stack([xx * 3, yy * 3 + 20 * k, (xx + yy) * 2], -1) + rng.integers(0, 25, (64, 80, 3))
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(d / f"p{k}.png")
    return d


@pytest.mark.skipif(find_trunk() is None, reason="no offline ImageNet trunk (GLOCAL_CODEC_DATA)")
def test_eval_task_features_with_jpeg(two_images: Path, tmp_path: Path) -> None:
    rep = tmp_path / "rep"
    args = ["eval", "--images", str(two_images), "--task", "features", "--codec", "jpeg", "-q", "1", "-q", "5",
            "-q", "8", "--no-lpips", "--report", str(rep)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "task features: uncompressed score 1.0000" in " ".join(r.stdout.split())
    data = json.loads((rep / "results.json").read_text())
    assert len(data["records"]) == 6
    assert all(rec["task"] == "features" and 0 <= rec["task_score"] <= 1 for rec in data["records"])
    assert (rep / "task_features.png").is_file() and (rep / "task_summary.json").is_file()
    # resumable: a second run finds everything done
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "6 finished items kept" in " ".join(r.stderr.split())


def test_eval_task_errors(two_images: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["eval", "--images", str(two_images), "--task", "nope", "--codec", "jpeg",
                                 "--report", str(tmp_path / "r")])
    assert r.exit_code == 1 and "error: unknown task 'nope'; known: ocr, faces, features" in " ".join(r.stderr.split())
    r = CliRunner().invoke(app, ["eval", "--video", str(two_images), "--task", "faces", "--codec", "x264"])
    assert r.exit_code == 1 and "cannot be used with --video" in r.stderr
