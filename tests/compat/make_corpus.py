"""Add files to the frozen compatibility corpus (``tests/compat/``); never rewrites one.

For every codec available here, and for its installed weights, the corpus should hold one file
``<codec>-<digest>.glc`` written by the release that added it, and ``<codec>-<digest>.npz``: the
8-bit pixels it decoded to then. ``tests/compat/test_compat.py`` decodes them all with the
current code. When a codec's weights change, run this script: it adds a file for the new
digest and leaves the old ones alone, which from then on must fail with the clear
"weights differ" error (``WeightsMismatchError``) -- see docs/bitstream.md.

    python tests/compat/make_corpus.py            # adds what is missing, prints what it wrote

The inputs are synthetic (made here from a seed), so nothing from the shared data folder is
ever committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
#: Fitting budget of the INR video codecs for corpus files: enough for a real file, not quality.
INR_EPOCHS = 2


def synthetic_image(h: int = 37, w: int = 45) -> torch.Tensor:
    """A smooth gradient, an edge and mild texture: 1 x 3 x h x w in [0, 1], odd size on purpose."""
    g = torch.Generator().manual_seed(27)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([xx, yy, 0.5 * (xx + yy)])
    img[:, h // 3: 2 * h // 3, w // 4: w // 2] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    img = img + 0.05 * torch.rand(3, h, w, generator=g)
    return img.clamp(0, 1).unsqueeze(0)


def synthetic_clip(t: int = 3, h: int = 24, w: int = 32) -> torch.Tensor:
    """A gradient moving one pixel per frame, with a bright square: t x 3 x h x w."""
    base = synthetic_image(h, w + t)[0]
    return torch.stack([base[:, :, i: i + w] for i in range(t)])


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def main() -> int:
    import glocal_codec as gc
    from glocal_codec import video
    from glocal_codec.codecs import list_codecs, open_codec

    wrote = []
    from glocal_codec.errors import WeightsMissingError

    for info in list_codecs():
        codec = open_codec(info.name)
        try:
            digest = codec.weights_digest(info.default_quality).hex()
        except WeightsMissingError:  # not trained yet: its first file comes with its weights
            print(f"skipped {info.name}: no weights installed")
            continue
        stem = HERE / f"{info.name}-{digest}"
        if stem.with_suffix(".glc").exists():
            continue
        if info.media == "image":
            data = gc.encode(synthetic_image(), codec=info.name, quality=info.default_quality)
            pixels = to_uint8(gc.decode_tensor(data))
        else:
            if hasattr(codec, "epochs"):  # a maintenance script, not library code: budget of the INR fit
                codec.epochs = INR_EPOCHS
            data = video.encode_video(synthetic_clip(), codec=info.name, quality=info.default_quality, fps=24)
            pixels = to_uint8(video.decode_video(data).frames)
        stem.with_suffix(".glc").write_bytes(data)
        np.savez_compressed(stem.with_suffix(".npz"), pixels=pixels)
        wrote.append(f"{stem.name}.glc ({len(data)} bytes)")
    wrote += _strip_files()
    wrote += _tiled_files()
    wrote += _overfit_v3_files()
    print("\n".join(wrote) or "nothing to add")
    return 0


def _strip_files() -> list[str]:
    """``<codec>-strip-<digest>.glc``: a folded 3 x 200 strip (docs/bitstream.md, "Thin strips")
    for every codec that folds, so the folding rule (version 1) stays frozen too."""
    import glocal_codec as gc
    from glocal_codec.codecs import list_codecs, open_codec
    from glocal_codec.codecs.learned import LatentCodec
    from glocal_codec.engine import FOLD_PARAMS

    wrote = []
    for info in list_codecs():
        codec = open_codec(info.name)
        if not (isinstance(codec, LatentCodec) and codec.folds_strips and codec.weights_available()):
            continue
        stem = HERE / f"{info.name}-strip-{codec.weights_digest(info.default_quality).hex()}"
        if stem.with_suffix(".glc").exists():
            continue
        data = gc.encode(synthetic_image(3, 200), codec=info.name, quality=info.default_quality)
        from glocal_codec.bitstream import read_container

        if read_container(data).params != FOLD_PARAMS:
            continue  # pads to one latent row: nothing folded to freeze
        stem.with_suffix(".glc").write_bytes(data)
        np.savez_compressed(stem.with_suffix(".npz"), pixels=to_uint8(gc.decode_tensor(data)))
        wrote.append(f"{stem.name}.glc ({len(data)} bytes)")
    return wrote


def _tiled_files() -> list[str]:
    """``overfit-tiled-00000000.glc``: a picture fitted in 16-pixel tiles (3 x 3 of them), so the
    tiled layout (``overfit`` params version 2) stays frozen too."""
    import glocal_codec as gc
    from glocal_codec.codecs.overfit import OverfitCodec

    stem = HERE / "overfit-tiled-00000000"
    if stem.with_suffix(".glc").exists():
        return []
    codec = OverfitCodec(iterations=50)
    codec.tile = 16
    data = gc.encode(synthetic_image(), codec=codec, quality=codec.default_quality)
    stem.with_suffix(".glc").write_bytes(data)
    np.savez_compressed(stem.with_suffix(".npz"), pixels=to_uint8(gc.decode_tensor(data)))
    return [f"{stem.name}.glc ({len(data)} bytes)"]


def _overfit_v3_files() -> list[str]:
    """``overfit-v3-00000000.glc`` (compact weight streams, ``overfit`` params version 3),
    ``overfit-v3-parent-tiled-00000000.glc`` (the same, with the coarser-grid context, in 16-pixel
    tiles), ``overfit-v4-learned-up-00000000.glc`` (learned upsampling, version 4) and
    ``overfit-v5-skip-00000000.glc`` (the 1:1 grid left out, version 5), so versions 3-5 stay
    frozen too."""
    import glocal_codec as gc
    from glocal_codec.codecs.overfit import OverfitCodec

    wrote = []
    for name, parent, tile in [("overfit-v3-00000000", False, None), ("overfit-v3-parent-tiled-00000000", True, 16),
                               ("overfit-v4-learned-up-00000000", False, None), ("overfit-v5-skip-00000000", False, None)]:
        stem = HERE / name
        if stem.with_suffix(".glc").exists():
            continue
        learned = "learned-up" in name  # params version 4; a random start (200 iterations) moves the taps
        codec = OverfitCodec(iterations=200 if learned else 50, parent_context=parent, learned_up=learned,
                             skip=int("skip" in name))
        if tile:
            codec.tile = tile
        data = gc.encode(synthetic_image(), codec=codec, quality=codec.default_quality)
        stem.with_suffix(".glc").write_bytes(data)
        np.savez_compressed(stem.with_suffix(".npz"), pixels=to_uint8(gc.decode_tensor(data)))
        wrote.append(f"{stem.name}.glc ({len(data)} bytes)")
    return wrote


if __name__ == "__main__":
    sys.exit(main())
