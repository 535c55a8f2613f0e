"""Fuzzing at scale: mutated ``.glc`` files against every registered codec (image and video).

    .venv/bin/python benchmarks/fuzz.py --files 100000 --workers 2            # every codec
    .venv/bin/python benchmarks/fuzz.py --codec msh --codec x264 --files 2000 --seed 7
    .venv/bin/python benchmarks/fuzz.py --codec overfit-tiled --files 20000 --workers 1   # a layout (LAYOUTS)

For each codec one valid base file is made from a synthetic input (the same ones as the
compatibility corpus, ``tests/compat/make_corpus.py``); then ``--files`` variants, drawn from a
seeded generator, are decoded in worker processes:

* ``truncate`` -- cut at a random length;
* ``flip`` -- random bytes changed, CRC left as it is (the container's checksum must catch it);
* ``flip+crc`` -- random bytes changed, inserted or deleted, CRC recomputed (reaches the codec's
  own parser, which must reject or decode, never crash);
* ``field`` -- the container re-written with one header field edited (shape, quality, codec
  parameters, a stream replaced by random bytes, streams added or dropped), CRC valid.

Each decode runs under a CPU-time limit (``--timeout``, a hang) and an address-space limit
(``--memory-gb``, unbounded allocation). Outcomes per codec: rejected (by ``BitstreamError``
class), decoded (to the shape the header announces), and failures: *crash* (any other
exception), *hang*, *memory* (``MemoryError`` or the limit hit). Each codec gets fresh worker
processes, and the peak resident memory of its workers (``VmHWM``) is kept (``peak_rss_mb``).
The run is resumable: results go to ``--out`` (JSON) after every batch and a rerun with the same
seed continues where it stopped.
Exit status 1 if any failure was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import struct
import sys
import time
import zlib
from collections import Counter
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("truncate", "flip", "flip+crc", "field")


def _recrc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def mutate(base: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded variant of ``base`` and the name of the mutation."""
    from glocal_codec.bitstream import read_container, write_container

    kind = KINDS[rng.randrange(len(KINDS))]
    if kind == "truncate":
        return kind, base[: rng.randrange(len(base))]
    if kind in ("flip", "flip+crc"):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            op = rng.random() if kind == "flip+crc" else 0.0
            i = rng.randrange(len(data) - 4)
            if op < 0.8:
                data[i] = rng.randrange(256)
            elif op < 0.9:
                data.insert(i, rng.randrange(256))
            elif len(data) > 8:
                del data[i]
        return kind, _recrc(bytes(data)) if kind == "flip+crc" else bytes(data)
    try:
        return kind, write_container(_edit(read_container(base), rng))
    except ValueError:  # an edit the writer itself refuses (e.g. 9 channels): try another mutation
        return mutate(base, rng)


def _edit(c, rng: random.Random):
    """The container ``c`` with one header field or stream edited."""
    edit = rng.randrange(6)
    if edit == 0:
        shape = tuple(max(1, int(v * rng.choice((0.5, 2, 3, 1000))) if rng.random() < 0.5 else v) for v in c.shape)
        c = replace(c, shape=shape)
    elif edit == 1:
        c = replace(c, quality=rng.randrange(0, 12))
    elif edit == 2:
        c = replace(c, params=bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24))))
    elif edit == 3 and c.streams:
        k = rng.randrange(len(c.streams))
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 2 * len(c.streams[k]) + 8)))
        c = replace(c, streams=c.streams[:k] + (junk,) + c.streams[k + 1:])
    elif edit == 4:
        c = replace(c, streams=c.streams + (bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))),))
    else:
        c = replace(c, streams=c.streams[:-1])
    return c


# -- worker side ------------------------------------------------------------------------------
_LIMITS: dict[str, float] = {}


def _init(timeout: float, memory_gb: float) -> None:
    import torch

    torch.set_num_threads(1)
    _LIMITS.update(timeout=timeout)
    if memory_gb > 0:
        cap = int(memory_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


class _Hang(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Hang()


def _decode_one(args: tuple[str, str, bytes]) -> tuple[str, str, str, int]:
    """(codec, mutation kind, outcome, the worker's peak resident memory in KiB) for one file."""
    out = _decode_outcome(*args)
    return (*out, _peak_kib())


def _peak_kib() -> int:
    """This worker's own peak resident memory (KiB): ``VmHWM``, which starts afresh at exec.
    (``ru_maxrss`` does not: a spawned worker inherits the forking driver's peak, which holds
    every codec's base file and model.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _decode_outcome(codec: str, kind: str, data: bytes) -> tuple[str, str, str]:
    import glocal_codec as gc
    from glocal_codec import video
    from glocal_codec.bitstream import BitstreamError, read_container

    signal.signal(signal.SIGXCPU, _alarm)
    soft = int(resource.getrusage(resource.RUSAGE_SELF).ru_utime + _LIMITS["timeout"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    try:
        try:
            media = read_container(data).media.name.lower()
        except BitstreamError as err:
            return codec, kind, f"rejected {type(err).__name__}"
        if media == "image":
            x = gc.decode_tensor(data)
            shape = tuple(x.shape[1:])
        else:
            x = video.decode_video(data, max_pixels=64 * 1024 * 1024).frames
            shape = tuple(x.shape)
        want = tuple(read_container(data).shape)
        return codec, kind, "decoded" if shape == want else f"crash wrong shape {shape} != {want}"
    except BitstreamError as err:
        return codec, kind, f"rejected {type(err).__name__}"
    except _Hang:
        return codec, kind, "hang"
    except MemoryError:
        return codec, kind, "memory"
    except Exception as err:  # noqa: BLE001 - exactly what the fuzzer looks for
        return codec, kind, f"crash {type(err).__name__}: {str(err)[:120]}"
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


# -- driver -----------------------------------------------------------------------------------
#: Layouts a codec writes only for large inputs, fuzzed from their frozen corpus file (a label
#: here, not a codec name: the container says which codec decodes it).
LAYOUTS = {"overfit-tiled": HERE.parent / "tests" / "compat" / "overfit-tiled-00000000.glc",
           # params version 3 (compact weight streams), fitted whole / in tiles with the coarser-grid context
           "overfit-v3": HERE.parent / "tests" / "compat" / "overfit-v3-00000000.glc",
           "overfit-v3-parent-tiled": HERE.parent / "tests" / "compat" / "overfit-v3-parent-tiled-00000000.glc",
           "overfit-v4-learned-up": HERE.parent / "tests" / "compat" / "overfit-v4-learned-up-00000000.glc",
           # params version 5: the 1:1 grid left out (``fast`` at qualities 1-2 and low-rate pictures)
           "overfit-v5-skip": HERE.parent / "tests" / "compat" / "overfit-v5-skip-00000000.glc"}


def base_files(names: list[str]) -> dict[str, bytes]:
    sys.path.insert(0, str(HERE.parent / "tests" / "compat"))
    from make_corpus import INR_EPOCHS, synthetic_clip, synthetic_image  # the corpus inputs

    import glocal_codec as gc
    from glocal_codec import video
    from glocal_codec.codecs import open_codec

    out = {}
    for name in names:
        if name in LAYOUTS:
            out[name] = LAYOUTS[name].read_bytes()
            continue
        codec = open_codec(name)
        if codec.media == "image":
            out[name] = gc.encode(synthetic_image(), codec=name)
        else:
            if hasattr(codec, "epochs"):  # a benchmark, not library code: a short INR fit
                codec.epochs = INR_EPOCHS
            out[name] = video.encode_video(synthetic_clip(), codec=name, fps=24)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", action="append", help="codec name (repeatable; default: every available codec)")
    p.add_argument("--files", type=int, default=1000, help="mutated files per codec")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=20.0, help="CPU seconds per decode before it counts as a hang")
    p.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit per worker (0: none)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "fuzz.json")
    a = p.parse_args()

    from glocal_codec.codecs import list_codecs

    names = a.codec or [c.name for c in list_codecs()] + list(LAYOUTS)
    state = json.loads(a.out.read_text()) if a.out.exists() else {}
    if state.get("seed") != a.seed:
        state = {"seed": a.seed, "codecs": {}}
    bases = base_files(names)
    ctx = get_context("spawn")
    t0 = time.time()
    for name in names:
        rec = state["codecs"].setdefault(name, {"files": 0, "outcomes": {}})
        if rec["files"] >= a.files:
            continue
        rng = random.Random(f"{a.seed}:{name}")
        for _ in range(rec["files"]):  # resume: replay the generator up to where the last run stopped
            mutate(bases[name], rng)
        # fresh workers per codec, so that a codec's peak memory is its own (not an earlier model's)
        with ctx.Pool(a.workers, initializer=_init, initargs=(a.timeout, a.memory_gb), maxtasksperchild=500) as pool:
            while rec["files"] < a.files:
                batch = [(name, *mutate(bases[name], rng)) for _ in range(min(200, a.files - rec["files"]))]
                counts = Counter()
                for _, kind, outcome, rss_kib in pool.imap_unordered(_decode_one, batch, chunksize=25):
                    counts[f"{kind} | {outcome}"] += 1
                    rec["peak_rss_mb"] = max(rec.get("peak_rss_mb", 0), rss_kib // 1024)
                for k, v in counts.items():
                    rec["outcomes"][k] = rec["outcomes"].get(k, 0) + v
                rec["files"] += len(batch)
                a.out.parent.mkdir(parents=True, exist_ok=True)
                a.out.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        print(f"{name}: {rec['files']} files ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    failures = 0
    print("| codec | files | rejected | decoded | crash | hang | memory | peak RSS MB |\n|---|---|---|---|---|---|---|---|")
    for name in names:
        rec = state["codecs"][name]
        tally = Counter()
        for key, v in rec["outcomes"].items():
            outcome = key.split(" | ", 1)[1]
            tally[outcome.split()[0]] += v
        failures += tally["crash"] + tally["hang"] + tally["memory"]
        print(f"| {name} | {rec['files']} | {tally['rejected']} | {tally['decoded']} | {tally['crash']} | "
              f"{tally['hang']} | {tally['memory']} | {rec.get('peak_rss_mb', '?')} |")
    crashes = sorted({k for n in names for k in state["codecs"][n]["outcomes"] if "| crash" in k or "| hang" in k})
    if crashes:
        print("\nfailures:\n" + "\n".join(crashes[:40]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
