"""Inference engine: device choice, padding and tiling of large images, folding of thin strips,
latent refinement."""

from .device import resolve_device
from .refine import refine_latents, refine_tiled, sga_round
from .fold import FOLD_PARAMS, FoldPlan, fold_plan
from .tiling import crop, pad_to_multiple, tile_boxes, tiled_apply

__all__ = ["resolve_device", "FoldPlan", "fold_plan", "FOLD_PARAMS", "pad_to_multiple", "crop", "tiled_apply", "tile_boxes", "refine_latents", "refine_tiled", "sga_round"]
