"""Header parameters of the learned codecs that fold thin strips (``msh``, ``glocal``, ``mcquic``).

Light on purpose (no torch): ``glocal-codec info`` shows them through :func:`file_facts`. A file
of these codecs has either no parameters (a picture coded as it is, and every file written
before strips were folded) or exactly :data:`FOLD_PARAMS`, the version of the folding rule of
:mod:`glocal_codec.engine.fold` (the layout itself follows from the shape).
"""

from __future__ import annotations

from ..bitstream.errors import CorruptStreamError
from ..bitstream.strip import FOLD_PARAMS

__all__ = ["FOLD_PARAMS", "file_facts"]


def file_facts(params: bytes) -> dict[str, str]:
    """``{"layout": ...}`` for a folded strip, nothing for a plain picture; other bytes are a
    :class:`~glocal_codec.bitstream.CorruptStreamError`."""
    if not params:
        return {}
    if params != FOLD_PARAMS:
        raise CorruptStreamError(f"unexpected codec parameters {params[:8].hex()} (only a folded strip has one, "
                                 "the fold marker 01)")
    return {"layout": "thin strip, folded into a near-square picture (rule 1)"}
