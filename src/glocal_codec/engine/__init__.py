"""Inference engine: device choice, padding and tiling of large images, latent refinement."""

from .device import resolve_device
from .refine import refine_latents, refine_tiled, sga_round
from .tiling import crop, pad_to_multiple, tiled_apply

__all__ = ["resolve_device", "pad_to_multiple", "crop", "tiled_apply", "refine_latents", "refine_tiled", "sga_round"]
