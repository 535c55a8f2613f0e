"""Old files keep decoding: the frozen corpus of ``tests/compat/`` (never regenerated).

Each ``<codec>-<digest>.glc`` was written by the release that added it; ``.npz`` beside it holds
the 8-bit pixels it decoded to then. A file whose weights are still installed must decode to
those pixels (within one level: learned codecs' float synthesis is not yet bit-identical across
machines, see docs/bitstream.md); a file made by other weights must fail with the clear
``WeightsMismatchError``, never decode to garbage. Every codec available here must have a
corpus file for its installed weights (``python tests/compat/make_corpus.py`` adds one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import glocal_codec as gc
from glocal_codec import video
from glocal_codec.bitstream import WeightsMismatchError, read_container
from glocal_codec.codecs import codec_name, list_codecs, open_codec

HERE = Path(__file__).resolve().parent
FILES = sorted(HERE.glob("*.glc"))


def _installed_digest(name: str, quality: int) -> bytes | None:
    codec = open_codec(name)
    return codec.weights_digest(quality) if codec.weights_available() else None


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_corpus_file_decodes_as_it_did(path: Path) -> None:
    data = path.read_bytes()
    cont = read_container(data)
    name = codec_name(cont.codec_id)
    assert path.stem.startswith(f"{name}-") and path.stem.endswith(cont.weights_digest.hex())
    media = open_codec(name).media
    decode = (lambda d: gc.decode_tensor(d)) if media == "image" else (lambda d: video.decode_video(d).frames)
    if _installed_digest(name, cont.quality) != cont.weights_digest:
        with pytest.raises(WeightsMismatchError, match="weights"):
            decode(data)
        return
    got = (decode(data).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    want = np.load(path.with_suffix(".npz"))["pixels"]
    assert got.shape == want.shape
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= 1 and diff.mean() < 0.01, f"{path.name}: max {diff.max()}, mean {diff.mean():.4f}"


def test_every_codec_has_a_file_for_its_installed_weights() -> None:
    from conftest import UNTRAINED  # stand-in weights of a checkout without shipped ones

    stems = {p.stem for p in FILES}
    missing = []
    for info in list_codecs():
        if info.name in UNTRAINED:
            continue
        digest = _installed_digest(info.name, info.default_quality)
        if digest is not None and f"{info.name}-{digest.hex()}" not in stems:
            missing.append(f"{info.name}-{digest.hex()}")
    assert not missing, f"no compat file for {missing}: run python tests/compat/make_corpus.py and commit what it adds"
