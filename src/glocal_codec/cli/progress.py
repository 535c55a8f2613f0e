"""Progress of long commands, on stderr: a live bar on a terminal, plain lines elsewhere.

On a terminal, :class:`Reporter` draws a rich progress bar (count, elapsed time, ETA and a short
stats text such as an INR codec's fitting PSNR). When stderr is not a terminal (a log file, CI,
``nohup``), a bar would print nothing until the end, so it writes one plain line every
``GLOCAL_CODEC_PROGRESS_SECONDS`` seconds (default 10) instead, also while a step gives no
callbacks (a refinement, a long decode)::

    fitting with hnerv: 84/240 (35%), 6:30 elapsed, ETA 12:04, fit 27.31 dB

``quiet`` turns everything off. A :class:`Reporter` is a ``progress(done, total, stats=None)``
callback (:class:`glocal_codec.codecs.ProgressFn`), so it can be handed to the API as it is.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

__all__ = ["Reporter", "progress_interval", "fmt_seconds"]

#: Default seconds between two plain progress lines when stderr is not a terminal.
DEFAULT_INTERVAL = 10.0


def progress_interval() -> float:
    """Seconds between plain progress lines (``GLOCAL_CODEC_PROGRESS_SECONDS``, default 10)."""
    try:
        return max(0.05, float(os.environ.get("GLOCAL_CODEC_PROGRESS_SECONDS", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def fmt_seconds(s: float) -> str:
    """``75.2`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    s = int(round(max(0.0, s)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Reporter:
    """One long command's progress: stages (``reading``, ``fitting with hnerv``, ...), each with a
    count that may be unknown. Use as a context manager; thread-safe (batch workers call it)."""

    def __init__(self, console: Console, *, quiet: bool = False, interval: float | None = None,
                 transient: bool = True) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.interval = progress_interval() if interval is None else interval
        self.transient = transient
        self._lock = threading.Lock()
        self._name = ""
        self._done = 0
        self._total: int | None = None
        self._stats = ""
        self._t0 = self._stage_t0 = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._bar: Any = None
        self._task: Any = None

    # -- context -----------------------------------------------------------------------------
    def __enter__(self) -> "Reporter":
        if self.live:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[stats]}"), console=self.console, transient=self.transient)
            self._bar.__enter__()
        elif not self.quiet:
            self._ticker = threading.Thread(target=self._tick, name="glocal-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> bool:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False

    # -- reporting ---------------------------------------------------------------------------
    def stage(self, name: str, total: int | None = None) -> None:
        """Start a new stage (a new bar on a terminal)."""
        with self._lock:
            self._name, self._done, self._total, self._stats = name, 0, total, ""
            self._stage_t0 = time.monotonic()
            if self._bar is not None:
                if self._task is not None:
                    self._bar.remove_task(self._task)
                self._task = self._bar.add_task(escape(name), total=total, stats="")

    def __call__(self, done: int, total: int | None, stats: str | None = None) -> None:
        """``progress(done, total, stats=None)``: the current stage's count."""
        with self._lock:
            if self._bar is not None and self._task is None:
                self._task = self._bar.add_task(escape(self._name or "working"), total=total, stats="")
            self._done, self._total = done, total
            if stats is not None:
                self._stats = stats
            if self._bar is not None:
                self._bar.update(self._task, completed=done, total=total,
                                 **({"stats": escape(stats)} if stats is not None else {}))

    def advance(self, n: int = 1, stats: str | None = None) -> None:
        """One more item of the current stage done (batch commands)."""
        with self._lock:
            done, total = self._done + n, self._total
        self(done, total, stats)

    def print(self, message: str) -> None:
        """A line above the bar (or a plain line), e.g. a batch's per-file result or error."""
        if self.quiet and not message.startswith("[bold red]error"):
            return
        (self._bar.console if self._bar is not None else self.console).print(message, highlight=False,
                                                                              soft_wrap=True)

    def line(self) -> str:
        """The plain status line: stage, count, percentage, elapsed, ETA, stats."""
        with self._lock:
            name, done, total, stats, t0 = self._name or "working", self._done, self._total, self._stats, self._stage_t0
        elapsed = time.monotonic() - t0
        parts = [f"{name}:"]
        if total:
            parts.append(f"{done}/{total} ({100 * done / total:.0f}%),")
        elif done:
            parts.append(f"{done},")
        parts.append(f"{fmt_seconds(elapsed)} elapsed")
        if total and 0 < done < total:
            parts[-1] += ","
            parts.append(f"ETA {fmt_seconds(elapsed / done * (total - done))}")
        if stats:
            parts[-1] += ","
            parts.append(stats)
        return " ".join(parts)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.console.print(escape(self.line()), highlight=False, soft_wrap=True)
