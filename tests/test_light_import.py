"""``import glocal_codec`` stays light: no compressai, no model code until a codec is opened.

Run in a fresh interpreter (this test process has long imported everything).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

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
    """``import glocal_codec`` and ``__version__``: no torch, no codec; the API is imported on first
    use, still without torch (a tensor is made only where one is needed)."""
    code = ("import sys, json, glocal_codec as gc; v = gc.__version__; "
            "a = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'compressai', 'av', 'numpy'}); "
            "gc.encode; gc.list_codecs(); print(json.dumps([a, 'torch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == [] and after is False


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



#: Modules that a light command must not import: torch and what needs it.
_HEAVY = ("torch", "compressai", "torch_geometric", "glocal_codec.nn", "glocal_codec.engine", "glocal_codec.train",
          "glocal_codec.eval", "glocal_codec.codecs.learned", "glocal_codec.codecs.hyperprior",
          "glocal_codec.codecs.glocal", "glocal_codec.codecs.overfit", "glocal_codec.codecs.hnerv",
          "glocal_codec.codecs.nirvana", "glocal_codec.codecs.pfnr")

_LIGHT_PROBE = """
import json, sys
args, heavy = json.loads(sys.argv[1]), tuple(json.loads(sys.argv[2]))
sys.argv = ["glocal-codec", *args]
from glocal_codec.cli import main
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
loaded = sorted(m for m in sys.modules if m in heavy or m.startswith(tuple(h + "." for h in heavy)))
sys.stderr.write("\\nPROBE " + json.dumps({"code": code, "heavy": loaded}) + "\\n")
"""


def _light_run(args: list, cwd: Path) -> tuple[dict, str]:
    """Run ``glocal-codec ARGS`` in a fresh interpreter: (exit code and heavy modules loaded, stdout)."""
    out = subprocess.run([sys.executable, "-c", _LIGHT_PROBE, json.dumps([str(a) for a in args]), json.dumps(_HEAVY)],
                         capture_output=True, text=True, timeout=300, cwd=cwd)
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("PROBE ")]
    assert lines, out.stdout + out.stderr
    got = json.loads(lines[-1][len("PROBE "):])
    assert got["code"] in (0, None), out.stdout + out.stderr
    return got, out.stdout


@pytest.fixture(scope="module")
def light_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 64 x 48 RGB and a gray PNG, and .glc files of jpeg, webp and msh."""
    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("light")
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, (xx ^ yy) * 3], -1).astype(np.uint8)
    Image.fromarray(rgb).save(d / "in.png")
    Image.fromarray(rgb[:, :, 1]).save(d / "gray.png")
    files = {"dir": d, "png": d / "in.png", "gray": d / "gray.png"}
    for name in ("jpeg", "webp", "msh"):
        files[name] = d / f"{name}.glc"
        files[name].write_bytes(gc.encode(rgb, codec=name, quality=3))
    return files


#: label -> arguments; {name} is a path from ``light_files``, {out} a fresh output name
_LIGHT_COMMANDS = {
    "list": ["list"],
    "list --long": ["list", "--long"],
    "list --json": ["list", "--json"],
    "info (jpeg)": ["info", "{jpeg}"],
    "info --json (msh)": ["info", "--json", "{msh}"],
    "encode -c jpeg": ["encode", "{png}", "-c", "jpeg", "-o", "{out}.glc"],
    "encode -c webp (gray)": ["encode", "{gray}", "-c", "webp", "-o", "{out}.glc"],
    "encode -c jpeg --export": ["encode", "{png}", "-c", "jpeg", "-o", "{out}.jpg"],
    "encode -c avif --size 2k": ["encode", "{png}", "-c", "avif", "--size", "2k", "-o", "{out}.glc"],
    "decode (jpeg)": ["decode", "{jpeg}", "-o", "{out}.png"],
    "decode (webp) -o .webp": ["decode", "{webp}", "-o", "{out}.webp"],
}


@pytest.mark.parametrize("label", list(_LIGHT_COMMANDS))
def test_light_commands_import_no_torch(label: str, light_files: dict[str, Path]) -> None:
    """``list``, ``info`` of any file (the weights digest is read without the codec's module) and
    classical-codec ``encode`` / ``decode`` start without torch or compressai (issue 28, part 1:
    they start in well under a second; benchmarks/cli_startup.py times them).

    A codec module that imports torch needs a ``Listing`` in its row of ``codecs/ids.py``;
    without one, ``list`` imports the module and this test fails."""
    names = {k: str(v) for k, v in light_files.items()}
    out = str(light_files["dir"] / re.sub(r"\W+", "_", label))
    args = [a.format(out=out, **names) for a in _LIGHT_COMMANDS[label]]
    got, stdout = _light_run(args, light_files["dir"])
    assert got["heavy"] == [], f"glocal-codec {label} imported {got['heavy']}"
    if label.startswith("info --json"):
        assert json.loads(stdout)["weights_match"] is True  # the digest of the installed msh weights
    if label == "list --json":
        assert [c["name"] for c in json.loads(stdout)] == [c.name for c in gc.list_codecs()]
    if label.startswith(("encode", "decode")):
        assert Path(args[-1]).stat().st_size > 0


def test_listings_match_the_codecs() -> None:
    """Every Listing in the frozen table says what the opened codec says (``list`` shows the listing
    until the codec is opened: a description, level set or ability is edited in both places)."""
    from glocal_codec.codecs import CODEC_TABLE, open_codec
    from glocal_codec.codecs.registry import _info_from_codec, _info_from_listing

    listed = [row for row in CODEC_TABLE if row.listing is not None and row.target is not None]
    assert {"msh", "glocal", "overfit", "hnerv"} <= {row.name for row in listed}
    for row in listed:
        assert _info_from_listing(row.name, row.listing) == _info_from_codec(row.name, open_codec(row.name)), (
            f"codecs/ids.py: the Listing of {row.name!r} differs from the codec")


def test_listing_weights_follow_the_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A learned codec's listing reads its levels from the weights manifest and its weights from
    the weights folder, as the codec does; the light digest is the codec's."""
    import shutil

    from glocal_codec.codecs import CODEC_TABLE, open_codec
    from glocal_codec.codecs.registry import _info_from_listing
    from glocal_codec.errors import WeightsMissingError
    from glocal_codec.weights import load_manifest, update_manifest, weights_base, weights_digest

    listing = next(r for r in CODEC_TABLE if r.name == "msh").listing
    assert weights_digest("msh") == open_codec("msh").weights_digest(1)
    src = weights_base()
    shutil.copy2(src / "msh.safetensors", tmp_path / "msh.safetensors")
    update_manifest("msh", {**load_manifest(src)["msh"], "default_quality": 2}, tmp_path)
    monkeypatch.setenv("GLOCAL_CODEC_WEIGHTS", str(tmp_path))
    info = _info_from_listing("msh", listing)
    assert info.weights_available and info.has_weights and info.refinable and info.default_quality == 2
    (tmp_path / "msh.safetensors").unlink()
    assert not _info_from_listing("msh", listing).weights_available
    with pytest.raises(WeightsMissingError, match="not found"):
        weights_digest("msh")
