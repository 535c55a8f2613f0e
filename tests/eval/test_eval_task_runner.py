"""``evaluate(..., task=...)`` and the task part of the report (issue 35)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glocal_codec.datasets import image_folder
from glocal_codec.eval.report import write_report
from glocal_codec.eval.runner import EvalError, evaluate, load_results
from glocal_codec.eval.task_report import TaskPoint, keep_bpp, monotone, task_summary
from glocal_codec.eval.tasks import TaskUnavailableError, UnknownTaskError
from glocal_codec.eval.tasks.features import find_trunk


def test_monotone_fit() -> None:
    r, q, dropped = monotone([0.1, 0.2, 0.4, 0.8, 1.6], [0.5, 0.7, 0.69, 0.9, 0.9])
    assert dropped == 2 and r == [0.1, 0.2, 0.8] and q == pytest.approx([0.5, 0.695, 0.9])
    assert all(b > a for a, b in zip(q, q[1:]))
    assert monotone([1, 2, 3], [0.1, 0.2, 0.3]) == ([1, 2, 3], [0.1, 0.2, 0.3], 0)


def test_keep_bpp() -> None:
    pts = [TaskPoint("c", q, 1, b, s) for q, b, s in [(1, 0.25, 0.5), (2, 1.0, 0.9), (3, 4.0, 1.0)]]
    k = keep_bpp(pts, 0.95)  # halfway from 0.9 to 1.0 in score: halfway from 1 to 4 bpp in log-bpp
    assert k.how == "interpolated" and k.bpp == pytest.approx(2.0)
    assert keep_bpp(pts, 0.4).how == "at or below the lowest level" and keep_bpp(pts, 0.4).bpp == 0.25
    miss = keep_bpp(pts, 1.01)
    assert miss.bpp is None and miss.how == "not reached" and miss.best_score == 1.0 and miss.best_bpp == 4.0


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:72, 0:96]
    for k in range(2):
        base = np.stack([xx * 2 + 30 * k, yy * 3, (xx + yy) + 60], -1) + rng.normal(0, 12, (72, 96, 3))
        base[20:40, 30:60] = 200 - 100 * k
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(d / f"im{k}.png")
    return d


needs_trunk = pytest.mark.skipif(find_trunk() is None, reason="no offline ImageNet trunk (GLOCAL_CODEC_DATA)")


@needs_trunk
def test_task_scores_in_every_record_and_the_report(images: Path, tmp_path: Path) -> None:
    rep = tmp_path / "rep"
    res = evaluate(image_folder(images), ["jpeg", "webp"], [1, 4, 8], results_path=rep / "results.json",
                   lpips=False, task="features")
    assert res.dataset == "imgs"  # features does not change the input
    assert res.run["task"]["name"] == "features" and res.run["task"]["input"] == "unchanged"
    data = json.loads((rep / "results.json").read_text())
    assert data["run"]["task"]["model"].startswith(("squeezenet1_1", "alexnet"))
    for r in data["records"]:
        assert r["task"] == "features" and 0 <= r["task_score"] <= 1
        assert r["task_details"]["reference"]["score"] == 1.0
        assert r["bpp"] == 8 * r["bytes"] / (r["width"] * r["height"])
    by = {(r.codec, r.quality, r.image): r.task_score for r in res.records}
    assert by[("jpeg", 1, "im0.png")] < by[("jpeg", 8, "im0.png")]
    files = write_report(res, rep)
    assert files["task_plot"].read_bytes()[:4] == b"\x89PNG"
    ts = json.loads(files["task_summary"].read_text())
    assert ts["task"] == "features" and ts["reference"] == 1.0 and ts["target"] == pytest.approx(0.95)
    assert ts["anchor"] == "jpeg" and [b["codec"] for b in ts["bd"]] == ["webp"]
    assert {c["metric"] for c in ts["correlations"]} == {"lpips", "psnr", "ms_ssim"}
    psnr = next(c for c in ts["correlations"] if c["metric"] == "psnr")
    assert psnr["n_points"] == 6 and psnr["n_records"] == 12 and psnr["rho_points"] > 0
    assert {k["codec"] for k in ts["keep"]} == {"jpeg", "webp"}
    md = (rep / "summary.md").read_text()
    for heading in ("## Machine task: features", "95% of the uncompressed score", "BD-rate on task score against jpeg",
                    "Spearman correlation"):
        assert heading in md
    html = (rep / "summary.html").read_text()
    assert "Machine task: features" in html and html.count("data:image/png;base64,") == 3  # psnr, ms-ssim, task


@needs_trunk
def test_task_runs_resume_and_do_not_mix(images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glocal_codec.eval.tasks import scoring

    out = tmp_path / "results.json"
    ds = image_folder(images)
    evaluate(ds, ["jpeg"], [2], results_path=out, lpips=False, task="features")
    calls = {"n": 0}
    real = scoring.record_fields

    def counting(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(scoring, "record_fields", counting)
    res = evaluate(ds, ["jpeg"], [2, 3], results_path=out, lpips=False, task="features")
    assert calls["n"] == 2 and len(res.records) == 4  # only the new level was scored
    with pytest.raises(EvalError, match="holds results of task 'features', not without one"):
        evaluate(ds, ["jpeg"], [2], results_path=out, lpips=False)
    with pytest.raises(EvalError, match="holds results without a task, not of task 'features'"):
        plain = tmp_path / "plain.json"
        evaluate(ds, ["jpeg"], [2], results_path=plain, lpips=False)
        evaluate(ds, ["jpeg"], [2], results_path=plain, lpips=False, task="features")
    # another task model: the old scores are outdated and measured again
    data = json.loads(out.read_text())
    data["run"]["task"]["model"] = "some other trunk"
    out.write_text(json.dumps(data))
    calls["n"] = 0
    evaluate(ds, ["jpeg"], [2, 3], results_path=out, lpips=False, task="features")
    assert calls["n"] == 4


def test_plain_records_keep_their_format(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    evaluate(image_folder(images), ["jpeg"], [3], results_path=out, lpips=False)
    rec = json.loads(out.read_text())["records"][0]
    assert not {"task", "task_score", "task_details"} & set(rec)
    assert "task" not in json.loads(out.read_text())["run"]
    assert load_results(out).records[0].task is None
    assert task_summary(load_results(out), "jpeg") is None


def test_unknown_or_unavailable_task_fails_before_any_work(images: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "results.json"
    with pytest.raises(UnknownTaskError):
        evaluate(image_folder(images), ["jpeg"], [3], results_path=out, lpips=False, task="nope")
    from glocal_codec.eval.tasks import registry

    monkeypatch.setattr(registry, "_instances", {})
    monkeypatch.setattr(registry, "_missing", lambda row: ["cv2"])
    with pytest.raises(TaskUnavailableError, match=r"glocal-codec\[tasks\]"):
        evaluate(image_folder(images), ["jpeg"], [3], results_path=out, lpips=False, task="faces")
    assert not out.exists()


def test_ocr_task_compresses_the_rendered_images(images: Path, tmp_path: Path) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    from glocal_codec.eval.tasks.ocr import font_files, render_text
    from glocal_codec.imageio import load_image

    if font_files() is None:
        pytest.skip("no DejaVu fonts")
    for k in range(2):  # wide enough for text lines
        Image.open(images / f"im{k}.png").resize((240, 150)).save(images / f"im{k}.png")
    rep = tmp_path / "rep"
    res = evaluate(image_folder(images), ["jpeg"], [8], results_path=rep / "results.json", lpips=False, task="ocr")
    assert res.dataset == "imgs+text"  # never mistaken for (or compared with) the plain images
    import glocal_codec as gc
    from glocal_codec.eval.metrics import psnr

    for r in res.records:
        x = load_image(images / r.image)[0]
        rendered, lines = render_text(x, r.image)
        file = gc.encode(rendered, codec="jpeg", quality=8)
        assert r.bytes == len(file) and r.psnr == pytest.approx(psnr(rendered, gc.decode_tensor(file)))
        assert r.task_details["lines"] == len(lines) and r.task_details["reference"]["chars"] > 0
        assert 0 <= r.task_score <= 1
    files = write_report(res, rep)
    assert "rendered onto it" in (rep / "summary.md").read_text()
    assert json.loads(files["task_summary"].read_text())["task"] == "ocr"
