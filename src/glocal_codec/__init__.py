"""glocal-codec: neural image and video codec toolkit with real entropy-coded files.

>>> import glocal_codec as gc
>>> data = gc.encode("photo.png", codec="msh", quality=3)   # bytes of a complete .glc file
>>> img = gc.decode(data)                                   # PIL image
"""

from .api import DEFAULT_CODEC, FileInfo, decode, decode_tensor, encode, open_container, read_info
from .bitstream import BitstreamError
from .codecs import CodecInfo, list_codecs, open_codec, register_codec
from .imageio import UnsupportedImageError

__version__ = "0.1.0"

__all__ = [
    "__version__", "DEFAULT_CODEC", "FileInfo", "CodecInfo", "BitstreamError", "UnsupportedImageError",
    "encode", "decode", "decode_tensor", "read_info", "open_container",
    "list_codecs", "open_codec", "register_codec",
]
