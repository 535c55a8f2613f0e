"""``python -m glocal_codec.train CODEC OUT [--steps N] [--minutes M] ...`` (the CLI wraps this too)."""

import argparse

from .loop import TrainConfig, train

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
p.add_argument("--n", type=int, default=96)
p.add_argument("--m", type=int, default=128)
p.add_argument("--resume", action="store_true")
p.add_argument("--init-from")
a = p.parse_args()
cfg = TrainConfig(codec=a.codec, data=a.data, out=a.out, steps=a.steps, minutes=a.minutes, batch=a.batch,
                  crop=a.crop, lr=a.lr, threads=a.threads, n=a.n, m=a.m,
                  init_from=a.init_from)
print(train(cfg, resume=a.resume))
