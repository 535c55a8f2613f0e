"""The header parameters that mark a folded thin strip (docs/bitstream.md, "Thin strips").

A container-level convention shared by the folding in :mod:`glocal_codec.engine.fold` and the
torch-free reader ``glocal-codec info`` uses (:mod:`glocal_codec.codecs.strip_header`), kept here
so that both import it from below.
"""

from __future__ import annotations

__all__ = ["FOLD_PARAMS"]

#: The parameters of a folded strip: the version (1) of the folding rule.
FOLD_PARAMS = b"\x01"
