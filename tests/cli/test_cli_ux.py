"""The command line as people use it (issue 28): pipes, default names, many inputs and folders,
JSON, native exports, decode formats, target rates, the codec list, progress lines, --version."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import glocal_codec as gc
from glocal_codec.bitstream import read_container
from glocal_codec.cli import app

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner(env={"NO_COLOR": "1", "COLUMNS": "200"})


def _save(x: torch.Tensor, path: Path) -> Path:
    Image.fromarray((x[0].permute(1, 2, 0) * 255).round().byte().numpy()).save(path)
    return path


@pytest.fixture
def png(tmp_path: Path, kodak_crop: torch.Tensor) -> Path:
    return _save(kodak_crop, tmp_path / "photo.png")


@pytest.fixture
def photos(tmp_path: Path, kodak_crop: torch.Tensor) -> Path:
    """photos/a.png, photos/b.jpg, photos/sub/c.png, photos/notes.txt, photos/.hidden.png"""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    _save(kodak_crop, d / "a.png")
    Image.fromarray((kodak_crop[0, :, :64, :64].permute(1, 2, 0) * 255).round().byte().numpy()).save(d / "b.jpg")
    _save(kodak_crop.flip(-1), d / "sub" / "c.png")
    (d / "notes.txt").write_text("not an image")
    _save(kodak_crop, d / ".hidden.png")
    return d


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return ANSI.sub("", result.stdout)


def error_lines(result) -> list[str]:
    text = ANSI.sub("", result.output)
    assert "Traceback" not in text and 'File "' not in text
    return [ln for ln in ANSI.sub("", result.stderr).splitlines() if ln.startswith("error: ")]


# -- part 2: pipes, names, --version --------------------------------------------------------------
def test_version(runner: CliRunner) -> None:
    out = ok(runner.invoke(app, ["--version"]))
    assert out.strip() == f"glocal-codec {gc.__version__}"


def test_stdin_to_stdout_round_trip(runner: CliRunner, png: Path) -> None:
    r = runner.invoke(app, ["encode", "-", "-o", "-", "-c", "jpeg", "-q", "6"], input=png.read_bytes())
    assert r.exit_code == 0, r.output
    data = r.stdout_bytes
    assert data == gc.encode(png, codec="jpeg", quality=6)  # binary-safe: exactly the file, nothing else
    assert "jpeg q6" in r.stderr  # the report goes to stderr
    r = runner.invoke(app, ["decode", "-"], input=data)  # stdin -> stdout by default
    assert r.exit_code == 0, r.output
    with Image.open(io.BytesIO(r.stdout_bytes)) as img:
        assert img.format == "PNG" and img.size == (128, 96)
        assert np.array_equal(np.asarray(img), np.asarray(gc.decode(data)))
    r = runner.invoke(app, ["decode", "-", "--format", "webp"], input=data)
    with Image.open(io.BytesIO(r.stdout_bytes)) as img:
        assert img.format == "WEBP"
        assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(gc.decode(data)))  # lossless


def test_stdin_to_a_file_and_a_file_to_stdout(runner: CliRunner, png: Path, tmp_path: Path) -> None:
    dst = tmp_path / "from-stdin.glc"
    ok(runner.invoke(app, ["encode", "-", "-o", str(dst), "-c", "webp"], input=png.read_bytes()))
    assert gc.read_info(dst.read_bytes()).codec == "webp"
    r = runner.invoke(app, ["info", "-", "--json"], input=dst.read_bytes())
    assert json.loads(r.stdout)["codec"] == "webp"
    r = runner.invoke(app, ["encode", str(png), "-o", "-", "-c", "webp"])
    assert r.exit_code == 0 and r.stdout_bytes == dst.read_bytes()
    assert not (Path.cwd() / "-").exists()  # never a file named "-"


@pytest.mark.slow
def test_pipes_in_a_real_shell(png: Path, tmp_path: Path) -> None:
    """Through real pipes between two processes; nothing but data on stdout."""
    cmd = [sys.executable, "-m", "glocal_codec"]
    enc = subprocess.run([*cmd, "encode", "-", "-o", "-", "-c", "jpeg"], input=png.read_bytes(), capture_output=True,
                         timeout=300)
    assert enc.returncode == 0, enc.stderr
    assert enc.stdout == gc.encode(png, codec="jpeg")
    dec = subprocess.run([*cmd, "decode", "-", "-o", "-"], input=enc.stdout, capture_output=True, timeout=300)
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout.startswith(b"\x89PNG")


def test_stdin_errors(runner: CliRunner, png: Path) -> None:
    r = runner.invoke(app, ["encode", "-", "-o", "-", "-c", "jpeg"], input=b"")
    assert r.exit_code == 1 and "stdin is empty" in error_lines(r)[0]
    r = runner.invoke(app, ["encode", "-", "-o", "-", "-c", "jpeg"], input=b"not an image at all")
    assert r.exit_code == 1 and "cannot read" in error_lines(r)[0]
    r = runner.invoke(app, ["decode", "-"], input=b"garbage bytes")
    assert r.exit_code == 1 and "not a .glc" in error_lines(r)[0]
    r = runner.invoke(app, ["encode", "-", str(png)], input=b"x")
    assert r.exit_code == 1 and "only input" in error_lines(r)[0]


def test_decode_default_name_never_collides(runner: CliRunner, png: Path) -> None:
    """encode photo.png, decode photo.glc: photo.decoded.png, the original is left alone."""
    before = png.read_bytes()
    ok(runner.invoke(app, ["encode", str(png), "-c", "jpeg"]))
    ok(runner.invoke(app, ["decode", str(png.with_suffix(".glc"))]))
    assert (png.parent / "photo.decoded.png").is_file()
    assert png.read_bytes() == before
    r = runner.invoke(app, ["decode", str(png.with_suffix(".glc"))])  # a second time: refused, not replaced
    assert r.exit_code == 1 and "--force" in error_lines(r)[0]


# -- part 3: many inputs, folders -----------------------------------------------------------------
def test_several_files_into_a_folder(runner: CliRunner, photos: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "enc"
    text = ok(runner.invoke(app, ["encode", str(photos / "a.png"), str(photos / "b.jpg"), "-o", str(out_dir),
                                  "-c", "jpeg"]))
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.glc", "b.glc"]
    sizes = [(out_dir / n).stat().st_size for n in ("a.glc", "b.glc")]
    assert "encoded 2 files" in text and f"{sum(sizes):,} bytes" in text and "mean" in text and "bpp" in text


def test_folder_recursive_keeps_the_tree_and_decodes_back(runner: CliRunner, photos: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    ok(runner.invoke(app, ["encode", str(photos), "-o", str(flat), "-c", "webp"]))
    assert sorted(p.name for p in flat.iterdir()) == ["a.glc", "b.glc"]  # not the sub-folder, text or hidden files
    tree = tmp_path / "tree"
    ok(runner.invoke(app, ["encode", str(photos), "-r", "-o", str(tree), "-c", "webp", "--workers", "2"]))
    assert sorted(str(p.relative_to(tree)) for p in tree.rglob("*.glc")) == ["a.glc", "b.glc", "sub/c.glc"]
    dec = tmp_path / "dec"
    text = ok(runner.invoke(app, ["decode", str(tree), "-r", "-o", str(dec)]))
    assert sorted(str(p.relative_to(dec)) for p in dec.rglob("*.png")) == \
        ["a.decoded.png", "b.decoded.png", "sub/c.decoded.png"]
    assert "decoded 3 files" in text
    # the same from a list of files (a shell glob)
    dec2 = tmp_path / "dec2"
    ok(runner.invoke(app, ["decode", *map(str, sorted(tree.glob("*.glc"))), "-o", str(dec2)]))
    assert sorted(p.name for p in dec2.iterdir()) == ["a.decoded.png", "b.decoded.png"]


def test_batch_without_output_writes_beside_inputs(runner: CliRunner, photos: Path) -> None:
    ok(runner.invoke(app, ["encode", str(photos / "a.png"), str(photos / "sub" / "c.png"), "-c", "jpeg"]))
    assert (photos / "a.glc").is_file() and (photos / "sub" / "c.glc").is_file()


def test_partial_failure_finishes_the_rest(runner: CliRunner, photos: Path, tmp_path: Path) -> None:
    bad = photos / "broken.png"
    bad.write_bytes(b"\x89PNG but not really")
    out_dir = tmp_path / "out"
    r = runner.invoke(app, ["encode", str(photos), "-o", str(out_dir), "-c", "jpeg"])
    assert r.exit_code == 1
    errors = error_lines(r)
    assert any("broken.png" in e and "cannot read" in e for e in errors)
    assert "1 of 3 files failed" in errors[-1] and "broken.png" in errors[-1]
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.glc", "b.glc"]  # the others still finished
    assert "encoded 2 files" in ANSI.sub("", r.stdout)


def test_batch_plan_errors(runner: CliRunner, photos: Path, tmp_path: Path) -> None:
    (tmp_path / "file.glc").write_bytes(b"x")
    r = runner.invoke(app, ["encode", str(photos), "-o", str(tmp_path / "file.glc"), "-c", "jpeg"])
    assert r.exit_code == 1 and "must be a folder" in error_lines(r)[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["encode", str(empty), "-c", "jpeg"])
    assert r.exit_code == 1 and "no images in folder" in error_lines(r)[0]
    (tmp_path / "x").mkdir()
    _save(torch.rand(1, 3, 8, 8), tmp_path / "x" / "a.png")
    r = runner.invoke(app, ["encode", str(photos / "a.png"), str(tmp_path / "x" / "a.png"), "-o", str(tmp_path / "o"),
                            "-c", "jpeg"])
    assert r.exit_code == 1 and "both be written" in error_lines(r)[0]


def test_single_input_into_an_existing_folder(runner: CliRunner, png: Path, tmp_path: Path) -> None:
    d = tmp_path / "into"
    d.mkdir()
    ok(runner.invoke(app, ["encode", str(png), "-o", str(d), "-c", "jpeg"]))
    assert (d / "photo.glc").is_file()


# -- part 7: JSON -----------------------------------------------------------------------------------
def test_json_outputs(runner: CliRunner, png: Path, photos: Path, tmp_path: Path) -> None:
    glc = tmp_path / "j.glc"
    rec = json.loads(ok(runner.invoke(app, ["encode", str(png), "-o", str(glc), "-c", "jpeg", "--json"])))
    info = gc.read_info(glc.read_bytes())
    assert rec["codec"] == "jpeg" and rec["bytes"] == info.bytes == glc.stat().st_size
    assert rec["bpp"] == pytest.approx(info.bpp) and (rec["width"], rec["height"]) == (128, 96)
    assert rec["output"] == str(glc) and rec["quality"] == info.quality
    dec = json.loads(ok(runner.invoke(app, ["decode", str(glc), "-o", str(tmp_path / "j.png"), "--json"])))
    assert dec["codec"] == "jpeg" and dec["format"] == "png" and (dec["width"], dec["height"]) == (128, 96)
    got = json.loads(ok(runner.invoke(app, ["info", str(glc), "--json"])))
    assert got["codec"] == "jpeg" and got["bytes"] == info.bytes and got["shape"] == [3, 96, 128]
    assert got["weights_match"] is None and got["width"] == 128
    listing = json.loads(ok(runner.invoke(app, ["list", "--json"])))
    by_name = {c["name"]: c for c in listing}
    assert set(by_name) == {c.name for c in gc.list_codecs()}
    assert by_name[gc.DEFAULT_CODEC]["default"] is True and by_name["jpeg"]["weights"] is None
    assert by_name[gc.DEFAULT_CODEC]["weights"] == "ok" and by_name["jpeg"]["codec_id"] == 1
    batch = json.loads(ok(runner.invoke(app, ["encode", str(photos), "-o", str(tmp_path / "jb"), "-c", "jpeg",
                                              "--json"])))
    assert batch["summary"]["files"] == 2 and batch["failed"] == [] and len(batch["files"]) == 2
    assert batch["summary"]["bytes"] == sum(f["bytes"] for f in batch["files"])


def test_json_with_stdout_data_is_refused(runner: CliRunner, png: Path) -> None:
    r = runner.invoke(app, ["encode", str(png), "-o", "-", "--json", "-c", "jpeg"])
    assert r.exit_code == 1 and "--json" in error_lines(r)[0]


# -- part 4: native exports, decode formats -------------------------------------------------------
@pytest.mark.parametrize("codec,suffix,fmt", [("jpeg", ".jpg", "JPEG"), ("webp", ".webp", "WEBP"),
                                              ("avif", ".avif", "AVIF"), ("jpeg2000", ".j2k", "JPEG2000")])
def test_export_native_file(runner: CliRunner, png: Path, tmp_path: Path, codec: str, suffix: str, fmt: str) -> None:
    glc = gc.encode(png, codec=codec)
    stream = read_container(glc).streams[0]
    # by the -o suffix
    out = tmp_path / f"o{suffix}"
    ok(runner.invoke(app, ["encode", str(png), "-c", codec, "-o", str(out)]))
    assert out.read_bytes() == stream  # byte-identical to the stream inside the .glc
    with Image.open(out) as img:
        assert img.format == fmt and img.size == (128, 96)
    # by --export, default name beside the input
    ok(runner.invoke(app, ["encode", str(png), "-c", codec, "--export"]))
    assert (png.parent / f"photo{suffix}").read_bytes() == stream


def test_export_never_overwrites_its_input(runner: CliRunner, tmp_path: Path, kodak_crop: torch.Tensor) -> None:
    src = tmp_path / "p.jpg"
    Image.fromarray((kodak_crop[0].permute(1, 2, 0) * 255).round().byte().numpy()).save(src)
    before = src.read_bytes()
    ok(runner.invoke(app, ["encode", str(src), "-c", "jpeg", "--export"]))
    assert src.read_bytes() == before and (tmp_path / "p.encoded.jpg").is_file()


@pytest.mark.parametrize("args,needle", [
    (["-c", "msh", "--export"], "only as .glc"),
    (["-c", "msh", "-o", "x.jpg"], "encode writes .glc"),
    (["-c", "jpeg", "-o", "x.webp"], ".jpg"),
])
def test_export_refusals(runner: CliRunner, png: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    r = runner.invoke(app, ["encode", str(png), *args])
    assert r.exit_code == 1 and needle in error_lines(r)[0]
    assert not list(tmp_path.glob("x.*"))


@pytest.mark.parametrize("suffix,fmt,lossless", [(".png", "PNG", True), (".webp", "WEBP", True),
                                                 (".tif", "TIFF", True), (".jpg", "JPEG", False),
                                                 (".bmp", "BMP", True), (".ppm", "PPM", True)])
def test_decode_writes_the_format_the_suffix_names(runner: CliRunner, png: Path, tmp_path: Path, suffix: str,
                                                   fmt: str, lossless: bool) -> None:
    glc = tmp_path / "d.glc"
    glc.write_bytes(gc.encode(png, codec="jpeg"))
    dst = tmp_path / f"d{suffix}"
    ok(runner.invoke(app, ["decode", str(glc), "-o", str(dst)]))
    ref = np.asarray(gc.decode(glc.read_bytes()), dtype=np.int16)
    with Image.open(dst) as img:
        assert img.format == fmt
        got = np.asarray(img.convert("RGB"), dtype=np.int16)
    if lossless:
        assert np.array_equal(got, ref)
    else:
        assert np.abs(got - ref).mean() < 2.0  # JPEG at quality 95, 4:4:4


def test_decode_refuses_unknown_suffix(runner: CliRunner, png: Path, tmp_path: Path) -> None:
    glc = tmp_path / "d.glc"
    glc.write_bytes(gc.encode(png, codec="jpeg"))
    r = runner.invoke(app, ["decode", str(glc), "-o", str(tmp_path / "x.xyz")])
    assert r.exit_code == 1 and "cannot write '.xyz'" in error_lines(r)[0] and ".png" in error_lines(r)[0]
    assert not (tmp_path / "x.xyz").exists()


# -- part 9: target rate --------------------------------------------------------------------------
@pytest.mark.parametrize("codec", ["jpeg", "webp", "msh"])
def test_target_size_picks_the_best_level_that_fits(runner: CliRunner, png: Path, tmp_path: Path,
                                                    codec: str) -> None:
    sizes = {q: len(gc.encode(png, codec=codec, quality=q)) for q in gc.open_codec(codec).qualities}
    levels = sorted(sizes)
    target = (sizes[levels[1]] + sizes[levels[2]]) // 2  # between the 2nd and 3rd level
    expect = max(q for q in levels if sizes[q] <= target)
    dst = tmp_path / "t.glc"
    rec = json.loads(ok(runner.invoke(app, ["encode", str(png), "-c", codec, "--size", str(target), "-o", str(dst),
                                            "--json"])))
    assert rec["quality"] == expect and dst.stat().st_size <= target
    bpp = 8 * sizes[levels[2]] / (96 * 128) + 1e-9  # exactly the 3rd level's rate
    rec = json.loads(ok(runner.invoke(app, ["encode", str(png), "-c", codec, "--bpp", str(bpp), "-o", str(dst),
                                            "--force", "--json"])))
    assert rec["quality"] == max(q for q in levels if 8 * sizes[q] / (96 * 128) <= bpp)


def test_target_rate_errors(runner: CliRunner, png: Path) -> None:
    r = runner.invoke(app, ["encode", str(png), "-c", "jpeg", "--size", "10"])
    assert r.exit_code == 1 and "even quality 1" in error_lines(r)[0]
    r = runner.invoke(app, ["encode", str(png), "-c", "jpeg", "--size", "lots"])
    assert r.exit_code == 1 and "40k" in error_lines(r)[0]
    r = runner.invoke(app, ["encode", str(png), "-c", "jpeg", "--size", "40k", "-q", "3"])
    assert r.exit_code == 1 and "one of" in error_lines(r)[0]


def test_size_units() -> None:
    from glocal_codec.cli.app import _parse_size

    assert _parse_size("40k") == 40_000 and _parse_size("40KiB") == 40_960 and _parse_size("1.5M") == 1_500_000
    assert _parse_size("30000") == 30_000 and _parse_size("2kb") == 2000


# -- part 8: list ---------------------------------------------------------------------------------
def test_list_fits_80_columns_and_marks_the_default() -> None:
    r = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "80"}).invoke(app, ["list"])
    text = ok(r)
    lines = text.splitlines()
    assert all(len(ln) <= 80 for ln in lines), max(lines, key=len)
    names = {c.name for c in gc.list_codecs()}
    rows = {ln.split()[0]: ln for ln in lines[1:] if ln.split() and ln.split()[0] in names}
    assert set(rows) == names and len(lines) == len(names) + 2  # one line per codec, a header, a legend
    assert rows[gc.DEFAULT_CODEC].split()[1] == "*"
    assert "*" not in rows["jpeg"].split()
    header = lines[0].split()
    assert "weights" in header
    col = lines[0].index("weights")
    for c in gc.list_codecs():  # the weights column says something for learned codecs only
        cell = rows[c.name][col: col + 7].strip()
        assert cell == ("ok" if c.weights_available else "missing") if c.has_weights else cell == "", (c.name, cell)


def test_list_long_and_media(runner: CliRunner) -> None:
    text = ok(runner.invoke(app, ["list", "--long"]))
    for c in gc.list_codecs():
        assert c.description in text.replace("\n", " ") or c.description[:40] in text
        assert f"id         {c.codec_id}" in text or f"id {c.codec_id}" in " ".join(text.split())
    text = ok(runner.invoke(app, ["list", "--media", "video", "--json"]))
    assert {c["media"] for c in json.loads(text)} == {"video"}


# -- part 6: progress and --quiet -----------------------------------------------------------------
def test_quiet(runner: CliRunner, png: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["encode", str(png), "-c", "jpeg", "-o", str(tmp_path / "q.glc"), "--quiet"])
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""


def test_progress_lines_without_a_terminal(png: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a terminal: a plain status line every GLOCAL_CODEC_PROGRESS_SECONDS, with stage, count, ETA."""
    import time

    from rich.console import Console

    from glocal_codec.cli.progress import Reporter

    monkeypatch.setenv("GLOCAL_CODEC_PROGRESS_SECONDS", "0.05")
    buf = io.StringIO()
    err = Console(file=buf, width=200)  # not a terminal
    with Reporter(err) as rep:
        rep.stage("fitting hnerv", total=100)
        rep(25, 100, "fit 27.31 dB")
        time.sleep(0.3)
    lines = [ln for ln in buf.getvalue().splitlines() if ln]
    assert lines and lines[-1].startswith("fitting hnerv: 25/100 (25%), 0:00 elapsed, ETA 0:0")
    assert lines[-1].endswith("fit 27.31 dB")
    buf.truncate(0)
    with Reporter(err, quiet=True) as rep:
        rep.stage("x", total=2)
        rep(1, 2)
        time.sleep(0.2)
    assert buf.getvalue() == ""


def test_refine_shows_its_steps(runner: CliRunner, png: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``encode --refine N``: progress over the N steps (a bar on a terminal; plain lines, with the
    count and the loss, every GLOCAL_CODEC_PROGRESS_SECONDS elsewhere)."""
    from glocal_codec.cli.progress import Reporter

    calls: list[tuple] = []
    report = Reporter.__call__

    def spy(self: Reporter, done: int, total: int | None, stats: str | None = None) -> None:
        calls.append((done, total))
        report(self, done, total, stats)
        if done == 1:  # give the plain-line ticker time to print a line with a count in it
            import time

            time.sleep(0.3)

    monkeypatch.setattr(Reporter, "__call__", spy)
    monkeypatch.setenv("GLOCAL_CODEC_PROGRESS_SECONDS", "0.05")
    out = tmp_path / "r.glc"
    r = runner.invoke(app, ["encode", str(png), "-c", "msh", "-q", "2", "--refine", "6", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert calls == [(k, 6) for k in range(1, 7)]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("encoding photo.png with msh, 6 refinement steps:")]
    assert any(re.search(r": [1-6]/6 \(\d+%\), .*loss \S+$", ln) for ln in lines), r.stderr
    assert gc.read_info(out).codec == "msh"


def test_verbose_batch_lines(runner: CliRunner, photos: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["encode", str(photos), "-o", str(tmp_path / "v"), "-c", "jpeg", "-v"])
    assert r.exit_code == 0
    assert "a.glc: jpeg q5" in r.stderr and "b.glc: jpeg q5" in r.stderr


# -- help texts name the API's defaults without importing it ---------------------------------------
def test_help_defaults_match_the_api() -> None:
    import importlib

    app_module = importlib.import_module("glocal_codec.cli.app")  # the module, not the Typer app

    assert app_module._DEFAULT_CODEC_HELP == gc.DEFAULT_CODEC
    assert int(app_module._MAX_PIXELS_HELP.replace(",", "")) == gc.MAX_DECODE_PIXELS
    assert app_module._DEFAULT_VIDEO_CODEC == gc.video.DEFAULT_VIDEO_CODEC  # `list` marks it without PyAV


def test_max_pixels_default_still_guards(runner: CliRunner, tmp_path: Path) -> None:
    import dataclasses

    from glocal_codec.bitstream import write_container

    c = read_container(gc.encode(torch.rand(1, 3, 16, 16), codec="jpeg"))
    bomb = tmp_path / "bomb.glc"
    bomb.write_bytes(write_container(dataclasses.replace(c, shape=(3, 16384, 16384))))
    r = runner.invoke(app, ["decode", str(bomb), "-o", str(tmp_path / "b.png")])
    assert r.exit_code == 1 and "decode limit" in error_lines(r)[0]


def test_no_temp_files_after_a_batch(runner: CliRunner, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "t"
    ok(runner.invoke(app, ["encode", str(photos), "-r", "-o", str(out), "-c", "jpeg", "-j", "3"]))
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert os.listdir(out)
