"""Training loop for the variable-rate learned codecs (``glocal-codec train``).

One run trains every quality level at once: each step draws a quality level, applies its gain
vector and optimises ``bpp + lambda_q * 255^2 * MSE`` (the CompressAI convention). Checkpoints
(model, optimiser, step, RNG state) are written atomically every ``ckpt_every`` steps so a run can
stop and ``--resume`` later; the budget is a step count and/or a wall-clock limit, and the
learning rate follows a cosine schedule over whichever of the two is reached first.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..codecs.glocal import GlocalModel
from ..codecs.hyperprior import LAMBDAS, FactorizedPrior, MeanScaleHyperprior, ModelConfig
from .data import CropSampler, find_images

__all__ = ["TrainConfig", "TrainResult", "MODELS", "build_model", "model_config", "init_from", "rd_loss", "train"]

MODELS: dict[str, type] = {"msh": MeanScaleHyperprior, "factorized": FactorizedPrior, "glocal": GlocalModel}


@dataclass
class TrainConfig:
    codec: str
    data: list[str]
    out: str
    steps: int = 6000
    minutes: float | None = None
    batch: int = 8
    crop: int = 128
    lr: float = 2e-4
    lr_min: float = 1e-5
    threads: int | None = None
    device: str = "cpu"
    seed: int = 0
    ckpt_every: int = 200
    log_every: int = 50
    n: int | None = None  # None: the model's default (msh/factorized 96, glocal 64)
    m: int | None = None  # None: the model's default (msh/factorized 128, glocal 96)
    arch: dict = field(default_factory=dict)  # further config fields of models that have them (glocal)
    qualities: list[int] = field(default_factory=list)  # empty: all levels
    init_from: str | None = None  # checkpoint/safetensors of a related model: copy matching tensors


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    steps: int
    seconds: float
    last_loss: float


def model_config(codec: str, n: int | None = None, m: int | None = None, **arch):
    """The config dataclass of ``codec``'s model (``model_class.config_class``, else ModelConfig)."""
    if codec not in MODELS:
        raise ValueError(f"no trainer for codec {codec!r}; trainable: {', '.join(MODELS)}")
    config_class = getattr(MODELS[codec], "config_class", ModelConfig)
    given = {k: v for k, v in {"n": n, "m": m, **arch}.items() if v is not None}
    return config_class(**given)


def build_model(codec: str, cfg=None) -> torch.nn.Module:
    """``codec``'s model for ``cfg`` (its config dataclass; None: the defaults)."""
    if codec not in MODELS:
        raise ValueError(f"no trainer for codec {codec!r}; trainable: {', '.join(MODELS)}")
    return MODELS[codec](cfg if cfg is not None else model_config(codec))


def rd_loss(x: torch.Tensor, result, lmbda: float) -> tuple[torch.Tensor, float, float]:
    """Return (loss, bpp, psnr) for one batch; bpp from the model's likelihoods."""
    n, _, h, w = x.shape
    bits = sum((-torch.log2(lik.clamp_min(1e-9))).sum() for lik in result.likelihoods.values())
    bpp = bits / (n * h * w)
    mse = torch.mean((result.x_hat - x) ** 2)
    loss = bpp + lmbda * 255.0**2 * mse
    psnr = -10 * math.log10(max(mse.item(), 1e-10))
    return loss, bpp.item(), psnr


def init_from(model: torch.nn.Module, path: Path) -> int:
    """Copy every tensor whose name and shape match from a checkpoint or safetensors file.

    Used to start ``factorized`` from ``msh``'s transforms and gains (same g_a / g_s shapes):
    transfer learning that saves most of a CPU training budget.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        src = load_file(str(path))
    else:
        src = torch.load(path, map_location="cpu", weights_only=False)["model"]
    own = model.state_dict()
    keep = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape and not k.startswith("ebs.")}
    model.load_state_dict({**own, **keep})
    return len(keep)


def _lr_at(cfg: TrainConfig, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def _save(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, resume: bool = False, log: Callable[[str], None] | None = None,
          on_step: Callable[[int, int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``cfg.codec``; returns where the final checkpoint is.

    ``log`` receives text lines (resume, periodic averages); ``on_step(step, total, stats)`` is
    called after every step with loss / bpp / psnr, for a progress bar.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    device = torch.device(cfg.device)
    model = build_model(cfg.codec, model_config(cfg.codec, cfg.n, cfg.m, **cfg.arch)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, elapsed = 0, 0.0
    if cfg.init_from and not (resume and ckpt_path.exists()):
        copied = init_from(model, Path(cfg.init_from))
        log(f"initialised {copied} tensors from {cfg.init_from}")
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        step, elapsed = state["step"], state["seconds"]
        log(f"resumed from {ckpt_path} at step {step}")
    paths = [p for d in cfg.data for p in find_images(Path(d))]
    sampler = CropSampler(paths, cfg.crop, seed=cfg.seed + step)
    levels = cfg.qualities or list(range(1, len(LAMBDAS) + 1))
    log(f"training {cfg.codec} on {len(sampler)} images, qualities {levels}, device {device}")
    gen = torch.Generator().manual_seed(cfg.seed + step)
    model.train()
    t0 = time.monotonic() - elapsed
    budget = cfg.minutes * 60 if cfg.minutes else None
    last_loss = float("nan")
    stats: list[tuple[float, float, float]] = []

    def checkpoint() -> None:
        _save(ckpt_path, {"model": model.state_dict(), "optim": opt.state_dict(), "step": step,
                          "seconds": time.monotonic() - t0, "config": asdict(cfg),
                          "model_config": asdict(model.cfg)})

    while step < cfg.steps:
        spent = time.monotonic() - t0
        if budget is not None and spent >= budget:
            log(f"time budget of {cfg.minutes} min reached at step {step}")
            break
        progress = max(step / cfg.steps, spent / budget if budget else 0.0)
        for g in opt.param_groups:
            g["lr"] = _lr_at(cfg, progress)
        q = levels[int(torch.randint(len(levels), (1,), generator=gen))]
        x = sampler.batch(cfg.batch).to(device)
        result = model(x, q - 1)
        loss, bpp, psnr = rd_loss(x, result, LAMBDAS[q - 1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        last_loss = loss.item()
        stats.append((last_loss, bpp, psnr))
        if on_step:
            on_step(step, cfg.steps, {"loss": last_loss, "bpp": bpp, "psnr": psnr, "q": q})
        if step % cfg.log_every == 0:
            l, b, p = (sum(s[i] for s in stats) / len(stats) for i in range(3))
            log(f"step {step} loss {l:.4f} bpp {b:.3f} psnr {p:.2f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{time.monotonic() - t0:.0f}s")
            stats.clear()
        if step % cfg.ckpt_every == 0:
            checkpoint()
    checkpoint()
    return TrainResult(ckpt_path, step, time.monotonic() - t0, last_loss)
