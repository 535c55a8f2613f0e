"""Implicit-neural-representation (INR) video codecs with real bitstreams.

* :mod:`.quant` -- per-channel quantisation and range coding of network weights and embeddings;
* :mod:`.common` -- quantisable convs, compact configs, the fitting schedule;
* :mod:`.hnerv` -- ``hnerv`` (Chen et al., CVPR 2023): per-frame embeddings + a NeRV decoder;
* :mod:`.nirvana` -- ``nirvana`` (Maiya et al., CVPR 2023): groups of frames, patch-wise networks,
  each coded as a residual on the previous group's, capacity adapted to motion;
* :mod:`.pfnr` -- ``pfnr`` (Kang et al., ICLR 2024): several videos in one growing network, binary
  masks per video (coded), Fourier-space layers, earlier videos decode bit-exactly after appends.

Encoding a clip fits a network to it (minutes, not milliseconds); decoding rebuilds the network
from the file alone and renders the frames. The codecs register themselves with the codec
registry when :mod:`glocal_codec.codecs` loads its built-ins.
"""

from .hnerv import HNeRVArch, HNeRVCodec
from .nirvana import NirvanaArch, NirvanaCodec
from .pfnr import PFNRArch, PFNRCodec

__all__ = ["HNeRVArch", "HNeRVCodec", "NirvanaArch", "NirvanaCodec", "PFNRArch", "PFNRCodec"]
