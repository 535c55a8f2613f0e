"""Training distortions a model can ask for instead of the rate-distortion MSE.

A model whose objective is not ``lambda * 255^2 * MSE`` follows
:class:`~glocal_codec.codecs.base.DistortionTerms`: it names its terms in a
``distortion_weights`` mapping (``{"l1": 1.0, "lpips": 1.0}`` for ``vq``, the VQGAN objective of
Esser et al., CVPR 2021, without its adversarial term); :func:`make_distortion` turns that into a
callable the training loop adds to the rate and the model's auxiliary loss. Models without the
attribute keep the loop's MSE. Known terms:

* ``l1`` -- mean absolute error in [0, 1] units;
* ``mse`` -- mean squared error in [0, 1] units;
* ``lpips`` -- LPIPS v0.1 (Zhang et al., CVPR 2018, AlexNet trunk), the very network the
  project's offline metric uses (:func:`glocal_codec.eval.metrics.get_lpips`: the backbone and
  heads from the data folder), copied and frozen, differentiable in its inputs.

The result's ``parts`` are the unweighted values of each term, for the training log.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..codecs.base import DistortionTerms

__all__ = ["Distortion", "DistortionValue", "make_distortion", "TERMS"]

TERMS = ("l1", "mse", "lpips")


@dataclass(frozen=True)
class DistortionValue:
    """The weighted sum (the loss term) and each unweighted term (for the log)."""

    total: torch.Tensor
    parts: dict[str, float]


def _lpips_net(device: torch.device) -> torch.nn.Module:
    from ..eval.metrics import get_lpips

    metric, status = get_lpips()
    if metric is None:
        raise RuntimeError(f"the model trains with LPIPS, which is unavailable here: {status.message}")
    # a private copy: the metric's own network stays as the evaluation code expects it
    net = copy.deepcopy(metric.model).to(device).eval()
    return net.requires_grad_(False)


class Distortion:
    """``sum_t w_t * term_t(x_hat, x)`` over the configured terms; call with ``(x_hat, x)`` in [0, 1]."""

    def __init__(self, weights: Mapping[str, float], device: torch.device | str = "cpu") -> None:
        unknown = sorted(set(weights) - set(TERMS))
        if unknown:
            raise ValueError(f"unknown distortion terms {unknown}; known: {', '.join(TERMS)}")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) != 0.0}
        if not self.weights:
            raise ValueError("a distortion needs at least one term with a non-zero weight")
        self._lpips = _lpips_net(torch.device(device)) if "lpips" in self.weights else None

    def __call__(self, x_hat: torch.Tensor, x: torch.Tensor) -> DistortionValue:
        terms: dict[str, Callable[[], torch.Tensor]] = {
            "l1": lambda: F.l1_loss(x_hat, x),
            "mse": lambda: F.mse_loss(x_hat, x),
            # LPIPS is defined on images in [-1, 1] (normalize=True maps [0, 1] there); not
            # clamped, so that out-of-range pixels still get a gradient
            "lpips": lambda: self._lpips(x_hat, x, normalize=True).mean(),
        }
        vals = {k: terms[k]() for k in self.weights}
        total = torch.stack([self.weights[k] * v for k, v in vals.items()]).sum()
        return DistortionValue(total, {k: float(v.detach()) for k, v in vals.items()})


def make_distortion(model: torch.nn.Module, device: torch.device | str = "cpu") -> Distortion | None:
    """The model's own distortion (a :class:`~glocal_codec.codecs.base.DistortionTerms` model's
    ``distortion_weights``), or ``None`` for the loop's MSE."""
    if not isinstance(model, DistortionTerms):
        return None
    return Distortion(model.distortion_weights, device)
