"""What every CLI command shares: the consoles, the one error printer, the expected errors.

Commands print a user's mistake or a bad file as one line (``error: ...``) and exit 1; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..bitstream import BitstreamError
from ..datasets import DatasetNotFoundError
from ..errors import WeightsMissingError
from ..imageio import UnsupportedImageError

__all__ = ["out", "err", "EXPECTED", "fail", "same_file"]

out = Console()
err = Console(stderr=True)

#: Errors that are the input's or the environment's fault, not the program's. OSError covers
#: FileExistsError, FileNotFoundError, IsADirectoryError, PermissionError and a full disk.
EXPECTED: tuple[type[BaseException], ...] = (BitstreamError, UnsupportedImageError, ValueError, OSError,
                                             WeightsMissingError, DatasetNotFoundError)


def fail(e: BaseException | str) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit 1. The message is escaped: a path such as
    ``no[red]such.glc`` is printed as it is, never read as rich markup."""
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (an output must never overwrite its own input)."""
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
