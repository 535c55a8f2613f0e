"""Entropy coding over constriction and the entropy models that feed it.

* :mod:`.coder` -- Gaussian (mean-scale) and per-channel table coders, the chunked pass decoder;
* :mod:`.factorized` -- factorized densities frozen into coding tables (the table lifecycle);
* :mod:`.params` -- quantisation and coding of network weights (INR codecs);
* :mod:`.categorical` -- integer indices under quantised categorical tables (VQ, reference ids).
"""

from .coder import GaussianCoder, GaussianPassDecoder, TableCoder, default_scale_table, ideal_bits_gaussian
from .factorized import LevelCoders, factorized_bits, frozen_tables, pmf_table
from .categorical import MAX_PRECISION, CategoricalCoder, pmf_from_logits, quantize_pmf

__all__ = ["GaussianCoder", "GaussianPassDecoder", "TableCoder", "default_scale_table", "ideal_bits_gaussian",
           "LevelCoders", "factorized_bits", "frozen_tables", "pmf_table",
           "CategoricalCoder", "quantize_pmf", "pmf_from_logits", "MAX_PRECISION"]
