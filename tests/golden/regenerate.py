"""Regenerate the golden files: one small .glc per codec plus the sha256 of its decoded pixels.

    .venv/bin/python tests/golden/regenerate.py

Run this only on purpose (new weights, a deliberate format change): the golden test exists to
catch changes that silently alter how *old* files decode.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

import glocal_codec as gc
from glocal_codec.imageio import load_image

HERE = Path(__file__).resolve().parent


def main() -> None:
    root = Path(os.environ.get("GLOCAL_CODEC_DATA", HERE.parents[2] / "shared" / "data"))
    x = load_image(root / "kodak" / "kodim23.png")[0][:, :, 200:264, 300:396]  # 96x64 crop
    expected = {}
    for info in gc.list_codecs(media="image"):
        q = info.qualities[len(info.qualities) // 2]
        data = gc.encode(x, codec=info.name, quality=q)
        (HERE / f"{info.name}.glc").write_bytes(data)
        pixels = np.asarray(gc.decode(data))
        expected[info.name] = {"quality": q, "bytes": len(data), "sha256": hashlib.sha256(pixels.tobytes()).hexdigest()}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    print(json.dumps(expected, indent=2))


if __name__ == "__main__":
    main()
