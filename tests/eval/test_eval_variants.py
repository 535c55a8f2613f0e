"""Codec labels with encoder options in evaluations (``msh+refine30``, ``overfit+medium``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import UNTRAINED
from test_eval_runner import _make_images
from typer.testing import CliRunner

import glocal_codec as gc
from glocal_codec.cli.app import app
from glocal_codec.codecs import open_codec
from glocal_codec.codecs.overfit import OverfitCodec
from glocal_codec.datasets import image_folder
from glocal_codec.eval import CodecVariant, parse_codec_label
from glocal_codec.eval.report import write_report
from glocal_codec.eval.runner import EvalError, evaluate


def test_labels_parse() -> None:
    assert parse_codec_label("msh") == CodecVariant("msh", "msh", 0)
    assert parse_codec_label("msh+refine30") == CodecVariant("msh+refine30", "msh", 30)
    assert parse_codec_label("overfit+slow") == CodecVariant("overfit+slow", "overfit", 0, "slow")
    for bad in ("msh+", "msh+refine", "msh+refine0", "msh+refine-3", "msh+Fast", "+refine3", "+slow",
                "msh+refine3+refine4", "overfit+slow+refine3"):
        with pytest.raises(ValueError, match="refineN"):
            parse_codec_label(bad)


def test_a_refined_variant_is_its_own_curve(tmp_path: Path) -> None:
    if "msh" in UNTRAINED:
        pytest.skip("msh runs on untrained stand-in weights here")
    ds = image_folder(_make_images(tmp_path / "imgs", n=1, size=(96, 80)))
    res = evaluate(ds, ["msh", "msh+refine8"], [2], results_path=tmp_path / "r" / "results.json", lpips=False)
    by = {r.codec: r for r in res.records}
    assert set(by) == {"msh", "msh+refine8"}
    plain, refined = by["msh"], by["msh+refine8"]
    assert plain.weights == refined.weights  # the same model made both
    assert (refined.bytes, refined.psnr) != (plain.bytes, plain.psnr)
    # the refined file is the one the API writes for the same options (rate from the real file)
    x = ds.images[0].path
    assert refined.bytes == len(gc.encode(x, codec="msh", quality=2, refine=8))
    files = write_report(res, tmp_path / "r", anchor="msh")
    assert "msh+refine8" in files["summary_md"].read_text()


def test_a_preset_variant_is_its_own_curve(tmp_path: Path) -> None:
    ds = image_folder(_make_images(tmp_path / "imgs", n=1, size=(40, 32)))
    res = evaluate(ds, ["overfit", "overfit+medium"], [2], results_path=tmp_path / "r" / "results.json", lpips=False)
    by = {r.codec: r for r in res.records}
    assert set(by) == {"overfit", "overfit+medium"}
    # each record is the file the API writes with that preset (the suite's short budget for both)
    x = ds.images[0].path
    medium = OverfitCodec(preset="medium", iterations=open_codec("overfit").iterations)
    assert by["overfit+medium"].bytes == len(gc.encode(x, codec=medium, quality=2))
    assert by["overfit"].bytes == len(gc.encode(x, codec="overfit", quality=2))
    assert by["overfit+medium"].bytes != by["overfit"].bytes  # a wider synthesis: another file


@pytest.mark.parametrize("label, match", [("jpeg+refine5", "no encoder-side refinement"),
                                          ("msh+turbo", "not an encoder preset of msh .it has no presets"),
                                          ("overfit+ultra", "presets are fast, medium, slow"),
                                          ("msh+Turbo", "bad codec label"),
                                          ("nosuch+refine5", "nosuch")])
def test_bad_labels_are_clear_errors(label: str, match: str, tmp_path: Path) -> None:
    ds = image_folder(_make_images(tmp_path / "imgs", n=1, size=(64, 64)))
    with pytest.raises((EvalError, KeyError, ValueError), match=match):
        evaluate(ds, [label], [1], results_path=tmp_path / "results.json", lpips=False)
    r = CliRunner().invoke(app, ["eval", "--images", str(tmp_path / "imgs"), "--codec", label, "--quality", "1",
                                 "--report", str(tmp_path / "rep"), "--no-lpips"])
    assert r.exit_code == 1 and "error:" in r.output and "Traceback" not in r.output
