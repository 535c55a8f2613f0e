"""Video: clip IO (PyAV), the video ``.glc`` API and the video codec plugins.

>>> from glocal_codec import video
>>> data = video.encode_video("clip.mp4", codec="x264", quality=3)   # bytes of a .glc file
>>> clip = video.decode_video(data)                                   # VideoClip: frames, fps
>>> video.write_video("out.mp4", clip)                                # lossless RGB H.264

Layout:

* :mod:`.io` -- :class:`VideoClip`, :func:`read_video` (files, frame folders), :func:`write_video`
  (``.mp4`` / ``.mkv`` / ``.y4m``), :func:`write_frames` (PNG folder);
* :mod:`.header` -- the frame-rate prefix of a video file's parameter field;
* :mod:`.yuv` -- the fixed RGB <-> Y'CbCr 4:2:0 conversion of the classical codecs;
* :mod:`.base` -- :class:`VideoCodecBase`, what every video codec plugin shares;
* :mod:`.classic` -- ``x264``, ``x265``, ``av1`` through PyAV (registered by the codec registry;
  absent if PyAV or an encoder is missing);
* ``inr/`` -- implicit-neural-representation codecs (HNeRV, NIRVANA, PFNR), plugins
  with ``media = "video"`` built on :class:`VideoCodecBase`.

PyAV is imported only by :mod:`.classic` and when a video file is read or written.
"""

from ..api import FileInfo, read_info
from .api import DEFAULT_VIDEO_CODEC, append_video, as_clip, decode_video, encode_video, list_videos
from .base import VideoCodecBase
from .header import DEFAULT_FPS
from .io import UnsupportedVideoError, VideoClip, read_video, write_frames, write_video

__all__ = [
    "DEFAULT_VIDEO_CODEC", "DEFAULT_FPS", "FileInfo", "VideoClip", "VideoCodecBase", "UnsupportedVideoError",
    "as_clip", "encode_video", "decode_video", "append_video", "list_videos", "read_info", "read_video", "write_video", "write_frames",
]
