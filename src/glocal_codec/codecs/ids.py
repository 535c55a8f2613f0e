"""The frozen table of codecs: the id written into every ``.glc`` file, and where the code lives.

One row per codec family member: its name, its id, and the ``module:attribute`` (relative to
:mod:`glocal_codec.codecs`) of its plugin class or factory. The registry imports a module only
when that codec is first opened or listed, so ``import glocal_codec`` stays light and a codec
whose dependency is missing (PyAV for the video codecs) disables only itself.

Ids are data, never derived from registration or dict order: renumbering would make old files
decode with the wrong codec. Add new rows; never change or reuse an existing id. A row whose
target is ``None`` reserves an id for a codec that is not built yet. Ids from
:data:`THIRD_PARTY_MIN_ID` up are left to plugins of other packages, which declare their own
(entry points, see ``docs/plugins.md``).

A row may also carry a :class:`Listing`: what ``glocal-codec list`` shows about the codec, so that
listing it (and reading a file's header with ``glocal-codec info``) needs no import of its module.
Rows of codecs whose modules import torch carry one (``list`` starts in well under a second); the
classical codecs' modules are light and are simply opened. ``tests/codecs/test_registry.py``
checks every listing against the opened codec.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

__all__ = ["CodecRow", "Listing", "CODEC_TABLE", "CODEC_IDS", "CODEC_NAMES", "THIRD_PARTY_MIN_ID"]


@dataclass(frozen=True)
class Listing:
    """What :func:`~glocal_codec.codecs.list_codecs` says about a built-in codec without importing it.

    The same facts as the codec's own attributes: ``media``, ``description``, ``qualities``,
    ``default_quality``, ``refinable`` (it implements :class:`~.base.Refinable`) and ``weights``
    (it ships trained weights: ``weights/<name>.safetensors`` and a manifest entry, whose
    ``config.levels`` and ``default_quality`` then decide the levels, as
    :func:`glocal_codec.weights.quality_levels` reads them; ``qualities`` holds the levels it falls
    back to). A listing promises that the codec's module imports wherever the package does (no
    optional dependency): a listed codec is always available.
    """

    media: str
    description: str
    qualities: tuple[int, ...]
    default_quality: int
    refinable: bool = False
    weights: bool = False
    #: its encoder presets (:class:`~.base.Presets`), the default first
    presets: tuple[str, ...] = ()
    #: ``"module:function"`` (under ``glocal_codec.codecs``, torch-free) turning a file's codec
    #: parameters into the facts ``glocal-codec info`` shows (``clc``: reference ids, dictionary).
    param_facts: str | None = None


@dataclass(frozen=True)
class CodecRow:
    """One codec: ``name`` (what users type), ``codec_id`` (what files carry), ``target``
    (``"module:Attr"`` under ``glocal_codec.codecs``; ``None``: id reserved, no code yet) and,
    optionally, its :class:`Listing`."""

    name: str
    codec_id: int
    target: str | None
    listing: Listing | None = None


def _levels(n: int) -> tuple[int, ...]:
    return tuple(range(1, n + 1))


CODEC_TABLE: tuple[CodecRow, ...] = (
    # classical image codecs (Pillow; light modules, no listing needed)
    CodecRow("jpeg", 1, "classic:JpegCodec"),
    CodecRow("webp", 2, "classic:WebpCodec"),
    CodecRow("avif", 3, "classic:AvifCodec"),
    CodecRow("jpeg2000", 4, "classic:Jpeg2000Codec"),
    # learned image codecs
    CodecRow("factorized", 16, "learned:FactorizedCodec", Listing(
        "image", "Ballé 2017 factorized prior (GDN transforms), variable rate; trained by this project",
        _levels(6), 4, refinable=True, weights=True)),
    CodecRow("msh", 17, "learned:MshCodec", Listing(
        "image", "Minnen 2018 mean-scale hyperprior, variable rate (gain units); trained by this project",
        _levels(6), 4, refinable=True, weights=True, param_facts="strip_header:file_facts")),
    CodecRow("glocal", 18, "glocal:GlocalCodec", Listing(
        "image", "SwinV2 window + global-token attention transforms, channel/checkerboard context (S2LIC-style), "
        "variable rate; trained by this project", _levels(6), 4, refinable=True, weights=True,
        param_facts="strip_header:file_facts")),
    CodecRow("clc", 19, "clc:ClcCodec", Listing(
        "image", "conditional latent coding (CLC, Chen 2025) on msh: k references retrieved from a dictionary "
        "(built-in or --dictionary), fused into the hyperprior; ids in the file", _levels(6), 4, refinable=True,
        weights=True, param_facts="clc_header:file_facts")),
    CodecRow("mcquic", 20, "mcquic:McquicCodec", Listing(
        "image", "McQuic-style multi-codebook VQ, 1/64-1/32-1/16 cascade, parallel categorical prior; one model, "
        "levels = 1/16 stages; trained by this project", _levels(3), 2, weights=True,
        param_facts="strip_header:file_facts")),
    CodecRow("vq", 21, "vq:VqCodec", Listing(
        "image", "VQGAN-style extreme compression (< 0.05 bpp): one 1/16 index map, k-means-reduced codebooks "
        "per level, 4-pass learned prior, lost-index restoration (--drop); trained by this project",
        _levels(4), 4, weights=True)),
    CodecRow("gblsr", 22, "gblsr:GblsrCodec", Listing(
        "image", "GB-LSR spectral synthesis on msh: decode at any scale (--scale); trained by this project",
        _levels(6), 4, refinable=True, weights=True)),
    CodecRow("overfit", 23, "overfit:OverfitCodec", Listing(
        "image", "Cool-chic/C3-style overfitted codec: latent pyramid + tiny synthesis + integer autoregressive "
        "Laplace model, fitted per image; bit-exact decoding", _levels(6), 3, presets=("fast", "medium", "slow"),
        param_facts="overfit_header:file_facts")),
    CodecRow("dualrep", 24, "dualrep:DualrepCodec", Listing(
        "image", "dual representation (< 0.05 bpp): vq indices + semantic map (explicit), texture latent sent by "
        "reverse-channel coding (implicit, --texture 0..1); trained by this project", _levels(4), 2, weights=True,
        param_facts="dualrep_header:file_facts")),
    # video codecs (the classical ones are listed only where PyAV's FFmpeg has their encoder: opened)
    CodecRow("x264", 64, "video_classic:X264Codec"),
    CodecRow("x265", 65, "video_classic:X265Codec"),
    CodecRow("av1", 66, "video_classic:Av1Codec"),
    CodecRow("hnerv", 80, "hnerv:HNeRVCodec", Listing(
        "video", "HNeRV (Chen 2023) video INR: fitted per clip, 8-bit weights + embeddings, range coded",
        _levels(5), 3)),
    CodecRow("nirvana", 81, "nirvana:NirvanaCodec", Listing(
        "video", "NIRVANA (Maiya 2023) video INR: per-group patch networks, autoregressive quantised weight "
        "residuals, range coded", _levels(5), 3)),
    CodecRow("pfnr", 82, "pfnr:PFNRCodec", Listing(
        "video", "PFNR (Kang 2024) video INR: several videos in one network, per-video winning subnetworks with "
        "Fourier layers, coded masks + 8-bit weights", _levels(5), 3)),
)

CODEC_IDS: Mapping[str, int] = MappingProxyType({r.name: r.codec_id for r in CODEC_TABLE})
CODEC_NAMES: Mapping[int, str] = MappingProxyType({r.codec_id: r.name for r in CODEC_TABLE})
assert len(CODEC_NAMES) == len(CODEC_IDS) == len(CODEC_TABLE), "codec names and ids must be unique"

#: Plugins from other packages pick an id at or above this (two varint bytes).
THIRD_PARTY_MIN_ID = 1024
