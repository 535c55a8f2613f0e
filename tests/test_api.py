"""The public API: every input type, read_info, weights checks."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import glocal_codec as gc
from glocal_codec.train import trainable_codecs
from glocal_codec.bitstream import (
    Container,
    CorruptStreamError,
    LimitError,
    MediaKind,
    WeightsMismatchError,
    read_container,
    write_container,
)
from glocal_codec.codecs import NO_WEIGHTS, Payload, open_codec, register_codec, unregister_codec
from glocal_codec.errors import WeightsMissingError


def recrc(body_and_crc: bytes | bytearray) -> bytes:
    b = bytes(body_and_crc[:-4])
    return b + struct.pack("<I", zlib.crc32(b))


@pytest.fixture(scope="module")
def pixels(kodak_crop: torch.Tensor) -> np.ndarray:
    return (kodak_crop[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def test_public_names() -> None:
    assert gc.__version__ == "0.1.0"
    for name in ("encode", "decode", "decode_tensor", "read_info", "open_container", "list_codecs", "open_codec",
                 "register_codec", "BitstreamError", "UnsupportedImageError", "FileInfo", "CodecInfo"):
        assert hasattr(gc, name), name
    assert issubclass(gc.BitstreamError, ValueError)


def test_every_input_type_gives_the_same_file(pixels: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "in.png"
    Image.fromarray(pixels).save(path)
    t = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    inputs = {
        "path": path,
        "str": str(path),
        "pil": Image.fromarray(pixels),
        "numpy-uint8": pixels,
        "numpy-float": pixels.astype(np.float32) / 255,
        "tensor-chw": t.float() / 255,
        "tensor-1chw": (t.float() / 255).unsqueeze(0),
        "tensor-uint8": t,
    }
    files = {k: gc.encode(v, codec="jpeg", quality=4) for k, v in inputs.items()}
    ref = files["path"]
    assert all(f == ref for f in files.values()), [k for k, f in files.items() if f != ref]
    info = gc.read_info(ref)
    assert info.shape == (3, 96, 128) and info.quality == 4


def test_grayscale_inputs(pixels: np.ndarray) -> None:
    gray = pixels.mean(axis=2).round().astype(np.uint8)
    a = gc.encode(gray, codec="jpeg")
    b = gc.encode(Image.fromarray(gray), codec="jpeg")
    c = gc.encode(torch.from_numpy(gray)[None].float() / 255, codec="jpeg")
    d = gc.encode(gray[:, :, None], codec="jpeg")
    assert a == b == c == d
    assert gc.read_info(a).shape == (1, 96, 128)
    assert gc.decode(a).mode == "L"


@pytest.mark.parametrize(
    "bad,error",
    [
        (np.zeros((8, 8, 4), np.uint8), ValueError),
        (np.zeros((2, 8, 8, 3), np.uint8), ValueError),
        (torch.zeros(2, 3, 8, 8), ValueError),
        (torch.zeros(1, 2, 8, 8), ValueError),
        (torch.zeros(8, 8), ValueError),
        (12345, TypeError),
        (b"\x89PNG", gc.UnsupportedImageError),  # image bytes are accepted; these are truncated
        (b"", gc.UnsupportedImageError),
        (np.zeros((8, 8, 3), np.complex64), ValueError),
    ],
)
def test_bad_inputs(bad, error) -> None:
    with pytest.raises(error):
        gc.encode(bad, codec="jpeg")


def test_float_input_is_clamped() -> None:
    x = torch.full((1, 3, 16, 16), 2.0)
    x[..., :8] = -1.0
    y = gc.decode_tensor(gc.encode(x, codec="jpeg", quality=8))
    assert float(y[..., :, :6].max()) < 0.05 and float(y[..., :, 10:].min()) > 0.95


def test_decode_outputs(kodak_crop: torch.Tensor) -> None:
    data = gc.encode(kodak_crop, codec="webp")
    img = gc.decode(data)
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (128, 96)
    x = gc.decode_tensor(data, device="cpu")
    assert x.shape == (1, 3, 96, 128) and x.device.type == "cpu"
    container, codec = gc.open_container(data)
    assert codec.name == "webp" and container.shape == (3, 96, 128)
    assert gc.decode(bytearray(data)).size == (128, 96)


@pytest.mark.parametrize("name,match", [("jpeg", None), ("msh", True)])
def test_read_info(name: str, match, kodak_crop: torch.Tensor) -> None:
    data = gc.encode(kodak_crop, codec=name, quality=2)
    info = gc.read_info(data)
    assert isinstance(info, gc.FileInfo)
    assert info.codec == name and info.codec_id == {"jpeg": 1, "msh": 17}[name]
    assert info.format_version == 1 and info.media == "image"
    assert info.shape == (3, 96, 128) and info.quality == 2
    assert info.bytes == len(data)
    assert info.header_bytes == len(data) - read_container(data).payload_bytes
    assert info.bpp == 8 * len(data) / (96 * 128)
    assert info.weights_digest == open_codec(name).weights_digest(2).hex()
    assert len(info.weights_digest) == 8
    assert info.weights_match is match  # None: classical codecs have no weights
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.codec = "x"  # type: ignore[misc]


def _with_digest(data: bytes, digest: bytes) -> bytes:
    c = read_container(data)
    # layout: magic 3, version 1, codec id varint (one byte for built-ins), digest 4
    assert data[5:9] == c.weights_digest
    bad = bytearray(data)
    bad[5:9] = digest
    return recrc(bad)


def test_weights_digest_mismatch(kodak_crop: torch.Tensor) -> None:
    data = gc.encode(kodak_crop, codec="msh")
    real = read_container(data).weights_digest
    assert real != NO_WEIGHTS
    other = bytes(b ^ 0xFF for b in real)
    bad = _with_digest(data, other)
    with pytest.raises(WeightsMismatchError, match=f"{other.hex()}.*{real.hex()}"):
        gc.decode(bad)
    with pytest.raises(WeightsMismatchError):
        gc.decode_tensor(bad)
    info = gc.read_info(bad)  # info still works, and says so
    assert info.weights_match is False and info.weights_digest == other.hex()


def test_classical_file_claiming_weights_is_refused(kodak_crop: torch.Tensor) -> None:
    bad = _with_digest(gc.encode(kodak_crop, codec="jpeg"), b"\x01\x02\x03\x04")
    with pytest.raises(WeightsMismatchError, match="01020304"):
        gc.decode(bad)


def test_missing_weights_is_a_clear_error(kodak_crop: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    data = gc.encode(kodak_crop, codec="msh")
    codec = open_codec("msh")

    def missing(quality: int) -> bytes:
        raise WeightsMissingError("weights for 'msh' not found at /nowhere")

    monkeypatch.setattr(codec, "weights_digest", missing)
    with pytest.raises(WeightsMismatchError, match="not found"):
        gc.decode(data)
    assert gc.read_info(data).weights_match is None


def test_media_kind_must_match_the_codec(kodak_crop: torch.Tensor) -> None:
    c = read_container(gc.encode(kodak_crop, codec="jpeg"))
    video = write_container(Container(c.codec_id, c.weights_digest, MediaKind.VIDEO, (1, *c.shape), c.quality,
                                      c.params, c.streams))
    with pytest.raises(CorruptStreamError, match="jpeg is a image codec but the file says video"):
        gc.decode(video)


def test_video_file_through_the_image_decoder() -> None:
    """gc.decode on a (valid) video file: a BitstreamError that points to the video API."""
    videos = [c for c in gc.list_codecs(media="video") if c.weights_available]
    if not videos:
        pytest.skip("no video codec registered")
    v = videos[0]
    codec = open_codec(v.name)
    data = write_container(Container(v.codec_id, codec.weights_digest(v.default_quality), MediaKind.VIDEO,
                                      (2, 3, 16, 16), v.default_quality, b"\x19\x01", (b"frames",)))
    with pytest.raises(gc.BitstreamError, match="video"):
        gc.decode(data)
    assert gc.read_info(data).media == "video"


def test_header_shape_decides_the_output_size(kodak_crop: torch.Tensor) -> None:
    c = read_container(gc.encode(kodak_crop, codec="msh"))
    # the same latents (128 x 128 after padding) cropped to another original size
    smaller = write_container(dataclasses.replace(c, shape=(3, 90, 120)))
    assert gc.decode(smaller).size == (120, 90)


def test_decompression_bomb_guard(kodak_crop: torch.Tensor) -> None:
    c = read_container(gc.encode(kodak_crop, codec="msh"))
    # a few hundred bytes announcing 16K x 16K: refused before any decoding
    bomb = write_container(dataclasses.replace(c, shape=(3, 16384, 16384)))
    with pytest.raises(LimitError, match="16384x16384.*decode limit.*max_pixels=None"):
        gc.decode(bomb)
    assert gc.MAX_DECODE_PIXELS == 2**27  # 134 Mpixel: refuses #36's 13,000 x 13,000 PNG
    h, w = kodak_crop.shape[-2:]
    with pytest.raises(LimitError):
        gc.decode(write_container(c), max_pixels=h * w - 1)
    assert gc.decode(write_container(c), max_pixels=h * w).size == (w, h)
    assert gc.decode(write_container(c), max_pixels=None).size == (w, h)


@pytest.mark.parametrize("name", [n for n in trainable_codecs() if n != "clc"])  # clc's params: test_clc.py
def test_learned_codecs_refuse_header_params(name: str, kodak_crop: torch.Tensor) -> None:
    c = read_container(gc.encode(kodak_crop[..., :64, :64], codec=name))
    for params in (b"\x01", b"\x05", b"\x01\x00"):  # 01, the fold marker, only on a strip (test_strips.py)
        with pytest.raises(CorruptStreamError, match="codec parameters"):
            gc.decode(write_container(dataclasses.replace(c, params=params)))


class _WrongSize:
    """A plugin whose decoder ignores the header's size."""

    name = "wrong-size"
    media = "image"
    qualities = (1,)
    default_quality = 1
    description = "test plugin"

    def weights_digest(self, quality: int) -> bytes:
        return NO_WEIGHTS

    def weights_available(self) -> bool:
        return True

    def encode(self, x: torch.Tensor, quality: int) -> Payload:
        return Payload(tuple(x.shape[1:]), quality, streams=(b"x",))

    def decode(self, payload: Payload) -> torch.Tensor:
        if payload.streams[0] == b"boom":
            raise RuntimeError("something deep inside a library")
        return torch.zeros(1, 3, 5, 5)


def test_codec_errors_and_wrong_sizes_become_corrupt_stream_errors() -> None:
    register_codec("wrong-size", codec_id=1900)(_WrongSize)
    try:
        data = gc.encode(torch.rand(1, 3, 8, 8), codec="wrong-size")
        with pytest.raises(CorruptStreamError, match=r"decoded \(3, 5, 5\), the header says \(3, 8, 8\)"):
            gc.decode(data)
        c = read_container(data)
        boom = write_container(dataclasses.replace(c, streams=(b"boom",)))
        with pytest.raises(CorruptStreamError, match="wrong-size: the payload cannot be decoded.*RuntimeError"):
            gc.decode(boom)
    finally:
        unregister_codec("wrong-size")


def test_default_codec_and_quality(kodak_crop: torch.Tensor) -> None:
    data = gc.encode(kodak_crop)
    info = gc.read_info(data)
    assert info.codec == gc.DEFAULT_CODEC
    assert info.quality == open_codec(gc.DEFAULT_CODEC).default_quality


def test_encode_is_deterministic(kodak_crop: torch.Tensor) -> None:
    for name in [c.name for c in gc.list_codecs(media="image")]:
        assert gc.encode(kodak_crop, codec=name) == gc.encode(kodak_crop.clone(), codec=name), name


def test_encode_accepts_image_file_bytes(pixels: np.ndarray) -> None:
    """PNG / JPEG / WebP bytes in memory encode like the same file on disk."""
    import io

    ref = gc.encode(pixels, codec="jpeg", quality=4)
    for fmt, opts in (("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {}), ("BMP", {})):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=fmt, **opts)
        assert gc.encode(buf.getvalue(), codec="jpeg", quality=4) == ref, fmt
        assert gc.encode(bytearray(buf.getvalue()), codec="jpeg", quality=4) == ref
        assert gc.encode(memoryview(buf.getvalue()), codec="jpeg", quality=4) == ref
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    assert gc.read_info(gc.encode(buf.getvalue(), codec="webp")).shape == (3, 96, 128)
    with pytest.raises(ValueError, match=r"\.glc file already"):
        gc.encode(ref)


def test_numpy_input_is_copied_without_warning(pixels: np.ndarray) -> None:
    """A read-only array (``np.asarray`` of a PIL image) gives no torch warning and is not aliased."""
    import warnings

    frozen = np.asarray(Image.fromarray(pixels))
    assert not frozen.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = gc.encode(frozen, codec="jpeg", quality=4)
    assert data == gc.encode(pixels, codec="jpeg", quality=4)
    from glocal_codec.api import as_tensor

    arr = pixels.astype(np.float32) / 255
    x = as_tensor(arr)
    x.mul_(0)
    assert arr.max() > 0  # the caller's array is untouched
    t = torch.rand(3, 8, 8)
    y = as_tensor(t)
    y.mul_(0)
    assert t.max() > 0
    sixteen = (pixels.astype(np.uint16) * 257)
    assert gc.encode(sixteen, codec="jpeg", quality=4) == data  # uint16: 0..65535


def test_decode_accepts_a_path_or_bytes(pixels: np.ndarray, tmp_path: Path) -> None:
    data = gc.encode(pixels, codec="webp")
    f = tmp_path / "x.glc"
    f.write_bytes(data)
    ref = np.asarray(gc.decode(data))
    for src in (f, str(f), bytearray(data), memoryview(data)):
        assert np.array_equal(np.asarray(gc.decode(src)), ref), type(src)
    assert gc.decode_tensor(f).shape == (1, 3, 96, 128)
    with pytest.raises(FileNotFoundError):
        gc.decode(tmp_path / "missing.glc")
    with pytest.raises(TypeError, match="bytes of a .glc file"):
        gc.decode(12345)  # type: ignore[arg-type]


def test_docstrings_name_the_accepted_types() -> None:
    for word in ("path", "bytes", "PIL", "numpy", "torch", "refinable"):
        assert word in gc.encode.__doc__, word
    assert "path" in gc.decode.__doc__ and "bytes" in gc.decode.__doc__
    assert "msh and factorized" not in gc.encode.__doc__


def test_read_info_accepts_a_path_or_bytes(pixels: np.ndarray, tmp_path: Path) -> None:
    """``read_info`` takes what ``decode`` takes: bytes, bytearray, memoryview, str or Path."""
    data = gc.encode(pixels, codec="webp", quality=3)
    f = tmp_path / "x.glc"
    f.write_bytes(data)
    ref = gc.read_info(data)
    for src in (f, str(f), bytearray(data), memoryview(data)):
        assert gc.read_info(src) == ref, type(src)
    with pytest.raises(FileNotFoundError):
        gc.read_info(tmp_path / "missing.glc")
    with pytest.raises(TypeError, match="bytes of a .glc file"):
        gc.read_info(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif", "jpeg2000"])
def test_classical_codecs_code_8bit_pixels_as_tensors_do(name: str, pixels: np.ndarray, tmp_path: Path) -> None:
    """8-bit inputs go to the classical codecs as uint8 arrays (no torch): the same file, and the same
    decoded pixels, as through the float-tensor interface."""
    from glocal_codec.imageio import to_pil

    codec = open_codec(name)
    assert isinstance(codec, gc.codecs.Uint8Codec)
    for arr in (pixels, pixels[:, :, 1]):
        t = torch.from_numpy(np.array(arr)).float().div(255)
        t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)
        path = tmp_path / "in.png"
        Image.fromarray(arr).save(path)
        data = gc.encode(path, codec=name, quality=3)
        assert data == gc.encode(t, codec=name, quality=3) == gc.encode(Image.fromarray(arr), codec=name, quality=3)
        assert isinstance(gc.api.codec_input(path, name), np.ndarray)
        assert gc.encode(gc.api.codec_input(path, name), codec=name, quality=3) == data
        img = gc.decode(data)
        assert np.array_equal(np.asarray(img), np.asarray(to_pil(gc.decode_tensor(data)))) and img.mode == (
            "L" if arr.ndim == 2 else "RGB")
        c = read_container(data)
        payload = Payload(c.shape, c.quality, c.params, c.streams)
        x = codec.decode_uint8(payload)
        assert x.dtype == np.uint8 and torch.equal(torch.from_numpy(x.copy()).permute(2, 0, 1)[None].float() / 255,
                                                   codec.decode(payload))
    # every 8-bit value survives the float interface unchanged (v / 255 * 255 rounds back to v)
    v = torch.arange(256, dtype=torch.uint8)
    assert torch.equal((v.float().div(255.0).clamp(0, 1) * 255).round().to(torch.uint8), v)


def test_codec_input_gives_tensors_for_learned_codecs(pixels: np.ndarray) -> None:
    x = gc.api.codec_input(pixels, "msh")
    assert isinstance(x, torch.Tensor) and x.shape == (1, 3, 96, 128)
    assert gc.encode(x, codec="msh", quality=1) == gc.encode(pixels, codec="msh", quality=1)


def test_refinement_reports_progress(kodak_crop: torch.Tensor) -> None:
    """``encode(..., refine=N, progress=fn)`` calls ``fn(step, N, stats)`` after every step; the file
    is the one made without a callback."""
    seen: list[tuple] = []
    data = gc.encode(kodak_crop, codec="msh", quality=2, refine=3,
                     progress=lambda done, total, stats=None: seen.append((done, total, stats)))
    assert [(d, t) for d, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert all(s.startswith("loss ") for _, _, s in seen)
    assert data == gc.encode(kodak_crop, codec="msh", quality=2, refine=3)


def test_refinable_plugins_without_a_progress_keyword_still_work(kodak_crop: torch.Tensor) -> None:
    """A third-party Refinable written before ``progress`` existed: the API passes it only when given."""
    class OldRefinable(_WrongSize):
        def encode_refined(self, x: torch.Tensor, quality: int, steps: int) -> Payload:
            return Payload(tuple(x.shape[1:]), quality, streams=(bytes([steps]),))

    register_codec("old-refinable", codec_id=1901)(OldRefinable)
    try:
        data = gc.encode(kodak_crop, codec="old-refinable", refine=5)
        assert read_container(data).streams == (b"\x05",)
    finally:
        unregister_codec("old-refinable")
