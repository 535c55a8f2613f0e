"""Building blocks of implicit neural representations (INR codecs, video or image).

* :class:`QConv2d` -- a ``Conv2d`` whose weight is passed through
  :func:`glocal_codec.entropy.params.fake_quant` while ``qbits`` is set (quantisation-aware
  fine-tuning, as in HNeRV), plain otherwise; :func:`set_qbits` switches a whole network;
* :func:`pad_to` -- edge-replicating padding to a multiple (network strides).

Weight quantisation and coding live in :mod:`glocal_codec.entropy.params`, parameter headers
in :mod:`glocal_codec.bitstream.fields`, the fitting schedule in :mod:`glocal_codec.engine.fit`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..entropy.params import fake_quant

__all__ = ["QConv2d", "set_qbits", "pad_to"]


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


def pad_to(x: torch.Tensor, mult_h: int, mult_w: int | None = None) -> torch.Tensor:
    """Pad the last two dims by edge replication up to multiples of ``mult_h`` / ``mult_w``."""
    mult_w = mult_w or mult_h
    h, w = x.shape[-2:]
    ph, pw = -h % mult_h, -w % mult_w
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")
