"""Cross-attention from a feature map to a set of reference tokens (``clc``'s fusion).

The float module is :class:`~.global_attention.GlobalTokenAttention` with a *context*: the
tokens ``(N, S, C)`` are handed to it as an ``(N, C, S, 1)`` map and its pooled grid is at least
``S x 1`` (``tokens >= S``), so the pooling is the identity and every pixel of the query map
attends to exactly the given tokens. :func:`reference_attention` does that arrangement.

:class:`ExactReferenceAttention` is the same computation on the fixed-point grid
(:mod:`.fixed_point_attention`: exact sums, single IEEE operations, ``exp_exact``), so the
decoder's entropy parameters that depend on it are the same bits on every machine.
"""

from __future__ import annotations

import math

import torch

from .fixed_point import FRAC, to_grid
from .fixed_point_attention import (PROB_FRAC, ExactLayerNorm, ExactLinear, _grid_, matmul_exact,
                                    softmax_exact)
from .global_attention import GlobalTokenAttention

__all__ = ["reference_attention", "ExactReferenceAttention"]

#: Query positions per chunk of the exact attention (bounded temporaries; rows are independent).
_CHUNK = 1 << 14


def _as_map(tokens: torch.Tensor) -> torch.Tensor:
    """(N, S, C) tokens -> the (N, C, S, 1) context map whose pooling is the identity."""
    return tokens.transpose(1, 2).unsqueeze(-1)


def reference_attention(mod: GlobalTokenAttention, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Every pixel of ``x`` (N, dim, H, W) attends to ``tokens`` (N, S, Cc) -> (N, out_dim, H, W)."""
    if tokens.shape[1] > mod.tokens:
        raise ValueError(f"{tokens.shape[1]} reference tokens, the attention takes at most {mod.tokens}")
    return mod(x, _as_map(tokens))


class ExactReferenceAttention:
    """:func:`reference_attention` on the grid: ``x`` (N, H, W, dim) on ``2**-FRAC`` and tokens
    (N, S, Cc) -> (N, H, W, out_dim) rounded to ``2**-FRAC``. The tokens are rounded to the grid
    first (they are data: a dictionary's stored features)."""

    def __init__(self, mod: GlobalTokenAttention) -> None:
        self.heads, self.inner, self.max_tokens = mod.heads, mod.inner, mod.tokens
        self.q, self.kv, self.proj = ExactLinear.of(mod.q), ExactLinear.of(mod.kv), ExactLinear.of(mod.proj)
        self.kv_norm = ExactLayerNorm(mod.kv_norm)
        self.scale = 1.0 / math.sqrt(self.inner // self.heads)  # sqrt and / are correctly rounded

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = x.shape
        t, hd = tokens.shape[1], self.inner // self.heads
        if t > self.max_tokens:
            raise ValueError(f"{t} reference tokens, the attention takes at most {self.max_tokens}")
        kv = self.kv(self.kv_norm(to_grid(tokens.detach().double().to(x.device))))  # (N, S, 2 inner)
        k, v = (z.reshape(n, t, self.heads, hd).transpose(1, 2) for z in kv.chunk(2, dim=-1))
        q = self.q(to_grid(x.double()).reshape(n, h * w, -1)).view(n, h * w, self.heads, hd).transpose(1, 2)
        kt = k.transpose(-2, -1)
        p_l1 = 1.0 + t * 2.0**-PROB_FRAC  # softmax rows sum to 1 up to rounding
        outs = []
        step = max(1, _CHUNK // max(1, n * self.heads))
        for i in range(0, h * w, step):
            logits = matmul_exact(q[:, :, i:i + step], kt, FRAC, FRAC, "reference attention q.k").mul_(self.scale)
            p = softmax_exact(logits)
            outs.append(_grid_(matmul_exact(p, v, PROB_FRAC, FRAC, "reference attention @ v", a_l1=p_l1)))
        out = torch.cat(outs, dim=2).transpose(1, 2).reshape(n, h, w, self.inner)
        return self.proj(out)
