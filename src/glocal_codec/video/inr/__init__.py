"""Implicit-neural-representation (INR) video codecs with real bitstreams.

* :mod:`.quant` -- per-channel quantisation and range coding of network weights and embeddings;
* :mod:`.common` -- quantisable convs, compact configs, the fitting schedule;
* :mod:`.hnerv` -- ``hnerv`` (Chen et al., CVPR 2023);

Encoding a clip fits a network to it (minutes, not milliseconds); decoding rebuilds the network
from the file alone and renders the frames. The codecs register themselves with the codec
registry when :mod:`glocal_codec.codecs` loads its built-ins.
"""

from .hnerv import HNeRVArch, HNeRVCodec

__all__ = ["HNeRVArch", "HNeRVCodec"]
