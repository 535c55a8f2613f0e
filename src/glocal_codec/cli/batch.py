"""Many inputs for one command: expanding folders, naming outputs, running jobs on workers.

``glocal-codec encode a.png b.png photos/ -o out/`` and ``decode out/*.glc -o decoded/`` plan
one :class:`Job` per file (:func:`plan`), then :func:`run` does them -- in threads with
``--workers N`` -- under one progress bar. A file that fails is reported on its own line and
the others still finish; the caller exits non-zero listing the failures.

Imports nothing heavy: the work function a command hands to :func:`run` does that.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.markup import escape

from .common import EXPECTED, STDIO, is_stdio
from .progress import Reporter

__all__ = ["Job", "Failure", "plan", "run", "IMAGE_SUFFIXES", "GLC_SUFFIXES"]

#: What a folder scan picks up for ``encode`` (a file named on the command line is tried whatever
#: its suffix).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".tif", ".tiff", ".bmp", ".gif",
                            ".ppm", ".pgm", ".pnm", ".pbm", ".avif", ".jp2", ".j2k", ".j2c", ".jpc", ".tga", ".qoi"})
#: What a folder scan picks up for ``decode``.
GLC_SUFFIXES = frozenset({".glc"})


@dataclass(frozen=True)
class Job:
    """One input and where its output goes (``Path("-")``: stdin / stdout)."""

    src: Path
    dst: Path


@dataclass(frozen=True)
class Failure:
    job: Job
    message: str


def _natural_key(p: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(p))]


def _scan(folder: Path, suffixes: frozenset[str], recursive: bool) -> list[Path]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    found = [p for p in files if p.is_file() and p.suffix.lower() in suffixes
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found, key=_natural_key)


def plan(inputs: Sequence[Path], output: Path | None, *, suffixes: frozenset[str], recursive: bool,
         name: Callable[[Path], str], what: str) -> tuple[list[Job], bool]:
    """The jobs for ``inputs`` (files, folders, or ``-``) and whether this is a batch.

    ``name(src)`` is the default output file name of one input (e.g. ``photo.glc``). One input
    file is not a batch: ``output`` is its output file (or a folder to put it in; default beside
    the input; ``-`` for stdout, and stdin's default). Several inputs or a folder make a batch:
    ``output`` is a folder (created when missing; default beside each input), and with
    ``recursive`` the sub-folders under an input folder are kept. Raises ``ValueError`` for a
    plan that cannot work (stdin among several inputs, two inputs with the same output, ...).
    """
    if not inputs:
        raise ValueError(f"give at least one {what} (or - for stdin)")
    if any(is_stdio(p) for p in inputs):
        if len(inputs) > 1:
            raise ValueError("- (stdin) must be the only input")
        if output is not None and not is_stdio(output) and output.is_dir():
            raise ValueError("with - (stdin) as input, -o must name a file (or - for stdout)")
        return [Job(Path(STDIO), output if output is not None else Path(STDIO))], False
    batch = len(inputs) > 1 or any(p.is_dir() for p in inputs)
    if not batch:
        src = inputs[0]
        if output is None:
            return [Job(src, src.parent / name(src))], False
        if not is_stdio(output) and (output.is_dir() or str(output).endswith(("/", "\\"))):
            return [Job(src, output / name(src))], False
        return [Job(src, output)], False
    if output is not None and (is_stdio(output) or output.is_file()):
        raise ValueError(f"-o must be a folder when there are several inputs or a folder of them, not {output}")
    jobs: list[Job] = []
    for p in inputs:
        if p.is_dir():
            found = _scan(p, suffixes, recursive)
            if not found:
                kinds = ", ".join(sorted(suffixes)) if len(suffixes) < 4 else "images"
                raise ValueError(f"no {kinds} in folder {p}" + ("" if recursive else " (-r: look in sub-folders too)"))
            for f in found:
                rel = f.relative_to(p).parent
                folder = (output / rel) if output is not None else f.parent
                jobs.append(Job(f, folder / name(f)))
        else:
            jobs.append(Job(p, (output if output is not None else p.parent) / name(p)))
    seen: dict[Path, Path] = {}
    for j in jobs:
        key = j.dst.absolute()
        if key in seen and seen[key] != j.src:
            raise ValueError(f"{seen[key]} and {j.src} would both be written to {j.dst}; use -r with a folder, "
                             "or separate runs")
        seen[key] = j.src
    return jobs, True


def run(jobs: Sequence[Job], work: Callable[[Job], dict[str, Any]], *, reporter: Reporter, workers: int = 1,
        stage: str, on_done: Callable[[dict[str, Any]], None] | None = None
        ) -> tuple[list[dict[str, Any]], list[Failure], float]:
    """Do ``work(job)`` for every job (``workers`` at a time, in threads), under one progress
    stage. An expected error (:data:`~.common.EXPECTED`) fails that job only: it is printed on
    its own ``error:`` line and returned; anything else is a bug and propagates.

    Returns the results in input order, the failures, and the wall time.
    """
    t0 = time.perf_counter()
    reporter.stage(stage, total=len(jobs))
    results: dict[int, dict[str, Any]] = {}
    failures: dict[int, Failure] = {}

    def finish(i: int, result: dict[str, Any] | None, error: BaseException | None) -> None:
        if error is not None:
            failures[i] = Failure(jobs[i], str(error))
            reporter.print(f"[bold red]error:[/] {escape(str(jobs[i].src))}: {escape(str(error))}")
        else:
            assert result is not None
            results[i] = result
            if on_done is not None:
                on_done(result)
        reporter.advance()

    if workers <= 1:
        for i, job in enumerate(jobs):
            try:
                r = work(job)
            except EXPECTED as e:
                finish(i, None, e)
            else:
                finish(i, r, None)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="glocal-worker") as pool:
            futures = {pool.submit(work, job): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                i = futures[fut]
                e = fut.exception()
                if e is not None and not isinstance(e, EXPECTED):
                    raise e
                finish(i, None if e is not None else fut.result(), e)
    return [results[i] for i in sorted(results)], [failures[i] for i in sorted(failures)], time.perf_counter() - t0
