"""Reverse-channel coding (entropy/rcc.py): the shared generator, round trips, rate, sample
fidelity, bad streams and determinism across CPU paths."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from glocal_codec.bitstream import BitstreamError, CorruptStreamError, LimitError, TruncatedError
from glocal_codec.bitstream.errors import UnsupportedVersionError
from glocal_codec.entropy import (
    RCC_MAX_BITS,
    GaussianRCC,
    default_kl_budget,
    gaussian_kl_bits,
    philox4x32,
    plan_chunks,
    shared_normals,
)
from glocal_codec.entropy import rcc as rcc_module


def _problem(d: int, seed: int = 0, spread: float = 0.6) -> tuple[np.ndarray, ...]:
    """A posterior/prior pair with per-dimension KL between ~0 and ~4.5 bits."""
    rng = np.random.default_rng(seed)
    mu_p = rng.normal(0.0, 1.0, d)
    sigma_p = np.exp(rng.uniform(-1.0, 1.0, d))
    mu_q = mu_p + sigma_p * rng.normal(0.0, spread, d)
    sigma_q = sigma_p * np.exp(rng.uniform(np.log(0.4), 0.0, d))
    return mu_q, sigma_q, mu_p, sigma_p


# -- the generator -------------------------------------------------------------------------


def test_philox_matches_random123_known_answers() -> None:
    """Random123's kat_vectors for philox4x32 with 10 rounds (counter, key -> output)."""
    cases = [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        (
            [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
            [0xA4093822, 0x299F31D0],
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
        ),
    ]
    for counter, key, want in cases:
        assert philox4x32(np.array(counter, np.uint32), np.array(key, np.uint32)).tolist() == want
    # vectorised over a batch of counters: the same as one by one
    batch = np.array([c for c, _, _ in cases[:2]], np.uint64)
    assert philox4x32(batch, np.array([0, 0])).tolist()[0] == cases[0][2]
    with pytest.raises(ValueError):
        philox4x32(np.array([1, 2, 3]), np.array([0, 0]))
    with pytest.raises(ValueError):
        philox4x32(np.array([0, 0, 0, 1 << 32]), np.array([0, 0]))


def test_shared_normals_golden_values() -> None:
    """Pinned outputs: any change of the generator (counter layout, Box-Muller, log/sin/cos
    polynomials) changes these and would make old streams decode to other samples."""
    z = shared_normals(20240601, [0, 0, 0, 3, 7], [0, 0, 1, 4095, 65535], [0, 1, 0, 5, 12])
    assert [float(v).hex() for v in z] == [
        "-0x1.397a165085f42p-1",
        "-0x1.0d106b5aa9893p+1",
        "0x1.85c9a228760cap-6",
        "0x1.8f3659813ecddp-2",
        "-0x1.de35df740035ap+0",
    ]
    block = shared_normals(1, np.arange(4)[:, None, None], np.arange(64)[None, :, None], np.arange(33)[None, None, :])
    assert block.shape == (4, 64, 33) and block.dtype == np.float64
    assert hashlib.sha256(block.tobytes()).hexdigest() == _GOLDEN["block"]
    assert np.ndim(shared_normals(3, 0, 0, 0)) == 0
    with pytest.raises(ValueError):
        shared_normals(-1, 0, 0, 0)
    with pytest.raises(ValueError):
        shared_normals(1, 0, -1, 0)


def test_shared_normals_are_accurate_box_muller() -> None:
    """The deterministic log/cos/sin agree with libm to ~1e-15: the same Box-Muller, bit-exact."""
    n = np.arange(1 << 16, dtype=np.uint64)
    w = rcc_module._philox(n, 5, 3, 0, 7)
    z0, z1 = rcc_module._box_muller(*w)
    a = (w[0] << np.uint64(21)) | (w[1] >> np.uint64(11))
    u = (a + np.uint64(1)).astype(np.float64) * 2.0**-53
    octant = (w[2] >> np.uint64(29)).astype(np.float64)
    frac = (((w[2] & np.uint64(0x1FFFFFFF)) << np.uint64(21)) | (w[3] >> np.uint64(11))).astype(np.float64)
    phi = (octant + frac * 2.0**-50) * (np.pi / 4)
    r = np.sqrt(-2.0 * np.log(u))
    assert np.abs(z0 - r * np.cos(phi)).max() < 1e-14
    assert np.abs(z1 - r * np.sin(phi)).max() < 1e-14
    x = np.random.default_rng(0).random(10_000) * 10.0**np.random.default_rng(1).uniform(-300, 300, 10_000)
    assert np.all(np.abs(rcc_module._log_exact(x) - np.log(x)) <= 4 * np.spacing(np.abs(np.log(x))))


def test_shared_normals_are_standard_normal() -> None:
    """Fixed seed, so deterministic: 2**19 values pass a KS test against N(0, 1); neighbours
    (both halves of a Box-Muller pair, consecutive candidates and chunks) are uncorrelated."""
    z = shared_normals(12345, np.arange(8)[:, None, None], np.arange(256)[None, :, None], np.arange(256)[None, None, :])
    flat = z.ravel()
    assert stats.kstest(flat, "norm").pvalue > 0.01
    assert abs(flat.mean()) < 0.01 and abs(flat.var() - 1.0) < 0.01
    assert abs(stats.skew(flat)) < 0.02 and abs(stats.kurtosis(flat)) < 0.04
    for a, b in [(z[:, :, 0::2], z[:, :, 1::2]), (z[:, :-1], z[:, 1:]), (z[:-1], z[1:])]:
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.01


# -- planning ------------------------------------------------------------------------------


def test_gaussian_kl_bits_matches_formula() -> None:
    kl = gaussian_kl_bits(1.0, 0.5, 0.0, 1.0)
    assert kl == pytest.approx((np.log(2.0) + (0.25 + 1.0) / 2 - 0.5) / np.log(2.0))
    assert gaussian_kl_bits(0.3, 2.0, 0.3, 2.0) == 0.0


def test_plan_chunks_is_greedy_within_budget() -> None:
    kl = np.array([1.0, 2.0, 3.0, 0.5, 0.5, 4.0, 0.0, 0.0, 3.9])
    sizes = plan_chunks(kl, 4.0)
    assert sizes.tolist() == [2, 3, 3, 1]  # a chunk may end exactly at the budget
    sums = np.add.reduceat(kl, np.concatenate([[0], np.cumsum(sizes)[:-1]]))
    assert sums.max() <= 4.0
    assert plan_chunks(np.zeros(0), 4.0).size == 0
    with pytest.raises(ValueError, match="above the budget"):
        plan_chunks([1.0, 5.0], 4.0)
    assert plan_chunks([1.0, 5.0, 1.0], 4.0, strict=False).tolist() == [1, 1, 1]
    assert default_kl_budget(12) == 9.0 and default_kl_budget(4) == 2.0


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("bits,select", [(1, "sample"), (6, "sample"), (8, "greedy"), (10, "sample")])
def test_decode_reproduces_encoder_sample_bit_for_bit(bits: int, select: str) -> None:
    mu_q, sigma_q, mu_p, sigma_p = _problem(300, seed=bits, spread=0.15 if bits == 1 else 0.6)
    coder = GaussianRCC(bits, select=select, kl_budget=bits if bits < 4 else None)
    shape = (3, 10, 10)
    args = [a.reshape(shape) for a in (mu_q, sigma_q, mu_p, sigma_p)]
    res = coder.encode(*args, seed=2**64 - 1 - bits)
    out = GaussianRCC.decode(res.data, args[2], args[3], seed=2**64 - 1 - bits)
    assert out.shape == shape and out.dtype == np.float64
    assert out.tobytes() == res.sample.tobytes()  # bit-identical, not just close
    assert res.bits == 8 * len(res.data)
    assert res.chunk_sizes.sum() == 300 and res.indices.size == res.chunk_sizes.size
    assert res.indices.min() >= 0 and res.indices.max() < 1 << bits
    # another seed gives other candidates: the stream decodes, but to another value
    assert not np.array_equal(GaussianRCC.decode(res.data, args[2], args[3], seed=5), out)


def test_decoded_candidate_is_the_shared_candidate() -> None:
    """The decoder's value is exactly mu_p + sigma_p * shared_normals(seed, chunk, index, dim)."""
    mu_q, sigma_q, mu_p, sigma_p = _problem(50, seed=3)
    res = GaussianRCC(8).encode(mu_q, sigma_q, mu_p, sigma_p, seed=77)
    chunk = np.repeat(np.arange(res.chunk_sizes.size), res.chunk_sizes)
    local = np.arange(50) - np.concatenate([[0], np.cumsum(res.chunk_sizes)[:-1]])[chunk]
    z = shared_normals(77, chunk, res.indices[chunk], local)
    assert (mu_p + sigma_p * z).tobytes() == res.sample.tobytes()


def test_encoder_weights_use_the_decoders_candidates() -> None:
    """Brute force: every candidate generated point-wise, weights q/p computed from them; the
    greedy encoder must pick their arg-max, whatever its block size."""
    mu_q, sigma_q, mu_p, sigma_p = _problem(60, seed=4)
    bits = 7
    for work in (1 << 15, 97, 1):  # blocks across candidates and across chunks
        res = GaussianRCC(bits, select="greedy", work=work).encode(mu_q, sigma_q, mu_p, sigma_p, seed=9)
        start = 0
        for c, size in enumerate(res.chunk_sizes):
            sl = slice(start, start + size)
            z = shared_normals(9, c, np.arange(1 << bits)[:, None], np.arange(size)[None, :])
            x = mu_p[sl] + sigma_p[sl] * z
            logw = stats.norm.logpdf(x, mu_q[sl], sigma_q[sl]).sum(1) - stats.norm.logpdf(x, mu_p[sl], sigma_p[sl]).sum(1)
            assert res.indices[c] == np.argmax(logw)
            start += size


def test_encoding_is_deterministic_and_encoder_seed_is_private() -> None:
    mu_q, sigma_q, mu_p, sigma_p = _problem(120, seed=5)
    coder = GaussianRCC(8)
    a = coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=1)
    b = coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=1)
    c = coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=1, encoder_seed=2)
    assert a.data == b.data
    assert c.data != a.data  # other selection noise, same candidates
    assert GaussianRCC.decode(c.data, mu_p, sigma_p, seed=1).tobytes() == c.sample.tobytes()


def test_golden_streams() -> None:
    """Pinned bytes: the format, the chunk planning and the selection (sample and greedy)."""
    rng = np.random.default_rng(5)
    mu_q, sigma_q = rng.integers(-64, 64, 40) / 64, rng.integers(16, 64, 40) / 64
    for select in ("sample", "greedy"):
        res = GaussianRCC(8, kl_budget=5.0, select=select).encode(mu_q, sigma_q, np.zeros(40), np.ones(40), seed=99)
        assert res.chunk_sizes.tolist() == [8, 7, 5, 7, 7, 6]
        assert res.data.hex() == _GOLDEN[f"stream_{select}"]
        assert hashlib.sha256(res.sample.tobytes()).hexdigest() == _GOLDEN[f"sample_{select}"]


def test_hand_written_streams() -> None:
    """The documented bit layout, written by hand."""
    mu_p, sigma_p = np.zeros(5), np.ones(5)
    # 01 | 0 | 00011 (b = 4) ; gamma(3) = 011 ; gamma(base 2) = 010 ; k = 0000 ; rice(0) = 0 ;
    # indices 0101 1010 ; padding 00000  -> sizes [2, 3], indices [5, 10]
    out = GaussianRCC.decode(bytes.fromhex("43680b40"), mu_p, sigma_p, seed=4)
    want = shared_normals(4, [0, 0, 1, 1, 1], [5, 5, 10, 10, 10], [0, 1, 0, 1, 2])
    assert out.tobytes() == want.tobytes()
    # 01 | 1 | 00011 ; gamma(3) = 011 ; indices 0101 1010 ; padding: sizes known to the decoder
    out = GaussianRCC.decode(bytes.fromhex("636b40"), mu_p[:3], sigma_p[:3], seed=4, chunk_sizes=[1, 2])
    assert out.tobytes() == shared_normals(4, [0, 1, 1], [5, 10, 10], [0, 0, 1]).tobytes()


def test_known_partition_writes_no_sizes() -> None:
    mu_q, sigma_q, mu_p, sigma_p = _problem(200, seed=6)
    coder = GaussianRCC(10)
    planned = coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=3)
    known = coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=3, chunk_sizes=planned.chunk_sizes)
    assert np.array_equal(known.indices, planned.indices)
    assert known.bits < planned.bits
    assert known.bits <= known.index_bits + 8 + 2 * planned.indices.size.bit_length() + 1 + 7
    out = GaussianRCC.decode(known.data, mu_p, sigma_p, seed=3, chunk_sizes=planned.chunk_sizes)
    assert out.tobytes() == planned.sample.tobytes()
    with pytest.raises(CorruptStreamError, match="chunk_sizes"):
        GaussianRCC.decode(known.data, mu_p, sigma_p, seed=3)
    with pytest.raises(ValueError, match="budget"):  # a given partition is checked against the budget
        coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=3, chunk_sizes=[200])


def test_edge_cases_empty_and_q_equal_p() -> None:
    coder = GaussianRCC(6)
    empty = coder.encode(np.zeros(0), np.ones(0), np.zeros(0), np.ones(0), seed=1)
    assert empty.indices.size == 0 and len(empty.data) == 2
    assert GaussianRCC.decode(empty.data, np.zeros(0), np.ones(0), seed=1).shape == (0,)
    # q == p everywhere: KL 0, one chunk, a uniformly chosen candidate, which is a sample of p
    mu, sigma = np.linspace(-1, 1, 500), np.full(500, 0.5)
    same = coder.encode(mu, sigma, mu, sigma, seed=2)
    assert same.kl_bits == 0.0 and same.indices.size == 1 and len(same.data) == 3  # 8 + 3 + 6 bits
    assert GaussianRCC.decode(same.data, mu, sigma, seed=2).tobytes() == same.sample.tobytes()
    # broadcasting: scalar prior, per-element posterior
    mu_q = np.linspace(-0.5, 0.5, 64).reshape(8, 8)
    res = coder.encode(mu_q, 0.8, np.zeros((8, 8)), 1.0, seed=3)
    assert GaussianRCC.decode(res.data, np.zeros((8, 8)), 1.0, seed=3).tobytes() == res.sample.tobytes()
    with pytest.raises(ValueError, match="broadcast"):
        coder.encode(np.zeros(4), 1.0, 0.0, 1.0, seed=1)  # the decoder could not know the shape


def test_bad_arguments() -> None:
    mu_q, sigma_q, mu_p, sigma_p = _problem(10)
    for bad in (0, RCC_MAX_BITS + 1, 2.5, True):
        with pytest.raises(ValueError):
            GaussianRCC(bad)
    with pytest.raises(ValueError):
        GaussianRCC(8, select="best")
    with pytest.raises(ValueError):
        GaussianRCC(8, kl_budget=0.0)
    coder = GaussianRCC(8)
    with pytest.raises(ValueError, match="positive"):
        coder.encode(mu_q, -sigma_q, mu_p, sigma_p, seed=1)
    with pytest.raises(ValueError, match="finite"):
        coder.encode(mu_q, sigma_q, mu_p * np.nan, sigma_p, seed=1)
    with pytest.raises(ValueError, match="seed"):
        coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=1 << 64)
    with pytest.raises(ValueError, match="budget"):
        coder.encode(np.array([9.0]), np.array([0.1]), np.zeros(1), np.ones(1), seed=1)
    with pytest.raises(ValueError, match="add up"):
        coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=1, chunk_sizes=[3, 3])


# -- rate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [6, 8, 10])
def test_coded_bits_are_kl_plus_a_few_bits_per_chunk(bits: int) -> None:
    mu_q, sigma_q, mu_p, sigma_p = _problem(1000, seed=bits, spread=0.4)
    # the budget as the issue states it: KL <= b per chunk, partition known to the decoder
    tight = GaussianRCC(bits, kl_budget=bits)
    sizes = tight.plan(mu_q, sigma_q, mu_p, sigma_p)
    res = tight.encode(mu_q, sigma_q, mu_p, sigma_p, seed=1, chunk_sizes=sizes)
    c = res.indices.size
    assert res.chunk_kl.max() <= bits
    assert res.index_bits == bits * c
    assert res.bits <= res.kl_bits + 1.0 * c + 32  # packing slack only, under a bit a chunk
    # sizes written into the stream: log2(D / C) + ~2 bits a chunk on top
    res = tight.encode(mu_q, sigma_q, mu_p, sigma_p, seed=1)
    assert res.bits <= res.kl_bits + (1.0 + np.log2(1000 / c) + 2.5) * c + 32
    # the default budget (b - 3) adds the 3-bit fidelity margin
    res = GaussianRCC(bits).encode(mu_q, sigma_q, mu_p, sigma_p, seed=1)
    c = res.indices.size
    assert res.chunk_kl.max() <= bits - 3
    assert res.bits <= res.kl_bits + (4.0 + np.log2(1000 / c) + 2.5) * c + 32


# -- the decoded samples follow q ----------------------------------------------------------


def test_samples_follow_q_in_one_dimension() -> None:
    """q = N(1, 0.5^2) under p = N(0, 1) (1.18 bits), 5000 independent codings (one chunk
    each, 256 candidates): the decoded values pass a KS test against q; the greedy variant's
    do not (it returns points near q's mode, not samples: the documented trade-off)."""
    n = 5000
    args = (np.ones(n), np.full(n, 0.5), np.zeros(n), np.ones(n))
    res = GaussianRCC(8).encode(*args, seed=11, chunk_sizes=np.ones(n, np.int64))
    assert stats.kstest(res.sample, stats.norm(1.0, 0.5).cdf).pvalue > 0.01
    assert res.sample.mean() == pytest.approx(1.0, abs=0.03) and res.sample.std() == pytest.approx(0.5, abs=0.02)
    greedy = GaussianRCC(8, select="greedy").encode(*args, seed=11, chunk_sizes=np.ones(n, np.int64))
    assert stats.kstest(greedy.sample, stats.norm(1.0, 0.5).cdf).pvalue < 1e-6
    assert greedy.sample.std() < 0.1


def test_samples_follow_q_in_many_dimensions_at_the_default_budget() -> None:
    """Chunks packed to the default budget (b - 3 bits of KL): the standardised decoded values
    (x - mu_q) / sigma_q are N(0, 1) to within the small, documented bias of minimal random
    coding (slightly too wide: a few per cent of variance, see docs/rcc.md)."""
    mu_q, sigma_q, mu_p, sigma_p = _problem(4000, seed=8, spread=0.5)
    for bits, var_tol in ((8, 0.10), (10, 0.08)):
        coder = GaussianRCC(bits)
        z = np.concatenate(
            [(coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=s).sample - mu_q) / sigma_q for s in (1, 2, 3)]
        )
        assert abs(z.mean()) < 0.03
        assert 1.0 - 0.05 < z.var() < 1.0 + var_tol
        assert stats.kstest(z, "norm").statistic < 0.03


# -- bad streams ---------------------------------------------------------------------------


def _stream() -> tuple[bytes, np.ndarray, np.ndarray]:
    mu_q, sigma_q, mu_p, sigma_p = _problem(80, seed=10)
    return GaussianRCC(8).encode(mu_q, sigma_q, mu_p, sigma_p, seed=1).data, mu_p, sigma_p


def test_truncated_streams_raise_truncated_error() -> None:
    data, mu_p, sigma_p = _stream()
    for n in range(len(data)):
        with pytest.raises(TruncatedError):
            GaussianRCC.decode(data[:n], mu_p, sigma_p, seed=1)


def test_trailing_bytes_padding_and_header_fields() -> None:
    data, mu_p, sigma_p = _stream()
    with pytest.raises(CorruptStreamError, match="after the end"):
        GaussianRCC.decode(data + b"\x00", mu_p, sigma_p, seed=1)
    # the first byte: version 01, a version 00/10/11 is not this format
    for v in (0, 2, 3):
        with pytest.raises(UnsupportedVersionError):
            GaussianRCC.decode(bytes([(data[0] & 0x3F) | (v << 6)]) + data[1:], mu_p, sigma_p, seed=1)
    # an index width above the limit
    with pytest.raises(LimitError):
        GaussianRCC.decode(bytes([0x40 | 31]) + data[1:], mu_p, sigma_p, seed=1)
    # an absurd Elias-gamma prefix for the chunk count
    with pytest.raises(LimitError):
        GaussianRCC.decode(bytes([0x47]) + bytes(8), mu_p, sigma_p, seed=1)
    # more chunks than dimensions
    with pytest.raises(CorruptStreamError, match="cannot hold"):
        GaussianRCC.decode(data, mu_p[:3], sigma_p[:3], seed=1)
    # non-zero padding: the hand-written stream 43 68 0b 40 has five padding bits
    with pytest.raises(CorruptStreamError, match="padding"):
        GaussianRCC.decode(bytes.fromhex("43680b41"), np.zeros(5), np.ones(5), seed=1)
    # chunk sizes that overrun the dimensions: sizes [2, 3] read for a 2-dimensional prior
    with pytest.raises(CorruptStreamError, match="exceed"):
        GaussianRCC.decode(bytes.fromhex("43680b40"), np.zeros(2), np.ones(2), seed=1)
    # a stream made with other chunk sizes than the decoder was told
    with pytest.raises(CorruptStreamError, match="differ"):
        GaussianRCC.decode(bytes.fromhex("43680b40"), np.zeros(5), np.ones(5), seed=1, chunk_sizes=[1, 4])


def test_corrupted_streams_raise_only_bitstream_errors() -> None:
    """Every single-byte corruption either decodes (an index is any b-bit value: the .glc CRC
    catches those) to a finite array of the right shape, or raises a BitstreamError."""
    data, mu_p, sigma_p = _stream()
    rng = np.random.default_rng(0)
    outcomes = {"ok": 0, "error": 0}
    for pos in range(len(data)):
        for value in rng.integers(0, 256, 6).tolist():
            bad = bytearray(data)
            bad[pos] = value
            try:
                out = GaussianRCC.decode(bytes(bad), mu_p, sigma_p, seed=1)
            except BitstreamError:
                outcomes["error"] += 1
            else:
                assert out.shape == mu_p.shape and np.all(np.isfinite(out))
                outcomes["ok"] += 1
    assert outcomes["error"] > 0 and outcomes["ok"] > 0


def test_random_bytes_never_raise_anything_else() -> None:
    rng = np.random.default_rng(1)
    for n in range(1, 40):
        for _ in range(10):
            data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            try:
                GaussianRCC.decode(data, np.zeros(64), np.ones(64), seed=3)
            except BitstreamError:
                pass


# -- speed (structural, not timed: benchmarks/rcc.py times it) -----------------------------


def test_candidates_are_generated_in_vectorised_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Python loop per candidate: encoding 2**12 candidates for 200 dimensions calls the
    generator a few dozen times, not thousands; the decoder calls it once."""
    calls = []
    real = rcc_module._philox

    def counting(*args, **kwargs):
        calls.append(np.broadcast_shapes(*(np.shape(a) for a in args[:4])))
        return real(*args, **kwargs)

    monkeypatch.setattr(rcc_module, "_philox", counting)
    mu_q, sigma_q, mu_p, sigma_p = _problem(200, seed=12, spread=0.4)
    res = GaussianRCC(12).encode(mu_q, sigma_q, mu_p, sigma_p, seed=1)
    assert len(calls) <= 2 + 200 * 4096 // (1 << 15) * 2 + res.indices.size
    assert sum(int(np.prod(s)) for s in calls) >= 4096 * 100  # every candidate pair generated
    calls.clear()
    GaussianRCC.decode(res.data, mu_p, sigma_p, seed=1)
    assert len(calls) == 1


# -- determinism across CPU paths ----------------------------------------------------------

_SCRIPT = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    from glocal_codec.entropy import GaussianRCC, shared_normals

    def make():
        digest = lambda a: hashlib.sha256(a if isinstance(a, bytes) else a.tobytes()).hexdigest()
        rng = np.random.default_rng(2024)
        d = 600
        mu_p = rng.integers(-256, 256, d) / 128.0  # exactly representable: both sides agree
        sigma_p = rng.integers(32, 256, d) / 128.0
        mu_q = mu_p + sigma_p * rng.integers(-64, 64, d) / 128.0
        sigma_q = sigma_p * rng.integers(40, 128, d) / 128.0
        out = {"block": digest(shared_normals(1, np.arange(4)[:, None, None], np.arange(64)[None, :, None],
                                              np.arange(33)[None, None, :]))}
        for bits, select in ((8, "sample"), (10, "greedy")):
            res = GaussianRCC(bits, select=select).encode(mu_q, sigma_q, mu_p, sigma_p, seed=7)
            out[f"stream_{bits}"] = digest(res.data)
            out[f"sample_{bits}"] = digest(res.sample)
            out[f"decoded_{bits}"] = digest(GaussianRCC.decode(res.data, mu_p, sigma_p, seed=7))
        return out
    """
)


def _dispatched_cpu_features() -> list[str]:
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


@pytest.mark.slow
def test_same_candidates_and_bytes_in_another_process_with_other_cpu_paths() -> None:
    """The stand-in for another machine: NumPy's SIMD kernels switched off, torch on its
    default kernels, one thread. Candidates, streams and decoded samples are identical to
    this process's and to the pinned digests."""
    namespace: dict = {}
    exec(compile(_SCRIPT, "<rcc-determinism>", "exec"), namespace)
    here = namespace["make"]()
    env = {
        **os.environ,
        "ATEN_CPU_CAPABILITY": "default",
        "OMP_NUM_THREADS": "1",
        "NPY_DISABLE_CPU_FEATURES": " ".join(_dispatched_cpu_features()),
    }
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT + "\nimport json\nprint(json.dumps(make()))\n"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    other = json.loads(done.stdout.strip().splitlines()[-1])
    assert other == here
    assert here["block"] == _GOLDEN["block"]
    assert here["sample_8"] == here["decoded_8"] and here["sample_10"] == here["decoded_10"]
    assert {k: here[k] for k in _GOLDEN_PROCESS} == _GOLDEN_PROCESS


_GOLDEN = {
    "block": "929f652fd5fd178709b1ed7cb7aa519b42bf92dc9bd8c5340ac1f777402ea2b0",
    "stream_sample": "473943b360985ad909c840",
    "sample_sample": "f3896800b38ef03000c2ff3bc6c4f132bb15e5d030001101b47b721f02f9fe0f",
    "stream_greedy": "473943b366685ade53e030",
    "sample_greedy": "6a181c7d4bf919521561a131e97d9adc921a5ca9a8a32c77e5ac4792aa8373cd",
}
_GOLDEN_PROCESS = {
    "stream_8": "84944d7354f7754409d697ec926b6ba7c969db5ee7e26132dd34a31d8b0d65aa",
    "sample_8": "e64e0bd33ed1a84053d013974203d2f484e30cf94ebb3540b70d5b0596d147f0",
    "stream_10": "f063be1d03fbb59bdd4ca0a293c612ca80a3637da4ba4a6b80ae28d60b4f7aa9",
    "sample_10": "daaab946d37859fcaa725f9e0cc6e654778679e3b0d980cd343003e86d732e4d",
}
