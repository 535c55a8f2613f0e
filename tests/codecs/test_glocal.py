"""The ``glocal`` codec: model interface, exact latent coding, thread-count independence, plugin, training.

All on tiny configs (a few thousand pixels, 16 channels) so the file runs in seconds.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

import glocal_codec as gc
from glocal_codec.codecs.glocal import GlocalCodec, GlocalConfig, GlocalModel, _checkerboard
from glocal_codec.codecs.hyperprior import LAMBDAS
from glocal_codec.codecs.registry import open_codec
from glocal_codec.engine import pad_to_multiple
from glocal_codec.train.loop import TrainConfig, build_model, model_class, model_config, rd_loss, train

TINY = dict(n=16, m=16, window=4, head_dim=8, tokens=4, ctx=16)


@pytest.fixture(scope="module")
def model() -> GlocalModel:
    torch.manual_seed(0)
    m = GlocalModel(GlocalConfig(**TINY)).eval()
    m.build_tables()
    return m


@pytest.fixture(scope="module")
def model64(model: GlocalModel) -> GlocalModel:
    import copy

    m = copy.deepcopy(model)  # after coding: the copy must drop the (uncopyable) coder caches
    return m.double().eval()


def _image(h: int, w: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # smooth-ish content: a blurred random field plus a gradient (latents of plausible size)
    x = torch.rand(1, 3, h, w, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False)
    x = 0.5 * x + 0.5 * torch.linspace(0, 1, w).view(1, 1, 1, w)
    return x.to(dtype)


# -- config -------------------------------------------------------------------------------------
def test_config_slices():
    assert GlocalConfig().slices == (16, 16, 32, 32)
    assert sum(GlocalConfig(m=40).slices) == 40
    assert GlocalConfig(m=10, slices=3).slices == (3, 3, 4)
    assert GlocalConfig(m=8, slices=[2, 6]).slices == (2, 6)  # JSON gives lists
    with pytest.raises(ValueError):
        GlocalConfig(m=8, slices=(4, 5))
    cfg = GlocalConfig(**TINY)
    assert GlocalConfig(**json.loads(json.dumps(asdict(cfg)))) == cfg


def test_registered_everywhere():
    assert model_class("glocal") is GlocalModel
    assert isinstance(model_config("glocal", 8, 8, window=2), GlocalConfig)
    assert isinstance(open_codec("glocal"), GlocalCodec)
    assert "glocal" in [c.name for c in gc.list_codecs()]


def test_checkerboard():
    a = _checkerboard(3, 4)
    assert a.shape == (1, 1, 3, 4)
    assert a[0, 0, 0, 0] and not a[0, 0, 0, 1] and not a[0, 0, 1, 0] and a[0, 0, 1, 1]
    assert a.sum() == 6


# -- training-time forward ----------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(64, 64), (70, 50), (7, 13)])
def test_forward_shapes_and_likelihoods(hw):
    torch.manual_seed(0)
    m = GlocalModel(GlocalConfig(**TINY)).train()
    x = _image(*hw).expand(2, 3, *hw).contiguous()
    r = m(x, 2)
    h, w = hw
    assert r.x_hat.shape == x.shape
    assert r.y_hat.shape == (2, 16, -(-h // 16), -(-w // 16))
    assert r.likelihoods["y"].shape == r.y_hat.shape
    assert r.likelihoods["z"].shape == (2, 16, -(-h // 64), -(-w // 64))
    for lik in r.likelihoods.values():
        assert torch.isfinite(lik).all() and (lik > 0).all() and (lik <= 1).all()
    loss, bpp, psnr = rd_loss(x, r, LAMBDAS[2])
    assert np.isfinite(bpp) and np.isfinite(psnr)
    loss.backward()
    # (not h_s.0.weight: an untrained h_a gives |z| < 0.5, so z_hat = 0 and that weight's gradient is 0)
    for name in ("g_a.0.weight", "g_s.1.weight", "h_a.0.weight", "gain.log_gain", "ebs.2.matrices.0",
                 "entropy.h_s.0.bias", "entropy.h_s.5.weight", "entropy.param.1.base_in.weight",
                 "entropy.spatial_ctx.3.weight", "entropy.channel_ctx.2.proj.weight", "entropy.global_ctx.1.q.weight"):
        if name.startswith(("entropy.spatial_ctx", "entropy.global_ctx")) and r.y_hat[0, 0].numel() == 1:
            # a 1 x 1 latent is all anchor (no second pass, no spatial context) and one global
            # token (a softmax over one key: no gradient to the query)
            continue
        p = dict(m.named_parameters())[name]
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_qualities_change_the_gain(model):
    x = _image(64, 64)
    with torch.no_grad():
        y1, y6 = model.analysis(x, 0), model.analysis(x, 5)
    assert y6.abs().mean() > y1.abs().mean()


# -- real bits ----------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(64, 64), (128, 192)])
def test_decoder_reproduces_the_forward_quantisation_exactly(model64, hw):
    """float64 model: forward's y_hat == encoder's y_hat == decoded y_hat, bit for bit."""
    x = _image(*hw, dtype=torch.float64)
    with torch.no_grad():
        r = model64(x, 3)
        y = model64.analysis(x, 3)
    streams, y_enc = model64.encode_latent(y, 3)
    y_dec = model64.decompress(streams, tuple(y.shape), 3)
    assert torch.equal(y_enc, r.y_hat)
    assert torch.equal(y_dec, r.y_hat)
    # the coded symbols really are round(y - mean): the residual is within half a step
    assert (y - y_dec).abs().max() <= 0.5 + 1e-9


def test_float32_model_encoder_and_decoder_agree(model):
    x = pad_to_multiple(_image(70, 50), 64)
    with torch.no_grad():
        y = model.analysis(x, 4)
        r = model(x, 4)
    streams, y_enc = model.encode_latent(y, 4)
    assert len(streams) == 2
    y_dec = model.decompress(streams, tuple(y.shape), 4)
    assert y_dec.dtype == torch.float32
    assert torch.equal(y_dec, y_enc.float())
    # the float32 forward path quantises (almost) identically
    assert (r.y_hat - y_dec).abs().max() < 1e-3 or (r.y_hat != y_dec).float().mean() < 1e-3


def test_bit_exact_across_thread_counts(model):
    """Encode with 1 thread, decode with 2 (and the reverse): identical latents and streams."""
    x = pad_to_multiple(_image(96, 128, seed=3), 64)
    before = torch.get_num_threads()
    try:
        out = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model._reset_caches()  # rebuild the float64 copy under this thread count too
            with torch.no_grad():
                y = model.analysis(x, 2)
            streams, y_enc = model.encode_latent(y, 2)
            out[threads] = (y, streams, y_enc)
        for enc_t, dec_t in ((1, 2), (2, 1)):
            torch.set_num_threads(dec_t)
            y, streams, y_enc = out[enc_t]
            y_dec = model.decompress(streams, tuple(y.shape), 2)
            assert torch.equal(y_dec, y_enc.float())
        # same latent in, same bytes out, whatever the thread count
        y = out[1][0]
        torch.set_num_threads(2)
        assert model.compress(model.latents(y, 2), 2) == out[1][1]
    finally:
        torch.set_num_threads(before)


def test_corrupt_latent_stream_is_a_clear_error(model):
    from glocal_codec.bitstream import BitstreamError

    x = pad_to_multiple(_image(64, 64), 64)
    with torch.no_grad():
        y = model.analysis(x, 1)
    z, ys = model.compress(model.latents(y, 1), 1)
    with pytest.raises(BitstreamError):
        model.decompress([z, ys[:-3]], tuple(y.shape), 1)  # not a whole number of words
    with pytest.raises(ValueError):
        model.decompress([z, ys], (1, 8, 4, 4), 1)


def test_tables_required(model):
    m = GlocalModel(GlocalConfig(**TINY)).eval()
    with pytest.raises(RuntimeError, match="build_tables"):
        m.compress(m.latents(torch.zeros(1, 16, 4, 4), 0), 0)


# -- the plugin ---------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(7, 13), (70, 50)])
def test_plugin_round_trip_odd_sizes(hw, tmp_path):
    x = _image(*hw, seed=1)
    data = gc.encode(x, codec="glocal", quality=3)
    path = tmp_path / "x.glc"
    path.write_bytes(data)
    out = gc.decode_tensor(path.read_bytes())
    assert out.shape == x.shape
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    info = gc.read_info(data)
    assert info.codec == "glocal"
    # deterministic: the same input gives the same file
    assert gc.encode(x, codec="glocal", quality=3) == data


def test_plugin_grayscale():
    x = _image(20, 30).mean(1, keepdim=True)
    out = gc.decode_tensor(gc.encode(x, codec="glocal", quality=1))
    assert out.shape == x.shape


# -- training -----------------------------------------------------------------------------------
def test_two_training_steps_then_export(data_dir: Path, tmp_path: Path):
    from glocal_codec.train.export import export_checkpoint
    from glocal_codec.weights import load_manifest, load_state

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("kodim05.png", "kodim23.png"):
        shutil.copy(data_dir / "kodak" / name, imgs / name)
    cfg = TrainConfig(codec="glocal", data=[str(imgs)], out=str(tmp_path / "run"), steps=2, batch=2, crop=64,
                      n=16, m=16, arch=dict(window=4, head_dim=8, tokens=4, ctx=16), ckpt_every=100,
                      log_every=1, threads=1)
    lines: list[str] = []
    res = train(cfg, log=lines.append)
    assert res.steps == 2 and np.isfinite(res.last_loss)
    assert any(line.startswith("step 2") for line in lines)
    # the checkpoint records the model's own config; export freezes tables and writes a manifest row
    path = export_checkpoint(res.checkpoint, "glocal", out_dir=tmp_path / "w")
    entry = load_manifest(tmp_path / "w")["glocal"]
    mcfg = GlocalConfig(**entry["config"])
    assert mcfg.window == 4 and mcfg.ctx == 16 and mcfg.slices == GlocalConfig(**TINY).slices
    m = build_model("glocal", mcfg)
    m.load_state_dict(load_state(path))
    m.eval()
    x = _image(64, 64)
    with torch.no_grad():
        y = m.analysis(x, 0)
    streams, y_enc = m.encode_latent(y, 0)
    assert torch.equal(m.decompress(streams, tuple(y.shape), 0), y_enc.float())


def test_attention_free_variant_codes_exactly():
    torch.manual_seed(0)
    m = GlocalModel(GlocalConfig(**TINY, attention=False)).eval()
    assert not any(type(mod).__name__ == "WindowAttention" for mod in m.g_a.modules())
    m.build_tables()
    x = _image(64, 128)
    with torch.no_grad():
        y = m.analysis(x, 5)
        assert m(x, 5).x_hat.shape == x.shape
    streams, y_enc = m.encode_latent(y, 5)
    assert torch.equal(m.decompress(streams, tuple(y.shape), 5), y_enc.float())


def test_coding_caches_stay_out_of_the_weights(model):
    """The float64 copy and the coder tables are caches: not in state_dict, not copied, not moved."""
    import copy

    keys = set(model.state_dict())
    x = _image(64, 64)
    with torch.no_grad():
        streams = model.compress(model.latents(model.analysis(x, 0), 0), 0)
    assert set(model.state_dict()) == keys
    assert not any(k.startswith("_") for k in keys)
    twin = copy.deepcopy(model)
    assert twin.decompress(streams, (1, 16, 4, 4), 0).equal(model.decompress(streams, (1, 16, 4, 4), 0))


# -- the fixed-point synthesis (identical pixels on every machine) -------------------------------
EXACT = dict(n=16, m=24, window=4, head_dim=8, tokens=4, ctx=24)


def _exact_model(depth: int, attention: bool = True) -> GlocalModel:
    torch.manual_seed(0)
    return GlocalModel(GlocalConfig(**EXACT, depth=depth, attention=attention)).eval()


def _grid_weight_twin(m: GlocalModel) -> GlocalModel:
    """A float64 copy whose conv / linear weights are rounded to the fixed-point grid: the same
    function as the exact synthesis up to activation rounding (isolates the attention numerics)."""
    import copy

    from glocal_codec.nn.fixed_point import to_grid

    twin = copy.deepcopy(m).double()
    with torch.no_grad():
        for mod in twin.g_s.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                mod.weight.copy_(to_grid(mod.weight))
    return twin


@pytest.mark.parametrize("depth", [1, 2])  # 2: shifted windows too
@pytest.mark.parametrize("hw", [(7, 5), (4, 4), (3, 9)])  # odd sizes: padding and masks
def test_exact_synthesis_is_close_to_the_float_one(depth, hw):
    from glocal_codec.codecs import ExactSynthesis

    m = _exact_model(depth)
    assert isinstance(m, ExactSynthesis)
    x = _image(16 * hw[0], 16 * hw[1], seed=2)
    for q in (0, 5):
        with torch.no_grad():
            y = torch.round(m.analysis(x, q))
            ref = m.synthesis(y, q)
            ref64 = _grid_weight_twin(m).synthesis(y.double(), q)
        out = m.synthesis_exact(y, q)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert (out - ref).abs().max() < 3e-3  # mostly the weights' rounding to 2**-16
        assert (out.double() - ref64).abs().max() < 3e-4  # attention, LayerNorm, GELU, softmax: ~1e-4


def test_exact_synthesis_of_the_attention_free_variant():
    m = _exact_model(1, attention=False)
    with torch.no_grad():
        y = torch.round(m.analysis(_image(16 * 5, 16 * 3), 3))
        ref = _grid_weight_twin(m).synthesis(y.double(), 3)
    assert (m.synthesis_exact(y, 3).double() - ref).abs().max() < 3e-4


def test_exact_synthesis_same_bits_with_one_or_two_threads():
    m = _exact_model(2)
    with torch.no_grad():
        y = torch.round(m.analysis(_image(16 * 7, 16 * 5, seed=4), 2))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = m.synthesis_exact(y, 2)
        torch.set_num_threads(1)
        m._reset_caches()  # rebuild the fixed-point copy under this thread count too
        one = m.synthesis_exact(y, 2)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


_EXACT_PROBE = """
import hashlib, sys, torch
from glocal_codec.codecs.glocal import GlocalConfig, GlocalModel
d = torch.load(sys.argv[1])
m = GlocalModel(GlocalConfig(**d["cfg"])).eval()
m.load_state_dict(d["state"])
print(hashlib.sha256(m.synthesis_exact(d["y"], 2).numpy().tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_exact_synthesis_same_bits_with_plain_cpu_kernels(tmp_path):
    """A fresh process with ``ATEN_CPU_CAPABILITY=default`` (torch's non-SIMD kernels): the same
    pixels. Weights and latent travel in a file (random initialisation differs between kernel sets)."""
    import hashlib
    import os
    import subprocess
    import sys

    m = _exact_model(2)
    with torch.no_grad():
        y = torch.round(m.analysis(_image(16 * 7, 16 * 5, seed=4), 2))
    torch.save({"cfg": dict(EXACT, depth=2), "state": m.state_dict(), "y": y}, tmp_path / "m.pt")
    here = hashlib.sha256(m.synthesis_exact(y, 2).numpy().tobytes()).hexdigest()
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", _EXACT_PROBE, str(tmp_path / "m.pt")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == here


def test_exact_synthesis_follows_loaded_weights():
    """The fixed-point copy is a cache: load_state_dict drops it, and it stays out of the weights."""
    import copy

    m = _exact_model(1)
    keys = set(m.state_dict())
    with torch.no_grad():
        y = torch.round(m.analysis(_image(64, 64), 1))
    before = m.synthesis_exact(y, 1)
    assert set(m.state_dict()) == keys
    state = copy.deepcopy(m.state_dict())
    for k, v in state.items():
        if k.startswith("g_s.") and k.endswith("gamma"):
            state[k] = v * 0.5
    m.load_state_dict(state)
    after = m.synthesis_exact(y, 1)
    assert not torch.equal(before, after)
    with torch.no_grad():
        assert (after - m.synthesis(y, 1)).abs().max() < 3e-3
    assert copy.deepcopy(m).synthesis_exact(y, 1).equal(after)
