"""glocal-codec: neural image and video codec toolkit with real entropy-coded files.

>>> import glocal_codec as gc
>>> data = gc.encode("photo.png", codec="msh", quality=3)   # bytes of a complete .glc file
>>> img = gc.decode(data)                                   # PIL image

``import glocal_codec`` is light: the public names below are imported on first use (PEP 562),
so a command line that only prints its help, or a program that only reads ``__version__``,
never loads torch, the codec modules or PyAV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module (relative to this package) that defines it
_LAZY: dict[str, str] = {
    "DEFAULT_CODEC": ".api", "MAX_DECODE_PIXELS": ".api", "FileInfo": ".api", "ImageLike": ".api",
    "encode": ".api", "decode": ".api", "decode_tensor": ".api", "read_info": ".api", "open_container": ".api",
    "CodecInfo": ".codecs", "list_codecs": ".codecs", "open_codec": ".codecs", "register_codec": ".codecs",
    "BitstreamError": ".errors", "WeightsMissingError": ".errors",
    "UnsupportedImageError": ".imageio",
}
#: sub-packages reachable as attributes (``gc.video`` needs PyAV only when a video is read or written)
_SUBMODULES = ("api", "codecs", "errors", "video", "bitstream", "imageio", "eval", "datasets")

if TYPE_CHECKING:  # what type checkers and IDEs see; nothing of it runs
    from . import codecs, errors, video
    from .api import (DEFAULT_CODEC, MAX_DECODE_PIXELS, FileInfo, ImageLike, decode, decode_tensor, encode,
                      open_container, read_info)
    from .codecs import CodecInfo, list_codecs, open_codec, register_codec
    from .errors import BitstreamError, WeightsMissingError
    from .imageio import UnsupportedImageError


def __getattr__(name: str) -> Any:
    """Import a public name, or a sub-package such as ``glocal_codec.video``, on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


__all__ = [
    "__version__", "DEFAULT_CODEC", "MAX_DECODE_PIXELS", "FileInfo", "CodecInfo", "BitstreamError", "WeightsMissingError",
    "UnsupportedImageError", "errors",
    "encode", "decode", "decode_tensor", "read_info", "open_container",
    "list_codecs", "open_codec", "register_codec",
]
