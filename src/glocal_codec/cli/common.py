"""What every CLI command shares: the consoles, the one error printer, the expected errors, pipes.

Commands print a user's mistake or a bad file as one line (``error: ...``) and exit 1; anything
else is a bug and keeps its traceback.

Light on purpose: importing the CLI (``glocal-codec --help``) must not import torch, the codecs
or PyAV, so nothing here imports more than the container's error classes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..bitstream import BitstreamError
from ..errors import WeightsMissingError

__all__ = ["out", "err", "EXPECTED", "fail", "same_file", "STDIO", "is_stdio", "read_input", "write_stdout",
           "check_stdout_for_data", "print_json", "MAX_PIXELS_HELP"]

out = Console()
err = Console(stderr=True)

#: Errors that are the input's or the environment's fault, not the program's. OSError covers
#: FileExistsError, FileNotFoundError (and so ``datasets.DatasetNotFoundError``), IsADirectoryError,
#: PermissionError and a full disk; ValueError covers ``imageio.UnsupportedImageError`` and
#: ``video.UnsupportedVideoError`` (not imported here: they would import torch / PyAV).
EXPECTED: tuple[type[BaseException], ...] = (BitstreamError, ValueError, OSError, WeightsMissingError)

#: ``glocal_codec.MAX_DECODE_PIXELS`` as help texts show it, without importing the API (torch);
#: tests/cli checks that they match.
MAX_PIXELS_HELP = "134,217,728"

#: The file name that means stdin (as an input) or stdout (as an output).
STDIO = "-"


def fail(e: BaseException | str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit 1. The message is escaped: a path such as
    ``no[red]such.glc`` is printed as it is, never read as rich markup."""
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (an output must never overwrite its own input)."""
    if is_stdio(a) or is_stdio(b):
        return False
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def is_stdio(path: Path | str | None) -> bool:
    """Whether ``path`` is ``-`` (stdin for an input, stdout for an output)."""
    return path is not None and str(path) == STDIO


def read_input(path: Path) -> bytes:
    """The bytes of an input file, or all of stdin for ``-`` (binary-safe)."""
    if is_stdio(path):
        if sys.stdin is None or sys.stdin.isatty():
            raise ValueError("input '-' means stdin, but stdin is a terminal: pipe a file in (< file)")
        data = sys.stdin.buffer.read()
        if not data:
            raise ValueError("stdin is empty")
        return data
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path.read_bytes()


def check_stdout_for_data() -> None:
    """Refuse to write binary data to a terminal (like gzip and zstd)."""
    if sys.stdout.isatty():
        raise ValueError("refusing to write binary data to a terminal: redirect stdout (> file, | command) "
                         "or give -o FILE")


def write_stdout(data: bytes) -> None:
    """Binary-safe write of ``data`` to stdout (the text layer is flushed first)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def print_json(obj: Any) -> None:
    """One JSON document on stdout (machine-readable output of ``--json``)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(o: Any) -> Any:
    from fractions import Fraction

    if isinstance(o, Fraction):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
