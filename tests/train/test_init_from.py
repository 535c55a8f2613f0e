"""``init_from``: continuing shipped weights vs transferring between models."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from glocal_codec.codecs.hyperprior import FactorizedPrior, MeanScaleHyperprior, ModelConfig
from glocal_codec.train.loop import init_from


def _perturbed(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {k: (v + torch.randn_like(v) if v.is_floating_point() else v).contiguous()
            for k, v in model.state_dict().items()}


def test_same_architecture_copies_everything_including_entropy_models(tmp_path) -> None:
    cfg = ModelConfig(n=8, m=12, levels=2)
    src = _perturbed(MeanScaleHyperprior(cfg))
    save_file(src, str(tmp_path / "w.safetensors"))
    model = MeanScaleHyperprior(cfg)
    assert init_from(model, tmp_path / "w.safetensors") == len(src)
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in src.items())


def test_transfer_between_models_leaves_entropy_models_alone(tmp_path) -> None:
    # n == m, so msh's hyper-latent bottlenecks have the factorized latent's shape: only the
    # partial match (a different model) keeps them out.
    cfg = ModelConfig(n=8, m=8, levels=2)
    src = _perturbed(MeanScaleHyperprior(cfg))
    torch.save({"model": src}, tmp_path / "ckpt.pt")
    model = FactorizedPrior(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copied = init_from(model, tmp_path / "ckpt.pt")
    after = model.state_dict()
    assert copied > 0
    assert torch.equal(after["g_a.0.weight"], src["g_a.0.weight"])
    assert torch.equal(after["g_s.0.weight"], src["g_s.0.weight"])
    for k in after:
        if k.startswith("ebs."):
            assert torch.equal(after[k], before[k]), k
