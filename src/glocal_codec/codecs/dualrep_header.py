"""The ``dualrep`` codec parameters (``Payload.params``): the texture setting the file was made with.

Light on purpose (no torch): ``glocal-codec info`` shows it through :func:`file_facts`.

Layout (version 1)::

    version   1 byte  = 1
    texture   varint  0..255: ``encode --texture t`` as ``round(255 t)``

The decoder does not need the value (the texture stream says what was sent); it is in the file so
that a user can see how the file was made, as the issue asks.
"""

from __future__ import annotations

from ..bitstream.fields import pack_fields, unpack_fields

__all__ = ["pack_params", "unpack_params", "file_facts", "VERSION"]

VERSION = 1
_FIELDS = [("texture", 0, 255)]


def pack_params(texture: float) -> bytes:
    """The parameters of a file encoded with ``texture`` in [0, 1]."""
    if not 0.0 <= texture <= 1.0:
        raise ValueError(f"texture must be in [0, 1], got {texture}")
    return pack_fields(VERSION, [round(texture * 255)])


def unpack_params(data: bytes) -> float:
    """The texture setting; bad bytes raise a :class:`~glocal_codec.bitstream.BitstreamError`."""
    return unpack_fields(data, VERSION, _FIELDS)["texture"] / 255


def file_facts(params: bytes) -> dict[str, str]:
    """What ``glocal-codec info`` shows about a dualrep file."""
    return {"texture": f"{unpack_params(params):.2f}"}
