"""Training recipe of ``dualrep`` (issue 34): three stages on top of the shipped ``vq`` weights.

1. **Cache** (:func:`build_cache`): random crops of the training set, each run once through the
   frozen ``vq`` model at every level: the decoded explicit image (8-bit, as the decoder gives
   it), the index map, and the encoder's 1/16 features pooled to the semantic blocks. ``vq`` is
   frozen, so recomputing these at every step would spend about 70 % of the CPU budget on the
   same numbers.
2. **Semantics** (:func:`fit_semantics`): k-means of the pooled features into the semantic
   clusters, and the integer tables of the semantic map's context model (the cluster above).
3. **Texture** (:func:`train_texture`): the texture encoder (posterior ``q``) and the refiner
   trained jointly: L1 + LPIPS of the refined image, plus ``beta`` times the KL of ``q`` against
   the standard-normal prior, ``beta`` adapted so that the KL settles on a target rate (a
   constrained objective, as GECO in Rezende & Viola, "Taming VAEs", 2018: one run reaches the
   intended rate without a sweep of ``beta``).

Run: ``python -m glocal_codec.train.dualrep_stages OUT --data DIR [--data DIR] --threads 1``;
writes ``OUT/dualrep.safetensors`` and ``OUT/stages.json`` (timings, curve).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data import find_images

__all__ = ["StageConfig", "build_cache", "fit_semantics", "train_texture", "main"]


@dataclass(frozen=True)
class StageConfig:
    crop: int = 256  # cached crops
    train_crop: int = 128  # training windows inside them (multiples of 32: whole semantic blocks)
    held: int = 16  # cached crops kept for the evaluations
    crops_per_image: int = 3
    max_crops: int = 1600
    batch: int = 8
    minutes: float = 60.0  # texture stage wall-clock budget (one core)
    max_steps: int = 100_000
    lr: float = 1e-3  # small networks, a 50-minute budget: 2e-4 left the refiner at the identity after 1,250 steps
    target_bpp: float = 0.008  # KL of q at t = 1 (the RCC stream costs ~1.3x this)
    beta_lr: float = 0.02  # most log-beta change per step (relative rate error clipped to +-1)
    warmup_minutes: float = 6.0  # beta = 0 first: the refiner learns to use z before the KL squeezes it
    beta_start: float = 0.1
    kmeans_iters: int = 30
    seed: int = 0


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _crop_list(paths: list[Path], sc: StageConfig, rng: random.Random) -> list[tuple[Path, int, int, bool]]:
    out = []
    for p in paths:
        with Image.open(p) as im:
            w, h = im.size
        if min(w, h) < sc.crop:
            continue
        for _ in range(sc.crops_per_image):
            out.append((p, rng.randrange(h - sc.crop + 1), rng.randrange(w - sc.crop + 1), rng.random() < 0.5))
    rng.shuffle(out)
    return out[: sc.max_crops]


@torch.no_grad()
def build_cache(vq, paths: list[Path], sc: StageConfig, out: Path, shard: int = 0, shards: int = 1) -> Path:
    """Crops and their ``vq`` outputs at every level (one shard of them) into ``out/cache-<shard>.pt``."""
    from ..codecs.dualrep import pooled_features

    crops = _crop_list(paths, sc, random.Random(sc.seed))[shard::shards]
    levels = vq.cfg.levels
    xs, imgs, idxs, feats = [], [], [], []
    t0 = time.monotonic()
    for i in range(0, len(crops), sc.batch):
        arrs = []
        for p, y, x, flip in crops[i:i + sc.batch]:
            with Image.open(p) as im:
                a = np.asarray(im.convert("RGB"))[y:y + sc.crop, x:x + sc.crop]
            arrs.append(a[:, ::-1] if flip else a)
        u8 = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()
        x = u8.float() / 255
        f = vq.enc_attn(vq.g_a(x))
        y = vq.pre_q(f)
        lv_img, lv_idx = [], []
        for q in range(levels):
            idx = vq.nearest(y, q)
            xv = vq.decode_latent(vq.lookup(idx, q).float()).clamp(0, 1)
            lv_img.append(torch.round(xv * 255).to(torch.uint8))
            lv_idx.append(idx.to(torch.int16))
        xs.append(u8)
        imgs.append(torch.stack(lv_img, 1))
        idxs.append(torch.stack(lv_idx, 1))
        feats.append(pooled_features(f).half())
        if (i // sc.batch) % 10 == 0:
            _log(f"cache shard {shard}: {i + len(arrs)}/{len(crops)} crops, {time.monotonic() - t0:.0f} s")
    path = out / f"cache-{shard}.pt"
    torch.save({"x": torch.cat(xs), "img": torch.cat(imgs), "idx": torch.cat(idxs), "feat": torch.cat(feats),
                "seconds": time.monotonic() - t0}, path)
    return path


def _load_cache(root: Path) -> dict[str, torch.Tensor]:
    parts = [torch.load(p, weights_only=True) for p in sorted(root.glob("cache-*.pt"))]
    if not parts:
        raise FileNotFoundError(f"no cache-*.pt under {root}: run the cache stage first")
    return {k: torch.cat([p[k] for p in parts]) for k in ("x", "img", "idx", "feat")} | \
        {"seconds": sum(float(p["seconds"]) for p in parts)}


@torch.no_grad()
def fit_semantics(model, vq, cache: dict[str, torch.Tensor], sc: StageConfig) -> dict:
    """k-means centroids, the level -> level-1 code maps and the semantic context logits (in place)."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(sc.seed)
    feats = F.normalize(cache["feat"].float().permute(0, 2, 3, 1).reshape(-1, cfg.feat), dim=1)
    cent = feats[torch.randperm(feats.shape[0], generator=gen)[: cfg.clusters]].clone()
    for _ in range(sc.kmeans_iters):
        assign = (feats @ cent.T).argmax(1)
        for k in range(cfg.clusters):
            members = feats[assign == k]
            # an empty cluster restarts at a random feature (dead-centroid restart)
            cent[k] = members.mean(0) if len(members) else feats[torch.randint(len(feats), (1,), generator=gen)][0]
        cent = F.normalize(cent, dim=1)
    model.centroids.copy_(cent)
    # each level's codes -> the nearest level-1 code (grid codewords: exact float64 products)
    base = vq.grid_codebook(0)
    maps = torch.zeros_like(model.ctx_maps)
    for q in range(cfg.levels):
        book = vq.grid_codebook(q)
        maps[q, : book.shape[0]] = (book @ base.T).argmax(1).to(torch.int32)
    model.ctx_maps.copy_(maps)
    n = cache["x"].shape[0]
    sem = model.assign(F.normalize(cache["feat"].float(), dim=1))  # (N, 8, 8)
    counts = torch.zeros(cfg.contexts, cfg.clusters, dtype=torch.float64)
    for q in range(cfg.levels):
        ctx = maps[q][cache["idx"][:, q, ::2, ::2].long()].long()
        counts.index_put_((ctx.reshape(-1), sem.reshape(-1)), torch.ones(sem.numel(), dtype=torch.float64),
                          accumulate=True)
    probs = (counts + 0.5) / (counts + 0.5).sum(1, keepdim=True)
    model.sem_logits.copy_(probs.log())
    marginal = counts.sum(0) / counts.sum()
    cond_bits = float(-(counts * probs.log2()).sum() / counts.sum())
    static_bits = float(-(marginal * marginal.clamp_min(1e-12).log2()).sum())
    usage = torch.bincount(sem.reshape(-1), minlength=cfg.clusters).tolist()
    _log(f"semantics: {cfg.clusters} clusters (usage {usage}), {cond_bits:.3f} bits/block with the vq context, "
         f"{static_bits:.3f} static, {math.log2(cfg.clusters):.1f} uniform ({n} crops)")
    return {"bits_per_block_context": round(cond_bits, 4), "bits_per_block_static": round(static_bits, 4),
            "cluster_usage": usage}


def _evaluate(model, vq, cache, held: torch.Tensor, dist) -> dict:
    """Held-out crops, every level: LPIPS / PSNR with z = 0 (explicit) and z = mu, and the KL bpp."""
    from ..codecs.dualrep import kl_bits

    out = {"lpips_explicit": 0.0, "lpips_texture": 0.0, "psnr_explicit": 0.0, "psnr_texture": 0.0, "kl_bpp": 0.0,
           "lpips_vq": 0.0}
    n = 0
    with torch.no_grad():
        for q in range(model.cfg.levels):
            for i in range(0, len(held), 8):
                b = held[i:i + 8]
                x, xv, codes, sem = _batch(cache, vq, model, b, q)
                feats = model.tex_enc(torch.cat([x, xv], 1))
                mu, sigma = model.posterior(feats, codes, q)
                zero = model.refine(xv, model.cond_stack(codes, sem, q, torch.zeros_like(mu))).clamp(0, 1)
                full = model.refine(xv, model.cond_stack(codes, sem, q, mu)).clamp(0, 1)
                w = len(b)
                out["lpips_vq"] += w * dist(xv, x).parts["lpips"]
                out["lpips_explicit"] += w * dist(zero, x).parts["lpips"]
                out["lpips_texture"] += w * dist(full, x).parts["lpips"]
                for k, y in (("psnr_explicit", zero), ("psnr_texture", full)):
                    out[k] += float((-10 * torch.log10(((y - x) ** 2).mean((1, 2, 3)))).sum())
                out["kl_bpp"] += float(kl_bits(mu, sigma).sum() / (x.shape[-1] * x.shape[-2]))
                n += w
    return {k: round(v / n, 5) for k, v in out.items()}


def _batch(cache, vq, model, b: torch.Tensor, q: int):
    x = cache["x"][b].float() / 255
    xv = cache["img"][b, q].float() / 255
    idx = cache["idx"][b, q].long()
    codes = vq.lookup(idx, q).float()
    sem = model.assign(F.normalize(cache["feat"][b].float(), dim=1))
    return x, xv, codes, sem


def train_texture(model, vq, cache: dict[str, torch.Tensor], sc: StageConfig, out: Path) -> list[dict]:
    """Joint training of the texture encoder and the refiner (see the module docstring)."""
    from ..codecs.dualrep import SEM_BLOCK, kl_bits
    from .losses import Distortion

    dist = Distortion({"l1": 1.0, "lpips": 1.0})
    n = cache["x"].shape[0]
    held = torch.arange(n - sc.held, n)
    rng = torch.Generator().manual_seed(sc.seed)
    params = [p for name, p in model.named_parameters()]
    opt = torch.optim.Adam(params, lr=sc.lr)
    log_beta = math.log(sc.beta_start)
    kl_avg = sc.target_bpp
    curve: list[dict] = []
    t0 = time.monotonic()
    next_eval = 0.0
    step = 0
    pixels = sc.train_crop * sc.train_crop
    while step < sc.max_steps:
        elapsed = (time.monotonic() - t0) / 60
        if elapsed >= next_eval or elapsed >= sc.minutes:
            ev = _evaluate(model, vq, cache, held, dist)
            curve.append({"step": step, "minutes": round(elapsed, 1), "beta": round(math.exp(log_beta), 3), **ev})
            _log(f"eval {curve[-1]}")
            (out / "curve.json").write_text(json.dumps(curve, indent=1))
            next_eval += max(sc.minutes / 10, 1.0)
            if elapsed >= sc.minutes:
                break
        lr = sc.lr * (0.3 if elapsed > 0.8 * sc.minutes else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        q = step % model.cfg.levels
        b = torch.randint(0, n - sc.held, (sc.batch,), generator=rng)
        x, xv, codes, sem = _batch(cache, vq, model, b, q)
        # one window of train_crop pixels at a semantic-block corner (the same for the batch)
        oy, ox = (int(v) * SEM_BLOCK for v in torch.randint(0, (sc.crop - sc.train_crop) // SEM_BLOCK + 1, (2,), generator=rng))
        x, xv = (t[..., oy:oy + sc.train_crop, ox:ox + sc.train_crop] for t in (x, xv))
        codes = codes[..., oy // 16:(oy + sc.train_crop) // 16, ox // 16:(ox + sc.train_crop) // 16]
        sem = sem[..., oy // SEM_BLOCK:(oy + sc.train_crop) // SEM_BLOCK, ox // SEM_BLOCK:(ox + sc.train_crop) // SEM_BLOCK]
        if torch.rand((), generator=rng) < 0.5:  # horizontal flip of everything
            x, xv, codes, sem = x.flip(-1), xv.flip(-1), codes.flip(-1), sem.flip(-1)
        feats = model.tex_enc(torch.cat([x, xv], 1))
        mu, sigma = model.posterior(feats, codes, q)
        eps = torch.randn(mu.shape, generator=rng)
        s = torch.ones(sc.batch, 1, 1, 1)
        s[: sc.batch // 4] = 0.0  # explicit only: z = the prior's mean
        s[sc.batch // 4: sc.batch // 2] = torch.rand(sc.batch // 2 - sc.batch // 4, 1, 1, 1, generator=rng)
        z = mu * s + sigma.pow(s) * eps
        z = torch.where(s == 0, torch.zeros_like(z), z)
        y = model.refine(xv, model.cond_stack(codes, sem, q, z))
        d = dist(y, x)
        kl = kl_bits(mu, sigma).sum((1, 2, 3)).mean() / pixels
        warm = elapsed < sc.warmup_minutes
        loss = d.total + (0.0 if warm else math.exp(log_beta)) * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        kl_avg = 0.98 * kl_avg + 0.02 * float(kl.detach())
        if not warm:  # dual ascent on the rate constraint KL = target (GECO-style)
            err = min(max(kl_avg / sc.target_bpp - 1.0, -1.0), 1.0)
            log_beta = min(max(log_beta + sc.beta_lr * err, math.log(0.01)), math.log(1e4))
        step += 1
        if step % 50 == 0:
            _log(f"step {step} q{q + 1} loss {float(loss.detach()):.4f} lpips {d.parts['lpips']:.4f} l1 {d.parts['l1']:.4f} "
                 f"kl {float(kl):.4f} bpp beta {math.exp(log_beta):.2f} ({(time.monotonic() - t0) / step:.2f} s/step)")
    return curve


def run(out: Path, sc: StageConfig, threads: int = 1) -> Path:
    """Semantics + texture stages on the cache in ``out``; writes ``out/dualrep.safetensors``."""
    from ..codecs.dualrep import DualrepConfig, DualrepModel
    from ..codecs.vq import VqCodec
    from ..weights import save_state

    torch.set_num_threads(threads)
    torch.manual_seed(sc.seed)
    vq = VqCodec().model
    cache = _load_cache(out)
    model = DualrepModel(DualrepConfig())
    t0 = time.monotonic()
    sem = fit_semantics(model, vq, cache, sc)
    t_sem = time.monotonic() - t0
    curve = train_texture(model, vq, cache, sc, out)
    seconds = time.monotonic() - t0
    path = out / "dualrep.safetensors"
    sha = save_state({k: v.detach().contiguous() for k, v in model.state_dict().items()}, path)
    (out / "stages.json").write_text(json.dumps({
        "config": asdict(sc), "model": asdict(model.cfg), "cache_seconds": round(cache["seconds"], 1),
        "semantics_seconds": round(t_sem, 1), "texture_seconds": round(seconds - t_sem, 1), "semantics": sem,
        "curve": curve, "sha256": sha}, indent=1))
    _log(f"done in {seconds:.0f} s: {path} ({sha[:8]})")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="the folder holding the cache; the weights are written there")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--minutes", type=float, default=StageConfig.minutes)
    p.add_argument("--max-steps", type=int, default=StageConfig.max_steps)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    run(a.out, StageConfig(minutes=a.minutes, max_steps=a.max_steps, seed=a.seed), a.threads)


def main_cache(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from ..codecs.vq import VqCodec

    vq = VqCodec().model
    paths = [q for d in a.data for q in find_images(Path(d))]
    a.out.mkdir(parents=True, exist_ok=True)
    build_cache(vq, paths, StageConfig(), a.out, a.shard, a.shards)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["cache"]:
        main_cache(sys.argv[2:])
    else:
        main()
