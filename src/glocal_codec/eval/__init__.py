"""Evaluation: metrics and rate-distortion measurement."""

from .metrics import psnr
from .rd import RDPoint, average, measure

__all__ = ["psnr", "RDPoint", "average", "measure"]
