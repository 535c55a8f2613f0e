"""A short seeded run of ``benchmarks/fuzz.py`` (the at-scale fuzzer, #36 part 7): it runs, finds
no failure, records every file's outcome and resumes where it stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz.py"


def _run(out: Path, files: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--codec", "jpeg", "--codec", "factorized", "--files", str(files),
           "--workers", "1", "--seed", "3", "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_short_seeded_fuzz_run_finds_nothing_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    first = _run(out, 300)
    assert first.returncode == 0, first.stdout + first.stderr
    state = json.loads(out.read_text())
    assert state["seed"] == 3 and {k: v["files"] for k, v in state["codecs"].items()} == {"jpeg": 300, "factorized": 300}
    for rec in state["codecs"].values():
        assert sum(rec["outcomes"].values()) == 300
        assert all(k.split(" | ")[1].split()[0] in ("rejected", "decoded") for k in rec["outcomes"])
        assert rec["peak_rss_mb"] > 0
    again = _run(out, 400)  # resumes: 100 more per codec, the first 300 not redone
    assert again.returncode == 0, again.stdout + again.stderr
    state = json.loads(out.read_text())
    assert all(sum(rec["outcomes"].values()) == rec["files"] == 400 for rec in state["codecs"].values())
    assert "| jpeg | 400 |" in again.stdout
