"""Memory guards of video decode (#36 part 4): a per-clip pixel limit on by default, checked from
the header, and decoding streamed into the output file for the frame-by-frame codecs.

``data/x264-300-black-1280x720.glc`` is the issue's bomb: 12,299 bytes of x264 announcing 300
black 1280x720 frames (276 Mpixel; 3.3 GB as a float clip). Timings and peak memory are measured
in ``benchmarks/memory_guards.py``, not here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import glocal_codec as gc
from glocal_codec import video
from glocal_codec.bitstream import CorruptStreamError, LimitError, read_container, write_container
from glocal_codec.cli.app import app
from glocal_codec.codecs import FrameStreaming, open_codec

pytest.importorskip("av")

BOMB = Path(__file__).parent / "data" / "x264-300-black-1280x720.glc"
CLASSIC = [n for n in ("x264", "x265", "av1") if n in {c.name for c in gc.list_codecs(media="video")}]


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def _one_line(r) -> str:  # noqa: ANN001 - a click Result
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), r.output
    return lines[0]


def test_the_13kb_bomb_is_refused_by_default(tmp_path: Path, runner: CliRunner) -> None:
    data = BOMB.read_bytes()
    assert len(data) < 13_000 and gc.read_info(data).shape == (300, 3, 720, 1280)
    assert 300 * 720 * 1280 > gc.MAX_DECODE_PIXELS
    with pytest.raises(LimitError, match=r"300 frames of 1280x720 .*max_pixels=None"):
        video.decode_video(data)
    with pytest.raises(LimitError):
        video.decode_video_frames(data)  # refused when called, before any frame is asked for
    out = tmp_path / "o.mp4"
    line = _one_line(runner.invoke(app, ["video", "decode", str(BOMB), "-o", str(out)]))
    assert "decode limit" in line and "--max-pixels 0" in line
    assert not out.exists() and list(tmp_path.iterdir()) == []
    _one_line(runner.invoke(app, ["video", "decode", str(BOMB), "--frames-dir", str(tmp_path / "f")]))
    assert not (tmp_path / "f").exists()


def test_the_limit_is_per_clip_and_can_be_lifted(tmp_path: Path, runner: CliRunner) -> None:
    good = video.encode_video(torch.rand(3, 3, 16, 24), codec="x264")
    t, h, w = 3, 16, 24
    with pytest.raises(LimitError):
        video.decode_video(good, max_pixels=t * h * w - 1)
    assert video.decode_video(good, max_pixels=t * h * w).num_frames == t
    assert video.decode_video(good, max_pixels=None).num_frames == t
    glc = tmp_path / "g.glc"
    glc.write_bytes(good)
    _one_line(runner.invoke(app, ["video", "decode", str(glc), "-o", str(tmp_path / "a.mp4"),
                                  "--max-pixels", str(t * h * w - 1)]))
    r = runner.invoke(app, ["video", "decode", str(glc), "-o", str(tmp_path / "b.mp4"), "--max-pixels", "0"])
    assert r.exit_code == 0, r.output
    # a header relabelled to the bomb's size: lifted, the decoder itself refuses the mismatch
    c = read_container(good)
    big = write_container(dataclasses.replace(c, shape=(300, 3, 720, 1280)))
    with pytest.raises(LimitError):
        video.decode_video(big)
    with pytest.raises(CorruptStreamError, match="1280x720"):
        video.decode_video(big, max_pixels=None)


@pytest.mark.parametrize("name", CLASSIC)
def test_classical_codecs_stream_frames(name: str, tmp_path: Path) -> None:
    assert isinstance(open_codec(name), FrameStreaming)
    x = torch.rand(4, 3, 64, 80)  # x265 frames under 64 pixels now and then crash libx265 (heap corruption)
    data = video.encode_video(x, codec=name)
    clip = video.decode_video(data)
    stream = video.decode_video_frames(data)
    assert (stream.num_frames, stream.channels, stream.height, stream.width) == (4, 3, 64, 80)
    frames = list(stream.frames)
    assert all(f.dtype == np.uint8 and f.shape == (64, 80, 3) for f in frames)
    assert torch.equal(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255), clip.frames)
    # the same pixels in the written file, streamed or not
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    video.write_video(a, video.decode_video_frames(data))
    video.write_video(b, clip)
    assert torch.equal(video.read_video(a).frames, video.read_video(b).frames)
    gray = video.encode_video(x[:, :1], codec=name)
    g = np.stack(list(video.decode_video_frames(gray).frames))
    assert g.shape == (4, 64, 80, 1)
    assert torch.equal(torch.from_numpy(g).permute(0, 3, 1, 2).float().div(255), video.decode_video(gray).frames)


def test_a_stream_that_fails_part_way_leaves_nothing(tmp_path: Path) -> None:
    data = video.encode_video(torch.rand(4, 3, 16, 16), codec="x264")
    c = read_container(data)
    more = write_container(dataclasses.replace(c, shape=(6, 3, 16, 16)))  # the stream has 4 frames
    with pytest.raises(CorruptStreamError, match="4 frames"):
        video.write_video(tmp_path / "o.mp4", video.decode_video_frames(more))
    with pytest.raises(CorruptStreamError):
        video.write_frames(tmp_path / "f", video.decode_video_frames(more))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "keep.txt").write_text("x")
    with pytest.raises(CorruptStreamError):
        video.write_frames(tmp_path / "g", video.decode_video_frames(more))
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["keep.txt"]


def _inr_file(name: str, x: torch.Tensor) -> tuple[object, object, bytes]:
    """A one-epoch fit of ``name`` on ``x`` (pixels do not matter here), as a ``.glc`` file."""
    from fractions import Fraction

    from glocal_codec.bitstream import Container, MediaKind
    from glocal_codec.bitstream.video_params import pack_video_params
    from glocal_codec.codecs import NO_WEIGHTS, codec_id

    codec = type(open_codec(name))(epochs=1)
    p = codec.encode(x, 3)
    data = write_container(Container(codec_id(name), NO_WEIGHTS, MediaKind.VIDEO, tuple(p.shape), p.quality,
                                     pack_video_params(Fraction(25), p.params), tuple(p.streams)))
    return codec, p, data


@pytest.mark.parametrize("name", ["hnerv", "nirvana", "pfnr"])
def test_inr_codecs_stream_frames(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The neural representations render frame by frame into the output too (#36 part 4): the
    streamed frames are the collected clip's, rounded the same way, and asking for the first frame
    renders one frame, not the clip."""
    torch.manual_seed(0)
    x = torch.rand(5, 3, 32, 48)
    codec, payload, data = _inr_file(name, x)
    assert isinstance(codec, FrameStreaming)
    clip = video.decode_video(data)
    frames = np.stack(list(video.decode_video_frames(data).frames))
    assert frames.dtype == np.uint8 and frames.shape == (5, 32, 48, 3)
    from glocal_codec.yuv import to_uint8_frames

    assert np.array_equal(frames, to_uint8_frames(clip.frames))
    rendered: list[int] = []
    render = codec.render

    def counting(p, index=None):  # noqa: ANN001, ANN202 - a spy around the codec's own render
        for f in render(p, index):
            rendered.append(1)
            yield f

    monkeypatch.setattr(codec, "render", counting)
    it = codec.decode_frames(payload)
    assert next(it).shape == (32, 48, 3) and len(rendered) == 1
    assert len(list(it)) == 4 and len(rendered) == 5


def test_one_video_of_a_pfnr_file_streams_too() -> None:
    torch.manual_seed(0)
    codec, payload, data = _inr_file("pfnr", torch.rand(3, 3, 24, 32))
    data = video.append_video(data, torch.rand(2, 1, 24, 32))
    for index, shape in ((0, (3, 24, 32, 3)), (1, (2, 24, 32, 1)), (None, (2, 24, 32, 1))):
        frames = np.stack(list(video.decode_video_frames(data, index=index).frames))
        assert frames.shape == shape
        clip = video.decode_video(data, index=index).frames
        from glocal_codec.yuv import to_uint8_frames

        assert np.array_equal(frames, to_uint8_frames(clip)[..., : shape[-1]])
