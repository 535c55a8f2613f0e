"""``glocal-codec video encode | decode | info`` through typer's CliRunner."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import glocal_codec as gc
from glocal_codec.cli import app
from glocal_codec.video import decode_video, read_video, write_frames, write_video

from video_clips import synthetic_clip

pytest.importorskip("av")

runner = CliRunner()
CLIP = synthetic_clip(5, 37, 65, seed=4)


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def frames_dir(tmp_path: Path) -> Path:
    write_frames(tmp_path / "frames", CLIP)
    return tmp_path / "frames"


def test_encode_info_decode(tmp_path: Path, frames_dir: Path) -> None:
    before = {p.name: sha(p) for p in frames_dir.iterdir()}
    glc = tmp_path / "clip.glc"
    r = run("video", "encode", frames_dir, "-o", glc, "--codec", "x264", "--quality", "4", "--fps", "30")
    assert r.exit_code == 0, r.output
    assert "x264 q4 5 frames 65x37 @ 30 fps" in r.stdout
    assert {p.name: sha(p) for p in frames_dir.iterdir()} == before  # input untouched
    info = gc.read_info(glc.read_bytes())
    assert (info.codec, info.quality, info.shape, info.fps) == ("x264", 4, (5, 3, 37, 65), 30)
    assert info.bpp == pytest.approx(8 * glc.stat().st_size / (5 * 37 * 65))

    r = run("video", "info", glc)
    assert r.exit_code == 0, r.output
    for text in ("x264 (id 64)", "video", "65x37", "30", f"{info.bpp:.4f}"):
        assert text in r.stdout

    r = run("video", "decode", glc, "--lossless", "-o", tmp_path / "clip.mp4")
    assert r.exit_code == 0, r.output
    out = read_video(tmp_path / "clip.mp4")
    assert out.frames.shape == CLIP.shape and out.fps == 30
    assert torch.equal(out.frames, decode_video(glc.read_bytes()).frames)  # --lossless: bit-exact RGB

    r = run("video", "decode", glc, "-o", tmp_path / "clip.y4m")
    assert r.exit_code == 0 and (tmp_path / "clip.y4m").read_bytes().startswith(b"YUV4MPEG2")
    r = run("video", "decode", glc, "--frames-dir", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[:2] == ["00000.png", "00001.png"]


@pytest.mark.parametrize("codec", [c.name for c in gc.list_codecs(media="video")])
def test_encode_a_video_file_with_every_codec(tmp_path: Path, codec: str) -> None:
    src = write_video(tmp_path / "in.mkv", CLIP, fps=24)
    r = run("video", "encode", src, "-c", codec, "-q", "2", "--start", "1", "-n", "3")
    assert r.exit_code == 0, r.output
    info = gc.read_info((tmp_path / "in.glc").read_bytes())
    assert (info.codec, info.frames, info.fps) == (codec, 3, 24)
    r = run("info", tmp_path / "in.glc")  # the image `info` command reads video files too
    assert r.exit_code == 0 and "shape (T,C,H,W)" in r.stdout


def test_refuses_to_overwrite(tmp_path: Path, frames_dir: Path) -> None:
    glc = tmp_path / "clip.glc"
    glc.write_bytes(b"precious")
    line = one_error_line(run("video", "encode", frames_dir, "-o", glc))
    assert "exists" in line and "--force" in line
    assert glc.read_bytes() == b"precious"
    assert run("video", "encode", frames_dir, "-o", glc, "--force").exit_code == 0
    mp4 = tmp_path / "clip.mp4"
    mp4.write_bytes(b"mine")
    one_error_line(run("video", "decode", glc, "-o", mp4))
    assert mp4.read_bytes() == b"mine"
    one_error_line(run("video", "decode", glc, "--frames-dir", frames_dir))  # frames exist there
    assert run("video", "decode", glc, "-o", mp4, "--force").exit_code == 0
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_errors_are_one_line(tmp_path: Path, frames_dir: Path) -> None:
    glc = tmp_path / "clip.glc"
    assert run("video", "encode", frames_dir, "-o", glc, "-q", "1").exit_code == 0
    data = glc.read_bytes()
    (tmp_path / "trunc.glc").write_bytes(data[: len(data) // 2])
    assert "truncated" in one_error_line(run("video", "decode", tmp_path / "trunc.glc", "-o", tmp_path / "t.mp4"))
    assert not (tmp_path / "t.mp4").exists()
    one_error_line(run("video", "info", tmp_path / "trunc.glc"))
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    (tmp_path / "bad.glc").write_bytes(bytes(bad))
    one_error_line(run("video", "decode", tmp_path / "bad.glc", "-o", tmp_path / "b.mp4"))
    one_error_line(run("video", "info", tmp_path / "missing.glc"))
    one_error_line(run("video", "encode", tmp_path / "missing.mp4"))
    one_error_line(run("video", "encode", frames_dir, "-o", tmp_path / "x.glc", "--codec", "jpeg"))
    one_error_line(run("video", "encode", frames_dir, "-o", tmp_path / "x.glc", "--codec", "nope"))
    one_error_line(run("video", "encode", frames_dir, "-o", tmp_path / "x.glc", "--quality", "99"))
    one_error_line(run("video", "encode", frames_dir, "-o", tmp_path / "x.glc", "--size", "big"))
    one_error_line(run("video", "encode", frames_dir, "-o", tmp_path / "x.glc", "--fps", "0"))
    one_error_line(run("video", "decode", glc, "-o", tmp_path / "x.avi"))
    one_error_line(run("video", "decode", glc, "-o", tmp_path / "a.mp4", "--frames-dir", tmp_path / "f"))
    one_error_line(run("video", "decode", glc, "-o", glc))
    one_error_line(run("decode", glc, "-o", tmp_path / "x.png"))  # image decode of a video file
    assert not (tmp_path / "x.glc").exists()
    assert glc.read_bytes() == data


def test_pfnr_append_decode_video_n_and_info(tmp_path: Path, frames_dir: Path) -> None:
    """Several videos in one pfnr file from the command line: the first decodes the same after
    a second (another size, so rescaled) is added; the input file is left alone."""
    first = tmp_path / "a.glc"
    assert run("video", "encode", frames_dir, "-o", first, "-c", "pfnr", "-q", "1", "-n", "3").exit_code == 0
    second = tmp_path / "b"
    write_frames(second, synthetic_clip(2, 20, 30, seed=9))
    before = sha(first)
    both = tmp_path / "ab.glc"
    r = run("video", "append", first, second, "-o", both)
    assert r.exit_code == 0, r.output
    assert "2 videos" in r.stdout and sha(first) == before
    one = decode_video(first.read_bytes()).frames
    assert torch.equal(decode_video(both.read_bytes(), index=0).frames, one)
    assert tuple(decode_video(both.read_bytes()).frames.shape) == (2, 3, 37, 65)  # rescaled to the file's size
    r = run("video", "info", both)
    assert r.exit_code == 0 and "1) 3 frames, 2) 2 frames" in r.stdout, r.output
    r = run("video", "decode", both, "--video", "1", "--frames-dir", tmp_path / "v1")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "v1").iterdir())) == 3
    assert "no video 3" in one_error_line(run("video", "decode", both, "--video", "3", "-o", tmp_path / "x.y4m"))
    assert "exists" in one_error_line(run("video", "append", first, second, "-o", both))
    assert "overwrite an input" in one_error_line(run("video", "append", first, second, "-o", first, "--force"))
    x264 = tmp_path / "x.glc"
    assert run("video", "encode", frames_dir, "-o", x264, "-c", "x264", "-n", "2").exit_code == 0
    assert "only pfnr" in one_error_line(run("video", "append", x264, second, "-o", tmp_path / "y.glc"))


@pytest.mark.parametrize("args", [["video", "info"], ["info"], ["decode"]])
def test_error_paths_are_printed_as_they_are(tmp_path: Path, args: list[str]) -> None:
    """One error printer for every command: a path with rich markup in it is not eaten."""
    bad = tmp_path / "no[red]such.glc"
    res = run(*args, bad, *(["-o", tmp_path / "x.png"] if args == ["decode"] else []))
    assert res.exit_code == 1
    assert "no[red]such.glc" in res.output.replace("\n", "")


def _stream(path: Path) -> tuple[str, str, str, int, int]:
    import av

    with av.open(str(path)) as f:
        s = f.streams.video[0]
        return s.codec_context.name, s.codec_context.pix_fmt, s.codec_context.profile, s.width, s.height


def test_decode_default_is_playable_h264(tmp_path: Path, frames_dir: Path) -> None:
    """The default: NAME.decoded.mp4 (never the original clip's name), H.264 4:2:0 High profile,
    which browsers and QuickTime play; an odd size is padded by one row / column."""
    src = write_video(tmp_path / "clip.mkv", CLIP, fps=25)  # the user's original
    before = sha(src)
    glc = tmp_path / "clip.glc"
    assert run("video", "encode", src, "-o", glc, "-c", "x264", "-q", "5").exit_code == 0
    r = run("video", "decode", glc)
    assert r.exit_code == 0, r.output
    dst = tmp_path / "clip.decoded.mp4"
    assert sha(src) == before and dst.is_file()
    name, pix_fmt, profile, w, h = _stream(dst)
    assert (name, pix_fmt, profile) == ("h264", "yuv420p", "High") and (w, h) == (66, 38)
    assert "padded to 66x38" in r.stdout
    back = read_video(dst).frames[:, :, :37, :65]
    ref = decode_video(glc.read_bytes()).frames
    psnr = -10 * torch.log10(((back - ref) ** 2).mean())
    assert psnr > 28  # CRF 18 (4:2:0 chroma costs the most on this synthetic, colourful clip)
    assert dst.stat().st_size < 5 * glc.stat().st_size + 5000  # not a lossless RGB monster
    r = run("video", "decode", glc, "--lossless", "-o", tmp_path / "exact.mp4")
    assert r.exit_code == 0 and _stream(tmp_path / "exact.mp4")[1] != "yuv420p"
    assert "lossless" in r.stdout


def test_decode_even_size_is_not_padded(tmp_path: Path) -> None:
    even = synthetic_clip(3, 36, 64, seed=2)
    glc = tmp_path / "e.glc"
    write_frames(tmp_path / "ef", even)
    assert run("video", "encode", tmp_path / "ef", "-o", glc).exit_code == 0
    r = run("video", "decode", glc, "-o", tmp_path / "e.mov")
    assert r.exit_code == 0, r.output
    assert _stream(tmp_path / "e.mov")[1:] == ("yuv420p", "High", 64, 36) and "padded" not in r.stdout


def test_encode_epochs_sets_the_fitting_budget(tmp_path: Path, frames_dir: Path) -> None:
    codec = gc.open_codec("hnerv")
    before = codec.epochs
    glc = tmp_path / "h.glc"
    r = run("video", "encode", frames_dir, "-o", glc, "-c", "hnerv", "-q", "1", "-n", "2", "--epochs", "3")
    assert r.exit_code == 0, r.output
    assert codec.epochs == before  # restored: the instance is shared
    assert gc.read_info(glc.read_bytes()).codec == "hnerv"
    line = one_error_line(run("video", "encode", frames_dir, "-o", tmp_path / "x.glc", "-c", "x264", "--epochs", "3"))
    assert "hnerv" in line and "x264 does not" in line
    line = one_error_line(run("video", "encode", frames_dir, "-o", tmp_path / "x.glc", "-c", "x264", "--minutes", "1"))
    assert "x264 does not" in line
    assert "not both" in one_error_line(run("video", "encode", frames_dir, "-o", tmp_path / "x.glc", "-c", "hnerv",
                                            "--epochs", "3", "--minutes", "1"))
    assert not (tmp_path / "x.glc").exists()


def test_encode_minutes_picks_epochs(tmp_path: Path, frames_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--minutes times a few fitting steps, then fits for the epochs that fill the budget."""
    import glocal_codec.cli.video as cli_video

    chosen = []
    real = cli_video._epochs_for

    def spy(*a, **k):  # noqa: ANN002, ANN003
        n = real(*a, **k)
        chosen.append(n)
        return min(n, 3)  # keep the test short whatever this machine's speed

    monkeypatch.setattr(cli_video, "_epochs_for", spy)
    r = run("video", "encode", frames_dir, "-o", tmp_path / "m.glc", "-c", "hnerv", "-q", "1", "-n", "2",
            "--minutes", "0.05")
    assert r.exit_code == 0, r.output
    assert chosen and chosen[0] >= 1
    assert "epochs fit in about 0.05 min" in r.stderr


def test_fitting_progress_lines_without_a_terminal(tmp_path: Path, frames_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a terminal: a plain line every GLOCAL_CODEC_PROGRESS_SECONDS with count, ETA and fitting PSNR."""
    monkeypatch.setenv("GLOCAL_CODEC_PROGRESS_SECONDS", "0.05")
    r = run("video", "encode", frames_dir, "-o", tmp_path / "p.glc", "-c", "hnerv", "-q", "1", "-n", "2",
            "--epochs", "20")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("fitting hnerv (20 epochs):")]
    assert lines, r.stderr
    assert any("ETA" in ln and "dB" in ln for ln in lines), lines


def test_video_pipes(tmp_path: Path, frames_dir: Path) -> None:
    """`video encode ... -o -` writes the .glc to stdout; `video decode ... -o -` a y4m stream."""
    r = run("video", "encode", frames_dir, "-o", "-", "-c", "x264", "-q", "3")
    assert r.exit_code == 0, r.output
    assert gc.read_info(r.stdout_bytes).codec == "x264" and "x264 q3" in r.stderr
    glc = tmp_path / "p.glc"
    glc.write_bytes(r.stdout_bytes)
    r = run("video", "decode", glc, "-o", "-")
    assert r.exit_code == 0, r.output
    assert r.stdout_bytes.startswith(b"YUV4MPEG2 W65 H37")
    assert not (Path.cwd() / "-").exists()
    assert "not stdin" in one_error_line(run("video", "encode", "-", "-o", tmp_path / "x.glc"))
