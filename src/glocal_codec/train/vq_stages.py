"""The ``vq`` codec's stages after autoencoder training (issue 31, parts 2 and 3).

``python -m glocal_codec.train.vq_stages runs/vq/checkpoint.pt runs/vq-stages --data DIR ...``

1. **Codebook reduction** (Mao et al., "Extreme Image Compression using Fine-tuned VQGANs",
   DCC 2024): the trained codebook of ``codes`` l2-normalised entries is clustered by spherical
   k-means (:func:`glocal_codec.nn.vq.kmeans`) into each smaller size of ``VqConfig.books``, and
   each reduced codebook alone is fine-tuned -- encoder and decoder frozen -- on the
   autoencoder's objective (L1 + LPIPS of the reconstruction; nearest codewords re-assigned at
   every step). One quality level per size.
2. **Index prior**: the encoder's index maps of the training images at every level, then the
   masked prior network (:class:`~glocal_codec.codecs.vq.VqModel`, ``prior`` + one head per
   level) trained by cross-entropy on two kinds of mask: the coding passes (known = the
   earlier quadrant phases, predicted = the next one) and random losses (known = a random
   subset, ``P ~ U(0.05, 0.5)`` lost, predicted = the lost ones: what ``decode --drop`` asks).

Writes ``OUT/checkpoint.pt`` in the training loop's format (so :func:`~.export.export_checkpoint`
exports it) with the stage settings and timings under ``"stages"``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..codecs.vq import PASSES, VqModel, pass_masks
from ..nn.vq import kmeans
from .checkpoint import load_checkpoint
from .data import CropSampler, find_images
from .losses import Distortion
from .loop import build_model, model_config

__all__ = ["StageConfig", "reduce_codebooks", "index_maps", "train_prior", "run_stages"]


@dataclass(frozen=True)
class StageConfig:
    book_steps: int = 120  # fine-tuning steps per reduced codebook
    book_lr: float = 1e-3
    batch: int = 8
    crop: int = 128
    prior_minutes: float = 8.0
    prior_steps: int = 100_000
    prior_lr: float = 2e-3
    prior_batch: int = 16
    prior_crop: int = 16  # index positions (x16 pixels)
    max_side: int = 512  # training images are centre-cropped to at most this for the index maps
    seed: int = 0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def reduce_codebooks(model: VqModel, sampler: CropSampler, dist: Distortion, sc: StageConfig) -> list[dict]:
    """k-means of the trained codebook into each reduced size, then codebook-only fine-tuning."""
    gen = torch.Generator().manual_seed(sc.seed)
    top = model.quantizer.codewords()[0].detach().float()
    model.requires_grad_(False)
    curves = []
    for level, k in enumerate(model.cfg.books):
        cent, _ = kmeans(top, k, iters=25, generator=gen, spherical=True)
        book = model.books[level]
        with torch.no_grad():
            book.copy_(cent)
        book.requires_grad_(True)
        opt = torch.optim.Adam([book], lr=sc.book_lr)
        losses = []
        for step in range(sc.book_steps):
            x = sampler.batch(sc.batch)
            with torch.no_grad():
                z = F.normalize(model.encode_latent(x), dim=1)
            cb = model.codebook(level)
            idx = torch.einsum("bdhw,kd->bkhw", z, cb.detach()).argmax(1)
            x_hat = model.decode_latent(cb[idx].permute(0, 3, 1, 2))
            d = dist(x_hat, x)
            opt.zero_grad(set_to_none=True)
            d.total.backward()
            opt.step()
            losses.append(float(d.total.detach()))
            if (step + 1) % 20 == 0:
                _log(f"books K={k} step {step + 1} loss {np.mean(losses[-20:]):.4f} {d.parts}")
        with torch.no_grad():
            book.copy_(F.normalize(book, dim=-1))  # stored normalised: the coder normalises anyway
        book.requires_grad_(False)
        curves.append({"codes": k, "first20": float(np.mean(losses[:20])), "last20": float(np.mean(losses[-20:]))})
    return curves


def _load_center(path: Path, max_side: int) -> torch.Tensor:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    h, w = (min(s, max_side) // 16 * 16 for s in arr.shape[:2])
    y0, x0 = (arr.shape[0] - h) // 2, (arr.shape[1] - w) // 2
    arr = arr[y0:y0 + h, x0:x0 + w]
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float().div_(255.0)


@torch.no_grad()
def index_maps(model: VqModel, paths: list[Path], max_side: int) -> list[list[torch.Tensor]]:
    """``maps[level][image]``: the encoder's index map ``(h, w)`` of every image at every level."""
    maps: list[list[torch.Tensor]] = [[] for _ in range(model.cfg.levels)]
    for i, p in enumerate(paths):
        z = model.encode_latent(_load_center(p, max_side))
        for q in range(model.cfg.levels):
            maps[q].append(model.nearest(z, q)[0])
        if (i + 1) % 100 == 0:
            _log(f"index maps: {i + 1}/{len(paths)} images")
    return maps


def _crops(maps: list[torch.Tensor], n: int, size: int, rng: random.Random) -> torch.Tensor:
    out = []
    for _ in range(n):
        m = maps[rng.randrange(len(maps))]
        s = min(size, *m.shape)
        y, x = rng.randrange(m.shape[0] - s + 1), rng.randrange(m.shape[1] - s + 1)
        c = m[y:y + s, x:x + s]
        if rng.random() < 0.5:
            c = c.flip(1)
        if s < size:  # a small map: tile it (rare)
            c = c.repeat(math.ceil(size / s), math.ceil(size / s))[:size, :size]
        out.append(c)
    return torch.stack(out)


def _mask(b: int, h: int, w: int, rng: random.Random, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(known, target) masks ``(b, h, w)``: a coding pass, or random losses."""
    if rng.random() < 0.6:
        passes = pass_masks(h, w)
        p = rng.randrange(len(PASSES))
        known = passes[:p].any(0) if p else torch.zeros(h, w, dtype=torch.bool)
        return known.expand(b, h, w), passes[p].expand(b, h, w)
    drop = rng.uniform(0.05, 0.5)
    lost = torch.rand(b, h, w, generator=gen) < drop
    return ~lost, lost


def train_prior(model: VqModel, maps: list[list[torch.Tensor]], held: list[list[torch.Tensor]],
                sc: StageConfig) -> list[dict]:
    """Cross-entropy training of the prior and its heads; returns the learning curve (bits per
    index on the held-out maps against log2 K, per level)."""
    params = list(model.prior.parameters()) + list(model.heads.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=sc.prior_lr)
    rng = random.Random(sc.seed)
    gen = torch.Generator().manual_seed(sc.seed)
    levels = model.cfg.levels
    books = [model.grid_codebook(q).float() for q in range(levels)]
    curve = []
    t0 = time.monotonic()
    step = 0
    while step < sc.prior_steps and time.monotonic() - t0 < sc.prior_minutes * 60:
        lr = sc.prior_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (time.monotonic() - t0) / (sc.prior_minutes * 60))))
        for g in opt.param_groups:
            g["lr"] = max(lr, sc.prior_lr * 0.02)
        loss = torch.zeros(())
        for q in range(levels):
            idx = _crops(maps[q], sc.prior_batch, sc.prior_crop, rng)
            known, target = _mask(*idx.shape, rng, gen)
            codes = books[q][idx].permute(0, 3, 1, 2)
            logits = model.prior_logits(codes, known, q)
            ce = F.cross_entropy(logits, idx, reduction="none")
            loss = loss + (ce * target).sum() / target.sum().clamp_min(1) / math.log(2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 250 == 0:
            ev = _held_bits(model, held, books)
            curve.append({"step": step, "seconds": round(time.monotonic() - t0, 1), "train_bits_per_level": float(loss.detach()) / levels,
                          **{f"q{q + 1}": ev[q] for q in range(levels)}})
            _log(f"prior step {step} train {float(loss.detach()) / levels:.3f} bits/index; held-out "
                 + " ".join(f"q{q + 1} {b:.3f}/{math.log2(model.book_size(q)):.0f}" for q, b in enumerate(ev)))
    model.requires_grad_(False)
    return curve


@torch.no_grad()
def _held_bits(model: VqModel, held: list[list[torch.Tensor]], books: list[torch.Tensor]) -> list[float]:
    """Float bits per index of the 4-pass coding on held-out maps, per level."""
    out = []
    for q, maps in enumerate(held):
        bits, n = 0.0, 0
        for m in maps:
            h, w = m.shape
            codes = books[q][m[None]].permute(0, 3, 1, 2)
            known = torch.zeros(1, h, w, dtype=torch.bool)
            for where in pass_masks(h, w):
                logp = F.log_softmax(model.prior_logits(codes, known, q), dim=1)[0]
                bits -= float(logp.gather(0, m[None])[0][where].sum()) / math.log(2)
                known = known | where
            n += m.numel()
        out.append(bits / max(n, 1))
    return out


def run_stages(checkpoint: Path, out: Path, data: list[str], sc: StageConfig, threads: int | None = None) -> Path:
    """Both stages on a trained autoencoder checkpoint; writes ``out/checkpoint.pt``."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(sc.seed)
    t0 = time.monotonic()
    state = load_checkpoint(checkpoint)
    cfg = model_config("vq", **state["model_config"])
    model = build_model("vq", cfg)
    model.load_state_dict(state["model"])
    model.eval()
    paths = [p for d in data for p in find_images(Path(d))]
    dist = Distortion(model.distortion_weights)
    sampler = CropSampler(paths, sc.crop, seed=sc.seed)
    books = reduce_codebooks(model, sampler, dist, sc)
    t_books = time.monotonic() - t0
    rng = random.Random(sc.seed)
    order = list(paths)
    rng.shuffle(order)
    n_held = max(8, len(order) // 20)
    maps = index_maps(model, order[n_held:], sc.max_side)
    held = index_maps(model, order[:n_held], sc.max_side)
    t_maps = time.monotonic() - t0 - t_books
    curve = train_prior(model, maps, held, sc)
    seconds = time.monotonic() - t0
    out.mkdir(parents=True, exist_ok=True)
    path = out / "checkpoint.pt"
    torch.save({**state, "model": model.state_dict(), "optim": {}, "seconds": state["seconds"] + seconds,
                "stages": {"config": asdict(sc), "autoencoder_seconds": round(state["seconds"], 1),
                           "books_seconds": round(t_books, 1), "maps_seconds": round(t_maps, 1),
                           "prior_seconds": round(seconds - t_books - t_maps, 1), "books": books,
                           "prior_curve": curve, "held_out_images": n_held}}, path)
    _log(f"stages done in {seconds:.0f} s: {path}")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--threads", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--book-steps", type=int, default=StageConfig.book_steps)
    p.add_argument("--prior-minutes", type=float, default=StageConfig.prior_minutes)
    p.add_argument("--prior-steps", type=int, default=StageConfig.prior_steps)
    p.add_argument("--max-side", type=int, default=StageConfig.max_side)
    a = p.parse_args(argv)
    sc = StageConfig(book_steps=a.book_steps, prior_minutes=a.prior_minutes, prior_steps=a.prior_steps,
                     max_side=a.max_side, seed=a.seed)
    run_stages(a.checkpoint, a.out, a.data, sc, a.threads)


if __name__ == "__main__":
    main()
