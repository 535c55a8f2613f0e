"""Codec labels with encoder options: ``msh+refine30`` is ``msh`` encoded with ``refine=30``;
``overfit+slow`` is ``overfit`` at its ``slow`` preset.

An evaluation compares *labels*: the plain codec and any encoder-side variants of it sit side
by side in one results file, one report and one BD-rate table, each under its own label. Only
encoder options belong here: a variant's files are ordinary files of its codec, decoded by the
same decoder (``glocal-codec info`` on one shows the codec's own name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CodecVariant", "parse_codec_label"]

_REFINE = re.compile(r"refine(\d+)")
_PRESET = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class CodecVariant:
    """What a label asks for: the registered codec and its encode options."""

    label: str
    codec: str
    refine: int = 0
    #: an encoder preset of a :class:`~glocal_codec.codecs.Presets` codec ("" = its default)
    preset: str = ""


def parse_codec_label(label: str) -> CodecVariant:
    """``"msh"`` -> plain msh; ``"msh+refine30"`` -> msh with 30 refinement steps;
    ``"overfit+medium"`` -> overfit at its ``medium`` preset (checked against the codec by the caller).

    Raises ValueError for a malformed suffix, naming the forms it knows.
    """
    name, plus, rest = label.partition("+")
    if not plus:
        return CodecVariant(label, label)
    m = _REFINE.fullmatch(rest)
    if name and m is not None and int(m.group(1)) >= 1:
        return CodecVariant(label, name, int(m.group(1)))
    if name and m is None and not rest.startswith("refine") and _PRESET.fullmatch(rest):
        return CodecVariant(label, name, preset=rest)
    raise ValueError(f"bad codec label {label!r}: a codec name, optionally followed by +refineN "
                     f"(N >= 1 encoder-side refinement steps, e.g. msh+refine30) or +PRESET "
                     f"(an encoder preset, e.g. overfit+slow)")
