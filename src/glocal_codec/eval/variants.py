"""Codec labels with encoder options: ``msh+refine30`` is ``msh`` encoded with ``refine=30``.

An evaluation compares *labels*: the plain codec and any encoder-side variants of it sit side
by side in one results file, one report and one BD-rate table, each under its own label. Only
encoder options belong here: a variant's files are ordinary files of its codec, decoded by the
same decoder (``glocal-codec info`` on one shows the codec's own name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CodecVariant", "parse_codec_label"]

_SUFFIX = re.compile(r"\+refine(\d+)")


@dataclass(frozen=True)
class CodecVariant:
    """What a label asks for: the registered codec and its encode options."""

    label: str
    codec: str
    refine: int = 0


def parse_codec_label(label: str) -> CodecVariant:
    """``"msh"`` -> plain msh; ``"msh+refine30"`` -> msh with 30 refinement steps.

    Raises ValueError for a suffix it does not know, naming the one it does.
    """
    name, plus, rest = label.partition("+")
    if not plus:
        return CodecVariant(label, label)
    m = _SUFFIX.fullmatch("+" + rest)
    if not name or m is None or int(m.group(1)) < 1:
        raise ValueError(f"bad codec label {label!r}: a codec name, optionally followed by +refineN "
                         f"(N >= 1 encoder-side refinement steps), e.g. msh+refine30")
    return CodecVariant(label, name, int(m.group(1)))
