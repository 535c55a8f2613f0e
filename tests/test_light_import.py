"""``import glocal_codec`` stays light: no compressai, no model code until a codec is opened.

Run in a fresh interpreter (this test process has long imported everything).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import glocal_codec as gc

_PROBE = """
import json, sys
import glocal_codec as gc
before = sorted(m for m in sys.modules if m.startswith(("glocal_codec.", "compressai", "av", "lpips", "matplotlib")))
names = gc.codecs.codec_names()
gc.open_codec("jpeg")
after_jpeg = sorted(m for m in sys.modules if m.startswith(("glocal_codec.codecs.", "compressai")))
print(json.dumps({"before": before, "names": names, "after_jpeg": after_jpeg}))
"""


@pytest.mark.slow
def test_import_loads_no_model_code() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=300)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = [m for m in got["before"] if m.startswith(("compressai", "av", "lpips", "matplotlib", "glocal_codec.nn",
                                                        "glocal_codec.eval", "glocal_codec.train", "glocal_codec.cli",
                                                        "glocal_codec.video"))
             or m in ("glocal_codec.codecs.hyperprior", "glocal_codec.codecs.glocal", "glocal_codec.codecs.learned")]
    assert not heavy, f"import glocal_codec loaded {heavy}"
    # every codec name is known without importing any codec module
    assert {"msh", "glocal", "jpeg", "x264", "pfnr"} <= set(got["names"])
    # opening jpeg imports the classical module, not the learned ones
    assert "glocal_codec.codecs.classic" in got["after_jpeg"]
    assert not any(m.startswith("compressai") or m.endswith(("hyperprior", "glocal")) for m in got["after_jpeg"])


def test_errors_are_public() -> None:
    from glocal_codec import errors

    assert gc.WeightsMissingError is errors.WeightsMissingError
    assert gc.BitstreamError is errors.BitstreamError
    assert issubclass(errors.CodecUnavailableError, errors.UnknownCodecError)
    assert issubclass(errors.UnknownCodecError, gc.BitstreamError)
    assert set(errors.__all__) <= set(dir(errors))
