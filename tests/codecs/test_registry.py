"""Every registered codec, through the public API and real files; the plugin registry itself.

The codec tests are parametrised over ``gc.list_codecs()``, so a codec is tested the moment it
registers: round trip through a file on disk, rate from the file size, a quality floor,
monotonic rate, odd sizes, grayscale, and truncated / corrupted files.
"""

from __future__ import annotations

import logging
import struct
import sys
import textwrap
import zlib
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import UNTRAINED

import glocal_codec as gc
from glocal_codec.bitstream import (
    BitstreamError,
    ChecksumError,
    CorruptStreamError,
    TruncatedError,
    UnknownCodecError,
    read_container,
    write_container,
)
from glocal_codec.codecs import (
    CODEC_IDS,
    CODEC_NAMES,
    ENTRY_POINT_GROUP,
    NO_WEIGHTS,
    THIRD_PARTY_MIN_ID,
    Codec,
    Payload,
    codec_id,
    codec_name,
    load_entry_points,
    open_codec,
    register_codec,
    unregister_codec,
)
from glocal_codec.eval.metrics import psnr

ALL = [c.name for c in gc.list_codecs()]
CLASSIC = {"jpeg", "webp", "avif", "jpeg2000"}
QUALITY_FLOOR_DB = 26.0


def floor_db(name: str) -> float:
    """The PSNR floor at the default level: 26 dB, or the codec's own ``psnr_floor_db`` in its
    weights manifest entry -- codecs built for extreme rates (``vq``, ``dualrep``: under 0.05 bpp,
    a fifth of JPEG's lowest level, tuned for LPIPS) state theirs there, so a new family needs
    no edit here."""
    from glocal_codec.weights import manifest_entry

    return float(manifest_entry(name).get("psnr_floor_db", QUALITY_FLOOR_DB))


def image_codec(name: str) -> Codec:
    """The codec, or a skip saying why it cannot run here."""
    c = open_codec(name)
    if c.media != "image":
        pytest.skip(f"{name} is a {c.media} codec")
    if not c.weights_available():
        pytest.skip(f"{name}: weights not installed")
    return c


def recrc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


# -- every codec, through real files ------------------------------------------------------------


def test_registry_lists_the_builtin_codecs() -> None:
    assert {"jpeg", "webp", "avif", "jpeg2000", "factorized", "msh"} <= set(ALL)
    assert gc.DEFAULT_CODEC in ALL


@pytest.mark.parametrize("name", ALL)
def test_codec_follows_the_protocol(name: str) -> None:
    c = open_codec(name)
    assert isinstance(c, Codec)
    assert c.name == name
    assert c.media in ("image", "video")
    qs = list(c.qualities)
    assert qs and qs == sorted(set(qs)) and all(isinstance(q, int) for q in qs)
    assert c.default_quality in qs
    assert c.description
    assert open_codec(name) is c  # cached instance
    info = next(i for i in gc.list_codecs() if i.name == name)
    assert info.codec_id == codec_id(name) and codec_name(info.codec_id) == name
    assert info.qualities == tuple(qs) and info.default_quality == c.default_quality
    if c.weights_available():
        digest = c.weights_digest(c.default_quality)
        assert isinstance(digest, bytes) and len(digest) == 4
        if name in CLASSIC:
            assert digest == NO_WEIGHTS


@pytest.mark.parametrize("name", ALL)
def test_round_trip_through_a_real_file(name: str, kodak_crop: torch.Tensor, tmp_path: Path) -> None:
    c = image_codec(name)
    data = gc.encode(kodak_crop, codec=name)
    assert isinstance(data, bytes)
    path = tmp_path / f"crop.{name}.glc"
    path.write_bytes(data)
    back = path.read_bytes()
    img = gc.decode(back)
    assert img.size == (128, 96) and img.mode == "RGB"
    x = gc.decode_tensor(back)
    assert x.shape == (1, 3, 96, 128) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    # the PIL image is the tensor rounded to 8 bits
    assert np.array_equal(np.asarray(img), (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    info = gc.read_info(back)
    assert info.codec == name and info.codec_id == CODEC_IDS.get(name, info.codec_id)
    assert info.shape == (3, 96, 128) and info.media == "image" and info.quality == c.default_quality
    assert info.bytes == len(data) == path.stat().st_size
    assert info.bpp == 8 * len(data) / (96 * 128)
    assert info.header_bytes <= 32
    assert info.weights_digest == c.weights_digest(c.default_quality).hex()
    # decoding is deterministic
    assert torch.equal(gc.decode_tensor(back), x)


@pytest.mark.parametrize("name", ALL)
def test_quality_floor_at_the_default_quality(name: str, kodak_crop: torch.Tensor) -> None:
    image_codec(name)
    if name in UNTRAINED:
        pytest.skip(f"{name} runs on untrained stand-in weights in this checkout (no quality to hold)")
    x = gc.decode_tensor(gc.encode(kodak_crop, codec=name))
    assert psnr(x, kodak_crop) > floor_db(name)


@pytest.mark.parametrize("name", ALL)
def test_more_bytes_at_higher_quality(name: str, kodak_crop: torch.Tensor) -> None:
    c = image_codec(name)
    if name in UNTRAINED:
        pytest.skip(f"{name} runs on untrained stand-in weights: its rate does not follow the quality yet")
    sizes = [len(gc.encode(kodak_crop, codec=name, quality=q)) for q in c.qualities]
    assert all(a < b for a, b in zip(sizes, sizes[1:])), f"{name}: bytes per quality {sizes}"
    first, last = (gc.decode_tensor(gc.encode(kodak_crop, codec=name, quality=q)) for q in (c.qualities[0], c.qualities[-1]))
    assert psnr(last, kodak_crop) > psnr(first, kodak_crop)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("channels", [3, 1], ids=["rgb", "gray"])
@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (3, 200)])
def test_odd_and_tiny_sizes_keep_their_size(name: str, channels: int, h: int, w: int) -> None:
    image_codec(name)
    g = torch.Generator().manual_seed(h * 1000 + w)
    x = torch.rand(1, channels, h, w, generator=g)
    data = gc.encode(x, codec=name)
    assert read_container(data).shape == (channels, h, w)
    y = gc.decode_tensor(data)
    assert y.shape == (1, channels, h, w)
    img = gc.decode(data)
    assert img.size == (w, h) and img.mode == ("L" if channels == 1 else "RGB")


@pytest.mark.parametrize("name", ALL)
def test_grayscale_in_grayscale_out(name: str, kodak_crop: torch.Tensor) -> None:
    image_codec(name)
    gray = kodak_crop.mean(dim=1, keepdim=True)
    data = gc.encode(gray, codec=name)
    assert gc.read_info(data).shape == (1, 96, 128)
    img = gc.decode(data)
    assert img.mode == "L" and img.size == (128, 96)
    if name not in UNTRAINED:
        assert psnr(gc.decode_tensor(data), gray) > floor_db(name)


@pytest.fixture(scope="module")
def small_files(kodak_crop: torch.Tensor) -> dict[str, bytes]:
    x = kodak_crop[:, :, :32, :48].contiguous()
    return {n: gc.encode(x, codec=n) for n in ALL if open_codec(n).media == "image" and open_codec(n).weights_available()}


@pytest.mark.parametrize("name", ALL)
def test_every_truncation_is_a_bitstream_error(name: str, small_files: dict[str, bytes]) -> None:
    image_codec(name)
    data = small_files[name]
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            gc.decode(data[:n])
    for n in range(4, len(data)):
        with pytest.raises(TruncatedError):
            gc.decode(data[:n])


@pytest.mark.parametrize("name", ALL)
def test_corrupted_files(name: str, small_files: dict[str, bytes]) -> None:
    image_codec(name)
    data = small_files[name]
    c = read_container(data)
    # a flipped byte anywhere after the header: the CRC catches it
    for pos in range(len(data) - len(c.streams[-1]) - 4, len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        with pytest.raises(BitstreamError, match="CRC"):
            gc.decode(bytes(bad))
    flipped = bytearray(data)
    assert c.streams[-1]
    flipped[-5] ^= 1  # the last payload byte, just before the CRC
    with pytest.raises(ChecksumError):
        gc.decode(bytes(flipped))
    # intact container, broken payload: the codec itself must refuse it
    for streams, error in [((), CorruptStreamError), (c.streams + (b"extra",), CorruptStreamError),
                           (tuple(b"" for _ in c.streams), BitstreamError)]:
        bad = write_container(c.__class__(c.codec_id, c.weights_digest, c.media, c.shape, c.quality, c.params, streams))
        with pytest.raises(error):
            gc.decode(bad)
    # a quality the codec does not have
    bad = write_container(c.__class__(c.codec_id, c.weights_digest, c.media, c.shape, 999, c.params, c.streams))
    with pytest.raises(CorruptStreamError, match="no quality level 999"):
        gc.decode(bad)


@pytest.mark.parametrize("name", ALL)
def test_random_payload_corruption_with_a_valid_crc(name: str, small_files: dict[str, bytes]) -> None:
    """Garbage inside a CRC-valid file: a BitstreamError or an image of the announced shape."""
    image_codec(name)
    data = small_files[name]
    rng = np.random.default_rng(codec_id(name))
    header = len(data) - read_container(data).payload_bytes - 4
    for _ in range(30):
        bad = bytearray(data)
        for pos in rng.integers(header, len(data) - 4, size=int(rng.integers(1, 6))):
            bad[pos] = int(rng.integers(0, 256))
        try:
            img = gc.decode(recrc(bytes(bad)))
        except BitstreamError:
            continue
        assert img.size == (48, 32)


def test_unknown_codec_and_bad_quality() -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(UnknownCodecError, match="unknown codec 'nope'.*jpeg"):
        gc.encode(x, codec="nope")
    with pytest.raises(UnknownCodecError):
        open_codec("nope")
    with pytest.raises(ValueError, match="quality must be one of"):
        gc.encode(x, codec="jpeg", quality=99)


# -- the id table ---------------------------------------------------------------------------------


def test_id_table_is_unique_and_frozen() -> None:
    assert len(set(CODEC_IDS.values())) == len(CODEC_IDS)
    assert dict(CODEC_NAMES) == {v: k for k, v in CODEC_IDS.items()}
    assert all(0 < i < THIRD_PARTY_MIN_ID for i in CODEC_IDS.values())
    with pytest.raises(TypeError):
        CODEC_IDS["new"] = 99  # type: ignore[index]
    # ids written into existing files: never renumbered
    assert {k: CODEC_IDS[k] for k in ("jpeg", "webp", "avif", "jpeg2000", "factorized", "msh")} == {
        "jpeg": 1, "webp": 2, "avif": 3, "jpeg2000": 4, "factorized": 16, "msh": 17}


def test_registered_codecs_use_their_table_ids_and_list_in_id_order() -> None:
    infos = gc.list_codecs()
    assert [i.codec_id for i in infos] == sorted(i.codec_id for i in infos)
    assert len({i.codec_id for i in infos}) == len(infos)
    for i in infos:
        if i.name in CODEC_IDS:
            assert i.codec_id == CODEC_IDS[i.name]
        else:
            assert i.codec_id >= THIRD_PARTY_MIN_ID
    assert {i.name for i in gc.list_codecs(media="image")} <= {i.name for i in infos}
    assert all(i.media == "image" for i in gc.list_codecs(media="image"))


def test_builtin_name_cannot_take_another_id() -> None:
    with pytest.raises(ValueError, match="fixed id 17"):
        register_codec("msh", codec_id=2000)(TinyCodec)
    assert codec_id("msh") == 17 and open_codec("msh").name == "msh"


@pytest.mark.parametrize("cid", [0, 5, 17, 1023])
def test_third_party_ids_below_the_reserved_range_are_rejected(cid: int) -> None:
    with pytest.raises(ValueError, match=f">= {THIRD_PARTY_MIN_ID}"):
        register_codec("someone-elses", codec_id=cid)(TinyCodec)
    assert "someone-elses" not in {c.name for c in gc.list_codecs()}


def test_unknown_name_without_an_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="not in the built-in id table"):
        register_codec("someone-elses")(TinyCodec)


# -- third-party plugins ---------------------------------------------------------------------------


class TinyCodec:
    """A minimal third-party codec: 8-bit pixels through zlib (lossy at quality 1)."""

    name = "tiny"
    codec_id = 1500
    media = "image"
    qualities = (1, 2)
    default_quality = 2
    description = "test plugin: zlib-compressed pixels"

    def weights_digest(self, quality: int) -> bytes:
        return NO_WEIGHTS

    def weights_available(self) -> bool:
        return True

    def encode(self, x: torch.Tensor, quality: int) -> Payload:
        arr = (x[0].clamp(0, 1) * 255).round().to(torch.uint8)
        if quality == 1:
            arr = arr // 8 * 8
        return Payload(tuple(x.shape[1:]), quality, params=bytes([quality]),
                       streams=(zlib.compress(arr.numpy().tobytes(), 9),))

    def decode(self, payload: Payload) -> torch.Tensor:
        c, h, w = payload.shape
        if len(payload.streams) != 1 or payload.params != bytes([payload.quality]):
            raise CorruptStreamError("tiny: bad stream layout")
        d = zlib.decompressobj()
        try:
            raw = d.decompress(payload.streams[0], c * h * w + 1)  # never inflate a bomb
        except zlib.error as err:
            raise CorruptStreamError(f"tiny: {err}") from None
        if len(raw) != c * h * w:
            raise CorruptStreamError("tiny: wrong pixel count")
        arr = np.frombuffer(raw, np.uint8).reshape(c, h, w)
        return torch.from_numpy(arr.copy()).float().div(255).unsqueeze(0)


@pytest.fixture
def tiny():
    register_codec("tiny", codec_id=TinyCodec.codec_id)(TinyCodec)
    yield open_codec("tiny")
    unregister_codec("tiny")


def test_third_party_codec_round_trips_through_the_container(tiny, kodak_crop: torch.Tensor, tmp_path: Path) -> None:
    assert "tiny" in {c.name for c in gc.list_codecs()}
    assert codec_id("tiny") == 1500 and codec_name(1500) == "tiny"
    data = gc.encode(kodak_crop, codec="tiny")
    (tmp_path / "t.glc").write_bytes(data)
    back = (tmp_path / "t.glc").read_bytes()
    c = read_container(back)
    assert c.codec_id == 1500 and c.params == b"\x02"
    # ids >= 1024 take two varint bytes; the header stays small
    assert len(back) - c.payload_bytes <= 32
    x = gc.decode_tensor(back)
    assert torch.equal((x * 255).round(), (kodak_crop * 255).round())  # quality 2 is lossless
    assert gc.read_info(back).codec == "tiny"
    lossy = gc.decode_tensor(gc.encode(kodak_crop, codec="tiny", quality=1))
    assert 0 < float((lossy - kodak_crop).abs().max()) < 8 / 255 + 1e-6
    # the plugin's own errors arrive as BitstreamErrors
    with pytest.raises(CorruptStreamError, match="tiny"):
        gc.decode(write_container(c.__class__(1500, NO_WEIGHTS, c.media, c.shape, 2, b"\x02", (b"not zlib",))))


def test_unregistered_codec_files_are_unknown(kodak_crop: torch.Tensor) -> None:
    register_codec("tiny", codec_id=1500)(TinyCodec)
    try:
        data = gc.encode(kodak_crop, codec="tiny")
    finally:
        unregister_codec("tiny")
    assert "tiny" not in {c.name for c in gc.list_codecs()}
    with pytest.raises(UnknownCodecError, match="unknown codec id 1500"):
        gc.decode(data)
    unregister_codec("tiny")  # unregistering twice is harmless


def test_third_party_id_collision(tiny) -> None:
    with pytest.raises(ValueError, match="already taken by 'tiny'"):
        register_codec("tiny2", codec_id=1500)(TinyCodec)


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An importable third-party package with a good, a self-registering and an id-less plugin."""
    (tmp_path / "glc_test_plugin.py").write_text(textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_registry import TinyCodec

        class GoodCodec(TinyCodec):
            name = "ep-good"
            codec_id = 1601

        class NoIdCodec2:
            name = "ep-noid"
        """))
    (tmp_path / "glc_test_selfreg.py").write_text(textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_registry import TinyCodec
        from glocal_codec.codecs import register_codec

        @register_codec("ep-self", codec_id=1602)
        class SelfCodec(TinyCodec):
            name = "ep-self"
            codec_id = 1602
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("ep-good", "ep-self", "ep-noid", "ep-broken"):
        unregister_codec(name)
    for mod in ("glc_test_plugin", "glc_test_selfreg"):
        sys.modules.pop(mod, None)


def test_entry_points(plugin_module, caplog: pytest.LogCaptureFixture, kodak_crop: torch.Tensor) -> None:
    eps = [
        EntryPoint(name="ep-good", value="glc_test_plugin:GoodCodec", group=ENTRY_POINT_GROUP),
        EntryPoint(name="ep-broken", value="glc_no_such_module_anywhere:Codec", group=ENTRY_POINT_GROUP),
        EntryPoint(name="ep-noid", value="glc_test_plugin:NoIdCodec2", group=ENTRY_POINT_GROUP),
        EntryPoint(name="ep-self", value="glc_test_selfreg", group=ENTRY_POINT_GROUP),
    ]
    with caplog.at_level(logging.WARNING, logger="glocal_codec.codecs.registry"):
        loaded = load_entry_points(eps)
    assert loaded == ["ep-good", "ep-self"]
    names = {c.name for c in gc.list_codecs()}
    assert {"ep-good", "ep-self"} <= names and not {"ep-broken", "ep-noid"} & names
    assert "'ep-broken' failed to load" in caplog.text
    assert "'ep-noid' has no codec_id" in caplog.text
    assert codec_id("ep-good") == 1601 and codec_id("ep-self") == 1602
    # the loaded plugin works end to end
    assert gc.decode(gc.encode(kodak_crop, codec="ep-good")).size == (128, 96)
    # the built-in codecs are untouched by the broken plugin
    assert {"jpeg", "msh"} <= names


def test_entry_point_with_a_reserved_id_is_rejected(plugin_module, caplog: pytest.LogCaptureFixture) -> None:
    (Path(sys.path[0]) / "glc_test_lowid.py").write_text(textwrap.dedent(
        """
        class LowId:
            codec_id = 7
        """))
    ep = EntryPoint(name="ep-lowid", value="glc_test_lowid:LowId", group=ENTRY_POINT_GROUP)
    with caplog.at_level(logging.WARNING, logger="glocal_codec.codecs.registry"):
        assert load_entry_points([ep]) == []
    assert "'ep-lowid' rejected" in caplog.text
    sys.modules.pop("glc_test_lowid", None)
