"""Shared neural building blocks for every learned codec."""

from .layers import GDN, GainUnit, conv, deconv, ste_round

__all__ = ["GDN", "GainUnit", "conv", "deconv", "ste_round"]
