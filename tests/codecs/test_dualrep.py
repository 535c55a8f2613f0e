"""The ``dualrep`` codec: explicit part (vq indices + semantic map), RCC texture, the ``--texture``
control, real files through the API and the CLI, damaged files, and the training stages on a
tiny synthetic cache. Registry-wide tests (test_determinism, test_registry, test_compat) cover
the thread-count and CPU-kernel promises and truncated files."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import glocal_codec as gc
from glocal_codec.bitstream import read_container, write_container
from glocal_codec.bitstream.errors import BitstreamError, CorruptStreamError
from glocal_codec.codecs import Refinable, codec_id, open_codec
from glocal_codec.codecs.dualrep import (DualrepCodec, DualrepModel, kl_bits, posterior_at, pooled_features,
                                         _budget_scale)
from glocal_codec.codecs.dualrep_header import file_facts, pack_params, unpack_params
from glocal_codec.util import psnr

from conftest import UNTRAINED, run_cli

pytestmark = pytest.mark.skipif("dualrep" in UNTRAINED or "vq" in UNTRAINED,
                                reason="dualrep needs its shipped weights and vq's")


def _streams(data: bytes) -> list[bytes]:
    return list(read_container(data).streams)


def test_registered():
    codec = open_codec("dualrep")
    assert isinstance(codec, DualrepCodec) and codec_id("dualrep") == 24
    assert not isinstance(codec, Refinable)
    assert codec.qualities == (1, 2, 3, 4)


def test_header_round_trip_and_errors():
    for t in (0.0, 0.7, 1.0):
        assert abs(unpack_params(pack_params(t)) - t) <= 0.5 / 255
    assert file_facts(pack_params(0.7)) == {"texture": "0.70"}
    for bad in (b"", b"\x02\x00", b"\x01", b"\x01\x80\x02", b"\x01\x05\x00"):
        with pytest.raises(BitstreamError):
            unpack_params(bad)
    with pytest.raises(ValueError, match="texture"):
        pack_params(1.5)
    with pytest.raises(ValueError, match="texture"):
        DualrepCodec(texture=-0.1)


def test_budget_scale_hits_the_kl_share():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(1, 2, 5, 7, generator=g, dtype=torch.float64)
    sigma = torch.rand(1, 2, 5, 7, generator=g, dtype=torch.float64) * 0.5 + 0.1
    full = float(kl_bits(mu, sigma).sum())
    for t in (0.1, 0.5, 0.9):
        s = _budget_scale(mu, sigma, t * full)
        assert float(kl_bits(*posterior_at(mu, sigma, s)).sum()) == pytest.approx(t * full, rel=1e-6)
    assert _budget_scale(mu, sigma, full) == 1.0 and _budget_scale(mu, sigma, 2 * full) == 1.0
    m0, s0 = posterior_at(mu, sigma, 0.0)
    assert torch.all(m0 == 0) and torch.all(s0 == 1)  # the prior itself


def test_pooled_features_cover_odd_grids():
    f = torch.randn(1, 8, 5, 7)
    p = pooled_features(f)
    assert p.shape == (1, 8, 3, 4)
    assert torch.allclose(p.norm(dim=1), torch.ones(1, 3, 4))


def test_round_trip_texture_levels(kodak_crop):
    x = kodak_crop
    files = {t: gc.encode(x, codec=DualrepCodec(texture=t), quality=2) for t in (0.0, 0.5, 1.0)}
    pixels = x.shape[-1] * x.shape[-2]
    tex = {t: len(_streams(d)[-1]) for t, d in files.items()}
    assert tex[0.0] == 0  # t = 0: the explicit part alone, no texture bits
    assert 0 < tex[0.5] <= tex[1.0]
    for t, data in files.items():
        info = gc.read_info(data)
        assert info.codec == "dualrep" and info.bpp == pytest.approx(8 * len(data) / pixels)
        y = gc.decode_tensor(data)
        assert y.shape == x.shape
        assert psnr(x, y) > 16.0, (t, psnr(x, y))
        assert unpack_params(read_container(data).params) == pytest.approx(t, abs=0.5 / 255)
    # the same explicit streams whatever the texture: only the texture stream changes
    assert _streams(files[0.0])[:-1] == _streams(files[1.0])[:-1]


def test_rate_below_005_bpp_on_a_photo(data_dir):
    from glocal_codec.imageio import load_image

    x = load_image(data_dir / "kodak" / "kodim19.png")[0]
    for q in (1, 4):
        data = gc.encode(x, codec="dualrep", quality=q)
        assert 8 * len(data) / (x.shape[-1] * x.shape[-2]) < 0.05


def test_gray_and_odd_sizes():
    g = torch.Generator().manual_seed(1)
    for shape in ((1, 1, 23, 41), (1, 3, 1, 70)):
        x = torch.rand(*shape, generator=g)
        y = gc.decode_tensor(gc.encode(x, codec="dualrep", quality=1))
        assert y.shape == x.shape


def test_damaged_files_are_clear_errors(kodak_crop):
    data = gc.encode(kodak_crop, codec="dualrep", quality=1)
    c = read_container(data)
    fewer = write_container(replace(c, streams=c.streams[:-1]))
    with pytest.raises(CorruptStreamError, match="streams"):
        gc.decode_tensor(fewer)
    bad_params = write_container(replace(c, params=b"\x07"))
    with pytest.raises(BitstreamError):
        gc.decode_tensor(bad_params)
    cut_tex = write_container(replace(c, streams=(*c.streams[:-1], c.streams[-1][:1])))
    with pytest.raises(BitstreamError):
        gc.decode_tensor(cut_tex)


def test_cli_texture_option(kodak_crop, tmp_path):
    from glocal_codec.imageio import to_pil

    src = tmp_path / "crop.png"
    to_pil(kodak_crop).save(src)
    out = tmp_path / "crop.glc"
    r = run_cli("encode", str(src), "-o", str(out), "-c", "dualrep", "-q", "2", "--texture", "0.7")
    assert r.returncode == 0, r.stderr
    r = run_cli("info", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert "0.70" in r.stdout
    r = run_cli("decode", str(out), "-o", str(tmp_path / "back.png"))
    assert r.returncode == 0, r.stderr
    r = run_cli("encode", str(src), "-o", str(tmp_path / "j.glc"), "-c", "jpeg", "--texture", "0.5")
    assert r.returncode != 0 and "option of dualrep" in r.stderr and "Traceback" not in r.stderr


def test_weights_digest_covers_the_required_weights(tmp_path, monkeypatch):
    from glocal_codec import weights

    (tmp_path / "a.safetensors").write_bytes(b"a")
    (tmp_path / "b.safetensors").write_bytes(b"b")
    (tmp_path / "manifest.json").write_text(json.dumps({"b": {"requires": ["a"]}}))
    monkeypatch.setenv("GLOCAL_CODEC_WEIGHTS", str(tmp_path))
    alone = weights.weights_digest("b")
    (tmp_path / "a.safetensors").write_bytes(b"a2")
    assert weights.weights_digest("b") != alone  # the required weights changed: so does the digest


def test_training_stages_on_a_tiny_cache(tmp_path):
    from glocal_codec.eval.metrics import get_lpips
    from glocal_codec.train import dualrep_stages as ds
    from glocal_codec.weights import load_state

    if get_lpips()[0] is None:
        pytest.skip("LPIPS weights unavailable")
    g = torch.Generator().manual_seed(0)
    n, crop = 10, 64
    vq = open_codec("vq").model
    books = [vq.book_size(q) for q in range(4)]
    cache = {"x": torch.randint(0, 256, (n, 3, crop, crop), generator=g, dtype=torch.uint8),
             "img": torch.randint(0, 256, (n, 4, 3, crop, crop), generator=g, dtype=torch.uint8),
             "idx": torch.stack([torch.randint(0, k, (n, crop // 16, crop // 16), generator=g) for k in books], 1)
             .to(torch.int16),
             "feat": torch.randn(n, 192, crop // 32, crop // 32, generator=g).half(), "seconds": 0.0}
    torch.save(cache, tmp_path / "cache-0.pt")
    sc = ds.StageConfig(crop=crop, train_crop=32, held=2, batch=4, minutes=0.2, max_steps=3, kmeans_iters=2)
    path = ds.run(tmp_path, sc, threads=1)
    model = DualrepModel()
    model.load_state_dict(load_state(path))
    stages = json.loads((tmp_path / "stages.json").read_text())
    assert stages["curve"] and stages["semantics"]["bits_per_block_context"] <= np.log2(16) + 1e-9
    assert int(model.ctx_maps[0, :16].max()) < 16


def test_large_images_go_tile_by_tile(kodak_crop, monkeypatch):
    """Above TILE_PIXELS the explicit decode, the refiner and the texture encoder run tile by tile
    (bounded memory); here the limit is lowered so a small crop takes that path."""
    import glocal_codec.codecs.dualrep as dr

    whole = gc.decode_tensor(gc.encode(kodak_crop, codec=DualrepCodec(texture=1.0), quality=2))
    calls = []
    real = dr.tiled_apply

    def counting(*args, **kwargs):
        calls.append(kwargs.get("scale"))
        return real(*args, **kwargs)

    monkeypatch.setattr(dr, "TILE_PIXELS", 32 * 32)
    monkeypatch.setattr(dr, "tiled_apply", counting)
    monkeypatch.setattr(dr, "_TILE_LATENT", 4)
    monkeypatch.setattr(dr, "_HALO_LATENT", 2)
    tiled = gc.decode_tensor(gc.encode(kodak_crop, codec=DualrepCodec(texture=1.0), quality=2))
    assert tiled.shape == whole.shape and calls  # the tiled path ran
    # vq's global-token attention sees one tile instead of the image: close, not identical
    assert abs(psnr(tiled, kodak_crop) - psnr(whole, kodak_crop)) < 1.0
