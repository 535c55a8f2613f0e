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


def test_glocal_from_msh_computes_msh_exactly(tmp_path) -> None:
    """glocal's adapt_source: msh's layers land in the matching glocal layers, gates and context
    corrections at zero, so the first training step starts at msh's rate and distortion."""
    from glocal_codec.codecs.glocal import GlocalConfig, GlocalModel

    torch.manual_seed(0)
    msh = MeanScaleHyperprior(ModelConfig(n=16, m=16, levels=2))
    src = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
           for k, v in msh.state_dict().items()}  # not the init: trained-looking weights
    msh.load_state_dict(src)
    save_file({k: v.contiguous() for k, v in src.items()}, str(tmp_path / "msh.safetensors"))
    glocal = GlocalModel(GlocalConfig(n=16, m=16, levels=2, window=4, head_dim=8, tokens=4, ctx=16))
    copied = init_from(glocal, tmp_path / "msh.safetensors")
    assert copied > len(src)  # every msh tensor plus the zeroed gates and context layers
    assert torch.equal(glocal.state_dict()["ebs.1.matrices.0"], src["ebs.1.matrices.0"])  # z densities too
    x = torch.rand(1, 3, 64, 128)  # msh itself wants multiples of 64
    glocal.eval(), msh.eval()
    with torch.no_grad():
        for q in range(2):
            a, b = glocal(x, q), msh(x, q)
            # (msh's eval forward rounds z around the density medians, glocal around 0: ~1e-5 apart)
            assert torch.allclose(a.x_hat, b.x_hat, atol=1e-4)
            for name in ("y", "z"):
                assert torch.allclose(a.likelihoods[name], b.likelihoods[name], rtol=1e-5, atol=0)
    # a glocal checkpoint is not msh's: no renaming, and no zeroing of trained gates
    assert glocal.adapt_source(glocal.state_dict())[1] is False
