"""Entropy coding over constriction: Gaussian (mean-scale) and per-channel table models."""

from .coder import GaussianCoder, TableCoder, default_scale_table, ideal_bits_gaussian

__all__ = ["GaussianCoder", "TableCoder", "default_scale_table", "ideal_bits_gaussian"]
