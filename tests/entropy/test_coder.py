"""Entropy coding: GaussianCoder / TableCoder round trips, escapes, bad streams, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import glocal_codec as gc
from glocal_codec.bitstream import BitstreamError, CorruptStreamError, TruncatedError
from glocal_codec.entropy import GaussianCoder, TableCoder, default_scale_table, ideal_bits_gaussian

RNG_SEEDS = [0, 1, 2]


# -- GaussianCoder ---------------------------------------------------------------------------


def test_documented_example_bytes() -> None:
    """docs/bitstream.md spells out this stream byte by byte; the format must not drift."""
    data = GaussianCoder().encode(np.array([0, 1, -300, 2, 1000]), np.array([10] * 5))
    assert data.hex() == "02" "02d704" "02d00f" "46b52dd5" "74ecdd6a" "00dc30d5"
    assert GaussianCoder().decode(data, np.array([10] * 5)).tolist() == [0, 1, -300, 2, 1000]


def test_scale_table_and_index() -> None:
    t = default_scale_table()
    assert t.shape == (64,) and t.dtype == np.float64
    assert t[0] == pytest.approx(0.11) and t[-1] == pytest.approx(256.0)
    assert np.all(np.diff(t) > 0)
    coder = GaussianCoder()
    idx = coder.scale_index(np.array([0.0, 0.11, 0.1100001, 1.0, 256.0, 1e9, -5.0]))
    assert idx.dtype == np.int32
    assert idx.tolist()[:2] == [0, 0] and idx[2] == 1
    assert t[idx[3]] >= 1.0 > t[idx[3] - 1]
    assert idx[4] == 63 and idx[5] == 63 and idx[6] == 0


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_gaussian_round_trip_with_escapes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    coder = GaussianCoder()
    shape = (1, 8, 5, 7)
    indexes = rng.integers(0, 64, size=shape)
    symbols = np.round(rng.normal(size=shape) * coder.scale_table[indexes]).astype(np.int64)
    # values far outside the alphabet [-255, 255] go through the escape list
    symbols.flat[[0, 17, 100, len(symbols.flat) - 1]] = [256, -256, 10**6, -(10**9)]
    data = coder.encode(symbols, indexes)
    back = coder.decode(data, indexes)
    assert back.shape == (symbols.size,)
    assert np.array_equal(back, symbols.reshape(-1))
    # decoding takes any layout of the same indexes (vectorised API: arrays of any shape)
    assert np.array_equal(coder.decode(data, indexes.reshape(-1)), back)


def test_gaussian_rate_is_close_to_the_ideal() -> None:
    rng = np.random.default_rng(3)
    coder = GaussianCoder()
    indexes = rng.integers(10, 40, size=20_000)
    stds = coder.scale_table[indexes]
    symbols = np.round(rng.normal(size=20_000) * stds).astype(np.int64)
    data = coder.encode(symbols, indexes)
    ideal = ideal_bits_gaussian(symbols, stds)
    assert ideal / 8 <= len(data) <= ideal / 8 * 1.01 + 16


def test_gaussian_empty() -> None:
    coder = GaussianCoder()
    data = coder.encode(np.zeros(0, np.int64), np.zeros(0, np.int32))
    assert data == b"\x00"
    assert coder.decode(data, np.zeros((1, 0, 4, 4), np.int32)).shape == (0,)


def test_gaussian_only_escapes_with_a_small_bound() -> None:
    coder = GaussianCoder(bound=2)
    symbols = np.array([-3, 3, 0, 7, -2])
    data = coder.encode(symbols, np.zeros(5, np.int32))
    assert np.array_equal(coder.decode(data, np.zeros(5, np.int32)), symbols)


@pytest.mark.parametrize("bad", [2**31, -(2**31) - 1, 2**40, 2**62])
def test_symbols_beyond_32_bits_are_refused(bad: int) -> None:
    """Decoded symbols are int32: the encoder must not write what cannot come back."""
    with pytest.raises(ValueError, match="32-bit"):
        GaussianCoder().encode(np.array([0, bad]), np.array([3, 3]))
    with pytest.raises(ValueError, match="32-bit"):
        TableCoder(np.ones((1, 5)) / 5, np.array([0])).encode(np.array([bad]), np.array([0]))
    extreme = np.array([2**31 - 1, -(2**31)])
    coder = GaussianCoder()
    assert coder.decode(coder.encode(extreme, np.zeros(2, np.int32)), np.zeros(2, np.int32)).tolist() == extreme.tolist()


def test_garbage_words_never_escape_as_another_error() -> None:
    rng = np.random.default_rng(11)
    coder = GaussianCoder()
    indexes = rng.integers(0, 64, size=300)
    for _ in range(200):
        data = b"\x00" + rng.bytes(4 * int(rng.integers(0, 12)))
        try:
            out = coder.decode(data, indexes)
        except CorruptStreamError:
            continue
        assert out.shape == (300,)


def test_gaussian_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same size"):
        GaussianCoder().encode(np.zeros(5), np.zeros(4, np.int32))


# -- TableCoder ------------------------------------------------------------------------------


def _tables(rng: np.random.Generator, k: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    pmf = rng.random((k, length)) ** 3 + 1e-4
    pmf /= pmf.sum(1, keepdims=True)
    offsets = rng.integers(-20, 5, size=k)
    return pmf, offsets


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_table_round_trip_with_escapes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pmf, offsets = _tables(rng, 6, 31)
    coder = TableCoder(pmf, offsets)
    assert coder.channels == 6
    channels = rng.integers(0, 6, size=(3, 50))
    symbols = offsets[channels] + rng.integers(0, 31, size=channels.shape)
    # below the channel's offset and beyond its table: escapes (stored relative to the offset)
    symbols[0, 0] = offsets[channels[0, 0]] - 1
    symbols[1, 7] = offsets[channels[1, 7]] + 31
    symbols[2, 9] = 10**7
    symbols[2, 10] = -(10**7)
    data = coder.encode(symbols, channels)
    back = coder.decode(data, channels)
    assert back.dtype == np.int32
    assert np.array_equal(back, symbols.reshape(-1))


def test_table_round_trip_on_a_latent_layout() -> None:
    """The layout the learned codecs use: a (1, C, H, W) latent, channel-major."""
    rng = np.random.default_rng(5)
    pmf, _ = _tables(rng, 4, 15)
    coder = TableCoder(pmf, np.full(4, -7))
    latent = rng.integers(-9, 10, size=(1, 4, 3, 5))
    channels = np.repeat(np.arange(4), 15)
    assert np.array_equal(coder.decode(coder.encode(latent, channels), channels), latent.reshape(-1))


def test_table_unused_channels_and_empty() -> None:
    rng = np.random.default_rng(7)
    pmf, offsets = _tables(rng, 5, 9)
    coder = TableCoder(pmf, offsets)
    channels = np.array([3, 3, 3])
    symbols = offsets[3] + np.array([0, 8, 4])
    assert np.array_equal(coder.decode(coder.encode(symbols, channels), channels), symbols)
    empty = coder.encode(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert empty == b"\x00"
    assert coder.decode(empty, np.zeros(0, np.int64)).shape == (0,)


def test_table_needs_one_offset_per_row() -> None:
    with pytest.raises(ValueError, match="one offset per row"):
        TableCoder(np.ones((3, 4)) / 4, np.zeros(2))
    with pytest.raises(ValueError):
        TableCoder(np.ones(4) / 4, np.zeros(1))


def test_a_likely_symbol_costs_little() -> None:
    pmf = np.array([[0.001, 0.998, 0.001]])
    coder = TableCoder(pmf, np.array([-1]))
    data = coder.encode(np.zeros(8000, np.int64), np.zeros(8000, np.int64))
    assert len(data) < 8000 * 0.02 / 8 + 16  # about 0.003 bits per symbol


# -- bad streams -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,error,match",
    [
        (b"", TruncatedError, "escape count"),
        (b"\x05", CorruptStreamError, "escape count 5 exceeds"),
        (b"\x01\x0a\x00", CorruptStreamError, "escape position beyond"),
        (b"\x01\x01", TruncatedError, "escape value"),
        (b"\x01", TruncatedError, "escape position"),
        (b"\x00\x01\x02\x03", CorruptStreamError, "multiple of 4"),
        (b"\x01\x00\x80\x80\x80\x80\x20", CorruptStreamError, "32-bit range"),
        (b"\x00" + b"\xff" * 12, CorruptStreamError, "invalid for its model"),
    ],
)
@pytest.mark.parametrize("which", ["gaussian", "table"])
def test_bad_streams(data: bytes, error, match, which: str) -> None:
    n = 4
    if which == "gaussian":
        coder, side = GaussianCoder(), np.full(n, 20, np.int32)
    else:
        coder, side = TableCoder(np.full((2, 7), 1 / 7), np.array([-3, -3])), np.array([0, 1, 0, 1])
    with pytest.raises(error, match=match):
        coder.decode(data, side)
    assert issubclass(error, BitstreamError)


# -- determinism across thread counts --------------------------------------------------------


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield n
    torch.set_num_threads(n)


@pytest.mark.slow
def test_msh_is_bit_exact_across_thread_counts(kodak_crop: torch.Tensor, restore_threads: int) -> None:
    """Same file -> same latents, scale indices and pixels whether torch uses 1 thread or many."""
    codec = gc.open_codec("msh")
    model = codec.model
    q = codec.default_quality
    counts = sorted({1, restore_threads, max(restore_threads, 2) * 2})
    runs = {}
    for n in counts:
        torch.set_num_threads(n)
        payload = codec.encode(kodak_crop, q)
        # kodak_crop is 96 x 128, padded to 128 x 128 (multiples of 64): y is 8 x 8, z is 2 x 2
        latent = (1, model.cfg.m, 8, 8)
        with torch.inference_mode():
            y_hat = model.decompress(list(payload.streams), latent, q - 1)
            z_shape = (1, model.cfg.n, 2, 2)
            z_sym = model.table_coder(q - 1).decode(payload.streams[0], model.channel_index(z_shape))
            idx, _ = model.entropy_parameters(torch.from_numpy(z_sym.reshape(z_shape)))
        pixels = np.asarray(gc.decode(gc.encode(kodak_crop, codec="msh", quality=q)), dtype=np.int16)
        runs[n] = (payload.streams, y_hat, idx, pixels)
    ref_streams, ref_y, ref_idx, ref_px = runs[counts[0]]
    for n in counts[1:]:
        streams, y_hat, idx, px = runs[n]
        assert streams == ref_streams, f"encoder output differs with {n} threads"
        assert torch.equal(y_hat, ref_y), f"decoded latents differ with {n} threads"
        assert np.array_equal(idx, ref_idx), f"scale indices differ with {n} threads"
        assert np.abs(px - ref_px).max() <= 1, f"pixels differ by more than one level with {n} threads"
    assert torch.get_num_threads() == counts[-1]  # the fixture restores it afterwards


def test_decoding_one_file_under_different_thread_counts(kodak_crop: torch.Tensor, restore_threads: int) -> None:
    data = gc.encode(kodak_crop, codec="msh")
    out = {}
    for n in sorted({1, restore_threads, 4}):
        torch.set_num_threads(n)
        out[n] = np.asarray(gc.decode(data), dtype=np.int16)
    ref = out[1]
    for n, px in out.items():
        assert px.shape == ref.shape
        assert np.abs(px - ref).max() <= 1, n
