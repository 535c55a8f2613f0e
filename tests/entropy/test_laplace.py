"""The integer-table Laplace coder (entropy/laplace.py): round trips pass by pass, tails of any
size, frozen tables (they define the ``overfit`` file format) and clear errors on bad streams."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from glocal_codec.bitstream import CorruptStreamError
from glocal_codec.entropy.laplace import MAX_ABS, LaplaceCoder, LaplacePassDecoder, laplace_tables
from glocal_codec.util import exp_exact


def _sample(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = laplace_tables()
    j = rng.integers(0, t.n_scales, n)
    f = rng.integers(0, t.mean_steps, n)
    r = np.round(rng.laplace((f + 0.5) / t.mean_steps - 0.5, t.scales[j])).astype(np.int64)
    return np.clip(r, -MAX_ABS, MAX_ABS), j, f


def _decode(data: bytes, j: np.ndarray, f: np.ndarray, passes: np.ndarray) -> np.ndarray:
    dec = LaplacePassDecoder(data)
    out = [dec.decode(j[passes == p], f[passes == p]) for p in np.unique(passes)]
    dec.finish()
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def test_tables_are_valid_and_frozen() -> None:
    t = laplace_tables()
    assert t.main.shape == (t.n_scales * t.mean_steps, t.alphabet) and t.excess.shape == (t.n_scales, t.alphabet)
    for tab in (t.main, t.excess):
        assert (tab >= 1).all() and (tab.sum(axis=1) == 1 << t.precision).all()
    # the tables are part of the overfit file format: any change must be deliberate
    digest = hashlib.sha256(t.main.astype("<i8").tobytes() + t.excess.astype("<i8").tobytes()).hexdigest()
    assert digest == FROZEN_TABLES, digest


def test_exp_exact_is_exp() -> None:
    x = np.linspace(-700, 30, 100_001)
    assert np.allclose(exp_exact(x), np.exp(x), rtol=1e-15, atol=0)


def test_round_trip_in_passes_with_large_tails() -> None:
    r, j, f = _sample(5000)
    r[[3, 10, 11]] = [MAX_ABS, -MAX_ABS, 95]
    passes = np.sort(np.random.default_rng(1).integers(0, 40, r.size))
    coder = LaplaceCoder()
    data = coder.encode(r, j, f, passes)
    assert np.array_equal(_decode(data, j, f, passes), r)
    # the coder's cost is the tables' cost, within a few bytes
    assert abs(8 * len(data) - coder.ideal_bits(r, j, f)) < 64


def test_empty_and_single_pass() -> None:
    coder = LaplaceCoder()
    assert _decode(coder.encode(np.zeros(0), np.zeros(0), np.zeros(0)), np.zeros(0, int), np.zeros(0, int),
                   np.zeros(0, int)).size == 0
    r, j, f = _sample(100)
    dec = LaplacePassDecoder(coder.encode(r, j, f))
    assert np.array_equal(dec.decode(j, f), r)
    dec.finish()


def test_encode_rejects_bad_input() -> None:
    coder = LaplaceCoder()
    with pytest.raises(ValueError, match="within"):
        coder.encode(np.array([MAX_ABS + 1]), np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="index"):
        coder.encode(np.array([0]), np.array([64]), np.array([0]))
    with pytest.raises(ValueError, match="non-decreasing"):
        coder.encode(np.array([0, 0]), np.array([0, 0]), np.array([0, 0]), np.array([1, 0]))


def test_damaged_streams_are_corrupt_stream_errors() -> None:
    r, j, f = _sample(2000, seed=3)
    data = LaplaceCoder().encode(r, j, f)
    with pytest.raises(CorruptStreamError, match="does not end"):
        dec = LaplacePassDecoder(data + b"\x01\x02\x03\x04" * 4)
        dec.decode(j, f)
        dec.finish()
    with pytest.raises(CorruptStreamError, match="multiple of 4"):
        LaplacePassDecoder(data[:-1])
    with pytest.raises(CorruptStreamError, match="index"):
        LaplacePassDecoder(data).decode(np.array([99]), np.array([0]))
    # anything else: a CorruptStreamError or some residuals, never another exception
    rng = np.random.default_rng(0)
    for _ in range(50):
        bad = bytearray(data)
        bad[int(rng.integers(0, len(bad)))] ^= int(rng.integers(1, 256))
        try:
            dec = LaplacePassDecoder(bytes(bad))
            assert dec.decode(j, f).shape == r.shape
            dec.finish()
        except CorruptStreamError:
            pass


FROZEN_TABLES = "987127afcf5bf591e07e1cc476fc8e77817f384fb09a2a72f0eb39590be8b166"
