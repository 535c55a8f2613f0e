"""Entropy coding over constriction and the entropy models that feed it.

* :mod:`.coder` -- Gaussian (mean-scale) and per-channel table coders, the chunked pass decoder;
* :mod:`.factorized` -- factorized densities frozen into coding tables (the table lifecycle);
* :mod:`.params` -- quantisation and coding of network weights (INR codecs);
* :mod:`.categorical` -- integer indices under quantised categorical tables (VQ, reference ids);
* :mod:`.rcc` -- reverse-channel coding of Gaussian samples (minimal random coding) over the
  project's own counter-based generator (Philox-4x32-10, bit-exact normals).
"""

from .coder import GaussianCoder, GaussianPassDecoder, TableCoder, default_scale_table, ideal_bits_gaussian
from .factorized import LevelCoders, factorized_bits, frozen_tables, pmf_table
from .categorical import MAX_PRECISION, CategoricalCoder, pmf_from_logits, quantize_pmf
from .rcc import (RCC_MAX_BITS, GaussianRCC, RCCResult, default_kl_budget, gaussian_kl_bits, philox4x32,
                  plan_chunks, shared_normals)

__all__ = ["GaussianCoder", "GaussianPassDecoder", "TableCoder", "default_scale_table", "ideal_bits_gaussian",
           "LevelCoders", "factorized_bits", "frozen_tables", "pmf_table",
           "CategoricalCoder", "quantize_pmf", "pmf_from_logits", "MAX_PRECISION",
           "GaussianRCC", "RCCResult", "RCC_MAX_BITS", "default_kl_budget", "gaussian_kl_bits", "plan_chunks",
           "philox4x32", "shared_normals"]
