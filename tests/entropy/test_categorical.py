"""CategoricalCoder and its integer tables: quantisation, round trips, rate, bad streams, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from glocal_codec.bitstream import CorruptStreamError
from glocal_codec.entropy import MAX_PRECISION, CategoricalCoder, pmf_from_logits, quantize_pmf
from glocal_codec.util import exp_exact as _exp_deterministic


def _tables(rng: np.random.Generator, rows: int, k: int, precision: int = 16) -> np.ndarray:
    """Peaked, varied tables (logits on a 1/64 grid, so they are exactly reproducible)."""
    logits = rng.integers(-256, 256, size=(rows, k)) / 64.0
    return pmf_from_logits(logits, precision)


def _sample(rng: np.random.Generator, tables: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One symbol per entry of ``rows``, drawn from ``tables[rows]`` (vectorised, per row)."""
    cdf = np.cumsum(tables, axis=1)
    u = rng.integers(0, cdf[0, -1], size=rows.size)
    out = np.empty(rows.size, np.int64)
    for r in np.unique(rows):
        sel = rows == r
        out[sel] = np.searchsorted(cdf[r], u[sel], side="right")
    return out


def _assert_rate(coder: CategoricalCoder, data: bytes, symbols, tables, groups=None) -> float:
    ideal = coder.ideal_bits(symbols, tables, groups)
    assert len(data) * 8 <= ideal * 1.01 + 64, (len(data) * 8, ideal)
    return len(data) * 8 / ideal


# -- quantize_pmf --------------------------------------------------------------------------


@pytest.mark.parametrize("k,precision", [(1, 8), (2, 8), (17, 16), (1024, 16), (1024, 24), (256, 8)])
def test_quantize_pmf_rows_sum_exactly_with_floor_one(k: int, precision: int) -> None:
    rng = np.random.default_rng(k + precision)
    probs = rng.random((3, 4, k)) ** 6  # many tiny entries
    probs[0, 0, : k // 2] = 0.0  # zero-probability symbols
    probs[1] *= 1e-300  # unnormalised, near the bottom of float64
    probs[2] *= 1e300
    q = quantize_pmf(probs, precision)
    assert q.shape == probs.shape and q.dtype == np.int64
    assert np.all(q.sum(axis=-1) == 1 << precision)
    assert q.min() >= 1
    # proportional up to the floor of 1 per symbol and one unit of rounding
    norm = probs / probs.sum(axis=-1, keepdims=True)
    assert np.abs(q / 2.0**precision - norm).max() <= (k + 1) / 2.0**precision
    # deterministic: same input -> same integers; a permuted-then-unpermuted copy too
    assert np.array_equal(quantize_pmf(probs.copy(), precision), q)
    perm = rng.permutation(k)
    inv = np.argsort(perm)
    again = np.ascontiguousarray(probs[..., perm])[..., inv]
    assert np.array_equal(quantize_pmf(again, precision), q)
    # exactly representable input comes back unchanged (as probabilities or as counts)
    assert np.array_equal(quantize_pmf(q / 2.0**precision, precision), q)
    assert np.array_equal(quantize_pmf(q, precision), q)


def test_quantize_pmf_fixed_values() -> None:
    """Pinned integers: the algorithm (floor 1, floor shares, largest remainders, index ties)."""
    assert quantize_pmf([1, 1, 1], 4).tolist() == [6, 5, 5]  # tie -> lower index
    assert quantize_pmf([3, 1], 4).tolist() == [12, 4]
    assert quantize_pmf([0, 0, 1.0], 2).tolist() == [1, 1, 2]
    assert quantize_pmf([1, 1, 1, 1], 2).tolist() == [1, 1, 1, 1]
    assert quantize_pmf(np.float32([0.2, 0.3, 0.5]), 16).tolist() == [13107, 19661, 32768]
    assert quantize_pmf([5e-324, 1.0], 16).tolist() == [1, 65535]  # subnormal input
    assert quantize_pmf(np.zeros((0, 5))).shape == (0, 5)
    # the floors of 1 overshoot: the excess comes back from the large entry
    assert quantize_pmf([1e-9] * 15 + [1.0], 4).tolist() == [1] * 16
    assert quantize_pmf([1e-9] * 6 + [1.0, 1.0], 4).tolist() == [1] * 6 + [5, 5]
    # counts work as well as probabilities
    assert np.array_equal(quantize_pmf([30, 10, 0, 60]), quantize_pmf([0.3, 0.1, 0.0, 0.6]))


def _apportion_row(row: np.ndarray, precision: int) -> list[int]:
    """quantize_pmf's definition for one row, spelled out with Python integers and a sort by
    (remainder descending, index): the reference its vectorised, in-place version must match."""
    bits = 62 - precision
    e = int(np.frexp(row.max())[1])
    w = [int(v) for v in np.rint(np.ldexp(row, bits - e))]
    total, unit = sum(w), 1 << precision
    base = [v * unit // total for v in w]
    rem = [v * unit % total for v in w]
    held = [max(b, 1) for b in base]
    missing = unit - sum(held)
    if missing > 0:
        order = sorted((i for i in range(len(w)) if base[i] >= 1), key=lambda i: (-rem[i], i))
        for i in order[:missing]:
            held[i] += 1
    elif missing < 0:
        above = [h - 1 for h in held]
        room = max(sum(above), 1)
        take = [-missing * a // room for a in above]
        take_rem = [-missing * a % room for a in above]
        left = -missing - sum(take)
        order = sorted(range(len(w)), key=lambda i: (-take_rem[i], i))
        for i in order[:left]:
            take[i] += 1
        held = [h - t for h, t in zip(held, take)]
    return held


def test_quantize_pmf_matches_its_definition_row_by_row() -> None:
    """Random tables of every kind the codecs make (softmax rows, counts, heavy ties, rows whose
    floors of 1 overshoot): the vectorised quantize_pmf gives the reference's integers."""
    rng = np.random.default_rng(11)
    for trial in range(400):
        k, r = int(rng.integers(1, 300)), int(rng.integers(1, 12))
        precision = int(rng.integers(max(1, int(np.ceil(np.log2(k)))), MAX_PRECISION + 1))
        kind = trial % 4
        if kind == 0:
            probs = np.exp(np.maximum(rng.normal(0, 6, (r, k)), -64.0))
        elif kind == 1:
            probs = rng.random((r, k)) ** 12
        elif kind == 2:
            probs = rng.integers(0, 4, (r, k)).astype(float)
            probs[:, 0] += 1
        else:
            probs = np.where(rng.random((r, k)) < 0.9, 1e-12, 1.0)
        q = quantize_pmf(probs, precision)
        assert q.tolist() == [_apportion_row(row, precision) for row in probs], trial


@pytest.mark.parametrize(
    "probs,precision,match",
    [
        ([0.5, -0.1, 0.6], 16, "negative"),
        ([0.5, np.nan], 16, "NaN"),
        ([np.inf, 1.0], 16, "inf"),
        ([[0.5, 0.5], [0.0, 0.0]], 16, "row 1"),
        (np.ones(5), 2, "do not fit"),
        (np.ones((3, 0)), 16, "at least one symbol"),
        (1.0, 16, "at least one symbol"),
        ([0.5, 0.5], 0, "precision"),
        ([0.5, 0.5], MAX_PRECISION + 1, "precision"),
        ([0.5, 0.5], 1.5, "precision"),
    ],
)
def test_quantize_pmf_rejects_bad_input(probs, precision, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        quantize_pmf(probs, precision)


def test_pmf_from_logits() -> None:
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(50, 33)) * 4
    q = pmf_from_logits(logits)
    assert np.all(q.sum(axis=-1) == 1 << 16) and q.min() >= 1
    soft = np.exp(logits - logits.max(axis=-1, keepdims=True))
    # the deterministic exp is within an ulp or two of np.exp: at most one unit apart
    assert np.abs(q - quantize_pmf(soft)).max() <= 1
    assert np.array_equal(pmf_from_logits(logits.copy()), q)
    # -inf means probability 0, the symbol still gets the floor
    assert pmf_from_logits([[-np.inf, 0.0, 0.0]], 8).tolist() == [[1, 127, 128]]  # tie: lower index gives
    for bad, match in [([0.0, np.nan], "NaN"), ([0.0, np.inf], r"\+inf"), ([-np.inf, -np.inf], "all -inf")]:
        with pytest.raises(ValueError, match=match):
            pmf_from_logits(bad)


def test_deterministic_exp_is_accurate() -> None:
    x = np.concatenate([np.linspace(-64, 0, 100_001), -np.random.default_rng(0).random(10_000)])
    got = _exp_deterministic(x)
    assert np.abs(got / np.exp(x) - 1).max() < 1e-15
    assert _exp_deterministic(np.zeros(1))[0] == 1.0


# -- round trips and rate ------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 17, 1024])
@pytest.mark.parametrize("g", [1, 8])
def test_round_trip_per_group(k: int, g: int) -> None:
    rng = np.random.default_rng(10 * k + g)
    coder = CategoricalCoder()
    tables = _tables(rng, g, k)
    groups = rng.integers(0, g, size=6000)
    symbols = _sample(rng, tables, groups)
    data = coder.encode(symbols.reshape(60, 100), tables, groups.reshape(60, 100))
    assert len(data) % 4 == 0
    back = coder.decode(data, tables, groups)
    assert back.dtype == np.int64 and back.shape == (6000,)
    assert np.array_equal(back, symbols)
    assert np.array_equal(coder.decode(data, tables, groups, n=6000), symbols)
    _assert_rate(coder, data, symbols, tables, groups)


@pytest.mark.parametrize("k", [2, 17, 1024])
def test_round_trip_per_symbol(k: int) -> None:
    rng = np.random.default_rng(k)
    coder = CategoricalCoder()
    n = 1500
    tables = _tables(rng, n, k)
    symbols = _sample(rng, tables, np.arange(n))
    data = coder.encode(symbols, tables)
    back = coder.decode(data, tables)
    assert np.array_equal(back, symbols)
    _assert_rate(coder, data, symbols, tables)


def test_chunked_per_symbol_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-symbol rows go to constriction in chunks; chunking never changes the bytes."""
    import glocal_codec.entropy.categorical as cat

    rng = np.random.default_rng(7)
    tables = _tables(rng, 300, 17)
    symbols = _sample(rng, tables, np.arange(300))
    coder = CategoricalCoder()
    whole = coder.encode(symbols, tables)
    monkeypatch.setattr(cat, "_CHUNK_ENTRIES", 17 * 7)
    assert coder.encode(symbols, tables) == whole
    assert np.array_equal(coder.decode(whole, tables), symbols)


def test_modes_share_one_format() -> None:
    """Per-group coding == per-symbol coding of the group-sorted symbols with tables[groups];
    one shared row == one group (constriction's concrete and batched models agree)."""
    rng = np.random.default_rng(8)
    coder = CategoricalCoder(precision=20)
    tables = _tables(rng, 5, 40, precision=20)
    groups = rng.integers(0, 5, size=800)
    symbols = _sample(rng, tables, groups)
    order = np.argsort(groups, kind="stable")
    data = coder.encode(symbols, tables, groups)
    assert coder.encode(symbols[order], tables[groups[order]]) == data
    shared = coder.encode(symbols, tables[:1])
    assert shared == coder.encode(symbols, tables[:1], np.zeros(800, np.int64))
    assert np.array_equal(coder.decode(shared, tables[:1], n=800), symbols)


def test_rate_summary() -> None:
    """Coded size against ideal_bits on a larger message (the figure quoted in the docs)."""
    rng = np.random.default_rng(9)
    coder = CategoricalCoder()
    tables = _tables(rng, 8, 1024)
    groups = rng.integers(0, 8, size=50_000)
    symbols = _sample(rng, tables, groups)
    data = coder.encode(symbols, tables, groups)
    ratio = _assert_rate(coder, data, symbols, tables, groups)
    assert ratio < 1.002


def test_zero_probability_symbol_is_codable() -> None:
    coder = CategoricalCoder()
    tables = quantize_pmf(np.array([[0.5, 0.0, 0.5, 0.0]]))
    assert tables.min() == 1
    symbols = np.array([0, 1, 2, 3, 3, 1, 0])
    data = coder.encode(symbols, tables, np.zeros(7, np.int64))
    assert np.array_equal(coder.decode(data, tables, np.zeros(7, np.int64)), symbols)
    assert coder.ideal_bits([1], tables, [0]) == pytest.approx(16.0)


def test_small_and_empty_messages() -> None:
    coder = CategoricalCoder()
    tables = quantize_pmf(np.ones((3, 5)))
    assert coder.encode(np.zeros(0, np.int64), tables, np.zeros(0, np.int64)) == b""
    assert coder.decode(b"", tables, np.zeros(0, np.int64)).shape == (0,)
    assert coder.encode([], tables[:0]) == b""
    assert coder.decode(b"", tables[:0]).shape == (0,)
    # K = 1 carries no information: no bytes, zeros back
    one = np.array([[1 << 16]] * 2)
    assert coder.encode([0, 0, 0], one, [0, 1, 1]) == b""
    assert coder.decode(b"", one, [0, 1, 1]).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="outside"):
        coder.encode([0, 1], one, [0, 0])
    # a single symbol
    data = coder.encode([4], tables[1:2])
    assert coder.decode(data, tables[1:2]).tolist() == [4]


def test_documented_example_bytes() -> None:
    """A tiny stream, byte for byte: the format (and constriction's quantisation) must not drift."""
    coder = CategoricalCoder()
    tables = quantize_pmf([[1, 2, 1], [1, 1, 6]])
    assert tables.tolist() == [[16384, 32768, 16384], [8192, 8192, 49152]]
    data = coder.encode([0, 1, 2, 2, 1, 0], tables, [0, 0, 0, 1, 1, 1])
    assert data.hex() == EXAMPLE_HEX
    assert coder.decode(data, tables, [0, 0, 0, 1, 1, 1]).tolist() == [0, 1, 2, 2, 1, 0]


EXAMPLE_HEX = "bdffbf2a"


# -- bad arguments -------------------------------------------------------------------------


def test_encode_rejects_bad_arguments() -> None:
    coder = CategoricalCoder()
    tables = quantize_pmf(np.ones((2, 17)))
    groups = np.array([0, 1, 0])
    for symbols in ([0, 17, 3], [-1, 0, 0]):
        with pytest.raises(ValueError, match="outside"):
            coder.encode(symbols, tables, groups)
    with pytest.raises(ValueError, match="integer array"):
        coder.encode(np.array([0.0, 1.0, 2.0]), tables, groups)
    with pytest.raises(ValueError, match="group id 2"):
        coder.encode([0, 1, 2], tables, [0, 1, 2])
    with pytest.raises(ValueError, match="group ids"):
        coder.encode([0, 1, 2], tables, [0, 1])
    with pytest.raises(ValueError, match="integer frequencies"):
        coder.encode([0, 1, 2], tables / 65536.0, groups)
    with pytest.raises(ValueError, match="sums to"):
        coder.encode([0, 1, 2], tables * 2, groups)
    zero = tables.copy()
    zero[1, 1] += zero[1, 0]
    zero[1, 0] = 0  # the row still sums to 2**16
    with pytest.raises(ValueError, match=">= 1"):
        coder.encode([0, 1, 2], zero, groups)
    with pytest.raises(ValueError, match="2-D"):
        coder.encode([0], tables[0])
    with pytest.raises(ValueError, match="one table row per symbol"):
        coder.encode([0, 1, 2], tables)  # per-symbol mode: 2 rows for 3 symbols
    with pytest.raises(ValueError, match="precision"):
        CategoricalCoder(precision=25)


def test_decode_rejects_inconsistent_arguments() -> None:
    coder = CategoricalCoder()
    tables = quantize_pmf(np.ones((2, 17)))
    groups = np.array([0, 1, 0, 1])
    data = coder.encode([1, 2, 3, 4], tables, groups)
    with pytest.raises(CorruptStreamError, match="group id 5"):
        coder.decode(data, tables, [0, 1, 5, 0])
    with pytest.raises(CorruptStreamError, match="group ids"):
        coder.decode(data, tables, groups, n=5)
    with pytest.raises(CorruptStreamError, match="one table row per symbol"):
        coder.decode(data, tables, n=4)
    with pytest.raises(CorruptStreamError, match="multiple of 4"):
        coder.decode(data + b"\0", tables, groups)
    with pytest.raises(CorruptStreamError, match="codes no symbols"):
        coder.decode(data, tables, groups[:0])
    with pytest.raises(CorruptStreamError, match="sums to"):
        coder.decode(data, tables + 1, groups)
    with pytest.raises(CorruptStreamError, match="non-negative integer"):
        coder.decode(data, tables, groups, n=-1)
    # CorruptStreamError is a ValueError: callers catching ValueError see it too
    assert issubclass(CorruptStreamError, ValueError)


@pytest.mark.parametrize("mode", ["group", "symbol"])
def test_damaged_streams_raise_corrupt_or_decode(mode: str) -> None:
    """Truncated, bit-flipped or extended bodies: CorruptStreamError or some valid array."""
    rng = np.random.default_rng(11)
    coder = CategoricalCoder()
    k = 17
    if mode == "group":
        tables = _tables(rng, 4, k)
        groups = rng.integers(0, 4, size=500)
        symbols = _sample(rng, tables, groups)
    else:
        tables = _tables(rng, 500, k)
        groups = None
        symbols = _sample(rng, tables, np.arange(500))
    data = coder.encode(symbols, tables, groups)
    damaged = [data[:cut] for cut in range(len(data))]
    for _ in range(300):
        b = bytearray(data)
        b[rng.integers(len(b))] ^= 1 << int(rng.integers(8))
        damaged.append(bytes(b))
    damaged += [data + bytes(4), data + b"\xff" * 8, bytes(len(data)), b"\xff" * len(data)]
    outcomes = {"corrupt": 0, "decoded": 0}
    for b in damaged:
        try:
            out = coder.decode(b, tables, groups)
        except CorruptStreamError:
            outcomes["corrupt"] += 1
        else:
            outcomes["decoded"] += 1
            assert out.shape == (500,) and out.dtype == np.int64
            assert out.min() >= 0 and out.max() < k
    assert outcomes["corrupt"] > len(damaged) // 2  # most damage is detected


# -- bit-exact on "another machine" --------------------------------------------------------

_SCRIPT = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    from glocal_codec.entropy import CategoricalCoder, pmf_from_logits, quantize_pmf
    from glocal_codec.util import exp_exact as _exp_deterministic

    def make():
        rng = np.random.default_rng(1234)
        logits = rng.integers(-4096, 4096, size=(64, 300)) / 512.0  # quantised values: exact
        tables = pmf_from_logits(logits, 16)
        soft = quantize_pmf(rng.random((16, 1024)) ** 5, 16)
        groups = rng.integers(0, 64, size=20_000)
        symbols = rng.integers(0, 300, size=20_000)
        coder = CategoricalCoder()
        per_group = coder.encode(symbols, tables, groups)
        per_symbol = coder.encode(symbols[:3000], tables[groups[:3000]])
        digest = lambda b: hashlib.sha256(b).hexdigest()
        return {
            "tables": digest(tables.tobytes()),
            "soft": digest(soft.tobytes()),
            "per_group": digest(per_group),
            "per_symbol": digest(per_symbol),
            # the exponential itself, bit for bit (np.exp differs here in ~1/4 of these values;
            # the integer tables are robust to such last-bit noise, so pin it directly)
            "exp": digest(_exp_deterministic(np.linspace(-64.0, 0.0, 100_001)).tobytes()),
        }
    """
)


def _dispatched_cpu_features() -> list[str]:
    """The SIMD features NumPy dispatches to on this machine (to switch them off)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


def _run_elsewhere(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}
    script = _SCRIPT + "\nimport json\nprint(json.dumps(make()))\n"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_same_bytes_in_another_process_with_other_cpu_paths() -> None:
    """The project's stand-in for another machine: torch's and NumPy's SIMD paths switched off
    (NumPy's np.exp gives different last bits there, which is why pmf_from_logits avoids it),
    one thread. Tables and bytes must be identical to those made in this process."""
    namespace: dict = {}
    exec(compile(_SCRIPT, "<categorical-determinism>", "exec"), namespace)
    here = namespace["make"]()
    other = _run_elsewhere(
        {
            "ATEN_CPU_CAPABILITY": "default",
            "OMP_NUM_THREADS": "1",
            "NPY_DISABLE_CPU_FEATURES": " ".join(_dispatched_cpu_features()),
        }
    )
    assert other == here


def test_top_selection_matches_a_stable_ranking() -> None:
    """The apportionment's "n largest, ties to the lower index" (from sorted values) is exactly
    what ranking each row with a stable sort gives, with heavy ties and n out of range."""
    from glocal_codec.entropy.categorical import _top

    def by_rank(key: np.ndarray, n: np.ndarray) -> np.ndarray:
        order = np.argsort(-key, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(key.shape[1]), order.shape), axis=1)
        return rank < n[:, None]

    rng = np.random.default_rng(5)
    for trial in range(300):
        r, k = int(rng.integers(1, 40)), int(rng.integers(1, 300))
        hi = int(rng.integers(1, 6)) if trial % 2 else 2**54
        key = rng.integers(-1, hi, size=(r, k))
        n = rng.integers(-3, k + 3, size=r)
        assert np.array_equal(_top(key, n), by_rank(key, n)), trial
