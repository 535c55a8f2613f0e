"""Growing a widened latent (``grow_from``) and bf16 autocast training of the Ballé-family models."""

from __future__ import annotations

import pytest
import torch

from glocal_codec.codecs.hyperprior import FactorizedPrior, MeanScaleHyperprior, ModelConfig
from glocal_codec.train import TrainConfig
from glocal_codec.train.loop import rd_loss
from glocal_codec.train.widen import widen_state


def _widened(seed: int = 0) -> MeanScaleHyperprior:
    torch.manual_seed(seed)
    narrow = MeanScaleHyperprior(ModelConfig(n=8, m=12, levels=2))
    wide = MeanScaleHyperprior(ModelConfig(n=8, m=20, levels=2))
    wide.load_state_dict(widen_state(wide, narrow.state_dict()))
    return wide


def test_growing_channels_reach_the_synthesis_even_when_small() -> None:
    # a new channel at 0.1 rounds to 0: under plain training the synthesis cannot see it, and its
    # read weights get no gradient; while growing it sees the value (plus noise)
    model = _widened()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        model.g_a[-1].weight[12:] = 0
        model.g_a[-1].bias[12:] = 0.1 / model.gain.log_gain[1, 12:].exp()  # y = 0.1 after level 1's gain
    assert torch.allclose(model.analysis(x, 1)[:, 12:], torch.tensor(0.1))
    plain = model(x, 1)
    rd_loss(x, plain, 0.01)[0].backward()
    assert model.g_s[0].weight.grad[12:].abs().sum() == 0
    model.zero_grad()
    grown = model(x, 1, grow_from=12, grow_weight=0.0)
    rd_loss(x, grown, 0.01)[0].backward()
    assert model.g_s[0].weight.grad[12:].abs().sum() > 0


def test_grow_weight_scales_only_the_new_channels_rate_gradient() -> None:
    model = _widened()
    x = torch.rand(2, 3, 64, 64)
    y = model.analysis(x, 1).detach().requires_grad_(True)
    from glocal_codec.codecs.hyperprior import _scale_grad_from

    grads = []
    for w in (0.0, 0.5, 1.0):
        y.grad = None
        out = _scale_grad_from(y, 12, w)
        assert torch.equal(out, y)  # values unchanged
        (out ** 2).sum().backward()
        grads.append(y.grad.clone())
    for g, w in zip(grads, (0.0, 0.5, 1.0)):
        assert torch.allclose(g[:, :12], 2 * y[:, :12])  # old channels: full gradient
        assert torch.allclose(g[:, 12:], w * 2 * y[:, 12:])


def test_growing_then_plain_forward_are_the_same_model() -> None:
    # grow_from only changes training: with it dropped the output is the usual forward pass
    model = _widened().eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x, 0), model(x, 0, grow_from=None)
    assert torch.equal(a.x_hat, b.x_hat)


@pytest.mark.parametrize("cls", [MeanScaleHyperprior, FactorizedPrior])
def test_bf16_autocast_keeps_rates_in_float32(cls) -> None:
    torch.manual_seed(0)
    model = cls(ModelConfig(n=8, m=12, levels=2))
    x = torch.rand(2, 3, 64, 64)
    ref = model(x, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, 1)
    assert out.x_hat.dtype == torch.float32
    for k, lik in out.likelihoods.items():
        assert lik.dtype == torch.float32, k
    # bf16 transforms change the numbers a little, not the picture
    loss_ref, bpp_ref, _ = rd_loss(x, ref, 0.01)
    loss, bpp, _ = rd_loss(x, out, 0.01)
    assert abs(bpp - bpp_ref) < 0.01 and abs(loss.item() - loss_ref.item()) < 0.1 * loss_ref.item()
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("kw, match", [
    ({"grow_from": 96}, "both"),
    ({"grow_steps": 100}, "both"),
    ({"grow_from": 0, "grow_steps": 10}, ">= 1"),
    ({"codec": "factorized", "grow_from": 96, "grow_steps": 10}, "msh only"),
    ({"codec": "glocal", "bf16": True}, "not glocal"),
])
def test_growth_and_bf16_settings_are_checked_up_front(kw, match) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{"codec": "msh", "data": ["d"], "out": "o", **kw})


def test_a_widened_msh_grows_under_bf16_through_the_loop(tmp_path) -> None:
    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file

    from glocal_codec.train import train

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).resize((80, 72)).save(tmp_path / f"im{i}.png")
    torch.manual_seed(0)
    save_file(MeanScaleHyperprior(ModelConfig(n=8, m=12)).state_dict(), str(tmp_path / "narrow.safetensors"))
    cfg = TrainConfig(codec="msh", data=[str(tmp_path)], out=str(tmp_path / "run"), steps=6, batch=2, crop=64,
                      threads=1, n=8, m=20, init_from=str(tmp_path / "narrow.safetensors"), grow_from=12,
                      grow_steps=3, bf16=True, log_every=100)
    result = train(cfg, log=lambda s: None)
    assert result.steps == 6
    state = torch.load(result.checkpoint, weights_only=False)
    assert state["model"]["g_a.6.weight"].shape[0] == 20
    assert state["model"]["g_a.6.weight"][12:].abs().sum() > 0  # the new analysis rows have moved off zero
    with pytest.raises(ValueError, match="no new latent channel"):
        train(TrainConfig(codec="msh", data=[str(tmp_path)], out=str(tmp_path / "r2"), steps=1, n=8, m=12,
                          grow_from=12, grow_steps=3), log=lambda s: None)
