"""Fuzzing the reader and every image codec's decoder with mutated and truncated files.

Every registered image codec (with weights) gets a valid base file made once from a small
crop; hypothesis then throws thousands of variants at ``read_container`` and ``gc.decode``:
truncation at any point, byte flips / insertions / deletions with the CRC *recomputed* (so the
codec's own decoder sees garbage, not just the CRC check), and re-serialised files whose
parameters, streams, shape, quality or codec id were changed. The only allowed outcomes are a
:class:`BitstreamError` or a successful decode of the shape the header announces; never another
exception, never a hang.

Budget: up to 300 decode examples per codec, fewer for a codec whose decoder is slow so that
each codec's fuzzing costs about ``GLOCAL_FUZZ_CPU_S`` (default 10) seconds of CPU, never fewer
than 50. Setting ``GLOCAL_FUZZ_EXAMPLES`` runs exactly that many per codec (e.g. 5000 for a
thorough run); ``GLOCAL_FUZZ_RANDOM=1`` draws new examples on every run instead of the fixed,
reproducible set.
"""

from __future__ import annotations

import os
import signal
import struct
import time
import zlib
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Iterator

import pytest
import torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from PIL import Image

import glocal_codec as gc
from glocal_codec.bitstream import BitstreamError, MediaKind, read_container, write_container
from glocal_codec.codecs import codec_id

EXACT = "GLOCAL_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("GLOCAL_FUZZ_EXAMPLES", "300"))
MIN_EXAMPLES = 50
CPU_BUDGET_S = float(os.environ.get("GLOCAL_FUZZ_CPU_S", "10"))
RANDOM = os.environ.get("GLOCAL_FUZZ_RANDOM", "") not in ("", "0")
#: Hard cap on the CPU time of one decode (normally tens of milliseconds): a busy hang fails
#: here even when hypothesis' wall-clock deadline cannot fire. CPU time, not wall time, so a
#: loaded machine does not make the test flaky.
TIME_CAP_S = 20.0

settings.register_profile(
    "glocal-fuzz",
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=30),  # wall clock: generous, the CPU-time cap is the strict one
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    derandomize=not RANDOM,
    database=None,
    print_blob=True,
)
FUZZ = settings.get_profile("glocal-fuzz")
CONTAINER_FUZZ = settings(FUZZ, max_examples=max(EXAMPLES * 2, 100))  # the reader alone is fast

IMAGE_CODECS = [c.name for c in gc.list_codecs(media="image") if c.weights_available]
#: Any registered codec, video ones included: a file's id may point anywhere.
ALL_CODECS = [c.name for c in gc.list_codecs()]
VIDEO_CODECS = [c.name for c in gc.list_codecs(media="video")]
_BASE: dict[str, bytes] = {}
_DECODE_CPU_S: dict[str, float] = {}


class DecodeHang(BaseException):
    """Raised by the time cap; a BaseException so no ``except Exception`` in the code can hide it."""


@contextmanager
def time_cap(seconds: float) -> Iterator[None]:
    def on_alarm(signum, frame):  # noqa: ARG001
        raise DecodeHang(f"decode used more than {seconds} s of CPU time")

    old = signal.signal(signal.SIGPROF, on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)  # process CPU time, all threads
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Fuzz with one torch thread: tiny images gain nothing from more, and with one thread the
    CPU time measured for the budget is not inflated by OpenMP workers spinning on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def base_files(kodak_crop, one_thread) -> dict[str, bytes]:
    """One valid file per codec, from a 32 x 48 crop (made once)."""
    x = kodak_crop[:, :, 20:52, 30:78].contiguous()
    for name in IMAGE_CODECS:
        if name not in _BASE:
            _BASE[name] = gc.encode(x, codec=name)
            assert gc.decode(_BASE[name]).size == (48, 32)  # also warms up the codec
            costs = []
            for _ in range(3):
                t0 = time.process_time()
                gc.decode(_BASE[name])
                costs.append(time.process_time() - t0)
            _DECODE_CPU_S[name] = min(costs)
    return _BASE


def examples_for(codec: str) -> int:
    """Examples for one codec: the full count unless its decoder would blow the CPU budget."""
    if EXACT:
        return EXAMPLES
    # a mutated file costs up to about twice the base file (larger shapes, hypothesis' own work)
    cost = 2 * max(_DECODE_CPU_S.get(codec, 0.0), 1e-3)
    return max(MIN_EXAMPLES, min(EXAMPLES, int(CPU_BUDGET_S / cost)))


def crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


# -- mutation strategies ------------------------------------------------------------------------


@st.composite
def truncated(draw, data: bytes) -> bytes:
    return data[: draw(st.integers(0, len(data) - 1))]


@st.composite
def byte_edits(draw, data: bytes) -> bytes:
    """1-8 flips / overwrites / insertions / deletions in the body; CRC recomputed (mostly)."""
    body = bytearray(data[:-4])
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(body) - 1, 0)))
        if kind == "flip" and body:
            body[pos] ^= draw(st.integers(1, 255))
        elif kind == "set" and body:
            body[pos] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif kind == "insert":
            body[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del body[pos : pos + draw(st.integers(1, 16))]
    if draw(st.integers(0, 9)) > 0:  # 9 times in 10 the CRC is made to match the garbage
        return crc(bytes(body))
    return bytes(body) + data[-4:]


@st.composite
def field_edits(draw, data: bytes) -> bytes:
    """A structurally valid file with changed codec params / streams / shape / quality / codec."""
    c = read_container(data)
    streams = list(c.streams)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(
            ["random_stream", "flip_stream", "cut_stream", "grow_stream", "swap_streams", "drop_stream",
             "dup_stream", "params", "shape", "quality", "codec", "empty_stream", "media", "as_video"]))
        i = draw(st.integers(0, max(len(streams) - 1, 0)))
        if kind == "random_stream" and streams:
            streams[i] = draw(st.binary(min_size=0, max_size=2 * len(streams[i]) + 8))
        elif kind == "flip_stream" and streams and streams[i]:
            s = bytearray(streams[i])
            for _ in range(draw(st.integers(1, 6))):
                s[draw(st.integers(0, len(s) - 1))] ^= draw(st.integers(1, 255))
            streams[i] = bytes(s)
        elif kind == "cut_stream" and streams:
            streams[i] = streams[i][: draw(st.integers(0, len(streams[i])))]
        elif kind == "grow_stream" and streams:
            streams[i] = streams[i] + draw(st.binary(min_size=1, max_size=64))
        elif kind == "swap_streams" and len(streams) > 1:
            streams.reverse()
        elif kind == "drop_stream" and streams:
            del streams[i]
        elif kind == "dup_stream" and streams:
            streams.insert(i, streams[i])
        elif kind == "empty_stream" and streams:
            streams[i] = b""
        elif kind == "params":
            c = replace(c, params=draw(st.binary(min_size=1, max_size=32)))
        elif kind == "shape":
            ch = draw(st.sampled_from([1, 2, 3, 4]))
            c = replace(c, shape=(*c.shape[:-3], ch, draw(st.integers(1, 64)), draw(st.integers(1, 64))))
        elif kind == "quality":
            c = replace(c, quality=draw(st.integers(0, 20)))
        elif kind == "codec":
            other = draw(st.sampled_from(ALL_CODECS))
            codec = gc.open_codec(other)
            try:
                digest = codec.weights_digest(draw(st.sampled_from(list(codec.qualities))))
            except Exception:  # noqa: BLE001 - a codec without installed weights
                digest = bytes(4)
            c = replace(c, codec_id=codec_id(other), weights_digest=digest)
        elif kind == "as_video" and VIDEO_CODECS and c.media is MediaKind.IMAGE:
            # an intact video file of a registered video codec, handed to the image decoder
            other = gc.open_codec(draw(st.sampled_from(VIDEO_CODECS)))
            q = draw(st.sampled_from(list(other.qualities)))
            try:
                digest = other.weights_digest(q)
            except Exception:  # noqa: BLE001
                digest = bytes(4)
            c = replace(c, codec_id=codec_id(other.name), weights_digest=digest, media=MediaKind.VIDEO,
                        shape=(draw(st.integers(1, 3)), *c.shape), quality=q)
        elif kind == "media":
            if c.media is MediaKind.IMAGE:
                c = replace(c, media=MediaKind.VIDEO, shape=(draw(st.integers(1, 3)), *c.shape))
            else:
                c = replace(c, media=MediaKind.IMAGE, shape=tuple(c.shape[1:]))
    return write_container(replace(c, streams=tuple(streams)))


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(truncated(data), byte_edits(data), field_edits(data))


# -- checks --------------------------------------------------------------------------------------


def check_decode(data: bytes) -> None:
    t0 = time.perf_counter()
    try:
        with time_cap(TIME_CAP_S):
            img = gc.decode(data)
    except BitstreamError as err:
        note(f"{type(err).__name__}: {err}")
        return
    finally:
        note(f"decode took {time.perf_counter() - t0:.3f} s")
    # success: the file must have been a valid container and the image its announced shape
    c = read_container(data)
    assert c.media is MediaKind.IMAGE
    ch, h, w = c.shape
    assert isinstance(img, Image.Image)
    assert img.size == (w, h)
    assert img.mode == ("L" if ch == 1 else "RGB")


def test_there_are_codecs_to_fuzz() -> None:
    assert {"jpeg", "webp", "avif", "jpeg2000"} <= set(IMAGE_CODECS)


@pytest.mark.slow
@pytest.mark.parametrize("codec", IMAGE_CODECS)
def test_fuzz_decode(codec: str, base_files: dict[str, bytes]) -> None:
    base = base_files[codec]

    @settings(FUZZ, max_examples=examples_for(codec))
    @given(mutations(base))
    def run(data: bytes) -> None:
        check_decode(data)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("codec", IMAGE_CODECS)
def test_fuzz_container_reader(codec: str, base_files: dict[str, bytes]) -> None:
    """The reader alone (fast): only BitstreamError, and a file that parses re-serialises exactly."""
    base = base_files[codec]

    @CONTAINER_FUZZ
    @given(st.one_of(truncated(base), byte_edits(base), st.binary(max_size=64).map(lambda b: b"GLC\x01" + b)))
    def run(data: bytes) -> None:
        try:
            c = read_container(data)
        except BitstreamError:
            return
        # only an unchanged structure parses; what parsed writes back to the same bytes unless a
        # varint was in a non-shortest form
        again = write_container(c)
        assert read_container(again) == c

    run()


@CONTAINER_FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    with pytest.raises(BitstreamError):
        gc.decode(data)


@CONTAINER_FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_behind_a_valid_header(data: bytes) -> None:
    """A correct magic, version and CRC around random bytes: the structure checks have to catch it."""
    check_decode(crc(b"GLC\x01" + data))


def test_time_cap_is_not_swallowed_by_decoders() -> None:
    """The hang guard must reach the test even through ``except Exception`` in api/codecs."""
    t0 = time.process_time()
    with pytest.raises(DecodeHang):
        with time_cap(0.05):
            while time.process_time() - t0 < 5:  # a busy loop, like a decoder that never ends
                try:
                    sum(range(1000))
                except Exception:  # noqa: BLE001
                    pass
    assert time.process_time() - t0 < 2
