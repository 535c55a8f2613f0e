"""Function-preserving widening of a trained Ballé-family model (``factorized`` / ``msh``).

Why: with N = 64 hidden and M = 96 latent channels the CPU-trained ``msh`` uses every latent
channel even at its lowest rate, and its transforms cap reconstruction at ~32.2 dB on Kodak
(``benchmarks/transform_ceiling.py``): the model looks too narrow. Training a wider one from
scratch costs far more than a CPU session has, so the wider model starts as *exactly* the
narrow one and training grows the new channels.

The construction is Net2Net's idea (Chen, Goodfellow, Shlens, "Net2Net: Accelerating learning
via knowledge transfer", ICLR 2016) with zero-initialised cross weights instead of replicated
units (as in LoRA-style growth): every new channel gets the wide model's default init for its
*incoming* weights, and every weight from a new channel into an old one is zero. By induction
over the layers, the old channels compute the old function, the new ones compute something
random, and nothing random reaches an old output. Gradients reach the zero blocks at once
(the new channels' activations are non-zero), so they start learning on the first step.

Layer conventions: ``Conv2d`` weights are (out, in, k, k), ``ConvTranspose2d`` weights are
(in, out, k, k); GDN's ``gamma`` is CompressAI's reparametrised matrix whose fresh off-diagonal
entries already encode 0, so copying the old block into a fresh matrix keeps old channels'
normalisation untouched. ``h_s``'s last layer emits (scales, means) as two halves of 2M
channels; old halves are moved to the start of the new halves, and the new channels' rows are
zero (mean 0, the smallest scale). The latent and hyper-latent's new channels are the exception
to "random in, zero out": ``g_a`` / ``h_a`` produce them as exactly 0 (zero incoming rows) and
``g_s`` / ``h_s`` read them with small random weights, so they cost no bits and change nothing
at the start, yet receive a gradient on the first step.

Widening the latent width M needs the growth schedule of the training loop
(``TrainConfig.grow_from`` / ``grow_steps``, ``MeanScaleHyperprior.forward``): a new latent
channel costs bits before the synthesis has learnt to use it, and rounding hides it from the
synthesis until it crosses 0.5, so plain gradient descent keeps it closed; while growing, the
synthesis sees the new channels with additive noise instead of rounding and their rate
gradient is ramped from 0 to 1. What widening did for the shipped ``msh`` (measurements, step
counts) is in ``docs/training.md``.
"""

from __future__ import annotations

import copy

import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

__all__ = ["widen_state", "is_narrower"]


def is_narrower(src: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> bool:
    """True when ``src`` has exactly ``own``'s tensors (the same model), none larger, one smaller."""
    if set(src) != set(own) or not all(k in src and src[k].dim() == v.dim() for k, v in own.items()):
        return False
    fits = all(s <= o for k, v in own.items() for s, o in zip(src[k].shape, v.shape))
    return fits and any(src[k].shape != v.shape for k, v in own.items())


def _halves(t: torch.Tensor, old: int, new: int) -> torch.Tensor:
    """Reorder dim 0 of a (2*old, ...) tensor into (2*new, ...) slots: [0:old] and [new:new+old]."""
    out = torch.zeros((2 * new, *t.shape[1:]), dtype=t.dtype)
    out[:old], out[new:new + old] = t[:old], t[old:]
    return out


def widen_state(model: nn.Module, src: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` (wide, freshly initialised) that computes what ``src`` computed.

    Tensors of equal shape are copied; smaller ones go into the leading slice of the fresh
    tensor, with the (old output <- new input) block of every conv zeroed. Buffers that are
    derived at export (coding tables, CompressAI's CDF caches) keep their fresh values.
    """
    own = model.state_dict()
    modules = dict(model.named_modules())
    out: dict[str, torch.Tensor] = {}
    for name, fresh in own.items():
        old = src[name].to(fresh.dtype)  # shipped weights may be stored in float16
        if old.shape == fresh.shape:
            out[name] = old.clone()
            continue
        if old.numel() == 0 or fresh.numel() == 0 or name == "tables" or name.rsplit(".", 1)[-1].startswith("_"):
            out[name] = fresh.clone()  # derived caches: rebuilt by build_tables() / update()
            continue
        mod_name, _, leaf = name.rpartition(".")
        mod = modules.get(mod_name)
        t = fresh.clone()
        if name.startswith("h_s.") and mod is list(model.h_s)[-1]:  # (scales, means) halves
            m_old, m_new = old.shape[0] // 2, fresh.shape[0] // 2
            moved = _halves(old, m_old, m_new)
            rows = torch.zeros(2 * m_new, dtype=torch.bool)
            rows[:m_old] = rows[m_new:m_new + m_old] = True
            if leaf == "weight":
                c_in = old.shape[1]
                t[rows, :c_in] = moved[rows]
                t[rows, c_in:] = 0  # old outputs never see new inputs
            else:
                t[rows] = moved[rows]
            t[~rows] = 0  # new channels start with mean 0 and the smallest scale: ~0 bits
            out[name] = t
            continue
        t[tuple(slice(0, s) for s in old.shape)] = old
        firsts = [list(getattr(model, seq))[0] for seq in ("g_s", "h_s") if hasattr(model, seq)]
        lasts = [list(getattr(model, seq))[-1] for seq in ("g_a", "h_a") if hasattr(model, seq)]
        if leaf == "weight" and isinstance(mod, nn.ConvTranspose2d):
            if any(mod is f for f in firsts):
                # new latent channels are 0 at the start (below), so their random synthesis
                # weights change nothing yet; they carry the gradient that trains g_a's new rows
                t[old.shape[0]:] *= 0.1
            else:
                t[old.shape[0]:, : old.shape[1]] = 0  # new inputs -> old outputs
        elif leaf == "weight" and isinstance(mod, nn.Conv2d):
            t[: old.shape[0], old.shape[1]:] = 0
        elif name.endswith("log_gain"):
            # new latent channels start at each level's mean gain: a quantiser as fine as the
            # old channels' at that level
            t[:, old.shape[1]:] = old.mean(1, keepdim=True)
        if leaf in ("weight", "bias") and any(mod is f for f in lasts):
            # new latent / hyper-latent channels start at exactly 0: free to code (mean 0, the
            # smallest scale) and invisible to the synthesis. Zeroing the *incoming* weights
            # (not the outgoing ones) matters: rounding keeps a small random latent at 0, which
            # would leave both sides without a gradient.
            t[old.shape[0]:] = 0
        out[name] = t
    _peaked_densities_for_new_channels(model, src, out)
    return out


def _peaked_densities_for_new_channels(model: nn.Module, src: dict[str, torch.Tensor],
                                       out: dict[str, torch.Tensor], p_zero: float = 0.99) -> None:
    """Give each new channel of a factorized density a density that codes 0 almost for free.

    New latent / hyper-latent channels start at exactly 0, but a *fresh* EntropyBottleneck
    density is broad (CompressAI's init_scale 10): about 4 bits for every 0 it codes. For
    ``msh``'s hyper-latent (N channels) that was +0.085 bpp on kodim01 for 64 new channels, and
    its densities learn far too slowly (one small Adam step each) to shed it on a CPU budget.
    So each new channel copies the old density with the highest P(0), compressed about 0 by the
    smallest power of two s that gives P(0) >= ``p_zero``: the density's first layer multiplies
    its input by softplus(matrices.0), so scaling that by s turns c(x) into c(s x). Its
    quantiles (the median the coder subtracts) are moved to 0 and scaled the same way, so a
    new channel's 0 stays 0 after quantisation and the wide model's output is unchanged.
    """
    for mod_name, mod in model.named_modules():
        if not isinstance(mod, EntropyBottleneck):
            continue
        prefix = f"{mod_name}."
        c_old = src[f"{prefix}quantiles"].shape[0]
        c_new = out[f"{prefix}quantiles"].shape[0]
        if c_old == c_new:
            continue
        eb = copy.deepcopy(mod)
        own = {k[len(prefix):]: v for k, v in out.items() if k.startswith(prefix)}
        eb.load_state_dict(own, strict=False)
        zeros = torch.zeros(c_new, 1, 1)
        with torch.no_grad():
            best = int(eb._likelihood(zeros)[0].view(-1)[:c_old].argmax())
            for k, v in own.items():
                # per-channel tensors only ("target" and the likelihood bound are constants)
                if v.dim() == 3 and v.shape[0] == c_new:
                    v[c_old:] = v[best]
            slope = nn.functional.softplus(own["matrices.0"][best])
            for s in (2.0**i for i in range(16)):
                v = s * slope
                own["matrices.0"][c_old:] = torch.where(v > 20, v, torch.log(torch.expm1(v)))
                eb.load_state_dict(own, strict=False)
                if eb._likelihood(zeros)[0].view(-1)[c_old:].min() >= p_zero:
                    break
            q = own["quantiles"][best]
            own["quantiles"][c_old:] = (q - q[:, 1:2]) / s
