"""BD-rate and equal-bpp PSNR of one Kodak RD curve against another (files written by kodak_rd.py).

    .venv/bin/python benchmarks/compare_rd.py ANCHOR.json TEST.json [--levels K]

Compares Kodak-average curves (PSNR-RGB, rate from real file sizes): the BD-rate of TEST against
ANCHOR (pchip, over their overlap), and at each TEST level the PSNR ANCHOR reaches at the same
bpp. ``--levels K`` keeps TEST's lowest K levels (to compare over a narrower quality range).
An older curve comes from git, e.g. the M = 96 msh:

    git show 50431b9:benchmarks/results/kodak_msh.json > /tmp/msh_m96.json
    .venv/bin/python benchmarks/compare_rd.py /tmp/msh_m96.json benchmarks/results/kodak_msh.json
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from glocal_codec.eval.bdrate import bd_rate

from kodak_rd import interp_psnr  # same directory: the equal-bpp interpolation kodak_rd.py prints


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("anchor", type=Path)
    p.add_argument("test", type=Path)
    p.add_argument("--levels", type=int, help="only the test curve's lowest K levels")
    a = p.parse_args()
    anchor = json.loads(a.anchor.read_text())["average"]
    test = json.loads(a.test.read_text())["average"]
    levels = sorted(test, key=int)[: a.levels]
    t = sorted((test[q]["bpp"], test[q]["psnr"]) for q in levels)
    r = sorted((v["bpp"], v["psnr"]) for v in anchor.values())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bd = bd_rate([b for b, _ in r], [q for _, q in r], [b for b, _ in t], [q for _, q in t])
    print(f"BD-rate of {a.test.name} (levels {levels[0]}-{levels[-1]}) against {a.anchor}: {bd:+.2f} %")
    for w in caught:
        print(f"  note: {w.message}")
    for q in levels:
        ref = interp_psnr(anchor, test[q]["bpp"])
        gap = "out of the anchor's range" if ref is None else f"anchor {ref:.2f} dB, difference {test[q]['psnr'] - ref:+.2f} dB"
        print(f"  level {q}: {test[q]['bpp']:.4f} bpp {test[q]['psnr']:.2f} dB; {gap}")


if __name__ == "__main__":
    main()
