"""PFNR on real clips: several videos in one file, what each costs, and bit-exactness after appending.

    nice -n 5 .venv/bin/python benchmarks/pfnr_sessions.py [--frames 8] [--size 320x180] [--quality 3]
        [--epochs 300] [--clip DIR --clip DIR ...]

Encodes the first clip alone (a one-video ``pfnr`` file), appends each further clip to that file
through the public API (:func:`glocal_codec.video.append_video`, the code behind
``glocal-codec video append``), and records in ``benchmarks/results/pfnr_sessions.json``:

* per video: frames, PSNR of its decoded frames, the bytes its stream adds to the file (masks and
  new weights separately, from :meth:`PFNRCodec.inspect`), bpp of those bytes over the video's
  own pixels, the weights it uses and how many of them it adds (the rest are frozen weights of
  earlier videos, reused through its mask), fitting seconds;
* whether every earlier video still decodes to identical frames after each append
  (``torch.equal``, the property PFNR is for);
* for comparison, the later clips encoded alone in their own one-video files (bytes, PSNR):
  what sharing one network saves or costs.

By default: Big Buck Bunny (``$GLOCAL_CODEC_DATA/video/bunny_nerv_640x360``), then DAVIS 2016
``blackswan`` and ``bmx-trees``, the first 8 frames of each scaled to 320x180.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from glocal_codec import __version__
from glocal_codec.codecs import open_codec
from glocal_codec.video import append_video, decode_video, encode_video, list_videos, read_video

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[1] / "shared" / "data"))
DEFAULT_CLIPS = [DATA / "video" / "bunny_nerv_640x360", DATA / "video" / "davis2016_480p" / "blackswan",
                 DATA / "video" / "davis2016_480p" / "bmx-trees"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", type=Path, action="append")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", default="320x180", help="WxH")
    p.add_argument("--quality", type=int, default=3)
    p.add_argument("--epochs", type=int, default=None, help="fitting passes per video (default: the codec's)")
    p.add_argument("--no-alone", action="store_true", help="skip encoding the later clips in their own files")
    p.add_argument("--out", type=Path, default=HERE / "results" / "pfnr_sessions.json")
    a = p.parse_args()
    size = tuple(int(v) for v in a.size.lower().split("x"))
    codec = open_codec("pfnr")
    if a.epochs is not None:
        codec.epochs = a.epochs
    clips = [read_video(c, max_frames=a.frames, size=size) for c in (a.clip or DEFAULT_CLIPS)]
    names = [c.name for c in (a.clip or DEFAULT_CLIPS)]
    t0 = time.perf_counter()

    videos, exact = [], []
    decoded: list[torch.Tensor] = []
    data = b""
    for k, (name, clip) in enumerate(zip(names, clips)):
        s = time.perf_counter()
        before = len(data)
        data = (encode_video(clip, "pfnr", a.quality) if k == 0 else append_video(data, clip))
        fit_s = time.perf_counter() - s
        for j, prev in enumerate(decoded):  # every earlier video, after this append
            exact.append({"after_adding": k + 1, "video": j + 1,
                          "identical": bool(torch.equal(decode_video(data, index=j).frames, prev))})
        y = decode_video(data, index=k).frames
        decoded.append(y)
        info = codec.inspect(data)[k]
        t, _, h, w = clip.frames.shape
        added = len(data) - before
        videos.append({"video": k + 1, "clip": name, "frames": t, "psnr": round(psnr(y, clip.frames), 3),
                       "bytes_added": added, "bpp_added": round(8 * added / (t * h * w), 4),
                       "mask_bytes": info.mask_bytes, "weight_bytes": info.weight_bytes,
                       "weights_used": info.mask_ones, "weights_added": info.new_weights,
                       "network_weights": info.weights, "fit_s": round(fit_s, 1)})
        print(json.dumps(videos[-1]), flush=True)
    assert len(list_videos(data)) == len(clips)

    alone = []
    if not a.no_alone:
        for name, clip in list(zip(names, clips))[1:]:
            s = time.perf_counter()
            one = encode_video(clip, "pfnr", a.quality)
            fit_s = time.perf_counter() - s
            t, _, h, w = clip.frames.shape
            alone.append({"clip": name, "bytes": len(one), "bpp": round(8 * len(one) / (t * h * w), 4),
                          "psnr": round(psnr(decode_video(one).frames, clip.frames), 3), "fit_s": round(fit_s, 1)})
            print(json.dumps(alone[-1]), flush=True)

    record = {
        "benchmark": "pfnr_sessions",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "glocal_codec": __version__, "torch": torch.__version__,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "frames": a.frames, "size": a.size, "quality": a.quality, "epochs": codec.epochs,
        "file_bytes": len(data), "seconds": round(time.perf_counter() - t0, 1),
        "videos": videos, "earlier_videos_identical_after_append": exact, "encoded_alone": alone,
    }
    a.out.parent.mkdir(exist_ok=True)
    a.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"all earlier videos identical after every append: {all(e['identical'] for e in exact)}")


if __name__ == "__main__":
    main()
