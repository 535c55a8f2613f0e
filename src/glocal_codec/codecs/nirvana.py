"""``nirvana``: NIRVANA, patch-wise autoregressive neural video representation, with a real bitstream.

Maiya et al., "NIRVANA: Neural Implicit Representations of Videos with Adaptive Networks and
Autoregressive Patch-wise Modeling", CVPR 2023. The clip is cut into groups of ``G`` frames; every
group gets its own small network, fitted to that group only, and the groups are modelled
*autoregressively*: group ``k``'s network starts from group ``k - 1``'s (dequantised) weights and
the file stores only the quantised *residual* ``w_k - w_{k-1}``, which is small and therefore cheap
to entropy code.

The per-group network (:class:`PatchNet`) is patch-wise, so a query renders a whole
``P x P`` patch instead of one pixel:

* input: the patch's coordinates ``(t / G, row / n_rows, col / n_cols)`` with Fourier features
  ``sin / cos(pi 2^j c)``, ``j < n_freq``;
* an MLP of ``depth`` GELU layers of ``width`` units, then a linear layer to a feature tile of
  ``tile_ch x P/2 x P/2`` for the patch;
* the tiles of one frame are laid side by side and a small conv head, shared by all patches,
  renders the pixels: ``conv3x3 -> PixelShuffle(2) -> GELU -> conv3x3 -> sigmoid``. An MLP that
  outputs the ``3 P^2`` pixels of its patch directly needs a ``width x 3P^2`` output layer; the
  shared head reached +2.4 dB with 15 % fewer parameters on the 8 x 48 x 64 test clip (300 steps:
  24.6 dB with 7.0 k parameters against 22.2 dB with 8.3 k) and leaves no seams between patches.
  It costs about three times the fitting time per step on a CPU.

Quantisation is part of fitting (the paper's "quantisation during training"): in the last
``qat_share`` of every group's steps the network runs on fake-quantised weights (straight-through
gradients) on exactly the grid the file uses, so no post-hoc quantisation loss is left.
Every tensor ``w`` of group ``k`` is coded as integers on a per-tensor grid
``step = max|w| / (2^(bits-1) - 1)`` *around the previous group's dequantised tensor*
``p = ŵ_{k-1}``: ``r = round((w - p) / step)``, ``ŵ_k = p + r * step``. Encoder and decoder add the
same float32 numbers in the same order, so they stay in sync group after group. The first group
(and every group when ``residual=False``, kept for measuring what the residuals save) uses
``p = 0``.

Adaptivity (what changes with motion): the encoder measures each group's motion ``m_k``, the mean
absolute difference of consecutive frames ending in the group (the first frame of a group is
compared with the last frame of the previous one), relative to the clip's mean ``m``:
``a_k = m_k / m``. Then

* the group's MLP **width** is ``width * clamp(sqrt(a_k), 0.75, 1.5)`` (stored per group): NIRVANA's
  adaptive capacity, in its simplest form. Group ``k``'s tensors are group ``k - 1``'s cut or
  zero-padded to the new width (new neurons start with zero outgoing weights, so the function is
  unchanged at initialisation) -- on both sides, so residuals stay defined;
* the group's **fitting steps** are ``epochs * clamp(a_k, 0.5, 2)`` passes (the first group, fitted
  from scratch, gets twice that and a higher learning rate). More steps move the weights further,
  so high-motion groups also spend more residual bits; static groups barely change and cost little;
* a group that the previous group's network already renders at least as well as the first group
  was fitted (measured before fitting) is **not fitted at all**: it keeps the previous width and
  its residual is all zeros, a few bytes. Static stretches of a clip are nearly free.

Bits per weight stay those of the quality level. Rate therefore varies from group to group with
motion; the level sets the base width (in parameters per pixel of a group, with a floor so levels
differ on tiny clips) and the bits.

File layout (``Payload``):

* ``params`` (version byte + varints, :class:`NirvanaArch`): ``frames, height, width, patch, group,
  n_freq, depth, tile_ch, head_ch, bits, residual`` and then one MLP ``width`` per group
  (``ceil(frames / group)`` of them). The clip size is repeated from the container header on
  purpose: the networks do not depend on it, so the decoder could not otherwise tell a header
  that announces another size or frame count;
* one stream per group, in order. Stream ``k``: ``varint`` number of values (checked against the
  network ``params`` describe), per tensor in name order ``float32 step, uint8 scale index``, then
  the range-coded residual integers (:class:`glocal_codec.entropy.GaussianCoder`; each tensor's
  zero-mean Gaussian is the table entry that codes it in the fewest bits).

Decoding walks the groups in order and holds only the current group's weights, the previous
group's weights and the output (:meth:`NirvanaCodec.decode_groups` yields the frames group by
group). Why no glocal attention blocks: NIRVANA has no encoder network (HNeRV's encoder is where
attention is free); every parameter of the per-group networks is sent in the file, and attention
layers would add rate to networks of a few thousand parameters without a spatial map to attend over
at the MLP stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..bitstream.container import MAX_FRAMES
from ..bitstream.errors import BitstreamError, CorruptStreamError, LimitError
from ..bitstream.varint import decode_varint, encode_varint
from .base import Payload
from ..entropy.coder import GaussianCoder
from .video_base import ProgressFn, RenderedVideoCodec
from ..nn.inr import pad_to
from ..bitstream.fields import check_end, check_version, pack_fields, read_fields
from ..engine.fit import cosine_lr, report
from ..util import psnr
from ..entropy.params import coder_for_bits

__all__ = ["NirvanaArch", "PatchNet", "NirvanaCodec", "choose_patch", "group_motion"]

_VERSION = 1
#: Largest number of parameters one group's network may have (a crafted header cannot ask for more).
_MAX_GROUP_PARAMS = 8_000_000
#: Largest per-frame activation of the conv head, in floats (1 GiB), checked before decoding.
_MAX_ACTIVATION = 1 << 28
#: A residual symbol never exceeds this many steps (keeps the integers in int32 for the coder).
_MAX_SYMBOL = 1 << 24
#: Largest step a decoder accepts; fitted weights never come near it.
_MAX_STEP = 1e4


def choose_patch(h: int, w: int) -> int:
    """Patch side: the largest of 16, 8, 4 with at least 4 patches on the short side, else 2."""
    for p in (16, 8, 4):
        if min(h, w) >= 4 * p:
            return p
    return 2


def _n_freq(rows: int, cols: int, group: int) -> int:
    """Fourier features up to the frequency that separates neighbouring patches / frames."""
    return min(12, math.ceil(math.log2(max(rows, cols, group, 2))) + 1)


@dataclass(frozen=True)
class NirvanaArch:
    """Everything the decoder needs to rebuild every group's network (the file's ``params``).

    The clip's own size is part of it: the networks do not depend on it, so without it a header
    announcing another size or frame count would decode to a cropped or padded clip.
    """

    frames: int  # T of the clip the networks were fitted to
    height: int
    width: int
    patch: int  # P: patch side (even)
    group: int  # G: frames per group
    n_freq: int  # Fourier frequencies per coordinate
    depth: int  # MLP layers of ``widths[k]`` units
    tile_ch: int  # channels of the per-patch feature tile (P/2 x P/2)
    head_ch: int  # channels of the conv head after the pixel shuffle
    bits: int  # quantisation bits of every tensor
    residual: bool  # True: group k codes w_k - ŵ_{k-1}; False: every group on its own
    widths: tuple[int, ...] = field(default=())  # MLP width of every group

    @property
    def n_in(self) -> int:
        return 3 * (1 + 2 * self.n_freq)

    @property
    def n_groups(self) -> int:
        return -(-self.frames // self.group)

    @property
    def grid(self) -> tuple[int, int]:
        """Patches per column and per row of a (padded) frame."""
        return -(-self.height // self.patch), -(-self.width // self.patch)

    def to_bytes(self) -> bytes:
        return pack_fields(_VERSION, [self.frames, self.height, self.width, self.patch, self.group, self.n_freq,
                                      self.depth, self.tile_ch, self.head_ch, self.bits, int(self.residual),
                                      *self.widths])

    @classmethod
    def from_bytes(cls, data: bytes) -> "NirvanaArch":
        """Read and validate ``params``; every field is range-checked before anything is built."""
        try:
            base = [("frames", 1, MAX_FRAMES), ("height", 1, 1 << 16), ("width", 1, 1 << 16), ("patch", 2, 32),
                    ("group", 1, 64), ("n_freq", 1, 16), ("depth", 1, 4), ("tile_ch", 1, 64), ("head_ch", 1, 64),
                    ("bits", 2, 16), ("residual", 0, 1)]
            f, pos = read_fields(data, check_version(data, _VERSION), base)
            if f["patch"] & (f["patch"] - 1):
                raise CorruptStreamError(f"NIRVANA patch size {f['patch']} is not a power of two")
            n_groups = -(-f["frames"] // f["group"])
            if len(data) - pos < n_groups:  # a varint byte at least per group, checked before reading them
                raise CorruptStreamError(f"NIRVANA parameters end before the {n_groups} group widths")
            wd, pos = read_fields(data, pos, [(f"width of group {k}", 1, 1024) for k in range(n_groups)])
            check_end(data, pos)
        except (LimitError, CorruptStreamError):
            raise
        except BitstreamError as err:  # a truncated varint inside the codec's own parameters
            raise CorruptStreamError(f"NIRVANA parameters: {err}") from None
        f["residual"] = bool(f["residual"])
        arch = cls(widths=tuple(wd.values()), **f)
        for w in set(arch.widths):
            if arch.n_params(w) > _MAX_GROUP_PARAMS:
                raise LimitError(f"NIRVANA group network of {arch.n_params(w):,} parameters is beyond any level")
        rows, cols = arch.grid
        if max(arch.head_ch, arch.tile_ch) * rows * cols * arch.patch ** 2 > _MAX_ACTIVATION:
            raise LimitError(f"NIRVANA conv head on {arch.width}x{arch.height} frames needs more than "
                             f"{_MAX_ACTIVATION} floats per frame")
        return arch

    def n_params(self, width: int) -> int:
        """Parameters of one group's network of MLP ``width`` (without building it)."""
        q2 = (self.patch // 2) ** 2
        mlp = self.n_in * width + width + (self.depth - 1) * (width * width + width)
        tile = width * self.tile_ch * q2 + self.tile_ch * q2
        head = self.tile_ch * 4 * self.head_ch * 9 + 4 * self.head_ch + self.head_ch * 3 * 9 + 3
        return mlp + tile + head


class PatchNet(nn.Module):
    """One group's network: patch coordinates ``(n, rows * cols, n_in)`` -> frames ``(n, 3, rows P, cols P)``."""

    def __init__(self, arch: NirvanaArch, width: int) -> None:
        super().__init__()
        self.patch = arch.patch
        self.tile_ch = arch.tile_ch
        self.fc = nn.ModuleList([nn.Linear(arch.n_in, width)]
                                + [nn.Linear(width, width) for _ in range(arch.depth - 1)])
        q = arch.patch // 2
        self.tile = nn.Linear(width, arch.tile_ch * q * q)
        self.up = nn.Conv2d(arch.tile_ch, 4 * arch.head_ch, 3, padding=1)
        self.out = nn.Conv2d(arch.head_ch, 3, 3, padding=1)

    def forward(self, feats: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        h = feats
        for fc in self.fc:
            h = F.gelu(fc(h))
        n, q, c = feats.shape[0], self.patch // 2, self.tile_ch
        # (n, rows, cols, c, q, q) -> (n, c, rows * q, cols * q): the tiles side by side, so the
        # conv head sees across patch borders
        z = self.tile(h).reshape(n, rows, cols, c, q, q).permute(0, 3, 1, 4, 2, 5).reshape(n, c, rows * q, cols * q)
        return torch.sigmoid(self.out(F.gelu(F.pixel_shuffle(self.up(z), 2))))


def _coords(arch: NirvanaArch, frames: int, rows: int, cols: int, device: torch.device) -> torch.Tensor:
    """Fourier features of every patch of ``frames`` frames: ``(frames, rows * cols, n_in)``."""
    t = torch.arange(frames, dtype=torch.float32) / arch.group
    i = torch.arange(rows, dtype=torch.float32) / rows
    j = torch.arange(cols, dtype=torch.float32) / cols
    c = torch.stack(torch.meshgrid(t, i, j, indexing="ij"), -1).reshape(frames, rows * cols, 3)
    a = c[..., None] * (math.pi * 2.0 ** torch.arange(arch.n_freq, dtype=torch.float32))
    return torch.cat([c, a.sin().flatten(2), a.cos().flatten(2)], -1).to(device)


def group_motion(x: torch.Tensor, group: int) -> list[float]:
    """Mean |frame_t - frame_{t-1}| over the frame pairs ending in each group (0 for a lone first frame)."""
    t = x.shape[0]
    diffs = (x[1:] - x[:-1]).abs().flatten(1).mean(1) if t > 1 else x.new_zeros(0)
    out = []
    for s in range(0, t, group):
        d = diffs[max(0, s - 1) : min(t, s + group) - 1]  # pairs (s-1, s) .. (e-2, e-1)
        out.append(float(d.mean()) if d.numel() else 0.0)
    return out


# -- residual coding ----------------------------------------------------------------------------


def _resize(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``t`` cut or zero-padded to ``shape`` (leading indices kept: neuron i stays neuron i)."""
    if t.shape == shape:
        return t.clone()
    out = torch.zeros(shape, dtype=t.dtype)
    idx = tuple(slice(0, min(a, b)) for a, b in zip(t.shape, shape))
    out[idx] = t[idx]
    return out


def _step(w: torch.Tensor, prev: torch.Tensor, bits: int) -> float:
    """The tensor's grid step (a float32 value): ``max|w| / (2^(bits-1) - 1)``, never so small
    that a residual overflows :data:`_MAX_SYMBOL`."""
    w = w.detach().float()
    levels = (1 << (bits - 1)) - 1
    s = max(float(w.abs().max()) / levels, float((w - prev).abs().max()) / _MAX_SYMBOL, 1e-12)
    return float(np.float32(s))


def _fake_quant(w: torch.Tensor, prev: torch.Tensor, bits: int) -> torch.Tensor:
    """``prev + step * round((w - prev) / step)`` with a straight-through gradient (the file's grid)."""
    step = _step(w, prev, bits)
    q = prev + torch.round((w.detach() - prev) / step) * step
    return w + (q - w.detach())


def _best_scale(coder: GaussianCoder, symbols: torch.Tensor) -> int:
    """Index of the Gaussian in ``coder``'s table that codes ``symbols`` in the fewest bits."""
    values, counts = torch.unique(symbols.abs().double(), return_counts=True)
    sig = torch.as_tensor(coder.scale_table, dtype=torch.float64)[:, None]
    p = torch.special.ndtr((values + 0.5) / sig) - torch.special.ndtr((values - 0.5) / sig)
    p = torch.where(values == 0, p, 2 * p)  # +v and -v share the count
    cost = -(torch.log2(p.clamp_min(1e-300)) * counts).sum(1)
    return int(cost.argmin())


def encode_group(tensors: list[torch.Tensor], prevs: list[torch.Tensor], bits: int) -> tuple[bytes, list[torch.Tensor]]:
    """Code ``tensors`` on grids around ``prevs``; return the stream and the dequantised tensors
    (what the decoder will have), see the module docstring."""
    coder = coder_for_bits(bits)
    side = bytearray(encode_varint(sum(t.numel() for t in tensors)))
    symbols, indexes, out = [], [], []
    for w, p in zip(tensors, prevs):
        w = w.detach().float().cpu()
        step = _step(w, p, bits)
        r = torch.round((w - p) / step).to(torch.int64)
        idx = _best_scale(coder, r)
        side += np.float32(step).astype("<f4").tobytes() + bytes([idx])
        symbols.append(r.reshape(-1).numpy())
        indexes.append(np.full(r.numel(), idx, np.int32))
        out.append(p + r.to(torch.float32) * torch.tensor(step, dtype=torch.float32))
    body = coder.encode(np.concatenate(symbols), np.concatenate(indexes))
    return bytes(side) + body, out


def decode_group(data: bytes, prevs: list[torch.Tensor], bits: int) -> list[torch.Tensor]:
    """Inverse of :func:`encode_group`: the tensors (shapes of ``prevs``) of one group."""
    coder = coder_for_bits(bits)
    expected = sum(p.numel() for p in prevs)
    try:
        n, pos = decode_varint(data, 0, "NIRVANA value count")
    except BitstreamError as err:
        raise CorruptStreamError(f"NIRVANA group stream: {err}") from None
    if n != expected:
        raise CorruptStreamError(f"the NIRVANA group stream holds {n} values, the header implies {expected}")
    end = pos + 5 * len(prevs)
    if end > len(data):
        raise CorruptStreamError("NIRVANA group stream ends inside the per-tensor steps")
    steps, idx = [], []
    for k in range(len(prevs)):
        s = float(np.frombuffer(data[pos + 5 * k : pos + 5 * k + 4], "<f4")[0])
        i = data[pos + 5 * k + 4]
        if not (math.isfinite(s) and 0 <= s <= _MAX_STEP) or i >= len(coder.scale_table):
            raise CorruptStreamError("NIRVANA group stream has an invalid step or scale index")
        steps.append(s)
        idx.append(i)
    all_idx = np.concatenate([np.full(p.numel(), i, np.int32) for p, i in zip(prevs, idx)])
    try:
        sym = coder.decode(bytes(data[end:]), all_idx)
    except CorruptStreamError:
        raise
    except BitstreamError as err:
        raise CorruptStreamError(f"NIRVANA group stream: {err}") from None
    out, at = [], 0
    for p, s in zip(prevs, steps):
        r = torch.from_numpy(sym[at : at + p.numel()].astype(np.float32)).reshape(p.shape)
        at += p.numel()
        out.append(p + r * torch.tensor(s, dtype=torch.float32))
    return out


# -- the codec ------------------------------------------------------------------------------------


class NirvanaCodec(RenderedVideoCodec):
    """NIRVANA as a video codec plugin (see the module docstring).

    ``epochs`` is the fitting budget: passes over each group's frames (scaled per group by its
    motion; the first group gets twice as many). ``lr`` is Adam's peak learning rate for the first
    group, ``later_lr`` the factor for the later ones (they start from the previous group's
    weights: a gentler fine-tune keeps their residuals small), ``qat_share`` the share of each
    group's steps run on fake-quantised weights, ``group`` the frames per group, ``residual``
    whether groups after the first code their residual (the method) or their own weights (an
    ablation: same fitting, independent coding). The registry builds the codec with the defaults;
    tests and benchmarks pass their own.
    """

    name: ClassVar[str] = "nirvana"
    description: ClassVar[str] = ("NIRVANA (Maiya 2023) video INR: per-group patch networks, autoregressive "
                                  "quantised weight residuals, range coded")
    #: level -> (group-network parameters per pixel of a group, bits, narrowest MLP width); the
    #: floor keeps the levels apart on clips too small for the per-pixel budget
    levels: ClassVar[dict[int, tuple[float, int, int]]] = {1: (0.015, 7, 8), 2: (0.03, 8, 12), 3: (0.06, 8, 16),
                                                           4: (0.12, 8, 24), 5: (0.24, 8, 32)}
    default_quality = 3
    depth: ClassVar[int] = 2  # MLP layers before the tile layer

    def __init__(self, epochs: int = 200, lr: float = 5e-2, later_lr: float = 0.3, qat_share: float = 0.2,
                 group: int = 4, residual: bool = True, device: str | torch.device | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        if not 1 <= group <= 64:
            raise ValueError(f"nirvana: group size must be in 1..64, got {group}")
        self.epochs, self.lr, self.later_lr, self.qat_share = epochs, lr, later_lr, qat_share
        self.group, self.residual, self.seed = group, residual, seed
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> "NirvanaCodec":
        self.device = torch.device(device)
        return self

    # -- architecture --------------------------------------------------------------------------
    def base_arch(self, shape: tuple[int, int, int, int], quality: int) -> tuple[NirvanaArch, int]:
        """The level's architecture for a ``T x C x H x W`` clip (no per-group widths yet) and the
        base MLP width: the one whose network is closest to the level's parameters per group pixel,
        at least the level's floor."""
        per_pixel, bits, min_width = self._check_quality(quality)
        t, _, h, w = shape
        p = choose_patch(h, w)
        rows, cols = -(-h // p), -(-w // p)
        g = min(self.group, t)

        def arch_of(width: int) -> NirvanaArch:
            ch = max(4, round(width / 3))  # conv head channels grow with the width, a third of it
            return NirvanaArch(t, h, w, p, g, _n_freq(rows, cols, g), self.depth, ch, ch, bits, self.residual)

        target = per_pixel * g * rows * cols * p * p
        best, best_err = min_width, float("inf")
        for width in range(min_width, 513):
            n = arch_of(width).n_params(width)
            if abs(n - target) < best_err:
                best, best_err = width, abs(n - target)
            elif n > target:
                break
        return arch_of(best), best

    @staticmethod
    def adapt(motion: list[float], width: int) -> tuple[list[int], list[float]]:
        """Per-group widths and step multipliers from the groups' motion (module docstring)."""
        mean = sum(motion) / len(motion)
        rel = [m / mean if mean > 1e-6 else 1.0 for m in motion]
        widths = [max(4, min(1024, round(width * min(1.5, max(0.75, math.sqrt(a)))))) for a in rel]
        mults = [min(2.0, max(0.5, a)) for a in rel]
        mults[0] *= 2  # the first group is fitted from scratch
        return widths, mults

    # -- encoding (fitting) ----------------------------------------------------------------------
    def encode(self, x: torch.Tensor, quality: int, *, fps=None, progress: ProgressFn | None = None) -> Payload:
        t, c, h, w = self._check_input(x)
        arch, width = self.base_arch((t, c, h, w), quality)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        dev = self.device
        x3 = x.detach().float().cpu().expand(t, 3, h, w)
        frames = pad_to(x3, arch.patch).to(dev)
        hp, wp = frames.shape[-2:]
        rows, cols = arch.grid
        motion_widths, mults = self.adapt(group_motion(x3, arch.group), width)
        # frames per step: the whole group on small clips, fewer on big ones (the conv head sees
        # whole frames, so a batch is a set of frames)
        per_step = max(1, min(arch.group, (1 << 18) // (hp * wp)))
        starts = list(range(0, t, arch.group))
        plan = [max(1, round(self.epochs * -(-min(arch.group, t - s) // per_step) * mults[k]))
                for k, s in enumerate(starts)]
        total, done = sum(plan), 0
        streams: list[bytes] = []
        widths: list[int] = []
        prev_hat: dict[str, torch.Tensor] | None = None
        target = math.inf  # the quality the first group reached: what later groups have to match
        for k, s in enumerate(starts):
            n = min(arch.group, t - s)
            feats = _coords(arch, n, rows, cols, dev)
            gt = frames[s : s + n]
            width_k, steps = motion_widths[k], plan[k]
            start_psnr = math.nan
            if prev_hat is not None:
                start_psnr = _render_psnr(arch, widths[-1], prev_hat, feats, gt, per_step)
                if start_psnr >= target:  # the previous network already renders this group well enough
                    width_k, steps = widths[-1], 0
            widths.append(width_k)
            net = PatchNet(arch, width_k)
            if prev_hat is not None:
                _init_from(net, prev_hat)
            net = net.to(dev)
            names = sorted(net.state_dict())
            prevs = {name: torch.zeros_like(v) for name, v in net.state_dict().items()}
            if prev_hat is not None and arch.residual:
                prevs = {name: _resize(prev_hat[name], v.shape) for name, v in net.state_dict().items()}
            prevs_dev = {name: v.to(dev) for name, v in prevs.items()}
            # Adam moves every weight by about lr per step: wider networks need a smaller one
            lr = self.lr * min(1.0, 24 / width_k) * (1.0 if k == 0 else self.later_lr)
            opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.99))
            qat_from = int(steps * (1 - self.qat_share))
            for step in range(steps):
                quant = step >= qat_from
                for g in opt.param_groups:
                    g["lr"] = cosine_lr(step, steps, lr)
                sel = torch.randperm(n, generator=gen)[:per_step].to(dev)
                params = dict(net.named_parameters())
                if quant:  # the file's grid, straight-through gradients
                    params = {name: _fake_quant(v, prevs_dev[name], arch.bits) for name, v in params.items()}
                out = functional_call(net, params, (feats[sel], rows, cols))
                loss = F.mse_loss(out, gt[sel])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                done += 1
                fit = 10 * math.log10(1 / max(loss.item(), 1e-12))
                report(progress, done, total, f"group {k + 1}/{len(starts)}: fit {fit:.2f} dB"
                       + (" (quantised)" if quant else ""))
            if steps == 0:
                done += plan[k]
                report(progress, done, total, f"group {k + 1}/{len(starts)}: {start_psnr:.2f} dB from the "
                       "previous group's network, not fitted")
            sd = {name: v.detach().float().cpu() for name, v in net.state_dict().items()}
            stream, hat = encode_group([sd[m] for m in names], [prevs[m] for m in names], arch.bits)
            streams.append(stream)
            prev_hat = dict(zip(names, hat))
            if k == 0:
                target = _render_psnr(arch, width_k, prev_hat, feats, gt, per_step)
        arch = replace(arch, widths=tuple(widths))
        return Payload(shape=(t, c, h, w), quality=quality, params=arch.to_bytes(), streams=tuple(streams))

    # -- decoding --------------------------------------------------------------------------------
    def decode_groups(self, payload: Payload) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(first_frame, frames)`` group by group (``frames``: ``n x C x H x W`` in [0, 1]).

        Only the current and previous group's weights are held, so memory does not grow with the
        clip's length; a damaged stream raises when its group is reached.
        """
        t, c, h, w = self._check_payload(payload, streams=None, params=True)
        arch = NirvanaArch.from_bytes(payload.params)
        if (arch.frames, arch.height, arch.width) != (t, h, w):
            raise CorruptStreamError(f"NIRVANA networks were fitted to {arch.frames} frames of {arch.width}x"
                                     f"{arch.height}, the header says {t} frames of {w}x{h}")
        n_groups = arch.n_groups
        if len(payload.streams) != n_groups:
            raise CorruptStreamError(f"NIRVANA expects {n_groups} streams (one per group), got {len(payload.streams)}")
        rows, cols = arch.grid
        prev_hat: dict[str, torch.Tensor] | None = None
        dev = self.device
        for k in range(n_groups):
            n = min(arch.group, t - k * arch.group)
            with torch.device("meta"):  # shapes only: the weights come from the stream
                shapes = {name: v.shape for name, v in PatchNet(arch, arch.widths[k]).state_dict().items()}
            names = sorted(shapes)
            if prev_hat is not None and arch.residual:
                prevs = [_resize(prev_hat[m], shapes[m]) for m in names]
            else:
                prevs = [torch.zeros(shapes[m]) for m in names]
            hat = decode_group(payload.streams[k], prevs, arch.bits)
            prev_hat = dict(zip(names, hat))
            net = PatchNet(arch, arch.widths[k])
            net.load_state_dict(prev_hat)
            net = net.to(dev).eval()
            out = torch.empty(n, c, h, w)
            with torch.inference_mode():
                feats = _coords(arch, n, rows, cols, dev)
                for i in range(n):  # frame by frame: the conv head's activations are per frame
                    y = net(feats[i : i + 1], rows, cols)[0, :, :h, :w].float().cpu()
                    y = torch.nan_to_num(y, nan=0.0).clamp_(0, 1)  # damaged weights: never NaN pixels
                    out[i] = y.mean(0, keepdim=True) if c == 1 else y
            yield k * arch.group, out

    def render(self, payload: Payload, index: int | None = None) -> Iterator[torch.Tensor]:
        """The frames in order, group by group (:class:`RenderedVideoCodec`: ``decode`` and the
        streamed ``decode_frames`` come from here; a stream holds one group's frames)."""
        groups = self.decode_groups(payload)
        return (f for _, frames in groups for f in frames)

    @staticmethod
    def quality_report(x: torch.Tensor, y: torch.Tensor) -> float:
        """PSNR (dB) of a decoded clip against the original (a helper for benchmarks)."""
        return psnr(x, y)


@torch.no_grad()
def _render_psnr(arch: NirvanaArch, width: int, weights: dict[str, torch.Tensor], feats: torch.Tensor,
                 gt: torch.Tensor, per_step: int) -> float:
    """PSNR of the network ``weights`` (MLP ``width``) rendering the frames ``gt`` (padded, 3 channels)."""
    net = PatchNet(arch, width)
    net.load_state_dict(weights)
    net = net.to(gt.device).eval()
    rows, cols = arch.grid
    se = sum(F.mse_loss(net(feats[i : i + per_step], rows, cols), gt[i : i + per_step], reduction="sum").item()
             for i in range(0, gt.shape[0], per_step))
    return 10 * math.log10(gt.numel() / max(se, 1e-12))


def _init_from(net: PatchNet, prev: dict[str, torch.Tensor]) -> None:
    """Start ``net`` from the previous group's dequantised weights (cut or padded to its width).

    New neurons keep their random incoming weights but get zero outgoing weights (input columns
    beyond the previous width), so the network computes the previous group's function at first.
    """
    sd = net.state_dict()
    for name, v in sd.items():
        old = prev[name]
        idx = tuple(slice(0, min(a, b)) for a, b in zip(old.shape, v.shape))
        if v.dim() >= 2 and v.shape[1] > old.shape[1]:
            v[:, old.shape[1]:] = 0
        v[idx] = old[idx].to(v.dtype)
    net.load_state_dict(sd)
