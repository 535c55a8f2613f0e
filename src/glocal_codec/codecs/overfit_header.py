"""The ``overfit`` codec parameters (``Payload.params``): the architecture of the networks the file
carries, which the decoder rebuilds from them (:class:`OverfitArch`).

Light on purpose (no torch): ``glocal-codec info`` shows it through :func:`file_facts`.

Layout, version 1 (a picture fitted whole): a version byte, then varints ``n_grids`` (1-8),
``synth_width`` (1-64), ``arm_width`` (1-64), ``n_res`` (0-4), ``arm_bits`` and ``synth_bits``
(2-16, the weight bits the encoder chose per network). Version 2 (a large picture fitted tile by
tile, :func:`glocal_codec.engine.tiling.tile_boxes`): the version byte, varints ``tile`` (the
largest tile side, 16-65536) and ``n_tiles`` (2-65536), then each tile's six fields as above,
in the order of the tiles. Version 3 (what the encoder writes since 2026-12-05): the version byte,
varints ``tile`` (0 = fitted whole, else as in version 2) and ``n_tiles`` (1 when fitted whole),
then each tile's six fields and ``parent`` (0-1, :attr:`OverfitArch.parent`); its weight streams are
:func:`glocal_codec.entropy.params.encode_tensors`'s ``compact`` form (one byte per channel's
step instead of five). Version 4: version 3 with, after each tile's ``parent``, a flag
``learned_up`` (0-1) and, when it is 1, the tile's upsampling taps (:attr:`OverfitArch.up_taps`,
4 per grid level, each stored as the zigzag varint of its difference from the bicubic tap: one
byte within +-63 of it). Version 5: version 4 with a field ``skip`` (0-2) after each tile's
``learned_up``: the finest ``skip`` grids are left out (:attr:`OverfitArch.skip`). Versions 1 and 2
still decode.
Every range is checked before anything is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bitstream.errors import CorruptStreamError, LimitError
from ..bitstream.fields import check_end, check_version, pack_fields, read_fields

__all__ = ["CONTEXT", "OverfitArch", "PARENT_VERSION", "PRESET_SHAPES", "SKIP_VERSION", "TAP_LIMIT", "UP_VERSION",
           "TILED_VERSION", "file_facts", "pack_params", "parse_params", "VERSION"]

VERSION = 1
#: ``params`` version of a picture fitted in tiles.
TILED_VERSION = 2
#: ``params`` version of compact weight streams and the optional coarser-grid context (whole or tiled).
PARENT_VERSION = 3
#: ``params`` version of files with learned upsampling taps.
UP_VERSION = 4
#: ``params`` version of files whose latent pyramid leaves the finest grid(s) out.
SKIP_VERSION = 5
#: Most grids a file may leave out at the fine end.
MAX_SKIP = 2
#: Largest magnitude of a learned upsampling tap (in 1/256): keeps every fixed-point sum below 2^50.
TAP_LIMIT = 1024
#: The fixed bicubic filter's taps (in 1/256): the reference the learned taps are stored against.
BICUBIC_TAPS = (-9, 67, 225, -27)


def _zigzag(d: int) -> int:
    return 2 * d if d >= 0 else -2 * d - 1


def _unzigzag(v: int) -> int:
    return v // 2 if v % 2 == 0 else -(v + 1) // 2
_ARCH_FIELDS = [("n_grids", 1, 8), ("synth_width", 1, 64), ("arm_width", 1, 64), ("n_res", 0, 4),
                ("arm_bits", 2, 16), ("synth_bits", 2, 16)]
_PARENT_FIELDS = _ARCH_FIELDS + [("parent", 0, 1)]
#: Causal context (row, column offsets) of the entropy model in the latent's own grid.
CONTEXT = ((-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2),
           (0, -2), (0, -1))
#: (synthesis width, ARM width, residual blocks) of each encoder preset (``overfit.PRESETS`` is built
#: from it; ``info`` names the preset a file's decoder matches).
PRESET_SHAPES = {"fast": (16, 16, 1), "medium": (24, 16, 1), "slow": (40, 24, 2)}


@dataclass(frozen=True)
class OverfitArch:
    """Everything the decoder needs to rebuild the networks (stored in ``params``)."""

    n_grids: int
    synth_width: int
    arm_width: int
    n_res: int
    arm_bits: int
    synth_bits: int
    #: 1: the entropy model also reads the latent's *parent*, the value at ``(r // 2, c // 2)`` of
    #: the next coarser grid (zero for the coarsest), a 13th context value. The grids then decode
    #: coarsest first, each lagging one wavefront pass behind the next coarser one.
    parent: int = 0
    #: 1: the weight streams are in the compact form (params version 3; not a field of its own)
    compact: int = 0
    #: 1: the x2 upsampling between grids is learned (params version 4): a symmetric 8-tap filter
    #: per grid level, 4 free taps ``(t0, t1, t2, t3)`` in 1/256 (the fixed bicubic filter is
    #: ``(-9, 67, 225, -27)``), listed in :attr:`up_taps` from the coarsest level up
    learned_up: int = 0
    up_taps: tuple[int, ...] = ()
    #: the finest ``skip`` grids are left out (params version 5): grid 0 is at 1:2**skip and the
    #: synthesis reads the pyramid upsampled ``skip`` more times (no latents added on the way). At
    #: low rates the 1:1 grid holds three quarters of the latents and few of the bits.
    skip: int = 0

    def level_taps(self) -> list[tuple[int, ...]] | None:
        """The 4 taps of every upsampling level (coarsest first), or None for the fixed filter."""
        if not self.learned_up:
            return None
        return [tuple(self.up_taps[4 * i: 4 * i + 4]) for i in range(self.n_grids - 1)]

    def to_bytes(self) -> bytes:
        """The ``params`` of a picture fitted whole with this architecture."""
        return pack_params([self])

    @classmethod
    def from_bytes(cls, data: bytes) -> "OverfitArch":
        """The architecture of a picture fitted whole (``params`` version 1 or 3)."""
        tile, archs = parse_params(data)
        if tile:
            raise CorruptStreamError("overfit params: a tiled picture, not one architecture")
        return archs[0]

    def fields(self) -> list[int]:
        return [self.n_grids, self.synth_width, self.arm_width, self.n_res, self.arm_bits, self.synth_bits]

    def grid_scales(self) -> list[int]:
        """Downsampling factor of every grid, finest first."""
        return [1 << (self.skip + i) for i in range(self.n_grids)]

    def context_size(self) -> int:
        """Inputs of the entropy model: the causal neighbours, plus the parent when ``parent``."""
        return len(CONTEXT) + self.parent

    def arm_shapes(self) -> list[tuple[int, ...]]:
        a = self.arm_width
        return [(a, self.context_size()), (a,), (a, a), (a,), (2, a), (2,)]

    def synth_shapes(self) -> list[tuple[int, ...]]:
        c = self.synth_width
        out = [(c, self.n_grids, 1, 1), (c,), (3, c, 1, 1), (3,)]
        for _ in range(self.n_res):
            out += [(3, 3, 3, 3), (3,), (3, 3, 3, 3), (3,)]
        return out

    def macs_per_pixel(self) -> float:
        a, c = self.arm_width, self.synth_width
        latents_per_pixel = sum(1 / (k * k) for k in self.grid_scales())
        return self.n_grids * c + 3 * c + 162 * self.n_res + latents_per_pixel * (self.context_size() * a + a * a + 2 * a)


def pack_params(archs: list[OverfitArch], tile: int = 0) -> bytes:
    """``params`` of a picture fitted whole (``tile == 0``: one architecture) or in tiles: version 3
    for compact weight streams, else version 1 (whole) or 2 (tiles; the encoder's format until
    2026-12-05, kept for tests of old files)."""
    if any(a.compact for a in archs):
        if not all(a.compact for a in archs):
            raise ValueError("overfit params: compact and plain weight streams cannot share a file")
        skip = any(a.skip for a in archs)
        if any(a.learned_up for a in archs) or skip:
            values = [tile, len(archs)]
            for a in archs:
                if len(a.up_taps) != (4 * (a.n_grids - 1) if a.learned_up else 0):
                    raise ValueError(f"overfit params: {len(a.up_taps)} upsampling taps for {a.n_grids} grids")
                if any(abs(t) > TAP_LIMIT for t in a.up_taps):
                    raise ValueError(f"overfit params: an upsampling tap beyond +-{TAP_LIMIT}")
                if not 0 <= a.skip <= MAX_SKIP:
                    raise ValueError(f"overfit params: skip {a.skip} outside 0-{MAX_SKIP}")
                values += [*a.fields(), a.parent, a.learned_up, *([a.skip] if skip else []),
                           *(_zigzag(t - BICUBIC_TAPS[i % 4]) for i, t in enumerate(a.up_taps))]
            return pack_fields(SKIP_VERSION if skip else UP_VERSION, values)
        return pack_fields(PARENT_VERSION, [tile, len(archs)] + [v for a in archs for v in (*a.fields(), a.parent)])
    if any(a.parent or a.skip for a in archs):
        raise ValueError("overfit params: the coarser-grid context and skipped grids need the compact form")
    if not tile:
        (arch,) = archs
        return pack_fields(VERSION, arch.fields())
    return pack_fields(TILED_VERSION, [tile, len(archs)] + [v for a in archs for v in a.fields()])


def parse_params(data: bytes) -> tuple[int, list[OverfitArch]]:
    """``(tile, architectures)``: ``tile`` 0 and one architecture for a picture fitted whole,
    else the largest tile side and one architecture per tile."""
    if data[:1] in (bytes([PARENT_VERSION]), bytes([UP_VERSION]), bytes([SKIP_VERSION])):
        learned = data[0] in (UP_VERSION, SKIP_VERSION)
        skips = [("skip", 0, MAX_SKIP)] if data[0] == SKIP_VERSION else []
        head, pos = read_fields(data, 1, [("tile", 0, 1 << 16), ("n_tiles", 1, 1 << 16)])
        whole = head["tile"] == 0
        if whole != (head["n_tiles"] == 1) or (not whole and head["tile"] < 16):
            raise CorruptStreamError(f"overfit params: {head['n_tiles']} tile(s) of side {head['tile']}")
        archs = []
        for _ in range(head["n_tiles"]):
            f, pos = read_fields(data, pos, _PARENT_FIELDS + ([("learned_up", 0, 1)] if learned else []) + skips)
            taps: list[int] = []
            for i in range(4 * (f["n_grids"] - 1) if f.get("learned_up") else 0):
                t, pos = read_fields(data, pos, [("upsampling_tap", 0, 4 * TAP_LIMIT)])
                taps.append(BICUBIC_TAPS[i % 4] + _unzigzag(t["upsampling_tap"]))
                if abs(taps[-1]) > TAP_LIMIT:
                    raise LimitError(f"codec parameter upsampling_tap = {taps[-1]} outside +-{TAP_LIMIT}")
            archs.append(OverfitArch(**f, compact=1, up_taps=tuple(taps)))
        check_end(data, pos)
        return head["tile"], archs
    if data[:1] != bytes([TILED_VERSION]):
        f, pos = read_fields(data, check_version(data, VERSION), _ARCH_FIELDS)
        check_end(data, pos)
        return 0, [OverfitArch(**f)]
    head, pos = read_fields(data, 1, [("tile", 16, 1 << 16), ("n_tiles", 2, 1 << 16)])
    archs = []
    for _ in range(head["n_tiles"]):
        f, pos = read_fields(data, pos, _ARCH_FIELDS)
        archs.append(OverfitArch(**f))
    check_end(data, pos)
    return head["tile"], archs


def _span(values) -> str:
    v = sorted(set(values))
    return str(v[0]) if len(v) == 1 else f"{v[0]}-{v[-1]}"


def file_facts(params: bytes) -> dict[str, str]:
    """What ``glocal-codec info`` shows about an overfit file: its decoder and the preset it matches."""
    tile, archs = parse_params(params)
    a = archs[0]
    shape = (a.synth_width, a.arm_width, a.n_res)
    preset = next((n for n, v in PRESET_SHAPES.items() if v == shape), "custom")
    ctx = f"{a.context_size()} context values" + (" (with the coarser grid's)" if a.parent else "")
    ctx += ", learned upsampling" if a.learned_up else ""
    ctx += f", finest grid at 1:{1 << a.skip}" if a.skip else ""
    return {"decoder": (f"{a.n_grids} latent grids, synthesis {a.synth_width} wide + {a.n_res} residual "
                        f"block(s), entropy model {a.arm_width} wide, {ctx}; {a.macs_per_pixel():.0f} MACs/pixel"),
            "network bits": f"entropy model {_span(t.arm_bits for t in archs)}, synthesis "
                            f"{_span(t.synth_bits for t in archs)}",
            "preset": preset,
            **({"tiles": f"{len(archs)}, fitted one by one, each at most {tile} pixels a side"} if tile else {})}
