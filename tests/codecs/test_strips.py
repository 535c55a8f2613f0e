"""Thin strips through the learned codecs: folded, not padded 64x (issue #36, part 4).

Every registered codec built on :class:`~glocal_codec.codecs.learned.LatentCodec` that folds
strips (``folds_strips``) and pads to more than one latent row codes a 4 x 768 strip of a Kodak
image with at least a third fewer bytes than the padded picture, gets it back at its shape,
still decodes files written before folding (no header parameters), and refuses a fold marker
where none belongs. Codecs that pad to one latent row (16 pixels) never fold.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import glocal_codec as gc
from glocal_codec.bitstream import BitstreamError, read_container, write_container
from glocal_codec.codecs import open_codec
from glocal_codec.codecs.learned import LatentCodec
from glocal_codec.engine import FOLD_PARAMS, fold_plan

FOLDING = [c.name for c in gc.list_codecs()
           if isinstance(open_codec(c.name), LatentCodec) and open_codec(c.name).folds_strips]


@pytest.fixture(scope="module")
def strip(data_dir) -> torch.Tensor:
    from glocal_codec.imageio import load_image

    return load_image(data_dir / "kodak" / "kodim23.png")[0][:, :, 300:304, :].contiguous()  # 4 x 768


def _strides(c) -> tuple[int, int]:
    return c.pad_multiple, int(c.model.downsample)


def test_the_hyperprior_family_and_mcquic_fold() -> None:
    assert {"msh", "factorized", "glocal", "vq", "mcquic"} <= set(FOLDING)


@pytest.mark.parametrize("name", FOLDING)
def test_a_strip_is_folded_not_padded(name: str, strip: torch.Tensor, monkeypatch) -> None:
    c = open_codec(name)
    if not c.weights_available():
        pytest.skip(f"{name}: weights not installed")
    q = c.default_quality
    m, ds = _strides(c)
    if m == ds:
        # padding to one latent row (factorized, vq: 16) is the stretch folding would do anyway
        assert fold_plan(4, 768, m, ds) is None and read_container(gc.encode(strip, codec=name)).params == b""
        return
    assert fold_plan(4, 768, m, ds) is not None
    folded = gc.encode(strip, codec=name, quality=q)
    info = read_container(folded)
    assert info.shape == (3, 4, 768) and info.params == FOLD_PARAMS
    x = gc.decode_tensor(folded)
    assert x.shape == strip.shape
    # the same picture padded to 64 x 768, as before folding: a file without parameters
    monkeypatch.setattr(LatentCodec, "folds_strips", False)
    padded = gc.encode(strip, codec=name, quality=q)
    assert read_container(padded).params == b""
    old = gc.decode_tensor(padded)
    monkeypatch.undo()
    assert 3 * len(folded) <= 2 * len(padded), (len(folded), len(padded))
    # files written before strips were folded still decode, to the same pixels as then
    assert torch.equal(gc.decode_tensor(padded), old)


@pytest.mark.parametrize("name", FOLDING)
def test_a_fold_marker_where_none_belongs_is_refused(name: str, kodak_crop: torch.Tensor,
                                                     strip: torch.Tensor) -> None:
    c = open_codec(name)
    if not c.weights_available():
        pytest.skip(f"{name}: weights not installed")
    plain = read_container(gc.encode(kodak_crop, codec=name))  # 96 x 128: not a strip
    with pytest.raises(BitstreamError, match="fold marker"):
        gc.decode_tensor(write_container(replace(plain, params=FOLD_PARAMS)))
    if fold_plan(4, 768, *_strides(c)) is None:
        return
    folded = read_container(gc.encode(strip, codec=name))
    for params in (b"\x02", FOLD_PARAMS + b"\x00"):
        with pytest.raises(BitstreamError, match="fold marker"):
            gc.decode_tensor(write_container(replace(folded, params=params)))


def test_a_folded_strip_keeps_its_quality(strip: torch.Tensor) -> None:
    """msh at its default level on the folded strip: a real picture, not noise."""
    x = gc.decode_tensor(gc.encode(strip, codec="msh"))
    mse = float(((x - strip) ** 2).mean())
    assert 10 * np.log10(1 / mse) > 24.0


def test_info_shows_the_fold(strip: torch.Tensor, kodak_crop: torch.Tensor, tmp_path) -> None:
    from conftest import run_cli

    (tmp_path / "s.glc").write_bytes(gc.encode(strip, codec="msh"))
    (tmp_path / "p.glc").write_bytes(gc.encode(kodak_crop, codec="msh"))
    assert "folded" in run_cli("info", str(tmp_path / "s.glc")).stdout
    assert "folded" not in run_cli("info", str(tmp_path / "p.glc")).stdout

