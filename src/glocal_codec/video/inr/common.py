"""Pieces the INR video codecs share: quantisable convs, compact configs, the fitting schedule.

* :class:`QConv2d` -- a ``Conv2d`` whose weight is passed through :func:`.quant.fake_quant` while
  ``qbits`` is set (quantisation-aware fine-tuning), plain otherwise;
* :func:`pack_fields` / :func:`unpack_fields` -- a config as a version byte and varints (the
  codec's ``Payload.params``), read back with per-field limits so a crafted header cannot ask
  for a gigantic network;
* :func:`cosine_lr` -- warm-up then cosine decay, the schedule NeRV/HNeRV use;
* :func:`report` -- progress callback with a PSNR text where the callback accepts one;
* :func:`psnr` -- PSNR in dB of tensors in [0, 1].
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...bitstream.errors import CorruptStreamError, LimitError
from ...bitstream.varint import decode_varint, encode_varint
from ..base import ProgressFn, call_with_supported
from .quant import fake_quant

__all__ = ["QConv2d", "pack_fields", "unpack_fields", "read_fields", "check_version", "check_end", "cosine_lr", "report", "psnr", "set_qbits", "pad_to"]


class QConv2d(nn.Conv2d):
    """``nn.Conv2d`` with optional fake quantisation of its weight (``self.qbits``)."""

    qbits: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.qbits is None:
            return super().forward(x)
        bias = None if self.bias is None else fake_quant(self.bias, self.qbits)
        return self._conv_forward(x, fake_quant(self.weight, self.qbits), bias)


def set_qbits(module: nn.Module, bits: int | None) -> None:
    """Switch fake quantisation on (``bits``) or off (``None``) for every :class:`QConv2d`."""
    for m in module.modules():
        if isinstance(m, QConv2d):
            m.qbits = bits


def pack_fields(version: int, values: Sequence[int]) -> bytes:
    """``version`` byte, then every value as a varint."""
    return bytes([version]) + b"".join(encode_varint(int(v)) for v in values)


def read_fields(data: bytes, pos: int, limits: Sequence[tuple[str, int, int]]) -> tuple[dict[str, int], int]:
    """Read the varint fields named in ``limits`` ``(name, lo, hi)`` from ``pos``; check each range."""
    out = {}
    for name, lo, hi in limits:
        v, pos = decode_varint(data, pos, name)
        if not lo <= v <= hi:
            raise LimitError(f"codec parameter {name} = {v} outside {lo}..{hi}")
        out[name] = v
    return out, pos


def check_version(data: bytes, version: int) -> int:
    """Position after the version byte, which must be ``version``."""
    if not data:
        raise CorruptStreamError("the codec parameters are missing")
    if data[0] != version:
        raise CorruptStreamError(f"codec parameter version {data[0]} is not {version}")
    return 1


def check_end(data: bytes, pos: int) -> None:
    if pos != len(data):
        raise CorruptStreamError(f"{len(data) - pos} unexpected bytes after the codec parameters")


def unpack_fields(data: bytes, version: int, limits: Sequence[tuple[str, int, int]]) -> dict[str, int]:
    """Inverse of :func:`pack_fields` for a fixed list of fields; anything else is a clear error."""
    out, pos = read_fields(data, check_version(data, version), limits)
    check_end(data, pos)
    return out


def cosine_lr(step: int, total: int, lr: float, warmup: float = 0.1) -> float:
    """Linear warm-up over the first ``warmup`` share of steps, then cosine decay to 0."""
    w = max(1, int(total * warmup))
    if step < w:
        return lr * (step + 1) / w
    p = (step - w) / max(1, total - w)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def report(progress: ProgressFn | None, done: int, total: int | None, text: str | None = None) -> None:
    """``progress(done, total)``, plus ``stats=text`` for callbacks that accept it (the CLI bar)."""
    if progress is not None:
        call_with_supported(progress, done, total, stats=text)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = F.mse_loss(a.float(), b.float()).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def pad_to(x: torch.Tensor, mult_h: int, mult_w: int | None = None) -> torch.Tensor:
    """Pad the last two dims by edge replication up to multiples of ``mult_h`` / ``mult_w``."""
    mult_w = mult_w or mult_h
    h, w = x.shape[-2:]
    ph, pw = -h % mult_h, -w % mult_w
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")
