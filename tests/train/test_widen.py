"""Function-preserving widening (``train.widen``): a wide model starts as the narrow one."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from glocal_codec.codecs.hyperprior import FactorizedPrior, MeanScaleHyperprior, ModelConfig
from glocal_codec.train.loop import init_from, rd_loss
from glocal_codec.train.widen import is_narrower, widen_state


def _trained_looking(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # the fresh init has structure (GDN's identity gamma, zero biases) that could hide a wrong
    # copy: perturb every parameter so each weight is distinguishable (buffers such as GDN's
    # reparametrisation constants stay: they are constants, not learned)
    params = dict(model.named_parameters())
    return {k: (v + 0.02 * torch.randn_like(v) if k in params else v).contiguous()
            for k, v in model.state_dict().items()}


@pytest.mark.parametrize("cls", [MeanScaleHyperprior, FactorizedPrior])
def test_wide_model_starts_as_the_narrow_one(cls, tmp_path) -> None:
    torch.manual_seed(0)
    narrow = cls(ModelConfig(n=8, m=12, levels=2))
    narrow.load_state_dict(_trained_looking(narrow))
    save_file(narrow.state_dict(), str(tmp_path / "w.safetensors"))
    wide = cls(ModelConfig(n=12, m=20, levels=2))
    assert is_narrower(narrow.state_dict(), wide.state_dict())
    assert init_from(wide, tmp_path / "w.safetensors") == len(wide.state_dict())
    narrow.eval(), wide.eval()
    x = torch.rand(1, 3, 128, 64)  # multiples of 64: no padding inside forward()
    with torch.no_grad():
        for q in (0, 1):
            a, b = narrow(x, q), wide(x, q)
            assert torch.allclose(a.x_hat, b.x_hat, atol=1e-6)  # distortion: exactly the narrow model's
            # rate of the old latent channels unchanged; the new ones start near-free
            bits_a = -torch.log2(a.likelihoods["y"]).sum()
            bits_old = -torch.log2(b.likelihoods["y"][:, :12]).sum()
            new = b.likelihoods["y"][:, 12:]
            assert torch.allclose(bits_a, bits_old, rtol=1e-5)
            assert -torch.log2(new).sum() / new.numel() < 0.05  # bits per new latent element
            if cls is MeanScaleHyperprior:  # the hyper-latent has N channels: it widened too
                z_old, z_new = b.likelihoods["z"][:, :8], b.likelihoods["z"][:, 8:]
                assert torch.allclose(-torch.log2(a.likelihoods["z"]).sum(), -torch.log2(z_old).sum(), rtol=1e-5)
                assert -torch.log2(z_new).sum() / z_new.numel() < 0.05


def test_new_channels_learn_from_the_first_steps() -> None:
    torch.manual_seed(0)
    narrow = MeanScaleHyperprior(ModelConfig(n=8, m=12, levels=2))
    wide = MeanScaleHyperprior(ModelConfig(n=12, m=20, levels=2))
    wide.load_state_dict(widen_state(wide, _trained_looking(narrow)))
    x = torch.rand(2, 3, 64, 64)
    opt = torch.optim.Adam(wide.parameters(), lr=1e-3)
    loss, _, _ = rd_loss(x, wide(x, 1), 0.01)
    loss.backward()
    # the new analysis filters (zero at the start) get a gradient at once ...
    assert wide.g_a[-1].weight.grad[12:].abs().sum() > 0
    opt.step()
    opt.zero_grad()
    loss, _, _ = rd_loss(x, wide(x, 1), 0.01)
    loss.backward()
    # ... and once the new latent channels are non-zero, the synthesis reads them
    assert wide.g_s[0].weight.grad[12:].abs().sum() > 0


def test_not_narrower_when_any_tensor_is_wider_or_missing() -> None:
    a = MeanScaleHyperprior(ModelConfig(n=8, m=12, levels=2)).state_dict()
    b = MeanScaleHyperprior(ModelConfig(n=12, m=8, levels=2)).state_dict()
    assert not is_narrower(a, b)  # m shrinks
    assert not is_narrower(a, a)  # same: plain copy, not widening
    assert not is_narrower({k: v for k, v in a.items() if k != "g_a.0.weight"},
                           MeanScaleHyperprior(ModelConfig(n=12, m=20, levels=2)).state_dict())
