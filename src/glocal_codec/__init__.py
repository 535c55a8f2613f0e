"""glocal-codec: neural image and video codec toolkit with real entropy-coded files.

>>> import glocal_codec as gc
>>> data = gc.encode("photo.png", codec="msh", quality=3)   # bytes of a complete .glc file
>>> img = gc.decode(data)                                   # PIL image
"""

from .api import DEFAULT_CODEC, MAX_DECODE_PIXELS, FileInfo, decode, decode_tensor, encode, open_container, read_info
from . import codecs, errors
from .codecs import CodecInfo, list_codecs, open_codec, register_codec
from .errors import BitstreamError, WeightsMissingError
from .imageio import UnsupportedImageError

__version__ = "0.1.0"


def __getattr__(name: str):
    """``glocal_codec.video`` is imported on first use (it is the only part that needs PyAV)."""
    if name == "video":
        import importlib

        return importlib.import_module(".video", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "__version__", "DEFAULT_CODEC", "MAX_DECODE_PIXELS", "FileInfo", "CodecInfo", "BitstreamError", "WeightsMissingError",
    "UnsupportedImageError", "errors",
    "encode", "decode", "decode_tensor", "read_info", "open_container",
    "list_codecs", "open_codec", "register_codec",
]
