"""``python -m glocal_codec.train CODEC OUT [--steps N] [--minutes M] ...`` (the CLI wraps this too).

Several processes: ``torchrun --nproc_per_node 2 -m glocal_codec.train glocal runs/g --data DIR``
(one per GPU with ``--device cuda``; gloo on CPU). Under torchrun give the channel counts as
``--arch n=64 --arch m=96``: torchrun's own parser rejects ``--n`` as an ambiguous abbreviation.
"""

import argparse

from .loop import TrainConfig, parse_arch, train, world_info

p = argparse.ArgumentParser()
p.add_argument("codec")
p.add_argument("out")
p.add_argument("--data", action="append", required=True)
p.add_argument("--steps", type=int, default=6000)
p.add_argument("--minutes", type=float)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--crop", type=int, default=128)
p.add_argument("--lr", type=float, default=2e-4)
p.add_argument("--threads", type=int)
p.add_argument("--device", default="cpu")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--ckpt-every", type=int, default=200)
p.add_argument("--log-every", type=int, default=50)
p.add_argument("--n", type=int, help="transform channels (default: the model's own)")
p.add_argument("--m", type=int, help="latent channels (default: the model's own)")
p.add_argument("--quality", type=int, action="append", default=[], help="train only these levels (repeat a level to draw it more often)")
p.add_argument("--resume", action="store_true")
p.add_argument("--bf16", action="store_true", help="transforms under bfloat16 autocast (rates stay float32)")
p.add_argument("--grow-from", type=int, help="msh: first latent channel a widening added (train/widen.py)")
p.add_argument("--grow-steps", type=int, default=0, help="steps over which those channels' rate is ramped in")
p.add_argument("--init-from")
p.add_argument("--warmup-steps", type=int, default=0, help="with --init-from: first train only what it did not copy")
p.add_argument("--warmup-lr", type=float, help="constant learning rate during the warm-up")
p.add_argument("--arch", action="append", default=[], metavar="KEY=VALUE",
               help="further model config fields, e.g. --arch window=4 --arch slices=[8,8,16] (glocal)")
a = p.parse_args()
cfg = TrainConfig(codec=a.codec, data=a.data, out=a.out, steps=a.steps, minutes=a.minutes, batch=a.batch,
                  crop=a.crop, lr=a.lr, threads=a.threads, device=a.device, seed=a.seed, ckpt_every=a.ckpt_every,
                  log_every=a.log_every, n=a.n, m=a.m, init_from=a.init_from, arch=parse_arch(a.arch),
                  qualities=a.quality, bf16=a.bf16, grow_from=a.grow_from, grow_steps=a.grow_steps,
                  warmup_steps=a.warmup_steps, warmup_lr=a.warmup_lr)
result = train(cfg, resume=a.resume)
if world_info()[0] == 0:
    print(result)
