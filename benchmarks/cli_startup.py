"""Start-up time of the command line: wall time of whole ``glocal-codec`` processes, repeated.

    .venv/bin/python benchmarks/cli_startup.py [--runs 5] [--image IMG] [--src SRC_DIR] [--json OUT]
        [--importtime] [--baseline SRC_DIR] [--only LABEL ...]

Like hyperfine: every command runs ``--runs`` times after one warm-up run (page cache, .pyc
files), and the mean, standard deviation and minimum wall time are printed, with the mean CPU
time (user + system) of the process, which a busy machine disturbs less than the wall time. Commands:
``--help``, ``--version``, ``list``, ``info`` of a JPEG and of an ``msh`` .glc, ``encode`` with
``jpeg`` and ``webp``, ``decode`` of a JPEG and a WebP file. Issue 28 asks for at most 1 s for
all but the ``msh`` ones; ``tests/test_light_import.py`` checks (without timing anything) that
none of these imports torch. ``--src`` runs another copy of the package (its ``src`` folder, put
first on ``PYTHONPATH``), e.g. the last commit's; ``--baseline`` times such a copy side by side
with this one (runs interleaved, so both see the same machine load) and reports both, as in
``benchmarks/results/cli_startup.json``::

    mkdir -p /tmp/head && git archive HEAD src | tar -x -C /tmp/head
    .venv/bin/python benchmarks/cli_startup.py --baseline /tmp/head/src --json benchmarks/results/cli_startup.json

``--importtime`` adds, per command, the 8 slowest top-level imports of one run
(``python -X importtime``), which is where a slow start comes from. Timings depend on the
machine and its load: compare runs made side by side, never against a number in a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_RUN = "import sys; from glocal_codec.cli import main; sys.argv[0] = 'glocal-codec'; main()"


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="80")
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(args: list[str], env: dict[str, str], importtime: bool = False) -> tuple[float, str, float]:
    """(wall seconds, stderr, CPU seconds) of one ``glocal-codec ARGS`` process."""
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", _RUN, *args]
    c0, t0 = _cpu(), time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    secs, cpu = time.perf_counter() - t0, _cpu() - c0
    if p.returncode != 0:
        raise SystemExit(f"glocal-codec {' '.join(args)} failed:\n{p.stderr[-2000:]}")
    return secs, p.stderr, cpu


def _stats(runs: list[tuple[float, str, float]]) -> dict:
    times, cpus = [r[0] for r in runs], [r[2] for r in runs]
    return {"mean": statistics.mean(times), "std": statistics.stdev(times) if len(times) > 1 else 0.0,
            "min": min(times), "cpu": statistics.mean(cpus), "runs": times}


def _slowest_imports(stderr: str, n: int = 8) -> list[tuple[str, float]]:
    """Top-level (not nested) imports by cumulative time, from ``-X importtime`` output."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if name.startswith(" ") and not name.startswith("  "):  # depth 0: one space after the bar
            rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--image", type=Path, help="the image to encode (default: a 256x256 test pattern)")
    p.add_argument("--src", type=Path, help="another package source folder to time instead (before/after)")
    p.add_argument("--json", type=Path, help="write the timings here")
    p.add_argument("--importtime", action="store_true", help="show the slowest top-level imports of each command")
    p.add_argument("--only", action="append", help="run only these commands (by label; repeatable)")
    p.add_argument("--baseline", type=Path, help="another package source folder timed side by side (before/after)")
    a = p.parse_args()
    env = _env(a.src)
    base_env = _env(a.baseline) if a.baseline else None
    tmp = Path(tempfile.mkdtemp(prefix="glocal-startup-"))
    img = a.image
    if img is None:
        import numpy as np
        from PIL import Image

        yy, xx = np.mgrid[0:256, 0:256]
        img = tmp / "pattern.png"
        Image.fromarray(np.stack([xx, yy, (xx ^ yy)], -1).astype(np.uint8)).save(img)
    jpg_glc, webp_glc, msh_glc = tmp / "j.glc", tmp / "w.glc", tmp / "m.glc"
    _run(["encode", str(img), "-o", str(jpg_glc), "-c", "jpeg"], env)
    _run(["encode", str(img), "-o", str(webp_glc), "-c", "webp"], env)
    _run(["encode", str(img), "-o", str(msh_glc), "-c", "msh"], env)
    commands = {
        "--help": ["--help"],
        "--version": ["--version"],
        "list": ["list"],
        "info (jpeg file)": ["info", str(jpg_glc)],
        "info (msh file)": ["info", str(msh_glc)],
        "encode -c jpeg": ["encode", str(img), "-o", str(tmp / "e.glc"), "-c", "jpeg", "--force"],
        "encode -c webp": ["encode", str(img), "-o", str(tmp / "e.glc"), "-c", "webp", "--force"],
        "decode (jpeg file)": ["decode", str(jpg_glc), "-o", str(tmp / "d.png"), "--force"],
        "decode (webp file)": ["decode", str(webp_glc), "-o", str(tmp / "d.png"), "--force"],
    }
    if a.only:
        commands = {k: v for k, v in commands.items() if k in a.only}
    envs = {"after": env, "before": base_env} if base_env is not None else {"": env}
    results: dict = {k: {} for k in envs}
    print(f"{'command':<20} {'':<6} {'mean':>7} {'± std':>7} {'min':>7} {'cpu':>7}  "
          f"({a.runs} runs after 1 warm-up; seconds)")
    for label, args in commands.items():
        todo = {}
        for which, e in envs.items():
            try:
                _run(args, e)  # warm-up (and: does this version have the command?)
            except SystemExit:
                print(f"{label:<20} {which:<6} (not in this version)")
                continue
            todo[which] = e
        runs: dict[str, list] = {k: [] for k in todo}
        for _ in range(a.runs):  # interleaved: the versions see the same load
            for which, e in todo.items():
                runs[which].append(_run(args, e))
        for which in todo:
            r = results[which][label] = _stats(runs[which])
            print(f"{label:<20} {which:<6} {r['mean']:7.2f} {r['std']:7.2f} {r['min']:7.2f} {r['cpu']:7.2f}")
            if a.importtime:
                slow = _slowest_imports(_run(args, todo[which], importtime=True)[1])
                r["slowest_imports"] = slow
                print("    " + ", ".join(f"{n} {s:.2f}" for n, s in slow))
    if a.json:
        meta = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "load": os.getloadavg(),
                "runs": a.runs, "image": "256x256 test pattern" if a.image is None else str(a.image)}
        if base_env is None:
            doc = {**meta, "src": str(a.src) if a.src else None, "results": results[""]}
        else:
            doc = {**meta, "src": str(a.src) if a.src else None, "baseline": str(a.baseline),
                   "results": results["after"], "baseline_results": results["before"]}
        a.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
