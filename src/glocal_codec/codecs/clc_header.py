"""The ``clc`` codec parameters (``Payload.params``): which dictionary, which references.

Light on purpose (no torch): ``glocal-codec info`` reads the reference ids and the dictionary
digest of a file through :func:`file_facts` without loading the model.

Layout (version 1)::

    version      1 byte   = 1
    kind         varint   0 = the dictionary shipped in the weights, 1 = a user dictionary file
    digest       4 bytes  the dictionary's digest (:func:`glocal_codec.codecs.clc.dictionary_digest`)
    k            varint   number of references, 1..MAX_REFS
    ids          k varints  reference ids, each < MAX_ENTRIES (the decoder checks them against
                            its dictionary's size)

9 bytes for two references out of 128 entries: 72 bits, 0.0002 bpp on a Kodak image.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bitstream.errors import TruncatedError
from ..bitstream.fields import check_end, check_version, read_fields

__all__ = ["ClcParams", "pack_params", "unpack_params", "file_facts", "VERSION", "MAX_REFS", "MAX_ENTRIES",
           "DIGEST_BYTES", "BUILTIN", "USER"]

VERSION = 1
#: Most references a file may name (the model is trained for up to ``ClcConfig.k_max``).
MAX_REFS = 8
#: Most entries a dictionary may have.
MAX_ENTRIES = 65536
DIGEST_BYTES = 4
BUILTIN, USER = 0, 1


@dataclass(frozen=True)
class ClcParams:
    """``kind`` (:data:`BUILTIN` or :data:`USER`), the dictionary ``digest`` and the reference ``ids``."""

    kind: int
    digest: bytes
    ids: tuple[int, ...]

    @property
    def dictionary(self) -> str:
        """How ``info`` names the dictionary."""
        return ("built-in" if self.kind == BUILTIN else "user") + f" {self.digest.hex()}"


def pack_params(p: ClcParams) -> bytes:
    from ..bitstream.varint import encode_varint

    if p.kind not in (BUILTIN, USER) or len(p.digest) != DIGEST_BYTES:
        raise ValueError(f"bad clc parameters {p}")
    if not 1 <= len(p.ids) <= MAX_REFS or not all(0 <= i < MAX_ENTRIES for i in p.ids):
        raise ValueError(f"clc references must be 1..{MAX_REFS} ids below {MAX_ENTRIES}, got {p.ids}")
    return (bytes([VERSION]) + encode_varint(p.kind) + bytes(p.digest) + encode_varint(len(p.ids))
            + b"".join(encode_varint(i) for i in p.ids))


def unpack_params(data: bytes) -> ClcParams:
    """Inverse of :func:`pack_params`; any other bytes raise a :class:`~glocal_codec.bitstream.BitstreamError`."""
    pos = check_version(data, VERSION)
    f, pos = read_fields(data, pos, [("dictionary kind", BUILTIN, USER)])
    if len(data) < pos + DIGEST_BYTES:
        raise TruncatedError("the clc parameters end inside the dictionary digest")
    digest = bytes(data[pos:pos + DIGEST_BYTES])
    pos += DIGEST_BYTES
    n, pos = read_fields(data, pos, [("reference count", 1, MAX_REFS)])
    ids, pos = read_fields(data, pos, [(f"reference id {j}", 0, MAX_ENTRIES - 1) for j in range(n["reference count"])])
    check_end(data, pos)
    return ClcParams(f["dictionary kind"], digest, tuple(ids.values()))


def file_facts(params: bytes) -> dict[str, str]:
    """What ``glocal-codec info`` shows about a clc file: its dictionary and reference ids."""
    p = unpack_params(params)
    return {"dictionary": p.dictionary, "references": " ".join(map(str, p.ids)),
            "reference bytes": str(len(params))}
