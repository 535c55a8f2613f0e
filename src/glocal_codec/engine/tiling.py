"""Padding and tiled execution of fully-convolutional transforms on large images.

A 4000 x 3000 photo through a GDN transform would hold several GiB of activations at once.
:func:`tiled_apply` runs a resolution-changing network over overlapping tiles and stitches
the centres, so peak memory depends on the tile size, not the image size. With a halo at least
as wide as the network's receptive field the stitched result equals the untiled one up to
floating-point rounding -- unlike coding independent tiles, which costs rate and shows seams.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["pad_to_multiple", "crop", "tiled_apply", "tile_boxes"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the bottom/right of N x C x H x W so H and W are multiples of ``multiple``.

    Replicate (not zero) padding: a flat border costs almost no bits and no visible edge.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not ph and not pw:
        return x
    if ph >= h or pw >= w:
        # replicate padding in torch needs pad < size for "reflect"; replicate is fine, but
        # keep tiny images (1x1, 7x13) simple and exact with explicit edge repetition
        x = torch.cat([x, x[..., -1:, :].expand(*x.shape[:-2], ph, w)], dim=-2) if ph else x
        return torch.cat([x, x[..., :, -1:].expand(*x.shape[:-1], pw)], dim=-1) if pw else x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x[..., :h, :w]


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale: float,
    tile: int,
    halo: int,
    align: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` (output size = ``scale`` x input size) over overlapping tiles of ``x``.

    ``tile`` and ``halo`` are in input pixels and multiples of ``align`` (the input stride that
    maps to whole output pixels, e.g. 16 for an analysis transform with scale 1/16). Tiles are
    processed one at a time and only their centres are kept.
    """
    n, _, h, w = x.shape
    if tile % align or halo % align:
        raise ValueError("tile and halo must be multiples of align")
    if h <= tile and w <= tile:
        return fn(x)
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(y0 - halo, 0), max(x0 - halo, 0)
            yb, xb = min(y1 + halo, h), min(x1 + halo, w)
            piece = fn(x[:, :, ya:yb, xa:xb])
            if out is None:
                out = piece.new_empty(n, piece.shape[1], round(h * scale), round(w * scale))
            oy, ox = round((y0 - ya) * scale), round((x0 - xa) * scale)
            th, tw = round((y1 - y0) * scale), round((x1 - x0) * scale)
            out[:, :, round(y0 * scale) : round(y0 * scale) + th, round(x0 * scale) : round(x0 * scale) + tw] = (
                piece[:, :, oy : oy + th, ox : ox + tw]
            )
            del piece
    assert out is not None
    return out


def tile_boxes(h: int, w: int, tile: int) -> list[tuple[int, int, int, int]]:
    """``(y0, y1, x0, x1)`` of the tiles of an ``h x w`` picture, row by row: ``ceil(h / tile)``
    rows and ``ceil(w / tile)`` columns of near-equal sizes (never a sliver at the edge), each at
    most ``tile`` a side. A pure function of its arguments: decoders recompute the layout from
    the header instead of reading it.
    """
    if tile < 1 or h < 1 or w < 1:
        raise ValueError(f"no tiles of side {tile} for a {w}x{h} picture")
    ny, nx = -(-h // tile), -(-w // tile)
    ys = [i * h // ny for i in range(ny + 1)]
    xs = [j * w // nx for j in range(nx + 1)]
    return [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(ny) for j in range(nx)]
