"""Build clc's built-in dictionary from the training photos with msh's analysis transform.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/clc_dictionary.py [--out runs/clc/builtin.dict]

Reads every image of ``$GLOCAL_CODEC_DATA/train`` (never Kodak or CLIC), shrinks it to a longer
side of at most 768 pixels, runs the shipped ``msh`` weights' analysis ``g_a`` on it, and keeps
``--entries`` representatives (spherical k-means over the retrieval features, the image nearest
to each centroid): their retrieval features and ``grid x grid`` reference tokens go into a
dictionary file. Training then starts from msh with that dictionary in the model:

    glocal-codec train clc --init-from src/glocal_codec/weights/msh.safetensors \\
        --arch dictionary_file=runs/clc/builtin.dict --warmup-steps 1500 ...

(see docs/clc.md). The file's digest and the chosen training images are printed and written to
``benchmarks/results/clc_dictionary.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from glocal_codec.codecs import open_codec
from glocal_codec.codecs.clc import ClcConfig, build_dictionary, save_dictionary
from glocal_codec.datasets import dataset_dir
from glocal_codec.train.data import find_images

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/clc/builtin.dict"))
    p.add_argument("--data", type=Path, default=None, help="image folder (default: the dataset root's train/)")
    p.add_argument("--entries", type=int, default=ClcConfig().entries)
    p.add_argument("--grid", type=int, default=ClcConfig().grid)
    p.add_argument("--max-side", type=int, default=768)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    root = a.data or dataset_dir("train")
    images = find_images(root)
    if any(part in ("kodak", "clic") for img in images for part in img.parts):
        raise SystemExit("the built-in dictionary is built from training photos only, never Kodak or CLIC")
    msh = open_codec("msh")
    g_a = msh.model.g_a
    t0 = time.monotonic()

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"{done}/{total} images, {time.monotonic() - t0:.0f} s", flush=True)

    features, tokens = build_dictionary(g_a, images, entries=a.entries, grid=a.grid, max_side=a.max_side,
                                        seed=a.seed, progress=progress)
    digest = save_dictionary(a.out, features, tokens, model="msh " + msh.weights_digest(msh.default_quality).hex(),
                             images=len(images))
    # which images were chosen (the features identify them): for the record
    print(f"{a.out}: {features.shape[0]} entries x {tokens.shape[1]} tokens x {tokens.shape[2]} channels from "
          f"{len(images)} images, digest {digest.hex()}, {time.monotonic() - t0:.0f} s")
    RESULTS = HERE / "results"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "clc_dictionary.json").write_text(json.dumps({
        "file": str(a.out), "digest": digest.hex(), "entries": int(features.shape[0]), "grid": a.grid,
        "channels": int(tokens.shape[2]), "images": len(images), "data": str(root), "max_side": a.max_side,
        "seed": a.seed, "msh_weights": msh.weights_digest(msh.default_quality).hex(),
        "seconds": round(time.monotonic() - t0, 1)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
