"""The command line: encode / decode / info / list, overwrite rules, atomic output, clean errors."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import glocal_codec as gc
from glocal_codec.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner(env={"NO_COLOR": "1", "COLUMNS": "200"})


@pytest.fixture
def png(tmp_path: Path, kodak_crop: torch.Tensor) -> Path:
    p = tmp_path / "photo.png"
    Image.fromarray((kodak_crop[0].permute(1, 2, 0) * 255).round().byte().numpy()).save(p)
    return p


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def no_temp_files(folder: Path) -> None:
    leftovers = [n for n in os.listdir(folder) if n.startswith(".") or n.endswith(".tmp")]
    assert not leftovers, f"temp files left behind: {leftovers}"


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return ANSI.sub("", result.stdout)


def failed(result, *needles: str) -> str:
    """Exit status 1, one `error:` line on stderr naming the problem, and no traceback."""
    assert result.exit_code == 1, result.output
    # an expected failure exits through typer.Exit, never an uncaught exception
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    text = ANSI.sub("", result.output)
    assert "Traceback" not in text and 'File "' not in text
    lines = [ln for ln in ANSI.sub("", result.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


def test_encode_default_codec_then_decode(runner: CliRunner, png: Path) -> None:
    before = sha(png)
    out = ok(runner.invoke(app, ["encode", str(png)]))
    glc = png.with_suffix(".glc")
    assert glc.is_file()
    info = gc.read_info(glc.read_bytes())
    assert info.codec == gc.DEFAULT_CODEC and info.shape == (3, 96, 128)
    assert gc.DEFAULT_CODEC in out and str(info.bytes) in out and "128x96" in out
    # decoding needs no --codec: the file says which
    dec = png.parent / "back.png"
    out = ok(runner.invoke(app, ["decode", str(glc), "-o", str(dec)]))
    with Image.open(dec) as img:
        assert img.size == (128, 96) and img.mode == "RGB" and img.format == "PNG"
        assert np.array_equal(np.asarray(img), np.asarray(gc.decode(glc.read_bytes())))
    assert "128x96" in out
    assert sha(png) == before  # the input is never touched
    no_temp_files(png.parent)


def test_encode_with_codec_and_quality(runner: CliRunner, png: Path) -> None:
    dst = png.parent / "w.glc"
    ok(runner.invoke(app, ["encode", str(png), "--codec", "webp", "--quality", "3", "-o", str(dst)]))
    info = gc.read_info(dst.read_bytes())
    assert info.codec == "webp" and info.quality == 3
    # default decode output name: NAME.decoded.png, never the original's name
    ok(runner.invoke(app, ["decode", str(dst)]))
    assert (png.parent / "w.decoded.png").is_file() and not (png.parent / "w.png").exists()


def test_info(runner: CliRunner, png: Path) -> None:
    dst = png.parent / "m.glc"
    ok(runner.invoke(app, ["encode", str(png), "-c", "msh", "-o", str(dst)]))
    before = sha(dst)
    out = ok(runner.invoke(app, ["info", str(dst)]))
    i = gc.read_info(dst.read_bytes())
    assert "msh" in out and f"id {i.codec_id}" in out
    assert "3x96x128" in out
    assert f"{i.bpp:.4f}" in out and str(i.bytes) in out
    assert i.weights_digest in out and "matches installed" in out
    assert sha(dst) == before


def test_list_shows_every_codec(runner: CliRunner) -> None:
    out = ok(runner.invoke(app, ["list"]))
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\W*([a-z0-9]+)(?: \*)?\s+(image|video)\s", line)
        if m:
            rows[m.group(1)] = m.group(2)
    # one row per codec, with its media kind beside its name, and nothing else (ids: list --long / --json)
    assert rows == {c.name: c.media for c in gc.list_codecs()}


def test_refuses_to_overwrite_without_force(runner: CliRunner, png: Path) -> None:
    dst = png.parent / "exists.glc"
    dst.write_bytes(b"precious")
    failed(runner.invoke(app, ["encode", str(png), "-o", str(dst), "-c", "jpeg"]), "exists", "--force")
    assert dst.read_bytes() == b"precious"
    out_png = png.parent / "exists.png"
    out_png.write_bytes(b"also precious")
    glc = png.parent / "ok.glc"
    ok(runner.invoke(app, ["encode", str(png), "-o", str(glc), "-c", "jpeg"]))
    failed(runner.invoke(app, ["decode", str(glc), "-o", str(out_png)]), "exists")
    assert out_png.read_bytes() == b"also precious"
    # --force overwrites, atomically
    ok(runner.invoke(app, ["encode", str(png), "-o", str(dst), "-c", "jpeg", "--force"]))
    assert gc.read_info(dst.read_bytes()).codec == "jpeg"
    ok(runner.invoke(app, ["decode", str(glc), "-o", str(out_png), "--force"]))
    with Image.open(out_png) as img:
        assert img.size == (128, 96)
    no_temp_files(png.parent)


def test_output_over_the_input_is_refused(runner: CliRunner, png: Path) -> None:
    before = sha(png)
    failed(runner.invoke(app, ["encode", str(png), "-o", str(png), "--force", "-c", "jpeg"]), "input")
    assert sha(png) == before


@pytest.mark.parametrize("kind", ["garbage", "truncated", "missing", "corrupted", "empty", "png"])
def test_bad_glc_files(runner: CliRunner, png: Path, kind: str) -> None:
    good = png.parent / "good.glc"
    ok(runner.invoke(app, ["encode", str(png), "-o", str(good), "-c", "jpeg"]))
    bad = png.parent / f"{kind}.glc"
    data = good.read_bytes()
    if kind == "garbage":
        bad.write_bytes(os.urandom(300))
    elif kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "corrupted":
        bad.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    elif kind == "empty":
        bad.write_bytes(b"")
    elif kind == "png":
        bad.write_bytes(png.read_bytes())
    needle = {"garbage": "not a .glc", "truncated": "truncated", "missing": "missing.glc", "corrupted": "CRC",
              "empty": "not a .glc", "png": "not a .glc"}[kind]
    before = sha(bad) if bad.exists() else None
    failed(runner.invoke(app, ["decode", str(bad), "-o", str(png.parent / "x.png")]), needle)
    failed(runner.invoke(app, ["info", str(bad)]), needle)
    assert not (png.parent / "x.png").exists()
    if before:
        assert sha(bad) == before
    no_temp_files(png.parent)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--codec", "no-such-codec"], "unknown codec"),
        (["--codec", "jpeg", "--quality", "42"], "quality"),
    ],
)
def test_bad_encode_options(runner: CliRunner, png: Path, args: list[str], needle: str) -> None:
    dst = png.parent / "o.glc"
    failed(runner.invoke(app, ["encode", str(png), "-o", str(dst), *args]), needle)
    assert not dst.exists()
    no_temp_files(png.parent)


@pytest.mark.parametrize("kind", ["missing", "not-an-image", "truncated-png", "transparent"])
def test_bad_images(runner: CliRunner, png: Path, kind: str) -> None:
    src = png.parent / f"{kind}.png"
    if kind == "not-an-image":
        src.write_bytes(b"hello, world\n" * 20)
    elif kind == "truncated-png":
        src.write_bytes(png.read_bytes()[:300])
    elif kind == "transparent":
        rgba = Image.open(png).convert("RGBA")
        rgba.putpixel((0, 0), (1, 2, 3, 0))
        rgba.save(src)
    needle = {"missing": "no such file", "not-an-image": "cannot read", "truncated-png": "", "transparent": "alpha"}[kind]
    failed(runner.invoke(app, ["encode", str(src), "-c", "jpeg"]), needle)
    assert not src.with_suffix(".glc").exists()
    no_temp_files(png.parent)


def test_output_folder_missing(runner: CliRunner, png: Path) -> None:
    failed(runner.invoke(app, ["encode", str(png), "-c", "jpeg", "-o", str(png.parent / "nope" / "x.glc")]), "nope")
    no_temp_files(png.parent)


def test_decode_to_jpeg_by_extension(runner: CliRunner, png: Path) -> None:
    glc = png.parent / "e.glc"
    ok(runner.invoke(app, ["encode", str(png), "-o", str(glc), "-c", "jpeg"]))
    ok(runner.invoke(app, ["decode", str(glc), "-o", str(png.parent / "e.jpg")]))
    with Image.open(png.parent / "e.jpg") as img:
        assert img.format == "JPEG" and img.size == (128, 96)


def test_train_small_glocal_with_arch(runner: CliRunner, png: Path, tmp_path: Path) -> None:
    data = png.parent
    r = runner.invoke(app, ["train", "glocal", "--data", str(data), "--out", str(tmp_path / "runs"), "--steps", "2",
                            "--batch", "1", "--crop", "64", "--threads", "1", "--device", "cpu",
                            "--arch", "n=16", "--arch", "m=16", "--arch", "slices=2", "--arch", "window=4",
                            "--arch", "head_dim=8", "--arch", "tokens=2", "--arch", "ctx=16"])
    assert r.exit_code == 0, r.output
    state = torch.load(tmp_path / "runs" / "glocal" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 2 and state["model_config"]["window"] == 4


@pytest.mark.parametrize("args,needle", [
    (["glocal", "--arch", "colour=blue"], "fields:"),
    (["glocal", "--arch", "window"], "KEY=VALUE"),
    (["jpeg"], "no trainer"),
    (["msh", "--quality", "0"], "from 1 to 6"),
    (["msh", "--quality", "3", "--quality", "7"], "got 7"),
])
def test_train_bad_options(runner: CliRunner, png: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    r = runner.invoke(app, ["train", *args, "--data", str(png.parent), "--out", str(tmp_path / "runs"), "--steps", "1"])
    failed(r, needle)
    assert not (tmp_path / "runs").exists()


def test_decode_pixel_limit(runner: CliRunner, png: Path, tmp_path: Path) -> None:
    glc = tmp_path / "p.glc"
    ok(runner.invoke(app, ["encode", str(png), "-o", str(glc), "--codec", "jpeg"]))
    failed(runner.invoke(app, ["decode", str(glc), "-o", str(tmp_path / "a.png"), "--max-pixels", "100"]),
           "decode limit", "--max-pixels 0")
    assert not (tmp_path / "a.png").exists()
    ok(runner.invoke(app, ["decode", str(glc), "-o", str(tmp_path / "b.png"), "--max-pixels", "0"]))
