"""Factorized densities frozen into coding tables: the coding-table lifecycle of learned codecs.

A learned codec trains a per-channel density for a hyper-latent (or a latent) with CompressAI's
``EntropyBottleneck`` (Ballé et al., "Variational image compression with a scale hyperprior",
ICLR 2018, appendix 6.1). For coding, each quality level's density is frozen once, after
training, into a float64 probability table over a finite alphabet (:func:`frozen_tables`); the
table ships with the weights (a registered buffer), so the decoder never recomputes a density
and encoder and decoder read identical numbers on every machine. :class:`LevelCoders` turns
those tables into :class:`~.coder.TableCoder` objects on demand and forgets them when the
weights change.

Only the trained module is touched (its ``_likelihood`` and ``likelihood_lower_bound``
methods); CompressAI itself is not imported here.
"""

from __future__ import annotations

import copy
from typing import Iterable

import numpy as np
import torch
from torch import nn

from .coder import TableCoder

__all__ = ["pmf_table", "frozen_tables", "factorized_bits", "LevelCoders"]


def pmf_table(eb: nn.Module, bound: int) -> np.ndarray:
    """P(round(v) = k) for k in [-bound, bound], per channel, in float64 (C x L)."""
    eb64 = copy.deepcopy(eb).double().cpu()
    c = eb64.channels
    k = torch.arange(-bound, bound + 1, dtype=torch.float64)
    with torch.no_grad():
        lik, _, _ = eb64._likelihood(k.view(1, 1, -1).expand(c, 1, -1).contiguous())
    return lik.view(c, -1).clamp_min(0).numpy()


def frozen_tables(ebs: Iterable[nn.Module], bound: int) -> torch.Tensor:
    """One :func:`pmf_table` per quality level, stacked: levels x C x (2 bound + 1), float64."""
    return torch.stack([torch.from_numpy(pmf_table(eb, bound)) for eb in ebs])


def factorized_bits(eb: nn.Module, v: torch.Tensor) -> torch.Tensor:
    """-log2 P(v) summed, under ``eb``'s per-channel density (v: N x C x H x W, any real values).

    The probability of the unit interval around each value, as the coder's tables hold it at the
    integers; differentiable in ``v``, so latent refinement can follow it.
    """
    lik, _, _ = eb._likelihood(v.transpose(0, 1).reshape(v.shape[1], 1, -1))
    return -torch.log2(eb.likelihood_lower_bound(lik)).sum()


class LevelCoders:
    """Per-quality :class:`TableCoder` cache over a model's float64 ``tables`` buffer.

    ``get(tables, q)`` builds quality ``q``'s coder on first use; ``clear()`` (call it whenever
    the weights change: ``load_state_dict``, ``train()``, ``build_tables``) drops them all.
    Symbols are in [-bound, bound]; values beyond go through the coder's escape list.
    """

    def __init__(self, bound: int) -> None:
        self.bound = int(bound)
        self._coders: dict[int, TableCoder] = {}

    def get(self, tables: torch.Tensor, q: int) -> TableCoder:
        if q not in self._coders:
            t = tables[q].detach().cpu().numpy()
            if not t.any():
                raise RuntimeError("coding tables are empty: call build_tables() after training")
            self._coders[q] = TableCoder(t, np.full(t.shape[0], -self.bound))
        return self._coders[q]

    def clear(self) -> None:
        self._coders.clear()

    @staticmethod
    def channel_index(shape: tuple[int, ...]) -> np.ndarray:
        """Channel of each element of a flattened (N, C, H, W) tensor."""
        b, c, h, w = shape
        return np.tile(np.repeat(np.arange(c), h * w), b)
