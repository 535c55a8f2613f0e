"""The CLI's memory guards (#36 part 4): image bombs are refused from the header on encode and on
decode, by default, in one line that says how to lift the limit. (Video: tests/video/test_video_limits.py;
time and peak memory: benchmarks/memory_guards.py.)"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import glocal_codec as gc
from glocal_codec.bitstream import read_container, write_container
from glocal_codec.cli import app

from test_image_input_guards import png_claiming  # tests/ is on the path (its conftest)

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def one_error(result) -> str:  # noqa: ANN001 - a click Result
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in ANSI.sub("", result.output)
    lines = [ln for ln in ANSI.sub("", result.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("codec", ["jpeg", "msh"])
def test_png_bomb_encode_is_refused_by_default(runner: CliRunner, tmp_path: Path, codec: str) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(13_000, 13_000))
    line = one_error(runner.invoke(app, ["encode", str(bomb), "-c", codec, "-o", str(tmp_path / "b.glc")]))
    assert "13000x13000" in line and "--max-pixels 0" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.png"]


def test_glc_bomb_decode_is_refused_by_default(runner: CliRunner, tmp_path: Path) -> None:
    c = read_container(gc.encode(torch.rand(1, 3, 16, 16), codec="jpeg"))
    bomb = tmp_path / "bomb.glc"
    bomb.write_bytes(write_container(dataclasses.replace(c, shape=(3, 13_000, 13_000))))
    line = one_error(runner.invoke(app, ["decode", str(bomb), "-o", str(tmp_path / "b.png")]))
    assert "13000x13000" in line and "decode limit of 134,217,728" in line and "--max-pixels 0" in line


def test_video_decode_shows_the_same_default() -> None:
    video_cli = importlib.import_module("glocal_codec.cli.video")
    assert int(video_cli._MAX_PIXELS_HELP.replace(",", "")) == gc.MAX_DECODE_PIXELS
