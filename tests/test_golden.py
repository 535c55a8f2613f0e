"""Golden files: every stored .glc must keep decoding to exactly the same pixels.

Catches a change that silently breaks old files (format, entropy coding, model code). New
weights change the digest on purpose; regenerate with tests/golden/regenerate.py then.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import glocal_codec as gc

GOLDEN = Path(__file__).resolve().parent / "golden"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text()) if (GOLDEN / "expected.json").exists() else {}


@pytest.mark.parametrize("codec", sorted(EXPECTED))
def test_golden_file_decodes_to_the_same_pixels(codec: str) -> None:
    data = (GOLDEN / f"{codec}.glc").read_bytes()
    assert len(data) == EXPECTED[codec]["bytes"]
    info = gc.read_info(data)
    assert info.codec == codec and info.quality == EXPECTED[codec]["quality"]
    pixels = np.asarray(gc.decode(data))
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == EXPECTED[codec]["sha256"]


def test_every_image_codec_has_a_golden_file() -> None:
    names = {c.name for c in gc.list_codecs(media="image") if c.weights_available}
    assert names <= set(EXPECTED), f"no golden file for {sorted(names - set(EXPECTED))}: run tests/golden/regenerate.py"
