"""``python -m glocal_codec.train CODEC OUT [--steps N] [--minutes M] ...`` (the CLI wraps this too)."""

import argparse
import json

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
p.add_argument("--n", type=int, help="transform channels (default: the model's own)")
p.add_argument("--m", type=int, help="latent channels (default: the model's own)")
p.add_argument("--resume", action="store_true")
p.add_argument("--init-from")
p.add_argument("--arch", action="append", default=[], metavar="KEY=VALUE",
               help="further model config fields, e.g. --arch window=4 --arch slices=[8,8,16] (glocal)")
a = p.parse_args()
arch = {k: json.loads(v) if v[:1] in "[{0123456789-" or v in ("true", "false") else v
        for k, v in (kv.split("=", 1) for kv in a.arch)}
cfg = TrainConfig(codec=a.codec, data=a.data, out=a.out, steps=a.steps, minutes=a.minutes, batch=a.batch,
                  crop=a.crop, lr=a.lr, threads=a.threads, n=a.n, m=a.m,
                  init_from=a.init_from, arch=arch)
print(train(cfg, resume=a.resume))
