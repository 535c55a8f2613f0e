"""Helpers of encoder-side fitting (the INR codecs overfit a network per clip or image).

* :func:`cosine_lr` -- warm-up then cosine decay, the schedule NeRV/HNeRV use;
* :func:`report` -- a progress callback call with an optional stats text (the CLI's bar shows it).
"""

from __future__ import annotations

import math
from typing import Callable

__all__ = ["cosine_lr", "report"]


def cosine_lr(step: int, total: int, lr: float, warmup: float = 0.1) -> float:
    """Linear warm-up over the first ``warmup`` share of steps, then cosine decay to 0."""
    w = max(1, int(total * warmup))
    if step < w:
        return lr * (step + 1) / w
    p = (step - w) / max(1, total - w)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def report(progress: Callable[..., None] | None, done: int, total: int | None, text: str | None = None) -> None:
    """``progress(done, total)``, or ``progress(done, total, text)`` when there is a stats text.

    Callbacks given to a codec take the optional third argument (:class:`~glocal_codec.codecs.ProgressFn`).
    """
    if progress is None:
        return
    if text is None:
        progress(done, total)
    else:
        progress(done, total, text)
