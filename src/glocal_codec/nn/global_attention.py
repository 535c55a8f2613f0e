"""Global attention whose cost grows linearly with the number of pixels.

Full self-attention over an H x W map builds an (HW x HW) matrix: 4.7e13 entries for a 4K
image. The two kinds here see the whole image without it:

* :class:`GlobalTokenAttention` -- every pixel attends to a *small fixed set* of global tokens
  made by adaptive average pooling of a context map to at most ``tokens x tokens`` cells
  (64 tokens by default): an (HW x T) matrix with T <= 64. The pooled-token idea is that of
  PVT's spatial-reduction attention (Wang et al., "Pyramid Vision Transformer", ICCV 2021),
  taken to a fixed grid; with a *different* context map it is cross-attention, which the
  ``glocal`` entropy model uses to let the slice being coded look at already decoded slices.
* :class:`ChannelAttention` -- "transposed" attention across channels (Zamir et al.,
  "Restormer: Efficient Transformer for High-Resolution Image Restoration", CVPR 2022, MDTA):
  a (C/h x C/h) matrix per head from L2-normalised queries and keys, with a learned
  temperature and depth-wise 3x3 convs giving local context to q, k, v.

Both take and return (N, C, H, W) (``GlobalTokenAttention.forward_nhwc`` works on
(N, H, W, C)). Written here: CompressAI has no such layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GlobalTokenAttention", "ChannelAttention", "pooled_grid"]


def pooled_grid(h: int, w: int, tokens: int) -> tuple[int, int]:
    """Token grid for an h x w map: ``tokens`` x ``tokens`` cells, fewer when the map is smaller."""
    return min(tokens, h), min(tokens, w)


class GlobalTokenAttention(nn.Module):
    """Attention from every pixel of ``x`` to at most ``tokens**2`` pooled tokens of ``context``.

    ``x``: (N, dim, H, W) queries; ``context``: (N, context_dim, H', W') (default: ``x`` itself).
    Keys and values come from ``LayerNorm(adaptive_avg_pool(context))`` -- (N, T, context_dim)
    with T = min(tokens, H') * min(tokens, W'). Output (N, out_dim, H, W). Memory and time are
    O(HW * T); queries are processed in chunks of ``chunk`` pixels so a 4K map never holds
    more than ``chunk * T`` logits per head at once. ``last_attn_shape`` records the (N, heads,
    HW, T) size of the last attention matrix (for tests and profiling).
    """

    def __init__(self, dim: int, heads: int = 1, tokens: int = 8, context_dim: int | None = None,
                 inner: int | None = None, out_dim: int | None = None, chunk: int = 1 << 16) -> None:
        super().__init__()
        inner = inner or dim
        if inner % heads:
            raise ValueError(f"inner width {inner} is not divisible by heads {heads}")
        cdim = context_dim or dim
        self.heads, self.tokens, self.inner, self.chunk = heads, tokens, inner, chunk
        self.q = nn.Linear(dim, inner)
        self.kv_norm = nn.LayerNorm(cdim)
        self.kv = nn.Linear(cdim, 2 * inner)
        self.proj = nn.Linear(inner, out_dim or dim)
        self.last_attn_shape: tuple[int, ...] | None = None

    def tokens_of(self, context: torch.Tensor) -> torch.Tensor:
        """(N, Cc, H, W) -> (N, T, Cc) pooled, normalised tokens."""
        grid = pooled_grid(context.shape[-2], context.shape[-1], self.tokens)
        t = F.adaptive_avg_pool2d(context, grid).flatten(2).transpose(1, 2)
        return self.kv_norm(t)

    def forward_nhwc(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, H, W, dim); context: (N, Cc, H', W') or None (x itself) -> (N, H, W, out_dim)."""
        n, h, w, _ = x.shape
        ctx = x.permute(0, 3, 1, 2) if context is None else context
        k, v = self.kv(self.tokens_of(ctx)).chunk(2, dim=-1)  # (N, T, inner) each
        t = k.shape[1]
        hd = self.inner // self.heads
        k = k.view(n, t, self.heads, hd).transpose(1, 2)  # (N, heads, T, hd)
        v = v.view(n, t, self.heads, hd).transpose(1, 2)
        q = self.q(x.reshape(n, h * w, -1)).view(n, h * w, self.heads, hd).transpose(1, 2)
        q = q * hd**-0.5
        outs = []
        for i in range(0, h * w, self.chunk):
            attn = (q[:, :, i : i + self.chunk] @ k.transpose(-2, -1)).softmax(dim=-1)  # (N, heads, chunk, T)
            outs.append(attn @ v)
        self.last_attn_shape = (n, self.heads, h * w, t)
        out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        return self.proj(out.transpose(1, 2).reshape(n, h, w, self.inner))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """(N, dim, H, W) [, (N, Cc, H', W')] -> (N, out_dim, H, W)."""
        return self.forward_nhwc(x.permute(0, 2, 3, 1), context).permute(0, 3, 1, 2)


class ChannelAttention(nn.Module):
    """Restormer's multi-Dconv head transposed attention (MDTA): attention across channels.

    (N, C, H, W) -> (N, C, H, W). Per head the attention matrix is (C/heads x C/heads),
    independent of H x W; q and k are L2-normalised over the pixels, so the logits are cosine
    similarities scaled by a learned per-head temperature. ``depthwise=False`` drops the 3x3
    depth-wise conv on q, k, v (pure channel mixing; cheaper, e.g. inside a float64 context model).
    """

    def __init__(self, dim: int, heads: int = 1, bias: bool = False, depthwise: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=bias)
        self.dw = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=bias) if depthwise else nn.Identity()
        self.proj = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.dw(self.qkv(x)).view(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)  # (N, heads, C/h, C/h)
        return self.proj((attn @ v).view(n, c, h, w))
