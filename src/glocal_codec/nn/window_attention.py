"""Local window self-attention: Swin and SwinV2 blocks for image feature maps.

* Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
  ICCV 2021 -- self-attention inside non-overlapping ``window x window`` patches, a learned
  relative position bias, and every other block shifted by half a window (cyclic roll plus an
  attention mask) so information crosses window borders. Cost is linear in H x W.
* Liu et al., "Swin Transformer V2: Scaling Up Capacity and Resolution", CVPR 2022 -- scaled
  cosine attention (cosine similarity divided by a learned, clamped temperature per head),
  a log-spaced *continuous* position bias produced by a small MLP from relative coordinates
  (so any window size works with the same weights), and res-post-norm
  (``x = x + LN(attn(x))``) which keeps activations bounded in deep stacks.

The codecs need any H x W (latents of 7 x 13 images, tiles of odd size), so the blocks pad
to a multiple of the window *inside* and mask the padded keys out: outputs at real positions
never depend on the padding. Public forwards take and return N x C x H x W tensors; the
``*_nhwc`` methods take N x H x W x C and let :class:`GlocalBlock` skip repeated permutes.

Written here rather than imported: CompressAI has no window attention, and timm's Swin blocks
fix the input resolution at construction and do not handle arbitrary sizes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WindowAttention", "SwinV2Block", "window_partition", "window_reverse", "Mlp"]

#: Added to masked attention logits. Finite (a row with every key masked -- a padded query in
#: a padded-only shift region -- then gives a harmless uniform average instead of NaN) and far
#: below any real logit (cosine logits are bounded by 100 + 16).
_MASK_VALUE = -1.0e4


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(N, H, W, C) with H, W multiples of ``ws`` -> (N * nW, ws * ws, C)."""
    n, h, w, c = x.shape
    x = x.view(n, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(win: torch.Tensor, ws: int, n: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (N * nW, ws * ws, C) -> (N, H, W, C)."""
    c = win.shape[-1]
    x = win.view(n, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h, w, c)


class Mlp(nn.Module):
    """Position-wise feed-forward network on the last dim: C -> ratio*C -> C (GELU)."""

    def __init__(self, dim: int, ratio: float = 2.0, out_dim: int | None = None) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * ratio)))
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside square windows, with relative position bias.

    ``cosine=True`` (default) is SwinV2: ``softmax(cos(q, k) * exp(min(s, log 100)) + 16
    sigmoid(cpb(log-coords)) + mask) v`` with a learned log-temperature ``s`` per head and a
    continuous position bias MLP. ``cosine=False`` is Swin v1: scaled dot product plus a
    learned ``(2 ws - 1)^2 x heads`` bias table.

    Input/output of :meth:`forward`: (N, C, H, W), any H, W >= 1. ``shift`` (0 < shift < ws)
    rolls the map by ``-shift`` first (the shifted-window block of Swin).
    """

    def __init__(self, dim: int, heads: int, window: int = 8, shift: int = 0, cosine: bool = True,
                 cpb_hidden: int = 512) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        if not 0 <= shift < window:
            raise ValueError(f"shift must be in [0, window), got {shift} for window {window}")
        self.dim, self.heads, self.window, self.shift, self.cosine = dim, heads, window, shift, cosine
        ws = window
        # relative offsets between the ws*ws positions of a window: (ws*ws, ws*ws) indices into
        # the (2ws-1)^2 table of offsets
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("rel_index", (rel[..., 0] * (2 * ws - 1) + rel[..., 1]).flatten(), persistent=False)
        if cosine:
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)
            # SwinV2: bias on q and v, none on k (a key bias cancels in the softmax)
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
            self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
            self.cpb_mlp = nn.Sequential(nn.Linear(2, cpb_hidden), nn.ReLU(inplace=True),
                                         nn.Linear(cpb_hidden, heads, bias=False))
            # log-spaced relative coordinates (SwinV2 eq. 4), normalised to [-1, 1] before the log
            r = torch.arange(-(ws - 1), ws, dtype=torch.float32)
            table = torch.stack(torch.meshgrid(r, r, indexing="ij"), dim=-1)  # (2ws-1, 2ws-1, 2)
            table = table / max(ws - 1, 1) * 8
            table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)
            self.register_buffer("rel_coords", table.view(-1, 2), persistent=False)
        else:
            self.qkv = nn.Linear(dim, 3 * dim)
            self.bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
            nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.proj = nn.Linear(dim, dim)

    # -- pieces --------------------------------------------------------------------------------
    def position_bias(self) -> torch.Tensor:
        """(heads, ws*ws, ws*ws) additive bias."""
        n = self.window * self.window
        if self.cosine:
            table = self.cpb_mlp(self.rel_coords.to(self.cpb_mlp[0].weight.dtype))
            bias = 16 * torch.sigmoid(table[self.rel_index])
        else:
            bias = self.bias_table[self.rel_index]
        return bias.view(n, n, self.heads).permute(2, 0, 1)

    def _mask(self, h: int, w: int, hp: int, wp: int, sh: int, sw: int, device) -> torch.Tensor | None:
        """(nW, ws*ws, ws*ws) bool, True where a query must not see a key; None if nothing masked.

        Keys are masked when they are padding, or (shifted windows) when they come from another
        region of the rolled map -- Swin's cyclic-shift mask (regions in rolled coordinates),
        computed for the padded size.
        """
        if not (sh or sw) and hp == h and wp == w:
            return None
        ws = self.window
        ids = torch.zeros(hp, wp, dtype=torch.int64, device=device)
        cnt = 0
        hs = ((0, hp - ws), (hp - ws, hp - sh), (hp - sh, hp)) if sh else ((0, hp),)
        wss = ((0, wp - ws), (wp - ws, wp - sw), (wp - sw, wp)) if sw else ((0, wp),)
        for h0, h1 in hs:
            for w0, w1 in wss:
                ids[h0:h1, w0:w1] = cnt
                cnt += 1
        pad = torch.zeros(hp, wp, dtype=torch.bool, device=device)
        pad[h:, :] = True  # padding is bottom/right in image coordinates: roll it like the map
        pad[:, w:] = True
        if sh or sw:
            pad = torch.roll(pad, shifts=(-sh, -sw), dims=(0, 1))
        ids[pad] = -1
        win = window_partition(ids.view(1, hp, wp, 1), ws).squeeze(-1)  # (nW, N)
        return (win[:, None, :] != win[:, :, None]) | (win[:, None, :] < 0)

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H, W, C) -> (N, H, W, C)."""
        n, h, w, c = x.shape
        ws = self.window
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        if hp != h or wp != w:
            x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))
        # a shift only makes sense where the (padded) map holds more than one window
        sh = self.shift if hp > ws else 0
        sw = self.shift if wp > ws else 0
        if sh or sw:
            x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
        win = window_partition(x, ws)  # (B, N, C), B = n * nW
        b, t, _ = win.shape
        hd = c // self.heads
        if self.cosine:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
            qkv = F.linear(win, self.qkv.weight, bias)
        else:
            qkv = self.qkv(win)
        q, k, v = qkv.view(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)  # each (B, heads, N, hd)
        if self.cosine:
            scale = torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
            attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * scale
        else:
            attn = (q * hd**-0.5) @ k.transpose(-2, -1)
        attn = attn + self.position_bias().unsqueeze(0)  # (B, heads, N, N)
        mask = self._mask(h, w, hp, wp, sh, sw, x.device)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(n, nw, self.heads, t, t).masked_fill(mask[None, :, None], _MASK_VALUE)
            attn = attn.view(b, self.heads, t, t)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, c)
        out = window_reverse(self.proj(out), ws, n, hp, wp)
        if sh or sw:
            out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
        return out[:, :h, :w, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return self.forward_nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SwinV2Block(nn.Module):
    """SwinV2 transformer block with res-post-norm, on (N, C, H, W) maps.

    ``x = x + LN(WindowAttention(x)); x = x + LN(MLP(x))`` (Liu et al. 2022, fig. 1);
    ``shift = window // 2`` in every other block of a stage.
    """

    def __init__(self, dim: int, heads: int, window: int = 8, shift: int = 0, mlp_ratio: float = 2.0,
                 cosine: bool = True) -> None:
        super().__init__()
        self.attn = WindowAttention(dim, heads, window, shift, cosine=cosine)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)
        self.norm2 = nn.LayerNorm(dim)

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H, W, C) -> (N, H, W, C)."""
        x = x + self.norm1(self.attn.forward_nhwc(x))
        return x + self.norm2(self.mlp(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return self.forward_nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
