"""Training loop for the variable-rate learned codecs (``glocal-codec train``).

One run trains every quality level at once: each step draws a quality level, applies its gain
vector and optimises ``bpp + lambda_q * 255^2 * MSE`` (the CompressAI convention). Checkpoints
(model, optimiser, step, RNG state) are written atomically every ``ckpt_every`` steps so a run can
stop and ``--resume`` later; the budget is a step count and/or a wall-clock limit, and the
learning rate follows a cosine schedule over whichever of the two is reached first.

Multi-process training (several GPUs, or CPU processes) goes through ``torchrun``: when
``WORLD_SIZE`` > 1 the loop joins the process group (NCCL on CUDA, gloo on CPU), wraps the model
in DistributedDataParallel, gives every rank its own crop stream (the effective batch is
``batch * world_size``) and lets rank 0 alone decide when to stop, set the learning rate, log and
write checkpoints, so that all ranks take identical optimiser steps.
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

from ..codecs import codec_class, codec_names
from ..codecs.hyperprior import LAMBDAS, ModelConfig, RescaledResult
from ..codecs.learned import LatentCodec
from .checkpoint import load_checkpoint
from .data import CropSampler, find_images
from .losses import Distortion, make_distortion
from ..util import atomic_write
from .widen import is_narrower, widen_state

__all__ = ["TrainConfig", "TrainResult", "trainable_codecs", "model_class", "build_model", "model_config", "init_from", "init_from_keys",
           "rd_loss", "train", "world_info", "parse_arch"]


def _learned(name: str) -> type | None:
    """The plugin class of ``name`` if it is a learned image codec (trainable), else None."""
    try:
        cls = codec_class(name)
    except ValueError:  # unknown or unavailable codec
        return None
    return cls if isinstance(cls, type) and issubclass(cls, LatentCodec) else None


def trainable_codecs() -> list[str]:
    """Every registered codec this loop can train: the learned image codecs without a recipe of
    their own (``LatentCodec.trainer``), in id order."""
    return [n for n in codec_names() if (c := _learned(n)) is not None and c.trainer is None]


def model_class(codec: str) -> type:
    """The network class of ``codec`` (its plugin's ``model_class``), from the registry."""
    cls = _learned(codec)
    if cls is not None and cls.trainer is not None:
        raise ValueError(f"{codec} is not trained by this loop: its recipe is `{cls.trainer}` (docs/training.md)")
    if cls is None:
        raise ValueError(f"no trainer for codec {codec!r}; trainable: {', '.join(trainable_codecs())}")
    return cls.model_class


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
    # Levels drawn, uniformly from this list (empty: all levels). A level listed k times is drawn k
    # times as often: [1, 2, 3, 4, 5, 5, 6, 6, 6] spends a third of the steps on the top level.
    qualities: list[int] = field(default_factory=list)
    init_from: str | None = None  # checkpoint/safetensors of a related model: copy matching tensors
    # Mixed precision: the transforms run under bfloat16 autocast (1.7-1.8x faster per msh step on a
    # CPU with AVX512-BF16, and the usual choice on GPUs); densities and rates stay float32.
    bf16: bool = False
    # Growing a widened latent (msh only; see MeanScaleHyperprior.forward): latent channels from
    # grow_from on get noise instead of rounding and a rate gradient ramped 0 -> 1 over the
    # first grow_steps steps; plain training after that.
    grow_from: int | None = None
    grow_steps: int = 0
    # Warm-up after --init-from: for this many steps only the parameters the source did not
    # provide are trained (a new head learns to read the copied network before the copied
    # layers move; gblsr's coefficient head on msh's synthesis).
    warmup_steps: int = 0
    warmup_lr: float | None = None  # constant learning rate of the warm-up (None: the schedule's)

    def __post_init__(self) -> None:
        # Checked here, not at the first draw: level 0 would silently index the last lambda and a level
        # past the table would fail hours into a run.
        bad = [q for q in self.qualities if not 1 <= q <= len(LAMBDAS)]
        if bad:
            raise ValueError(f"quality levels run from 1 to {len(LAMBDAS)}; got {', '.join(map(str, bad))}")
        if self.grow_steps < 0 or (self.grow_from is not None and self.grow_from < 1):
            raise ValueError("grow_steps must be >= 0 and grow_from >= 1")
        if (self.grow_from is not None) != (self.grow_steps > 0):
            raise ValueError("growing a latent needs both grow_from (first new channel) and grow_steps (> 0)")
        if self.grow_from is not None and self.codec != "msh":
            raise ValueError(f"growing a widened latent is implemented for msh only, not {self.codec}")
        if self.warmup_steps < 0 or (self.warmup_steps and not self.init_from):
            raise ValueError("warmup_steps trains what --init-from did not copy: it needs --init-from and must be >= 0")
        if self.bf16 and self.codec == "glocal":
            # its context network's likelihoods are not yet kept in float32 under autocast
            raise ValueError("bf16 training is implemented for msh and factorized, not glocal")


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    steps: int
    seconds: float
    last_loss: float


def model_config(codec: str, n: int | None = None, m: int | None = None, **arch):
    """The config dataclass of ``codec``'s model (``model_class.config_class``, else ModelConfig)."""
    config_class = getattr(model_class(codec), "config_class", ModelConfig)
    given = {k: v for k, v in {"n": n, "m": m, **arch}.items() if v is not None}
    try:
        return config_class(**given)
    except TypeError as e:  # an unknown field name: say which ones exist
        from dataclasses import fields

        known = ", ".join(f.name for f in fields(config_class))
        raise ValueError(f"bad model config for {codec}: {e}; fields: {known}") from None


def build_model(codec: str, cfg=None) -> torch.nn.Module:
    """``codec``'s model for ``cfg`` (its config dataclass; None: the defaults)."""
    return model_class(codec)(cfg if cfg is not None else model_config(codec))


def rd_loss(x: torch.Tensor, result, lmbda: float, distortion: Distortion | None = None,
            log: dict[str, float] | None = None) -> tuple[torch.Tensor, float, float]:
    """Return (loss, bpp, psnr) for one batch; bpp from the model's likelihoods.

    ``distortion`` (:func:`~.losses.make_distortion`: the model's own terms, ``vq``'s L1 + LPIPS)
    replaces ``lmbda * 255^2 * MSE``; its unweighted terms go into ``log`` when given.
    """
    n, _, h, w = x.shape
    pixels = n * h * w
    if isinstance(result, RescaledResult):  # coded one picture, reconstructed another
        x = result.target if result.target is not None else x
        pixels = result.rate_pixels or pixels
    # a model without a rate term (vq: fixed-size codebook indices) has no likelihoods
    bits = sum(((-torch.log2(lik.clamp_min(1e-9))).sum() for lik in result.likelihoods.values()),
               torch.zeros((), device=x.device))
    bpp = bits / pixels
    mse = torch.mean((result.x_hat - x) ** 2)
    if distortion is None:
        loss = bpp + lmbda * 255.0**2 * mse
    else:
        d = distortion(result.x_hat, x)
        loss = bpp + d.total
        if log is not None:
            log.update(d.parts)
    if result.aux_loss is not None:  # e.g. a quantiser's commitment term
        loss = loss + result.aux_loss
    psnr = -10 * math.log10(max(mse.item(), 1e-10))
    return loss, bpp.item(), psnr


def init_from(model: torch.nn.Module, path: Path) -> int:
    """:func:`init_from_keys`, returning how many tensors were copied."""
    return len(init_from_keys(model, path))


def init_from_keys(model: torch.nn.Module, path: Path) -> set[str]:
    """Copy every tensor whose name and shape match from a checkpoint or safetensors file.

    Used to start ``factorized`` from ``msh``'s transforms and gains (same g_a / g_s shapes):
    transfer learning that saves most of a CPU training budget. When the source holds every
    tensor of ``model`` with the same shape (the same architecture: continuing shipped weights),
    the entropy bottlenecks are copied too; in a partial (cross-model) transfer they are not,
    because their densities describe another model's latent -- unless the model's own
    ``adapt_source(src) -> (src, True)`` maps the source onto itself so that its latent is
    the source's (``glocal`` from ``msh``), or the source is the same architecture with
    fewer channels (:func:`~glocal_codec.train.widen.widen_state`: the wide model starts as
    the narrow one).
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        src = load_file(str(path))
    else:
        src = load_checkpoint(path)["model"]
    # a model may know how to read another model's weights (glocal from msh: renamed layers)
    adapt = getattr(model, "adapt_source", None)
    mapped = False
    if adapt is not None:
        src, mapped = adapt(src)
    own = model.state_dict()
    if not mapped and is_narrower(src, own):
        # the same architecture, narrower (a 64/96 msh into a 96/192 one): widen it so that the
        # wide model starts as the narrow one's exact function, densities included
        src, mapped = widen_state(model, src), True
    same = mapped or all(k in src and src[k].shape == v.shape for k, v in own.items())
    keep = {k: v for k, v in src.items()
            if k in own and own[k].shape == v.shape and (same or not k.startswith("ebs."))}
    model.load_state_dict({**own, **keep})
    return set(keep)


def _matching_keys(model: torch.nn.Module, path: Path) -> set[str]:
    """The tensors :func:`init_from_keys` would copy, without copying them (a resumed warm-up)."""
    import copy

    return init_from_keys(copy.deepcopy(model), path)


def parse_arch(items: list[str]) -> dict:
    """``["window=4", "slices=[8,8,16]"]`` -> ``{"window": 4, "slices": [8, 8, 16]}`` (JSON values, else strings)."""
    import json

    arch = {}
    for kv in items:
        if "=" not in kv:
            raise ValueError(f"--arch wants KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        try:
            arch[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            arch[k.strip()] = v
    return arch


def world_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) outside it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def _params_checksum(model: torch.nn.Module) -> torch.Tensor:
    return torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1).cpu()


def _lr_at(cfg: TrainConfig, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def _save(path: Path, payload: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(payload, tmp), force=True)


def train(cfg: TrainConfig, resume: bool = False, log: Callable[[str], None] | None = None,
          on_step: Callable[[int, int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``cfg.codec``; returns where the final checkpoint is.

    ``log`` receives text lines (resume, periodic averages); ``on_step(step, total, stats)`` is
    called after every step with loss / bpp / psnr, for a progress bar.
    """
    rank, local_rank, world = world_info()
    distributed = world > 1
    if rank != 0:  # one voice: rank 0 logs and reports progress
        log, on_step = (lambda s: None), None
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # same seed on every rank: identical initial weights
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    device = torch.device(cfg.device)
    if distributed:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        # TF32 matrix units for the convolutions and attention products: training noise (the
        # additive-uniform rate proxy) dwarfs their ~1e-3 relative error, and coding never runs
        # on them (the entropy model is evaluated in float64 on the CPU at export and decode).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    fields = {**cfg.arch, **{k: v for k, v in (("n", cfg.n), ("m", cfg.m)) if v is not None}}
    model = build_model(cfg.codec, model_config(cfg.codec, **fields)).to(device)
    if cfg.grow_from is not None and not cfg.grow_from < model.cfg.m:
        raise ValueError(f"grow_from={cfg.grow_from} leaves no new latent channel (the model has m={model.cfg.m})")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    distortion = make_distortion(model, device)  # None: the rate-distortion MSE
    step, elapsed = 0, 0.0
    copied: set[str] | None = None
    if cfg.init_from and not (resume and ckpt_path.exists()):
        copied = init_from_keys(model, Path(cfg.init_from))
        log(f"initialised {len(copied)} tensors from {cfg.init_from}")
    elif cfg.init_from and cfg.warmup_steps:  # resumed: the copied set is the source's matching tensors
        copied = _matching_keys(model, Path(cfg.init_from))
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        step, elapsed = state["step"], state["seconds"]
        log(f"resumed from {ckpt_path} at step {step}")
    net: torch.nn.Module = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        # Only the drawn quality level's gain and entropy bottleneck take part in a step, so the
        # other levels' parameters are unused: DDP must be told to look for them.
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=True)
    paths = [p for d in cfg.data for p in find_images(Path(d))]
    sampler = CropSampler(paths, cfg.crop, seed=cfg.seed + step + 100_003 * rank)  # own crops per rank
    levels = cfg.qualities or list(range(1, len(LAMBDAS) + 1))
    log(f"training {cfg.codec} on {len(sampler)} images, qualities {levels}, device {device}"
        + (f", {world} processes (effective batch {cfg.batch * world})" if distributed else ""))
    gen = torch.Generator().manual_seed(cfg.seed + step)  # same on every rank: same quality level per step
    model.train()
    t0 = time.monotonic() - elapsed
    budget = cfg.minutes * 60 if cfg.minutes else None
    last_loss = float("nan")
    stats: list[tuple[float, float, float]] = []
    extra: dict[str, list[float]] = {}  # the model's own numbers (ForwardResult.stats), averaged per log line

    def checkpoint() -> None:
        if rank != 0:
            return
        _save(ckpt_path, {"model": model.state_dict(), "optim": opt.state_dict(), "step": step,
                          "seconds": time.monotonic() - t0, "config": asdict(cfg),
                          "model_config": asdict(model.cfg)})

    held = [p for name, p in model.named_parameters() if copied is not None and name in copied]
    if cfg.warmup_steps and step < cfg.warmup_steps:
        for p in held:
            p.requires_grad_(False)
        log(f"warm-up: {cfg.warmup_steps} steps train only the {len(list(model.parameters())) - len(held)} "
            f"parameter tensors the source did not provide")
    while step < cfg.steps:
        if cfg.warmup_steps and step == cfg.warmup_steps:
            for p in held:
                p.requires_grad_(True)
            log(f"warm-up done at step {step}: training every parameter")
        spent = time.monotonic() - t0
        stop = budget is not None and spent >= budget
        progress = max(step / cfg.steps, spent / budget if budget else 0.0)
        if distributed:  # rank 0's clock decides for everyone, so no rank waits on a missing peer
            flags = torch.tensor([float(stop), progress], dtype=torch.float64)
            dist.broadcast(flags, 0)
            stop, progress = bool(flags[0]), float(flags[1])
        if stop:
            log(f"time budget of {cfg.minutes} min reached at step {step}")
            break
        for g in opt.param_groups:
            g["lr"] = cfg.warmup_lr if cfg.warmup_lr and step < cfg.warmup_steps else _lr_at(cfg, progress)
        q = levels[int(torch.randint(len(levels), (1,), generator=gen))]
        x = sampler.batch(cfg.batch).to(device)
        grow = ({"grow_from": cfg.grow_from, "grow_weight": step / cfg.grow_steps}
                if cfg.grow_from is not None and step < cfg.grow_steps else {})
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            result = net(x, q - 1, **grow)
        parts: dict[str, float] = {}
        loss, bpp, psnr = rd_loss(x, result, LAMBDAS[q - 1], distortion, parts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        last_loss = loss.item()
        stats.append((last_loss, bpp, psnr))
        for k, v in {**parts, **result.stats}.items():
            extra.setdefault(k, []).append(v)
        if on_step:
            on_step(step, cfg.steps, {"loss": last_loss, "bpp": bpp, "psnr": psnr, "q": q})
        if step % cfg.log_every == 0:
            l, b, p = (sum(s[i] for s in stats) / len(stats) for i in range(3))
            more = "".join(f" {k} {sum(v) / len(v):.3f}" for k, v in extra.items())
            log(f"step {step} loss {l:.4f} bpp {b:.3f} psnr {p:.2f}{more} lr {opt.param_groups[0]['lr']:.2e} "
                f"{time.monotonic() - t0:.0f}s")
            stats.clear()
            extra.clear()
        if step % cfg.ckpt_every == 0:
            checkpoint()
    checkpoint()
    if distributed:
        # A cheap proof that DDP kept the replicas identical: every rank's parameter checksum.
        sums = [torch.zeros(1, dtype=torch.float64) for _ in range(world)]
        dist.all_gather(sums, _params_checksum(model))
        if any(not torch.equal(sums[0], s_) for s_ in sums[1:]):
            raise RuntimeError(f"distributed replicas diverged: parameter checksums {[float(v) for v in sums]}")
        log(f"{world} replicas in sync (parameter checksum {float(sums[0]):.6f})")
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(ckpt_path, step, time.monotonic() - t0, last_loss)
