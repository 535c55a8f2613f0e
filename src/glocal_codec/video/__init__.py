"""Video: clip IO (PyAV), the video ``.glc`` API and the video codec plugins.

>>> from glocal_codec import video
>>> data = video.encode_video("clip.mp4", codec="x264", quality=3)   # bytes of a .glc file
>>> clip = video.decode_video(data)                                   # VideoClip: frames, fps
>>> video.write_video("out.mp4", clip)                                # lossless RGB H.264

Layout:

* :mod:`.io` -- :class:`VideoClip`, :func:`read_video` (files, frame folders), :func:`write_video`
  (``.mp4`` / ``.mkv`` / ``.y4m``), :func:`write_frames` (PNG folder);
* :mod:`.api` -- ``encode_video`` / ``decode_video`` / ``append_video`` over the container;
  ``decode_video_frames`` streams the frames into a writer (one frame in memory for x264 / x265 / av1).

No codec lives here: the video codecs (``x264``, ``x265``, ``av1``, ``hnerv``, ``nirvana``,
``pfnr``) are plugins in :mod:`glocal_codec.codecs`, below this API. PyAV is imported only by
the classical video codecs and when a video file is read or written.
"""

from ..api import FileInfo, read_info
from .api import (DEFAULT_VIDEO_CODEC, append_video, as_clip, decode_video, decode_video_frames, encode_video,
                  list_videos)
from ..bitstream.video_params import DEFAULT_FPS
from .io import FrameStream, UnsupportedVideoError, VideoClip, read_video, write_frames, write_video

__all__ = [
    "DEFAULT_VIDEO_CODEC", "DEFAULT_FPS", "FileInfo", "VideoClip", "FrameStream", "UnsupportedVideoError",
    "as_clip", "encode_video", "decode_video", "decode_video_frames", "append_video", "list_videos", "read_info", "read_video", "write_video", "write_frames",
]
