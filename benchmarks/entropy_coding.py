"""Entropy-coding benchmark: speed and rate overhead of glocal_codec's coders.

Measures, on one CPU thread and a fixed seed:

(a) :class:`glocal_codec.entropy.GaussianCoder` encode / decode throughput (Msymbols/s) on
    ~2M symbols drawn from quantised zero-mean Gaussians whose scales are log-uniform in
    [0.11, 40];
(b) its rate overhead: real bytes against the ideal ``-log2 p`` under the Gaussian with the
    *table* standard deviation the coder actually uses (``scale_table[scale_index(scales)]``);
(c) the same two numbers for CompressAI's own rANS coder (``GaussianConditional``, 16-bit
    CDF tables) on the same symbols, indexes and scale table;
(d) :class:`glocal_codec.entropy.TableCoder` throughput and overhead on ~500k symbols with 128
    per-channel tables (a factorized-prior latent of 128 channels).

Prints a markdown table and writes ``benchmarks/results/entropy_coding.json``. Timings are the
best of ``--repeats`` runs (the machine may be shared); every round trip is checked.

    python benchmarks/entropy_coding.py [--symbols 2000000] [--table-symbols 500000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import torch

try:
    import glocal_codec  # noqa: F401
except ImportError:  # running from a checkout without an install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from glocal_codec.entropy import GaussianCoder, TableCoder, default_scale_table, ideal_bits_gaussian

T = TypeVar("T")
RESULTS = Path(__file__).resolve().parent / "results" / "entropy_coding.json"
SEED = 20240601


def best_time(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Best wall time of ``repeats`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out  # type: ignore[return-value]


def gaussian_symbols(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Integer symbols round(N(0, s)) with s log-uniform in [0.11, 40]."""
    scales = np.exp(rng.uniform(np.log(0.11), np.log(40.0), n))
    symbols = np.rint(rng.normal(0.0, scales)).astype(np.int32)
    return symbols, scales


def bench_gaussian(symbols: np.ndarray, scales: np.ndarray, repeats: int) -> dict:
    coder = GaussianCoder(default_scale_table())
    indexes = coder.scale_index(scales)
    stds = coder.scale_table[indexes]
    ideal = ideal_bits_gaussian(symbols, stds)
    t_enc, data = best_time(lambda: coder.encode(symbols, indexes), repeats)
    t_dec, back = best_time(lambda: coder.decode(data, indexes), repeats)
    if not np.array_equal(back, symbols):
        raise AssertionError("GaussianCoder round trip failed")
    n = symbols.size
    return {
        "coder": "glocal_codec GaussianCoder (constriction range coder)",
        "symbols": n,
        "bytes": len(data),
        "ideal_bits": ideal,
        "bits_per_symbol": 8 * len(data) / n,
        "ideal_bits_per_symbol": ideal / n,
        "overhead_percent": 100 * (8 * len(data) - ideal) / ideal,
        "encode_s": t_enc,
        "decode_s": t_dec,
        "encode_msym_s": n / t_enc / 1e6,
        "decode_msym_s": n / t_dec / 1e6,
        "escapes": int(np.count_nonzero(np.abs(symbols) > coder.bound)),
    }


def bench_compressai(symbols: np.ndarray, scales: np.ndarray, repeats: int) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation warnings from CompressAI's import
        from compressai.entropy_models import GaussianConditional

    table = default_scale_table()
    gc = GaussianConditional(table.tolist())
    gc.update_scale_table(torch.tensor(table, dtype=torch.float32), force=True)  # runs update()
    # Same indexes as ours: both pick the smallest table entry >= scale (CompressAI's
    # build_indexes works in float32; ours in float64, so we pass ours to both coders).
    indexes = torch.from_numpy(GaussianCoder(table).scale_index(scales).astype(np.int32)).view(1, -1)
    y = torch.from_numpy(symbols.astype(np.float32)).view(1, -1)
    stds = table[indexes.view(-1).numpy()]
    ideal = ideal_bits_gaussian(symbols, stds)
    t_enc, strings = best_time(lambda: gc.compress(y, indexes), repeats)
    t_dec, back = best_time(lambda: gc.decompress(strings, indexes), repeats)
    if not torch.equal(back.view(-1).to(torch.int64), torch.from_numpy(symbols.astype(np.int64))):
        raise AssertionError("CompressAI round trip failed")
    n = symbols.size
    nbytes = sum(len(s) for s in strings)
    return {
        "coder": "CompressAI GaussianConditional (rANS, 16-bit CDFs)",
        "symbols": n,
        "bytes": nbytes,
        "ideal_bits": ideal,
        "bits_per_symbol": 8 * nbytes / n,
        "ideal_bits_per_symbol": ideal / n,
        "overhead_percent": 100 * (8 * nbytes - ideal) / ideal,
        "encode_s": t_enc,
        "decode_s": t_dec,
        "encode_msym_s": n / t_enc / 1e6,
        "decode_msym_s": n / t_dec / 1e6,
    }


def bench_table(n: int, channels: int, bound: int, rng: np.random.Generator, repeats: int) -> dict:
    """Per-channel discretised Laplace tables on [-bound, bound], one scale per channel."""
    support = np.arange(-bound, bound + 1)
    b = np.exp(rng.uniform(np.log(0.2), np.log(8.0), channels))  # Laplace scale per channel
    pmf = np.exp(-np.abs(support)[None, :] / b[:, None])
    pmf /= pmf.sum(axis=1, keepdims=True)
    per = n // channels
    chan = np.repeat(np.arange(channels), per)  # channel-major like a C x H x W latent
    cdf = np.cumsum(pmf, axis=1)
    u = rng.uniform(0, 1, chan.size)
    local = np.minimum((cdf[chan] < u[:, None]).sum(axis=1), len(support) - 1)
    symbols = (local - bound).astype(np.int32)
    coder = TableCoder(pmf, np.full(channels, -bound))
    ideal = float(-np.log2(pmf[chan, local]).sum())
    t_enc, data = best_time(lambda: coder.encode(symbols, chan), repeats)
    t_dec, back = best_time(lambda: coder.decode(data, chan), repeats)
    if not np.array_equal(back, symbols):
        raise AssertionError("TableCoder round trip failed")
    m = symbols.size
    return {
        "coder": f"glocal_codec TableCoder ({channels} tables, {len(support)} symbols each)",
        "symbols": m,
        "bytes": len(data),
        "ideal_bits": ideal,
        "bits_per_symbol": 8 * len(data) / m,
        "ideal_bits_per_symbol": ideal / m,
        "overhead_percent": 100 * (8 * len(data) - ideal) / ideal,
        "encode_s": t_enc,
        "decode_s": t_dec,
        "encode_msym_s": m / t_enc / 1e6,
        "decode_msym_s": m / t_dec / 1e6,
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| coder | symbols | bits/symbol | ideal bits/symbol | overhead | encode Msym/s | decode Msym/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['coder']} | {r['symbols']:,} | {r['bits_per_symbol']:.4f} | {r['ideal_bits_per_symbol']:.4f} "
            f"| {r['overhead_percent']:+.3f} % | {r['encode_msym_s']:.2f} | {r['decode_msym_s']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=2_000_000)
    ap.add_argument("--table-symbols", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compressai", action="store_true", help="skip the CompressAI comparison")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    symbols, scales = gaussian_symbols(args.symbols, rng)
    rows = [bench_gaussian(symbols, scales, args.repeats)]
    if not args.no_compressai:
        rows.append(bench_compressai(symbols, scales, args.repeats))
    rows.append(bench_table(args.table_symbols, 128, 63, rng, args.repeats))

    print(markdown(rows))
    import compressai
    import constriction

    result = {
        "benchmark": "entropy_coding",
        "seed": SEED,
        "gaussian_scales": "log-uniform in [0.11, 40]",
        "scale_table": "glocal_codec.entropy.default_scale_table() (64 levels, 0.11..256, log-spaced)",
        "overhead_definition": "100 * (8 * bytes - ideal_bits) / ideal_bits; ideal under the table std used",
        "timing": f"best of {args.repeats} runs, torch.set_num_threads(1)",
        "rows": rows,
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_1m_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "numpy": np.__version__,
            "torch": torch.__version__,
            "compressai": compressai.__version__,
            "constriction": getattr(constriction, "__version__", "unknown"),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
