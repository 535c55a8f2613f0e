"""Folding thin strips into near-square pictures for codecs that pad to a large multiple.

A learned codec pads its input to a multiple of its total stride (64 pixels for the Ballé-family
transforms with a hyperprior), so a 1 x 5000 strip is coded as a 64 x 5056 picture: about 65
times its pixels, and ~30 bpp. Here a strip is first stretched across (each row repeated) to the
height of one latent row (the analysis stride, 16 pixels), so the codec sees bands that are
smooth across, as in the photos it was trained on, and then cut into segments that are stacked
into a near-square picture: 1 x 5000 -> 16 x 5000 -> 64 x 1280 (four segments), 81,920 coded
pixels instead of 323,584. The seams between bands fall on latent rows. Measured
(``benchmarks/strips.py``) this beats padding on every strip tried at every level; stacking the
raw one-pixel rows instead (no stretch) is cheaper still but tops out near 25 dB, because rows
that are unrelated look like noise to a codec trained on photos.

The layout is a pure function of the picture's shape and the codec's stride and multiple
(:func:`fold_plan`), so a file only needs to say *that* it is folded (one version byte in the
codec's header parameters, :data:`FOLD_PARAMS`), never how: a decoder recomputes the plan and
checks it exists. Changing the rule means a new version byte, so older files keep decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..bitstream.strip import FOLD_PARAMS

__all__ = ["FoldPlan", "fold_plan", "FOLD_PARAMS"]

#: Fold only when it at least halves the coded (padded) area.
_MIN_GAIN = 2


def _up(v: int, m: int) -> int:
    return -(-v // m) * m


@dataclass(frozen=True)
class FoldPlan:
    """How an ``height x width`` picture is folded.

    ``transpose``: the strip is tall (width is the short side) and is transposed first, so the
    rule only ever folds a wide strip. ``repeat``: each row is repeated this many times (the
    stretch across). ``segment``: length of the pieces the long side is cut into (a multiple of
    the codec's multiple); ``count`` pieces are stacked top to bottom, the last one filled up by
    repeating its final column.
    """

    height: int
    width: int
    transpose: bool
    repeat: int
    segment: int
    count: int

    @property
    def band(self) -> int:
        """Rows of one stacked piece (the strip's short side, stretched)."""
        return (self.width if self.transpose else self.height) * self.repeat

    @property
    def folded_shape(self) -> tuple[int, int]:
        """(height, width) of the folded picture, before the codec's own padding."""
        return self.count * self.band, self.segment

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x height x width -> N x C x folded_shape."""
        if tuple(x.shape[-2:]) != (self.height, self.width):
            raise ValueError(f"fold plan is for {self.height} x {self.width}, got {tuple(x.shape[-2:])}")
        if self.transpose:
            x = x.transpose(-2, -1)
        if self.repeat > 1:
            x = x.repeat_interleave(self.repeat, dim=-2)
        n, c, a, b = x.shape
        fill = self.count * self.segment - b
        if fill:
            x = torch.cat([x, x[..., -1:].expand(n, c, a, fill)], dim=-1)
        # pieces side by side -> pieces stacked: (a, count, segment) -> (count, a, segment)
        x = x.reshape(n, c, a, self.count, self.segment).permute(0, 1, 3, 2, 4)
        return x.reshape(n, c, self.count * a, self.segment).contiguous()

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`fold`: N x C x folded_shape -> N x C x height x width; the
        repeated rows of a stretched strip are averaged (summed in a fixed order, so the result
        is the same on every machine)."""
        n, c = x.shape[:2]
        a, b = self.band, (self.height if self.transpose else self.width)
        x = x.reshape(n, c, self.count, a, self.segment).permute(0, 1, 3, 2, 4)
        x = x.reshape(n, c, a, self.count * self.segment)[..., :b]
        if self.repeat > 1:
            total = x[..., 0::self.repeat, :].clone()
            for j in range(1, self.repeat):
                total += x[..., j::self.repeat, :]
            x = total / self.repeat
        return (x.transpose(-2, -1) if self.transpose else x).contiguous()


def fold_plan(height: int, width: int, multiple: int, stride: int = 1) -> FoldPlan | None:
    """The fold of an ``height x width`` picture for a codec padding to ``multiple`` whose
    analysis has stride ``stride``, or ``None`` when folding would not at least halve the padded
    area (every picture that is not a strip).

    The short side is stretched to at least ``stride`` rows (each row repeated
    ``ceil(stride / short)`` times). Among segment lengths ``multiple, 2 multiple, ...`` the
    one with the smallest padded folded area wins; ties go to the longer segment (fewer seams).
    """
    if height < 1 or width < 1 or multiple < 1 or stride < 1:
        raise ValueError(f"bad shape {height} x {width}, multiple {multiple} or stride {stride}")
    transpose = width < height
    a, b = (width, height) if transpose else (height, width)
    repeat = -(-stride // a)
    band = a * repeat
    plain = _up(a, multiple) * _up(b, multiple)
    best: tuple[int, int, int] | None = None  # (area, -segment, count)
    # the best segment is near sqrt(band b); looking up to 4x that keeps the search short for any strip
    longest = min(_up(b, multiple) - multiple, 4 * _up(math.isqrt(band * b) + 1, multiple))
    for segment in range(multiple, longest + 1, multiple):
        count = -(-b // segment)
        area = _up(count * band, multiple) * segment
        key = (area, -segment, count)
        if best is None or key < best:
            best = key
    if best is None or best[0] * _MIN_GAIN > plain:
        return None
    return FoldPlan(height, width, transpose, repeat, -best[1], best[2])
