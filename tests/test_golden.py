"""Golden files: every stored .glc must keep decoding to the same pixels.

Catches a change that silently breaks old files (format, entropy coding, model code). The
decoded pixels may differ by one or two levels across CPUs and library versions (floating-point
transforms, Pillow's bundled decoders); a real break produces garbage, which these bounds catch.
New shipped weights change the digest on purpose: regenerate with tests/golden/regenerate.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import UNTRAINED
from PIL import Image

import glocal_codec as gc

GOLDEN = Path(__file__).resolve().parent / "golden"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text()) if (GOLDEN / "expected.json").exists() else {}


@pytest.mark.parametrize("codec", sorted(EXPECTED))
def test_golden_file_decodes_to_the_same_pixels(codec: str) -> None:
    if codec in UNTRAINED:
        pytest.skip(f"{codec}: shipped weights missing in this checkout")
    data = (GOLDEN / f"{codec}.glc").read_bytes()
    assert len(data) == EXPECTED[codec]["bytes"]
    info = gc.read_info(data)
    assert info.codec == codec and info.quality == EXPECTED[codec]["quality"]
    got = (gc.decode_tensor(data)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    want = np.asarray(Image.open(GOLDEN / f"{codec}.png")).astype(np.int16)
    diff = np.abs(got - want)
    assert diff.max() <= 2 and (diff > 0).mean() < 0.01, f"{codec}: max diff {diff.max()}, {(diff > 0).mean():.2%} differ"


def test_every_image_codec_has_a_golden_file() -> None:
    names = {c.name for c in gc.list_codecs(media="image") if c.weights_available} - UNTRAINED
    missing = sorted(names - set(EXPECTED))
    assert not missing, f"no golden file for {missing}: run tests/golden/regenerate.py"
