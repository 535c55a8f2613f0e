"""Inference engine: device choice, padding and tiling of large images."""

from .device import resolve_device
from .tiling import crop, pad_to_multiple, tiled_apply

__all__ = ["resolve_device", "pad_to_multiple", "crop", "tiled_apply"]
