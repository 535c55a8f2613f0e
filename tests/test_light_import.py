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


_CLI_PROBE = """
import json, sys
sys.argv = ["glocal-codec", *json.loads(sys.argv[1])]
from glocal_codec.cli import main
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "compressai", "av", "numpy", "matplotlib", "lpips"})
ours = sorted(m for m in sys.modules if m.startswith(("glocal_codec.codecs", "glocal_codec.api", "glocal_codec.video",
                                                       "glocal_codec.eval", "glocal_codec.nn", "glocal_codec.train")))
sys.stderr.write("\\nPROBE " + json.dumps({"code": code, "heavy": heavy, "ours": ours}) + "\\n")
"""


def test_plain_import_loads_no_torch() -> None:
    """``import glocal_codec`` and ``__version__``: no torch, no codec; the API is imported on first use."""
    code = ("import sys, json, glocal_codec as gc; v = gc.__version__; "
            "a = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'compressai', 'av', 'numpy'}); "
            "gc.encode; print(json.dumps([a, 'torch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == [] and after is True


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["encode", "--help"], ["decode", "--help"],
                                  ["list", "--help"], ["video", "--help"], ["video", "encode", "--help"],
                                  ["eval", "--help"], ["bdrate", "--help"]])
def test_cli_help_imports_no_torch(args: list[str]) -> None:
    """``glocal-codec --help`` (and every command's help) starts without torch, compressai, PyAV or
    numpy: they are imported inside the commands that use them (issue 28, part 1)."""
    out = subprocess.run([sys.executable, "-c", _CLI_PROBE, json.dumps(args)], capture_output=True, text=True,
                         timeout=300)
    line = [ln for ln in out.stderr.splitlines() if ln.startswith("PROBE ")][-1]
    got = json.loads(line[len("PROBE "):])
    assert got["code"] in (0, None), out.stdout + out.stderr
    assert got["heavy"] == [] and got["ours"] == [], got
    if args == ["--version"]:
        assert out.stdout.strip() == f"glocal-codec {gc.__version__}"
