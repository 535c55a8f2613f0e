"""``glocal-codec eval --video``: real files, per-frame metrics, resumable, report files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glocal_codec.cli import app
from glocal_codec.eval.video_eval import VIDEO_RESULTS_FORMAT, evaluate_videos, load_video_results

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "video"))
from video_clips import synthetic_clip  # noqa: E402


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    from glocal_codec.video import as_clip, write_frames

    d = tmp_path_factory.mktemp("clip") / "frames"
    write_frames(d, as_clip(synthetic_clip(4, 32, 48, seed=5)))
    return d


def test_eval_video_cli_writes_results_and_report(clip_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "rep"
    args = ["eval", "--video", str(clip_dir), "--codec", "x264", "--codec", "hnerv", "--quality", "1",
            "--quality", "2", "--quality", "3", "--quality", "4", "--epochs", "1", "--report", str(report)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    data = json.loads((report / "results.json").read_text())
    assert data["format"] == VIDEO_RESULTS_FORMAT and data["epochs"] == 1
    recs = load_video_results(report / "results.json")
    assert {(x.codec, x.quality) for x in recs} == {(c, q) for c in ("x264", "hnerv") for q in (1, 2, 3, 4)}
    for x in recs:
        assert x.frames == 4 and (x.width, x.height) == (48, 32)
        assert x.bpp == pytest.approx(8 * x.bytes / (4 * 32 * 48))
        assert len(x.psnr_frames) == len(x.ms_ssim_frames) == 4
        assert x.psnr == pytest.approx(sum(x.psnr_frames) / 4)
        assert x.encode_s > 0 and x.decode_fps > 0
    md = (report / "summary.md").read_text()
    assert "BD-rate against x264" in md and "| hnerv | 1 |" in md
    assert (report / "rd_psnr.png").stat().st_size > 1000 and (report / "rd_ms_ssim_db.png").exists()


def test_eval_video_resumes(clip_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    first = evaluate_videos([clip_dir], ["x264"], [1, 2], results_path=path)
    seen = []
    again = evaluate_videos([clip_dir], ["x264"], [1, 2, 3], results_path=path,
                            progress=lambda d, t, rec: seen.append(rec))
    assert [r for r in seen if r is not None] and all(r.quality == 3 for r in seen if r is not None)
    assert {r.key for r in first} < {r.key for r in again}


@pytest.mark.parametrize("args,needle", [
    (["--video", "missing.mp4", "--codec", "x264"], "no such clip"),
    (["--video", "CLIP", "--codec", "jpeg"], "image codec"),
    (["--video", "CLIP", "--dataset", "kodak", "--codec", "x264"], "not both"),
    (["--video", "CLIP", "--codec", "x264", "--quality", "42"], "quality"),
])
def test_eval_video_errors(clip_dir: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    args = [str(clip_dir) if a == "CLIP" else a for a in args]
    r = CliRunner().invoke(app, ["eval", *args, "--report", str(tmp_path / "r")])
    assert r.exit_code == 1
    assert needle in r.output and "Traceback" not in r.output
