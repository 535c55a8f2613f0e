"""Reverse-channel coding benchmark: coded bits against KL, sample fidelity and speed.

For a ``--dims``-dimensional diagonal Gaussian pair (prior ``p = N(mu_p, sigma_p^2)`` with
random means and scales, posterior ``q`` shifted by ``~0.5 sigma_p`` and narrowed by a factor in
``[0.4, 1]``, 0 to ~4 bits of KL per dimension) and each index width ``b`` in ``--bits``, codes
a sample of ``q`` with :class:`glocal_codec.entropy.GaussianRCC` at two chunk budgets:

* ``tight``: KL per chunk ``<= b`` (the most KL per index, least overhead);
* ``default``: ``b - 3`` bits (the library default: a 3-bit margin for sample fidelity);

and reports, per setting: total bits (``8 * len(stream)``), KL, bits / KL, overhead bits per
chunk, the part of it spent on chunk sizes, the bits when the partition is known to the decoder
(nothing but the indices written), the standardised decoded values ``(x - mu_q) / sigma_q``
(mean, variance and KS statistic against N(0, 1) over ``--seeds`` codings: a faithful sample of
q gives 0, 1 and ~0), and encode / decode wall time (one thread; the machine may be shared).
Every round trip is checked bit for bit.

Prints a markdown table and writes ``benchmarks/results/rcc.json``.

    python benchmarks/rcc.py [--dims 1000] [--bits 8 12 16] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

try:
    import glocal_codec  # noqa: F401
except ImportError:  # running from a checkout without an install: use src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from glocal_codec.entropy import GaussianRCC, default_kl_budget, gaussian_kl_bits

RESULTS = Path(__file__).resolve().parent / "results" / "rcc.json"
SEED = 20240601


def problem(d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu_p = rng.normal(0.0, 1.0, d)
    sigma_p = np.exp(rng.uniform(-1.0, 1.0, d))
    mu_q = mu_p + sigma_p * rng.normal(0.0, 0.5, d)
    sigma_q = sigma_p * np.exp(rng.uniform(np.log(0.4), 0.0, d))
    return mu_q, sigma_q, mu_p, sigma_p


def run(d: int, bits: int, budget: float, seeds: int, args: tuple[np.ndarray, ...]) -> dict:
    mu_q, sigma_q, mu_p, sigma_p = args
    coder = GaussianRCC(bits, kl_budget=budget, strict=False)
    z, enc_t, dec_t = [], [], []
    first = None
    for s in range(seeds):
        t0 = time.perf_counter()
        res = coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=SEED + s)
        enc_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = GaussianRCC.decode(res.data, mu_p, sigma_p, seed=SEED + s)
        dec_t.append(time.perf_counter() - t0)
        assert out.tobytes() == res.sample.tobytes(), "round trip is not bit-exact"
        z.append((res.sample - mu_q) / sigma_q)
        first = first or res
    assert first is not None
    known = coder.encode(mu_q, sigma_q, mu_p, sigma_p, seed=SEED, chunk_sizes=first.chunk_sizes)
    zz = np.concatenate(z)
    c = first.indices.size
    return {
        "bits_index": bits,
        "kl_budget": budget,
        "dims": d,
        "chunks": c,
        "kl_bits": round(first.kl_bits, 2),
        "coded_bits": first.bits,
        "bits_over_kl": round(first.bits / first.kl_bits, 4),
        "overhead_bits_per_chunk": round((first.bits - first.kl_bits) / c, 3),
        "size_bits_per_chunk": round((first.bits - first.index_bits) / c, 3),
        "max_chunk_kl": round(float(first.chunk_kl.max()), 3),
        "known_partition_bits": known.bits,
        "known_partition_bits_over_kl": round(known.bits / first.kl_bits, 4),
        "std_mean": round(float(zz.mean()), 4),
        "std_var": round(float(zz.var()), 4),
        "ks_stat": round(float(stats.kstest(zz, "norm").statistic), 4),
        "encode_s": round(min(enc_t), 3),
        "decode_ms": round(1000 * min(dec_t), 2),
        "seeds": seeds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, default=1000)
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 12, 16])
    ap.add_argument("--seeds", type=int, default=3, help="codings per setting for the fidelity numbers")
    ap.add_argument("--out", type=Path, default=RESULTS)
    opt = ap.parse_args()
    args = problem(opt.dims, SEED)
    kl = gaussian_kl_bits(*args)
    rows = []
    for bits in opt.bits:
        for name, budget in (("tight", float(bits)), ("default", default_kl_budget(bits))):
            seeds = opt.seeds if bits <= 12 else 1
            row = {"setting": name, **run(opt.dims, bits, budget, seeds, args)}
            rows.append(row)
            print(
                f"b={bits:2d} {name:7s} chunks {row['chunks']:4d}  bits {row['coded_bits']:6d}  KL {row['kl_bits']:8.1f}"
                f"  bits/KL {row['bits_over_kl']:.3f}  overhead/chunk {row['overhead_bits_per_chunk']:.2f}"
                f" (sizes {row['size_bits_per_chunk']:.2f})  known-partition bits/KL {row['known_partition_bits_over_kl']:.3f}"
                f"  z mean {row['std_mean']:+.3f} var {row['std_var']:.3f} KS {row['ks_stat']:.3f}"
                f"  enc {row['encode_s']:.2f} s  dec {row['decode_ms']:.1f} ms",
                flush=True,
            )
    print()
    print("| b | budget | chunks | bits | KL | bits/KL | overhead/chunk | of it sizes | known partition bits/KL | z var | KS | encode s | decode ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['bits_index']} | {r['kl_budget']:g} | {r['chunks']} | {r['coded_bits']} | {r['kl_bits']:.1f} | "
            f"{r['bits_over_kl']:.3f} | {r['overhead_bits_per_chunk']:.2f} | {r['size_bits_per_chunk']:.2f} | "
            f"{r['known_partition_bits_over_kl']:.3f} | {r['std_var']:.3f} | {r['ks_stat']:.3f} | {r['encode_s']:.2f} | "
            f"{r['decode_ms']:.1f} |"
        )
    report = {
        "benchmark": "rcc",
        "dims": opt.dims,
        "kl_bits_total": round(float(kl.sum()), 2),
        "kl_bits_per_dim_max": round(float(kl.max()), 3),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "rows": rows,
    }
    opt.out.parent.mkdir(parents=True, exist_ok=True)
    opt.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {opt.out}")


if __name__ == "__main__":
    main()
