"""Time and peak memory of the decompression-bomb guards (#36 part 4), each in a fresh process.

    nice -n 15 .venv/bin/python benchmarks/memory_guards.py [--json benchmarks/results/memory_guards.json]
        [--lifted] [--per-pixel] [--src SRC_DIR]

Bombs (all refused by default; the target is under a second and under 1 GB each):

* ``png_header``: a real 8 x 8 PNG whose IHDR says 13,000 x 13,000 (CRC fixed up), ~70 bytes;
* ``png_1bit``: a real, valid 1-bit 13,000 x 13,000 PNG (~20 KB; #36 used a 493 KB one), which
  took 6.6 GB with ``encode -c jpeg`` before the guard;
* ``glc_image``: an ``msh`` / ``jpeg`` ``.glc`` header relabelled 13,000 x 13,000;
* ``video``: ``tests/video/data/x264-300-black-1280x720.glc``, 12,299 bytes of x264 announcing
  300 black 1280 x 720 frames, which took 10.6 GB and 76 s to ``video decode`` before.

Each row is a whole ``glocal-codec`` process (start-up included: the ``--version`` row) with its
wall and CPU seconds (user + system: what a busy machine disturbs less) and its peak resident
memory (``os.wait4``'s ``ru_maxrss``); ``api`` rows time the refusing call alone, inside a
process that imported the package (and torch) first.

``--lifted`` decodes the video bomb with ``--max-pixels 0`` to ``.mp4`` (playable H.264) and to
``.y4m``: the streamed decode's peak memory against the clip's 3.3 GB as float32 (minutes).
``--inr`` decodes a 240-frame 640x360 ``hnerv`` file to ``.y4m`` (frames streamed to the file
since #36: compare with ``--src`` of an older checkout). ``--per-pixel`` measures what an accepted image costs: peak memory of ``encode`` and ``decode``
with ``jpeg`` and ``msh`` at 3 and 12.6 Mpixel (a Kodak photo resized); the slope is bytes per
pixel, which is what ``MAX_DECODE_PIXELS`` (2^27) is chosen against. ``--src`` runs another copy of
the package (e.g. ``git archive HEAD src``) for a before/after. Never timed inside tests/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEO_BOMB = ROOT / "tests" / "video" / "data" / "x264-300-black-1280x720.glc"
#: What issue 36 measured before these guards (same bombs, same kind of machine).
BEFORE = {"png 13,000 x 13,000 (493 KB), encode -c jpeg": "accepted, 6.6 GB peak",
          "png 13,000 x 13,000, encode -c msh": "still growing at 6.8 GB after 150 s",
          "x264 300 x 1280x720 (13,376 bytes), video decode": "exit 0 after 76 s, 10.6 GB peak"}
_CLI = "import sys; from glocal_codec.cli import main; sys.argv[0] = 'glocal-codec'; main()"


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float = 1800) -> dict:
    """Wall seconds, exit status, peak RSS (MB) and the last stderr line of one process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        secs = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return {"exit": p.returncode, "wall_s": round(secs, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "stderr": lines[-1][:300] if lines else "", "stdout": stdout.strip()[-300:]}


def cli(args: list[str], env: dict[str, str], **kw) -> dict:
    return {"command": "glocal-codec " + " ".join(args), **run([sys.executable, "-c", _CLI, *args], env, **kw)}


_API = """
import json, resource, sys, time
import glocal_codec as gc
from glocal_codec import video
arg = sys.argv[1]
data = open(arg, "rb").read()
t0 = time.perf_counter()
try:
    {call}
    outcome = "accepted"
except Exception as e:
    outcome = type(e).__name__
secs = time.perf_counter() - t0
print(json.dumps({{"call_s": round(secs, 4), "outcome": outcome,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""


def api(call: str, path: Path, env: dict[str, str], imports: str = "") -> dict:
    """Time one API call inside a process that has already imported the package (and ``imports``)."""
    code = _API.replace("import glocal_codec as gc", "import glocal_codec as gc\n" + imports).format(call=call)
    r = run([sys.executable, "-c", code, str(path)], env)
    try:
        r.update(json.loads(r.pop("stdout").splitlines()[-1]))
    except (ValueError, IndexError):
        pass
    return {"call": call, **r}


def png_claiming(width: int, height: int) -> bytes:
    """A real 8 x 8 PNG whose IHDR says ``width x height`` (CRC fixed up)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    b = bytearray(buf.getvalue())
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    return bytes(b)


def make_bombs(folder: Path) -> dict[str, Path]:
    import torch
    from PIL import Image

    import glocal_codec as gc
    from glocal_codec.bitstream import read_container, write_container

    paths = {"png_header": folder / "png_header.png", "png_1bit": folder / "png_1bit.png"}
    paths["png_header"].write_bytes(png_claiming(13_000, 13_000))
    Image.new("1", (13_000, 13_000)).save(paths["png_1bit"], optimize=True)
    for codec in ("jpeg", "msh"):
        c = read_container(gc.encode(torch.rand(1, 3, 32, 32), codec=codec))
        paths[f"glc_{codec}"] = folder / f"glc_{codec}.glc"
        paths[f"glc_{codec}"].write_bytes(write_container(dataclasses.replace(c, shape=(3, 13_000, 13_000))))
    return paths


def bombs(paths: dict[str, Path], out: Path, env: dict[str, str]) -> list[dict]:
    rows = [{"case": "start-up alone (--version)", **cli(["--version"], env)}]
    for kind in ("png_header", "png_1bit"):
        for codec in ("jpeg", "msh"):
            rows.append({"case": f"{kind} encode {codec}", "input_bytes": paths[kind].stat().st_size,
                         **cli(["encode", str(paths[kind]), "-c", codec, "-o", str(out / "x.glc"), "-f"], env)})
            rows.append({"case": f"{kind} api encode {codec}",
                         **api(f"gc.encode(arg, codec={codec!r})", paths[kind], env,
                               imports="from glocal_codec.codecs import open_codec; open_codec('msh')")})
    for codec in ("jpeg", "msh"):
        p = paths[f"glc_{codec}"]
        rows.append({"case": f"glc_image decode {codec}", "input_bytes": p.stat().st_size,
                     **cli(["decode", str(p), "-o", str(out / "x.png"), "-f"], env)})
    p = paths["video"]
    rows.append({"case": "video decode (x264, 300 x 1280x720)", "input_bytes": p.stat().st_size,
                 **cli(["video", "decode", str(p), "-o", str(out / "x.mp4"), "-f"], env)})
    rows.append({"case": "video api decode_video", **api("video.decode_video(data)", p, env)})
    rows.append({"case": "video api decode_video_frames", **api("video.decode_video_frames(data)", p, env)})
    return rows


def lifted(out: Path, env: dict[str, str]) -> list[dict]:
    rows = []
    for suffix in (".y4m", ".mp4"):
        dst = out / f"lifted{suffix}"
        r = cli(["video", "decode", str(VIDEO_BOMB), "--max-pixels", "0", "-o", str(dst), "-f"], env)
        r["output_mb"] = round(dst.stat().st_size / 2**20, 1) if dst.exists() else None
        dst.unlink(missing_ok=True)
        rows.append({"case": f"video decode --max-pixels 0 -o {suffix} (streamed)", **r})
    return rows


_INR_CLIP = """
import sys, torch
from fractions import Fraction
from glocal_codec.bitstream import Container, MediaKind, write_container
from glocal_codec.bitstream.video_params import pack_video_params
from glocal_codec.codecs import NO_WEIGHTS, codec_id
from glocal_codec.codecs.hnerv import HNeRVCodec
t, h, w = 240, 360, 640
yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
x = torch.stack([torch.stack([(xx + i / t) % 1, yy, 0.5 * (xx + yy)]) for i in range(t)])
p = HNeRVCodec(epochs=1).encode(x, 1)
open(sys.argv[1], "wb").write(write_container(Container(codec_id("hnerv"), NO_WEIGHTS, MediaKind.VIDEO,
    tuple(p.shape), p.quality, pack_video_params(Fraction(25), p.params), tuple(p.streams))))
"""


def inr(out: Path, env: dict[str, str]) -> list[dict]:
    """Peak memory of ``video decode`` of a 240-frame 640x360 ``hnerv`` file (a one-epoch fit: the
    pixels do not matter) to ``.y4m``: the clip is 663 MB as float32, 166 MB as 8-bit frames."""
    clip = out / "hnerv-240x640x360.glc"
    subprocess.run([sys.executable, "-c", _INR_CLIP, str(clip)], env=env, check=True)
    dst = out / "inr.y4m"
    r = cli(["video", "decode", str(clip), "-o", str(dst), "-f"], env)
    r["output_mb"] = round(dst.stat().st_size / 2**20, 1) if dst.exists() else None
    dst.unlink(missing_ok=True)
    return [{"case": "video decode hnerv 240 x 640x360 -o .y4m", "file_kb": round(clip.stat().st_size / 1024, 1), **r}]


def per_pixel(out: Path, env: dict[str, str]) -> list[dict]:
    from PIL import Image

    data = Path(os.environ.get("GLOCAL_CODEC_DATA", ROOT.parent / "shared" / "data"))
    src = sorted((data / "kodak").glob("*.png"))[0]
    rows = []
    sizes = {"jpeg": (2048, 4096), "msh": (2048, 4096)}  # msh: both above 1 Mpixel, where it runs tile by tile
    for codec, sides in sizes.items():
        for side in sides:
            img = out / f"{codec}{side}.png"
            Image.open(src).convert("RGB").resize((side, side * 3 // 4), Image.BICUBIC).save(img)
            glc = out / f"{codec}{side}.glc"
            px = side * (side * 3 // 4)
            enc = cli(["encode", str(img), "-c", codec, "-o", str(glc), "-f"], env)
            dec = cli(["decode", str(glc), "-o", str(out / f"{codec}{side}.out.png"), "-f"], env)
            rows.append({"codec": codec, "pixels": px, "size": f"{side}x{side * 3 // 4}",
                         "encode": enc, "decode": dec})
    for codec in sizes:
        a, b = [r for r in rows if r["codec"] == codec]
        for step in ("encode", "decode"):
            slope = (b[step]["peak_rss_mb"] - a[step]["peak_rss_mb"]) * 2**20 / (b["pixels"] - a["pixels"])
            rows.append({"codec": codec, "step": step, "bytes_per_pixel": round(slope, 1)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path)
    p.add_argument("--lifted", action="store_true", help="also decode the video bomb with --max-pixels 0")
    p.add_argument("--per-pixel", action="store_true", help="also measure memory per pixel of accepted images")
    p.add_argument("--inr", action="store_true", help="also measure the peak memory of a long hnerv video decode")
    p.add_argument("--src", type=Path, help="run this copy of the package's src folder instead")
    p.add_argument("--make-bombs", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.make_bombs:
        make_bombs(a.make_bombs)
        return
    env = _env(a.src)
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_before": os.getloadavg(),
                    "src": str(a.src) if a.src else "this checkout", "before_guards": BEFORE}
    with tempfile.TemporaryDirectory(prefix="glocal-bombs-") as tmp:
        folder = Path(tmp)
        # made in a child: ru_maxrss of a process counts the parent it was forked from, so this one
        # stays small (it never imports torch)
        subprocess.run([sys.executable, __file__, "--make-bombs", str(folder)], env=env, check=True)
        paths = {p.stem: p for p in folder.iterdir()} | {"video": VIDEO_BOMB}
        result["bombs"] = bombs(paths, folder, env)
        for r in result["bombs"]:
            t = f"call {r['call_s']:.3f} s" if "call_s" in r else f"{r['wall_s']:.2f} s (CPU {r['cpu_s']:.2f} s)"
            what = r.get("outcome", f"exit {r['exit']}")
            print(f"{r['case']:<40} {what:<22} {t:<22} {r['peak_rss_mb']:>7} MB  {r['stderr'][:60]}", flush=True)
        if a.lifted:
            result["lifted"] = lifted(folder, env)
            for r in result["lifted"]:
                print(f"{r['case']:<40} exit {r['exit']}  {r['wall_s']:.1f} s (CPU {r['cpu_s']:.1f} s) "
                      f"{r['peak_rss_mb']:>7} MB", flush=True)
        if a.inr:
            result["inr"] = inr(folder, env)
            for r in result["inr"]:
                print(f"{r['case']:<40} exit {r['exit']}  {r['wall_s']:.1f} s (CPU {r['cpu_s']:.1f} s) "
                      f"{r['peak_rss_mb']:>7} MB", flush=True)
        if a.per_pixel:
            result["per_pixel"] = per_pixel(folder, env)
            for r in result["per_pixel"]:
                print(r if "step" in r else
                      f"{r['codec']} {r['size']}: encode {r['encode']['wall_s']} s {r['encode']['peak_rss_mb']} MB, "
                      f"decode {r['decode']['wall_s']} s {r['decode']['peak_rss_mb']} MB", flush=True)
    result["load_after"] = os.getloadavg()
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
