"""Classical Pillow codecs (jpeg, webp, avif, jpeg2000): rate, round trips and bad streams."""

from __future__ import annotations

import io
import os
import random
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from glocal_codec.bitstream import MediaKind, read_container, write_container
from glocal_codec.bitstream.container import Container
from glocal_codec.bitstream.errors import BitstreamError, CorruptStreamError
from glocal_codec.codecs.base import NO_WEIGHTS, Payload
from glocal_codec.codecs.classic import AvifCodec, Jpeg2000Codec, JpegCodec, PillowImageCodec, WebpCodec
from glocal_codec.codecs.ids import CODEC_IDS

CODECS = [JpegCodec, WebpCodec, AvifCodec, Jpeg2000Codec]
DATA_DIR = Path(os.environ.get("GLOCAL_CODEC_DATA", "/work/shared/data"))


@pytest.fixture(params=CODECS, ids=lambda cls: cls.name)
def codec(request: pytest.FixtureRequest) -> PillowImageCodec:
    return request.param()


@pytest.fixture(scope="module")
def crop() -> torch.Tensor:
    """A 128 x 192 natural crop of kodim23 (parrots: edges, texture and flat areas)."""
    path = DATA_DIR / "kodak" / "kodim23.png"
    if not path.is_file():
        pytest.skip(f"Kodak data not found at {path} (set GLOCAL_CODEC_DATA)")
    arr = np.array(Image.open(path).convert("RGB"))[200:328, 300:492]
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div(255)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def _smooth(c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A synthetic smooth image (no data needed) of odd size."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(c, 1, 1, generator=g) * 6
    x = 0.5 + 0.4 * torch.sin(3 * xx + 2 * yy + phase)
    return x.unsqueeze(0).clamp(0, 1)


def test_plugin_attributes(codec: PillowImageCodec) -> None:
    assert codec.name in CODEC_IDS
    assert codec.media == "image"
    assert len(codec.qualities) >= 6
    assert list(codec.qualities) == sorted(set(codec.qualities))
    assert all(isinstance(q, int) for q in codec.qualities)
    assert codec.default_quality in codec.qualities
    assert codec.description
    assert codec.weights_available() is True
    assert all(codec.weights_digest(q) == NO_WEIGHTS for q in codec.qualities)


def test_rate_increases_with_quality(codec: PillowImageCodec, crop: torch.Tensor) -> None:
    sizes, psnrs = [], []
    for q in codec.qualities:
        payload = codec.encode(crop, q)
        assert payload.quality == q and payload.params == b"" and len(payload.streams) == 1
        sizes.append(len(payload.streams[0]))
        psnrs.append(_psnr(codec.decode(payload), crop))
    assert all(a < b for a, b in zip(sizes, sizes[1:])), f"bytes not increasing: {sizes}"
    # The top level is a high-quality setting; the lowest is visibly worse.
    assert psnrs[-1] > 35, psnrs
    assert psnrs[-1] > psnrs[0] + 6, psnrs


def test_rgb_round_trip(codec: PillowImageCodec, crop: torch.Tensor) -> None:
    payload = codec.encode(crop, codec.default_quality)
    assert payload.shape == (3, 128, 192)
    y = codec.decode(payload)
    assert y.shape == crop.shape and y.dtype == torch.float32
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    assert _psnr(y, crop) > 28
    # Decoding is deterministic.
    assert torch.equal(y, codec.decode(payload))


def test_grayscale_round_trip(codec: PillowImageCodec, crop: torch.Tensor) -> None:
    gray = crop.mean(dim=1, keepdim=True)
    payload = codec.encode(gray, codec.default_quality)
    assert payload.shape == (1, 128, 192)
    y = codec.decode(payload)
    assert y.shape == (1, 1, 128, 192) and y.dtype == torch.float32
    assert _psnr(y, gray) > 28


@pytest.mark.parametrize("c,h,w", [(3, 17, 23), (1, 9, 31), (3, 1, 1)])
def test_odd_sizes(codec: PillowImageCodec, c: int, h: int, w: int) -> None:
    x = _smooth(c, h, w)
    y = codec.decode(codec.encode(x, codec.qualities[-1]))
    assert y.shape == x.shape
    err = (y - x).abs()
    if codec.name == "jpeg2000":
        # Rate is a compression ratio: a 17x23 image at ratio 8 gets ~146 bytes, most of them
        # codestream headers, so only a coarse approximation survives. Shape is what matters.
        assert err.mean() < 0.15
    else:
        assert err.max() < 0.25


def test_out_of_range_input_is_clipped(codec: PillowImageCodec) -> None:
    x = _smooth(3, 16, 16) * 3 - 1  # values in about [-1, 2]
    y = codec.decode(codec.encode(x, codec.qualities[-1]))
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_round_trip_through_a_file(codec: PillowImageCodec, crop: torch.Tensor, tmp_path: Path) -> None:
    payload = codec.encode(crop, codec.default_quality)
    data = write_container(
        Container(
            codec_id=CODEC_IDS[codec.name],
            weights_digest=codec.weights_digest(payload.quality),
            media=MediaKind.IMAGE,
            shape=payload.shape,
            quality=payload.quality,
            params=payload.params,
            streams=payload.streams,
        )
    )
    path = tmp_path / f"crop.{codec.name}.glc"
    path.write_bytes(data)
    back = read_container(path.read_bytes())
    y = codec.decode(Payload(back.shape, back.quality, back.params, back.streams))
    assert torch.equal(y, codec.decode(payload))
    # The format's own bytes are stored unchanged: the file is the stream plus a small header.
    assert back.streams == payload.streams
    assert len(data) - len(payload.streams[0]) <= 32


@pytest.mark.parametrize("bad", [0, 9, -1, 100, 2.5, "3", None, True])
def test_invalid_quality(codec: PillowImageCodec, bad: object) -> None:
    x = _smooth(3, 8, 8)
    with pytest.raises(ValueError, match=r"quality must be one of \[1, 2, 3, 4, 5, 6, 7, 8\]"):
        codec.encode(x, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 3, 8, 8), (1, 2, 8, 8), (1, 4, 8, 8), (1, 3, 0, 8)])
def test_invalid_input_shape(codec: PillowImageCodec, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        codec.encode(torch.zeros(shape), codec.default_quality)


# -- bad streams ---------------------------------------------------------------------------


@pytest.fixture
def good(codec: PillowImageCodec, crop: torch.Tensor) -> Payload:
    return codec.encode(crop, 3)


def _with_stream(p: Payload, stream: bytes) -> Payload:
    return replace(p, streams=(stream,))


def test_garbage_stream(codec: PillowImageCodec, good: Payload) -> None:
    garbage = random.Random(1).randbytes(len(good.streams[0]))
    with pytest.raises(CorruptStreamError, match=codec.name):
        codec.decode(_with_stream(good, garbage))


def test_empty_stream(codec: PillowImageCodec, good: Payload) -> None:
    with pytest.raises(CorruptStreamError, match="empty"):
        codec.decode(_with_stream(good, b""))


@pytest.mark.parametrize("keep", [0.5, 0.9, 16])
def test_truncated_stream(codec: PillowImageCodec, good: Payload, keep: float) -> None:
    s = good.streams[0]
    n = int(keep) if keep >= 1 else int(len(s) * keep)
    with pytest.raises(CorruptStreamError):
        codec.decode(_with_stream(good, s[:n]))


def test_png_instead_of_the_format(codec: PillowImageCodec, crop: torch.Tensor, good: Payload) -> None:
    arr = (crop[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    with pytest.raises(CorruptStreamError, match=f"not a {codec.pil_format}"):
        codec.decode(_with_stream(good, buf.getvalue()))


def test_other_classic_format(codec: PillowImageCodec, crop: torch.Tensor, good: Payload) -> None:
    other = next(cls() for cls in CODECS if cls.name != codec.name)
    with pytest.raises(CorruptStreamError):
        codec.decode(_with_stream(good, other.encode(crop, 3).streams[0]))


@pytest.mark.parametrize("shape", [(3, 128, 191), (3, 127, 192), (3, 192, 128), (1, 128, 192)])
def test_mismatched_shape(codec: PillowImageCodec, good: Payload, shape: tuple[int, int, int]) -> None:
    if shape[0] == 1 and not codec.native_gray:
        pytest.skip(f"{codec.name} stores gray as RGB: a colour stream read as gray is not detectable")
    with pytest.raises(CorruptStreamError, match="header says|pixel mode"):
        codec.decode(replace(good, shape=shape))


def test_gray_stream_announced_as_rgb(codec: PillowImageCodec) -> None:
    if not codec.native_gray:
        pytest.skip(f"{codec.name} stores gray as RGB: nothing in the stream contradicts C = 3")
    gray = codec.encode(_smooth(1, 16, 24), codec.default_quality)
    with pytest.raises(CorruptStreamError, match="pixel mode"):
        codec.decode(replace(gray, shape=(3, 16, 24)))


@pytest.mark.parametrize("n", [0, 2])
def test_wrong_stream_count(codec: PillowImageCodec, good: Payload, n: int) -> None:
    with pytest.raises(CorruptStreamError, match="exactly 1 stream"):
        codec.decode(replace(good, streams=good.streams * n))


def test_unexpected_params(codec: PillowImageCodec, good: Payload) -> None:
    with pytest.raises(CorruptStreamError):
        codec.decode(replace(good, params=b"\x01"))


def test_random_corruption_never_escapes(codec: PillowImageCodec, good: Payload) -> None:
    """Flipped bytes either still decode (formats without checksums) or raise CorruptStreamError."""
    s = good.streams[0]
    rng = random.Random(zlib.crc32(codec.name.encode()))
    for _ in range(25):
        b = bytearray(s)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            y = codec.decode(_with_stream(good, bytes(b)))
        except BitstreamError as err:
            assert isinstance(err, CorruptStreamError)
        else:
            assert y.shape == (1, *good.shape)
