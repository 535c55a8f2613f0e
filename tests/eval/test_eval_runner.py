"""The evaluation runner, reports and CLI on a few small synthetic images with classical codecs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import glocal_codec as gc
from glocal_codec.cli.app import app
from glocal_codec.datasets import image_folder
from glocal_codec.eval import runner as runner_mod
from glocal_codec.eval.metrics import psnr
from glocal_codec.eval.report import bd_table, write_report
from glocal_codec.eval.runner import EvalError, EvalRecord, evaluate, load_results, summarize
from glocal_codec.imageio import load_image


def _make_images(folder: Path, n: int = 2, size: tuple[int, int] = (176, 168)) -> Path:
    """Small natural-ish images: smooth gradients, edges and texture (deterministic)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        base = np.stack([(xx * (2 + i)) % 256, (yy * 3 + 40 * i) % 256, ((xx + yy) * 2) % 256], -1).astype(float)
        base[h // 3: h // 2, w // 4: w // 2] = 30 + 60 * i  # a flat block with sharp edges
        img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    return folder


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    return _make_images(tmp_path / "imgs")


def _strict_json(path: Path) -> dict:
    def bad(c: str) -> None:
        raise ValueError(f"non-standard JSON constant {c}")

    return json.loads(path.read_text(), parse_constant=bad)


def test_records_use_real_file_sizes_and_sorted_output(images: Path, tmp_path: Path) -> None:
    ds = image_folder(images)
    out = tmp_path / "rep" / "results.json"
    res = evaluate(ds, ["webp", "jpeg"], [1, 3], results_path=out, lpips=False)
    assert len(res.records) == 2 * 2 * 2
    data = _strict_json(out)
    keys = [(r["codec"], r["quality"], r["image"]) for r in data["records"]]
    assert keys == sorted(keys)
    x = load_image(images / "img0.png")[0]
    for r in res.records:
        if r.image != "img0.png":
            continue
        file = gc.encode(x, codec=r.codec, quality=r.quality)
        assert r.bytes == len(file)  # the whole .glc file, header included
        assert r.bpp == pytest.approx(8 * len(file) / (176 * 168))
        assert r.psnr == pytest.approx(psnr(x, gc.decode_tensor(file)))
        assert 0 < r.ms_ssim < 1 and r.ms_ssim_scales == 5 and r.ms_ssim_db > 0
        assert r.lpips is None and r.device == "cpu" and r.weights == "00000000"
    assert data["metrics"]["lpips"]["available"] is False


def test_interrupted_run_resumes_without_redoing_work(images: Path, tmp_path: Path, monkeypatch) -> None:
    ds = image_folder(images)
    out = tmp_path / "results.json"
    calls = {"n": 0}
    real_encode = runner_mod.api.encode

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:  # 1 warm-up + 2 finished items, then "crash"
            raise KeyboardInterrupt
        return real_encode(*a, **k)

    monkeypatch.setattr(runner_mod, "_warmed", set())  # this process may have warmed jpeg up already
    monkeypatch.setattr(runner_mod.api, "encode", flaky)
    with pytest.raises(KeyboardInterrupt):
        evaluate(ds, ["jpeg"], [1, 2], results_path=out, lpips=False)
    assert len(load_results(out).records) == 2  # written after every item
    monkeypatch.setattr(runner_mod.api, "encode", real_encode)
    seen: list = []
    res = evaluate(ds, ["jpeg"], [1, 2], results_path=out, lpips=False,
                   progress=lambda done, total, rec: seen.append((done, total, rec)))
    assert seen[0] == (2, 4, None)  # resumed at 2 of 4
    assert [s[0] for s in seen[1:]] == [3, 4]
    assert len(res.records) == 4
    # a third run has nothing to do
    seen.clear()
    evaluate(ds, ["jpeg"], [1, 2], results_path=out, lpips=False, progress=lambda *a: seen.append(a))
    assert seen == [(4, 4, None)]


def test_changed_image_is_measured_again(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    evaluate(image_folder(images), ["jpeg"], [1], results_path=out, lpips=False)
    before = {r.image: r for r in load_results(out).records}
    arr = np.asarray(Image.open(images / "img1.png")).copy()
    arr[:20] = 255
    Image.fromarray(arr).save(images / "img1.png")
    seen: list = []
    evaluate(image_folder(images), ["jpeg"], [1], results_path=out, lpips=False, progress=lambda *a: seen.append(a))
    assert seen[0][0] == 1  # img0 kept, img1 redone
    after = {r.image: r for r in load_results(out).records}
    assert after["img0.png"].bytes == before["img0.png"].bytes
    assert after["img1.png"].bytes != before["img1.png"].bytes


def test_bad_requests_are_clear_errors(images: Path, tmp_path: Path) -> None:
    ds = image_folder(images)
    with pytest.raises(EvalError, match="quality levels 1..8"):
        evaluate(ds, ["jpeg"], [9], results_path=tmp_path / "r.json", lpips=False)
    with pytest.raises(gc.BitstreamError, match="unknown codec"):
        evaluate(ds, ["nope"], None, results_path=tmp_path / "r.json", lpips=False)
    evaluate(ds, ["jpeg"], [1], results_path=tmp_path / "r.json", lpips=False)
    other = image_folder(_make_images(tmp_path / "other", 1))
    with pytest.raises(EvalError, match="holds results for 'imgs'"):
        evaluate(other, ["jpeg"], [1], results_path=tmp_path / "r.json", lpips=False)


@pytest.mark.slow
def test_parallel_workers_give_the_same_numbers(images: Path, tmp_path: Path) -> None:
    ds = image_folder(images)
    one = evaluate(ds, ["jpeg"], [2], results_path=tmp_path / "a.json", lpips=False)
    two = evaluate(ds, ["jpeg"], [2], results_path=tmp_path / "b.json", lpips=False, workers=2)

    def strip(rs: list[EvalRecord]) -> list[tuple]:
        return sorted((r.image, r.codec, r.quality, r.bytes, r.psnr) for r in rs)

    assert strip(one.records) == strip(two.records)  # PSNR is exact integer arithmetic
    for a, b in zip(sorted(one.records, key=lambda r: r.key), sorted(two.records, key=lambda r: r.key)):
        assert a.ms_ssim == pytest.approx(b.ms_ssim, abs=1e-6)  # float32 sums may differ by thread count


@pytest.mark.slow
def test_ray_backend(images: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    res = evaluate(image_folder(images), ["jpeg"], [1], results_path=tmp_path / "r.json", lpips=False,
                   ray_address="local")
    assert len(res.records) == 2


def test_ray_missing_is_a_clear_error(images: Path, tmp_path: Path) -> None:
    try:
        import ray  # noqa: F401

        pytest.skip("ray is installed")
    except ImportError:
        pass
    with pytest.raises(EvalError, match=r"glocal-codec\[distributed\]"):
        evaluate(image_folder(images), ["jpeg"], [1], results_path=tmp_path / "r.json", lpips=False,
                 ray_address="local")


def _rec(codec: str, q: int, image: str, bpp: float, p: float) -> EvalRecord:
    return EvalRecord(image, codec, q, 10, 10, int(bpp * 100 / 8), bpp, p, 0.9, 10.0, 5, None, 0.1, 0.1, "cpu", "0")


def test_summarize_averages_over_common_images() -> None:
    recs = [_rec("a", 1, "x", 1.0, 30), _rec("a", 1, "y", 3.0, 32), _rec("b", 1, "x", 2.0, 31)]
    s = summarize(recs)
    assert s["a"][1].images == 1 and s["a"][1].bpp == 1.0  # only x is common to a and b
    s = summarize(recs, images={"x", "y"})
    assert s["a"][1].bpp == pytest.approx(2.0) and s["a"][1].psnr == pytest.approx(31.0)


def test_report_and_bd_table(images: Path, tmp_path: Path) -> None:
    folder = tmp_path / "rep"
    one = image_folder(images)
    one = type(one)(one.name, one.root, one.images[:1], one.source)
    res = evaluate(one, ["jpeg", "webp"], [1, 3, 5, 7], results_path=folder / "results.json", lpips=False)
    files = write_report(res, folder)
    for key in ("rd_psnr", "rd_ms_ssim_db", "rd_lpips"):
        assert files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = files["summary_md"].read_text()
    assert "BD-rate against jpeg" in md and "| webp |" in md
    assert "<table>" in files["summary_html"].read_text()
    rows, _ = bd_table(res, "jpeg", "psnr", "pchip")
    (webp,) = rows
    assert webp.bd_rate is not None and math.isfinite(webp.bd_rate)
    with pytest.raises(EvalError, match="published Kodak"):
        bd_table(res, "vtm")


# -- CLI ------------------------------------------------------------------------------------------
cli = CliRunner()


def test_cli_eval_and_bdrate(images: Path, tmp_path: Path) -> None:
    rep = tmp_path / "rep"
    r = cli.invoke(app, ["eval", "--images", str(images), "--limit", "1", "--codec", "jpeg", "--codec", "webp",
                         "-q", "2", "-q", "4", "-q", "6", "--no-lpips", "--report", str(rep)])
    assert r.exit_code == 0, r.output
    assert (rep / "results.json").is_file() and (rep / "summary.html").is_file()
    r = cli.invoke(app, ["bdrate", str(rep / "results.json"), "--anchor", "jpeg"])
    assert r.exit_code == 0, r.output
    assert "webp" in r.output and "BD-rate" in r.output
    r = cli.invoke(app, ["bdrate", str(rep / "results.json"), "--anchor", "webp", "--metric", "ms_ssim_db",
                         "--method", "cubic"])
    assert r.exit_code == 0, r.output  # 3 points: too few for the cubic fit -> n/a with the reason
    assert "n/a" in r.output and "at least 4" in r.output
    r = cli.invoke(app, ["bdrate", str(rep / "results.json"), "--anchor", "nope"])
    assert r.exit_code == 1 and "error:" in r.output and "unknown anchor" in r.output
    r = cli.invoke(app, ["bdrate", str(rep / "results.json"), "--anchor", "jpeg", "--metric", "lpips"])
    assert r.exit_code == 1 and "--metric must be one of" in r.output


def test_cli_eval_errors(images: Path, tmp_path: Path) -> None:
    r = cli.invoke(app, ["eval", "--images", str(images), "--dataset", "kodak", "--codec", "jpeg"])
    assert r.exit_code == 1 and "exactly one of --dataset" in r.output
    r = cli.invoke(app, ["eval", "--images", str(tmp_path / "none"), "--codec", "jpeg"])
    assert r.exit_code == 1 and "error:" in r.output
    r = cli.invoke(app, ["eval", "--dataset", "nope", "--codec", "jpeg", "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and "unknown dataset" in r.output


def test_cli_ray_flag_without_address(images: Path, tmp_path: Path) -> None:
    try:
        import ray  # noqa: F401

        pytest.skip("ray is installed")
    except ImportError:
        pass
    r = cli.invoke(app, ["eval", "--images", str(images), "--codec", "jpeg", "-q", "1", "--no-lpips",
                         "--report", str(tmp_path / "rep"), "--ray"])
    assert r.exit_code == 1 and "distributed" in r.output


def test_cli_eval_kodak_from_the_data_folder(data_dir: Path, tmp_path: Path) -> None:
    rep = tmp_path / "kodak"
    r = cli.invoke(app, ["eval", "--dataset", "kodak", "--data-dir", str(data_dir), "--limit", "1", "--codec", "jpeg",
                         "-q", "1", "--no-lpips", "--report", str(rep)])
    assert r.exit_code == 0, r.output
    data = _strict_json(rep / "results.json")
    assert data["dataset"] == "kodak" and data["records"][0]["image"] == "kodim01.png"
    assert data["records"][0]["width"] == 768
