"""Video IO: frame folders, .y4m, lossless .mp4/.mkv, frame ranges, resizing, safe writes."""

from __future__ import annotations

import os
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glocal_codec.video import UnsupportedVideoError, VideoClip, read_video, write_frames, write_video
from glocal_codec.bitstream.video_params import as_fps, pack_video_params, unpack_video_params
from glocal_codec.video.io import list_frame_files

from video_clips import BLACKSWAN, davis_clip, synthetic_clip  # noqa: F401  (fixture)

av = pytest.importorskip("av")

ODD = synthetic_clip(4, 37, 65, seed=2)


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) * 255


def test_png_folder_round_trip_is_exact(tmp_path: Path) -> None:
    names = write_frames(tmp_path / "frames", VideoClip(ODD, fps=Fraction(24)))
    assert [n.name for n in names] == ["00000.png", "00001.png", "00002.png", "00003.png"]
    clip = read_video(tmp_path / "frames")
    assert torch.equal(clip.frames, ODD)
    assert clip.fps == 25  # a folder has no frame rate: the default
    assert read_video(tmp_path / "frames", fps="30000/1001").fps == Fraction(30000, 1001)


def test_folder_natural_order_and_filtering(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        Image.new("RGB", (8, 6), (i * 20, 0, 0)).save(tmp_path / f"f{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    Image.new("RGB", (8, 6)).save(tmp_path / ".hidden.png")
    assert [p.name for p in list_frame_files(tmp_path)] == ["f1.png", "f2.png", "f10.png"]
    clip = read_video(tmp_path)
    assert clip.num_frames == 3
    assert [round(float(clip.frames[i, 0, 0, 0]) * 255) for i in range(3)] == [20, 40, 200]


def test_folder_gray_jpeg_and_errors(tmp_path: Path) -> None:
    Image.new("L", (8, 6), 100).save(tmp_path / "a.jpg")
    Image.new("L", (8, 6), 100).save(tmp_path / "b.jpg")
    clip = read_video(tmp_path)
    assert clip.frames.shape == (2, 3, 6, 8)
    Image.new("RGB", (9, 6)).save(tmp_path / "c.png")
    with pytest.raises(UnsupportedVideoError, match="first frame"):
        read_video(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UnsupportedVideoError, match="no image frames"):
        read_video(empty)
    with pytest.raises(FileNotFoundError):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 10)
    with pytest.raises(UnsupportedVideoError):
        read_video(tmp_path / "junk.mp4")


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_lossless_video_files_are_exact(tmp_path: Path, suffix: str) -> None:
    path = write_video(tmp_path / f"clip{suffix}", VideoClip(ODD, fps="30000/1001"))
    clip = read_video(path)
    assert clip.frames.shape == ODD.shape
    assert _max_err(clip.frames, ODD) == 0
    assert clip.fps == Fraction(30000, 1001)


def test_y4m_round_trip(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.y4m", VideoClip(ODD, fps=Fraction(50)))
    assert path.read_bytes().startswith(b"YUV4MPEG2 W65 H37 F50:1")
    clip = read_video(path)
    assert clip.fps == 50 and clip.frames.shape == ODD.shape
    assert _max_err(clip.frames, ODD) <= 2  # 8-bit RGB -> Y'CbCr 4:4:4 -> RGB rounding
    assert float((clip.frames - ODD).abs().mean()) * 255 < 0.6
    even = synthetic_clip(3, 36, 64)
    p420 = write_video(tmp_path / "c420.y4m", even, pix_fmt="yuv420p")
    assert b"C420" in p420.read_bytes()[:60]
    assert read_video(p420).frames.shape == even.shape
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd420.y4m", ODD, pix_fmt="yuv420p")


def test_lossy_mp4_is_close(tmp_path: Path) -> None:
    x = synthetic_clip(4, 36, 64)
    clip = read_video(write_video(tmp_path / "q.mp4", x, lossless=False, crf=8))
    assert float((clip.frames - x).abs().mean()) * 255 < 3


def test_frame_range_and_resize(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mkv", ODD)
    part = read_video(path, start=1, max_frames=2)
    assert torch.equal(part.frames, ODD[1:3])
    assert read_video(path, start=3).num_frames == 1
    with pytest.raises(UnsupportedVideoError):
        read_video(path, start=10)
    with pytest.raises(ValueError):
        read_video(path, max_frames=0)
    small = read_video(path, size=(32, 18))
    assert small.frames.shape == (4, 3, 18, 32)
    assert torch.equal(small.frames, small.frames.mul(255).round().div(255))  # still 8-bit values
    seen = []
    read_video(path, progress=lambda done, total: seen.append((done, total)))
    assert [d for d, _ in seen] == [1, 2, 3, 4]


def test_writes_are_safe(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        write_video(target, ODD)
    assert target.read_bytes() == b"keep me"
    write_video(target, ODD, force=True)
    assert read_video(target).num_frames == 4
    with pytest.raises(ValueError, match="cannot write"):
        write_video(tmp_path / "out.avi", ODD)
    with pytest.raises(FileNotFoundError):
        write_video(tmp_path / "no" / "such" / "out.mp4", ODD)
    frames = tmp_path / "frames"
    write_frames(frames, ODD)
    (frames / "00002.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        write_frames(frames, ODD)
    assert (frames / "00002.png").read_bytes() == b"mine"
    write_frames(frames, ODD, force=True)
    assert torch.equal(read_video(frames).frames, ODD)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    mask = os.umask(0)
    os.umask(mask)
    for f in (target, frames / "00000.png"):  # the mode a plain open() gives, not mkstemp's 0600
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask


def test_video_clip_validation() -> None:
    with pytest.raises(ValueError):
        VideoClip(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError):
        VideoClip(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError):
        VideoClip(torch.zeros(2, 3, 8, 8), fps=0)
    c = VideoClip(torch.full((2, 3, 4, 6), 255, dtype=torch.uint8), fps=30)
    assert c.frames.dtype == torch.float32 and float(c.frames.max()) == 1.0
    assert (c.num_frames, c.height, c.width, c.duration) == (2, 4, 6, pytest.approx(2 / 30))


def test_frame_rate_helpers() -> None:
    assert as_fps(None) == 25
    assert as_fps(29.97) == Fraction(2997, 100)
    assert as_fps(30000 / 1001) == Fraction(30000, 1001)
    assert as_fps("24000/1001") == Fraction(24000, 1001)
    for bad in (0, -1, "x", True, "1/0"):
        with pytest.raises(ValueError):
            as_fps(bad)
    for fps in (Fraction(25), Fraction(30000, 1001), Fraction(1, 7), Fraction((1 << 31) - 1, 3)):
        rest = b"\x05codec"
        assert unpack_video_params(pack_video_params(fps, rest)) == (fps, rest)
    assert pack_video_params(Fraction(25)) == b"\x19\x01"


def test_davis_jpeg_frames(davis_clip) -> None:
    assert davis_clip.frames.shape == (8, 3, 72, 128)
    assert davis_clip.source == str(BLACKSWAN)
    full = read_video(BLACKSWAN, max_frames=1)
    assert full.frames.shape == (1, 3, 480, 854)
    assert np.isclose(float(full.frames.mean()), float(davis_clip.frames[0].mean()), atol=0.02)
