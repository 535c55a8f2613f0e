"""``pfnr``: Progressive Fourier Neural Representation -- several videos in one growing network.

Kang et al., "Progressive Fourier Neural Representation for Sequential Video Compilation",
ICLR 2024; built on Winning SubNetworks (WSN: Kang et al., "Forget-free Continual Learning with
Winning Subnetworks", ICML 2022) and NeRV (Chen et al., "NeRV: Neural Representations for
Videos", NeurIPS 2021). Videos are encoded *sequentially* into one network: session 1 fits video
1, session 2 adds video 2 to the same network, and so on; every earlier video still decodes
bit-exactly after later ones are added.

What is built here
------------------
*Network* (NeRV-style, :class:`PFNRNet`): the frame index ``t = i / T`` goes through NeRV's
positional encoding (``sin / cos(1.25^l * pi * t)``, ``l < pe_levels``), a two-layer MLP (GELU)
to a ``fc_dim x h0 x w0`` feature map, then one NeRV block per stride (3x3 conv to
``C_out * s^2`` channels -> PixelShuffle(s) -> GELU; widths fall by ``reduce_pct`` per block down
to ``min_ch``) and a 3x3 conv + sigmoid to RGB. The architecture is fixed by session 1 (it is
sized for that video and the quality level) and shared by all later sessions; what "grows" is
the set of weights in use.

*Fourier Subneural Operator* (FSO, :func:`fso`): the first ``fso_blocks`` NeRV blocks start with
``x <- x + irfft2(W * rfft2(x))``: the feature map goes to the Fourier domain, the lowest
``fso_modes`` frequencies per axis (positive and negative rows, the non-negative half of the
columns) are multiplied by a complex weight per (channel, frequency), the rest are dropped, and
the inverse FFT returns to pixels (a global, per-channel spectral filter, FNO-style but
depthwise to stay small). The complex weight is two real tensors (real part, imaginary part),
each masked like every other weight, so a video's subnetwork picks which frequency components of
which channels it uses -- PFNR's "Fourier subneural operator". Not reproduced from the paper: its
exact placement/width of the FSO layers and its SSIM term in the loss (plain L2 here).

*Winning subnetworks* (:class:`_Masked`): every weight tensor (two or more dims: MLP matrices,
conv kernels, FSO real/imag parts) has a learned score per weight; session ``s`` uses the
``capacity_pct`` % of weights with the largest ``|score|`` in each tensor (a binary mask; the
straight-through estimator passes the gradient to the scores, as in WSN). Weights that an earlier
session uses are FROZEN at their stored (dequantised) values: session ``s`` may reuse them through
its mask, but trains only the free weights it selects. Biases are per session (a few float16
numbers each), so every video also has its own offsets.

Bit-exactness after appending
-----------------------------
Session ``s`` owns exactly one stream, written once and never re-encoded: it holds its mask, the
weights it *adds* (selected and not used by any earlier session) and its biases. The weights are
quantised on a grid fixed in that stream: per tensor and session, a symmetric step
``max|new weights| / (2^(bits-1) - 1)`` (float32) and the integer of each new weight; the
quantisation-aware phase of the fit (the last ``qat_share`` of the steps) trains with exactly that
grid. No later session re-quantises them: it reads the integers back and keeps those values frozen.
Decoding video ``s`` reads streams ``0..s`` only (weights that later sessions add are never even
loaded, so they cannot leak in, not even as ``-0.0``), and renders frame by frame through the
same code path, so appending videos leaves an earlier video's output tensor identical
(``torch.equal``).

File layout
-----------
All videos of one file share H and W (the network renders one canvas size); each video keeps its
own frame count and channel count. The container's shape is the *last* added video's
``(T, C, H, W)``, so :meth:`PFNRCodec.decode` returns the last video and
:meth:`PFNRCodec.decode_clip` any video. The container's quality is the level the network was
built for in session 1; appended videos use that network and its mask density. Decoding video
``s`` reads streams ``0..s``. ``params`` (:class:`PFNRArch`): a version byte, then
varints ``H, W, fc_dim, hidden, pe_levels, reduce_pct, min_ch, fso_blocks, fso_modes,
capacity_pct, weight_bits, n_strides, strides..., n_sessions, (T, C) per session``.
Stream ``s`` (one per session; every multi-byte number little-endian)::

    varint   s (the session this stream belongs to)
    varint   N: number of maskable weights in the network (must match params)
    per maskable tensor j, in the network's fixed order:
      varint reuse_j   ones of the mask among the weights earlier sessions use
      varint new_j     ones among the free weights (the weights this session adds);
                       reuse_j + new_j must be the tensor's top-k count
      if new_j > 0:    float32 step_j, uint8 scale_index_j
    float16  biases of every layer (this session's own)
    varint   byte length of the mask body
    varint   byte length of the weight body (the two lengths account for every remaining byte)
    mask body:   range-coded mask bits (constriction, 32-bit words): per tensor, the bits at the
                 positions earlier sessions use, under Bernoulli(reuse_j / n_used_j), then the
                 bits at the free positions, under Bernoulli(new_j / n_free_j); a group whose
                 density is 0 or 1 costs nothing (its count says it all)
    weight body: range-coded integers of the new weights (flat order of their positions), per
                 tensor a zero-mean quantised Gaussian on [-(2^(bits-1)-1), 2^(bits-1)-1] whose
                 standard deviation is scale_table[scale_index_j] (the table of .quant)

A decoder checks every count against what it decoded (a mask with another number of ones, a
body with bytes left over, a stream of another session is a :class:`CorruptStreamError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Iterator, NamedTuple, Sequence

import constriction
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bitstream.container import MAX_FRAMES, MAX_VIDEO_PIXELS
from ..bitstream.errors import BitstreamError, CorruptStreamError, LimitError, TruncatedError
from ..bitstream.varint import decode_varint, encode_varint
from .base import ClipInfo, Payload
from .video_base import ProgressFn, RenderedVideoCodec
from ..nn.inr import pad_to
from ..bitstream.fields import check_end, check_version, pack_fields, read_fields
from ..engine.fit import cosine_lr, report
from ..util import psnr
from ..entropy.params import coder_for_bits

__all__ = ["PFNRArch", "PFNRNet", "PFNRCodec", "SessionInfo", "fso", "choose_strides"]

_VERSION = 1
#: Limits a header must respect before anything is built from it.
MAX_SESSIONS = 255
MAX_PARAMS = 16_000_000
MAX_MASK_BITS = 1 << 30  # weights x sessions: bounds the work of decoding the masks of a file
#: Stride sets by total upsampling, largest first (NeRV uses 5,2,2,2,2 / 5,4,2,2,2 / ...).
_STRIDE_SETS = ((5, 4, 2, 2, 2), (5, 2, 2, 2, 2), (2, 2, 2, 2, 2), (2, 2, 2, 2), (2, 2, 2), (2, 2), (2,))
_PE_BASE = 1.25

_models = constriction.stream.model
_queue = constriction.stream.queue


def choose_strides(h: int, w: int) -> tuple[int, ...]:
    """The largest upsampling that leaves the first feature map at least 3 cells on its short side."""
    for st in _STRIDE_SETS:
        if min(h, w) / math.prod(st) >= 3:
            return st
    return _STRIDE_SETS[-1]


# -- architecture ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PFNRArch:
    """The shared network (fixed by session 1) plus the sessions' clip sizes: the file's ``params``."""

    height: int
    width: int
    strides: tuple[int, ...]
    fc_dim: int  # channels of the MLP's feature map (and of the first block)
    hidden: int  # MLP hidden width
    pe_levels: int = 8
    reduce_pct: int = 125
    min_ch: int = 8
    fso_blocks: int = 2  # the first blocks that start with a Fourier subneural operator
    fso_modes: int = 4
    capacity_pct: int = 30  # mask density c of every session, per tensor
    weight_bits: int = 8
    sessions: tuple[tuple[int, int], ...] = ()  # (T, C) per session, in order

    @property
    def stride(self) -> int:
        return math.prod(self.strides)

    @property
    def grid(self) -> tuple[int, int]:
        """``(h0, w0)``: the MLP's feature map; the canvas is ``grid * stride`` >= (H, W)."""
        return -(-self.height // self.stride), -(-self.width // self.stride)

    def widths(self) -> list[int]:
        """Output channels of every NeRV block."""
        out, c = [], float(self.fc_dim)
        for _ in self.strides:
            out.append(max(int(round(c)), min(self.min_ch, self.fc_dim)))
            c /= self.reduce_pct / 100
        return out

    def fso_shape(self, block: int) -> tuple[int, int, int, int, int]:
        """``(C, h, w, kept_rows, kept_cols)`` of block ``block``'s FSO (on its input map)."""
        h0, w0 = self.grid
        up = math.prod(self.strides[:block])
        cin = self.fc_dim if block == 0 else self.widths()[block - 1]
        h, w = h0 * up, w0 * up
        return cin, h, w, (h if h <= 2 * self.fso_modes else 2 * self.fso_modes), min(w // 2 + 1, self.fso_modes)

    def masked_shapes(self) -> list[tuple[str, tuple[int, ...], int]]:
        """``(name, shape, fan_in)`` of every maskable tensor, in the file's fixed order."""
        h0, w0 = self.grid
        out: list[tuple[str, tuple[int, ...], int]] = [
            ("mlp1", (self.hidden, 2 * self.pe_levels), 2 * self.pe_levels),
            ("mlp2", (self.fc_dim * h0 * w0, self.hidden), self.hidden),
        ]
        cin = self.fc_dim
        for i, (s, c) in enumerate(zip(self.strides, self.widths())):
            if i < self.fso_blocks:
                ch, _, _, kr, kc = self.fso_shape(i)
                out += [(f"fso{i}.re", (ch, kr, kc), 1), (f"fso{i}.im", (ch, kr, kc), 1)]
            out.append((f"conv{i}", (c * s * s, cin, 3, 3), cin * 9))
            cin = c
        out.append(("head", (3, cin, 3, 3), cin * 9))
        return out

    def bias_sizes(self) -> list[int]:
        """Lengths of the per-session bias vectors (MLP layers, blocks, head), in file order."""
        h0, w0 = self.grid
        return [self.hidden, self.fc_dim * h0 * w0, *(c * s * s for s, c in zip(self.strides, self.widths())), 3]

    def n_params(self) -> int:
        """Maskable weights of the network (computed without building it)."""
        return sum(math.prod(shape) for _, shape, _ in self.masked_shapes())

    def topk(self, numel: int) -> int:
        """Mask ones of a tensor of ``numel`` weights: ``capacity_pct`` %, at least one (integer maths)."""
        return max(1, (self.capacity_pct * numel + 50) // 100)

    def to_bytes(self) -> bytes:
        return pack_fields(_VERSION, [self.height, self.width, self.fc_dim, self.hidden, self.pe_levels,
                                      self.reduce_pct, self.min_ch, self.fso_blocks, self.fso_modes,
                                      self.capacity_pct, self.weight_bits, len(self.strides), *self.strides,
                                      len(self.sessions), *(v for tc in self.sessions for v in tc)])

    @classmethod
    def from_bytes(cls, data: bytes) -> "PFNRArch":
        """Parse and validate ``params``; a crafted header is a LimitError / CorruptStreamError."""
        base = [("height", 1, 1 << 16), ("width", 1, 1 << 16), ("fc_dim", 1, 1024), ("hidden", 1, 1024),
                ("pe_levels", 1, 64), ("reduce_pct", 100, 400), ("min_ch", 1, 256), ("fso_blocks", 0, 8),
                ("fso_modes", 1, 64), ("capacity_pct", 1, 100), ("weight_bits", 2, 16), ("n_strides", 1, 8)]
        try:
            f, pos = read_fields(data, check_version(data, _VERSION), base)
            n = f.pop("n_strides")
            st, pos = read_fields(data, pos, [(f"stride {i}", 2, 8) for i in range(n)])
            (ns,), pos = _values(read_fields(data, pos, [("n_sessions", 1, MAX_SESSIONS)]))
            sessions = []
            for i in range(ns):
                fields, pos = read_fields(data, pos, [(f"session {i} frames", 1, MAX_FRAMES),
                                                      (f"session {i} channels", 1, 3)])
                t, c = fields.values()
                if c == 2:
                    raise CorruptStreamError(f"session {i} has 2 channels (1 or 3 only)")
                sessions.append((t, c))
        except TruncatedError as err:  # the container is intact, so a short header is a corrupt payload
            raise CorruptStreamError(f"PFNR parameters: {err}") from None
        check_end(data, pos)
        arch = cls(strides=tuple(st.values()), sessions=tuple(sessions), **f)
        if arch.fso_blocks > len(arch.strides):
            raise CorruptStreamError(f"{arch.fso_blocks} FSO blocks in a network of {len(arch.strides)} blocks")
        h0, w0 = arch.grid
        canvas = h0 * w0 * arch.stride * arch.stride
        if canvas > 4 * arch.height * arch.width + 64:  # the stride cannot blow up the rendered canvas
            raise LimitError(f"PFNR stride {arch.stride} is out of proportion to a {arch.width}x{arch.height} clip")
        if arch.n_params() > MAX_PARAMS:
            raise LimitError(f"PFNR network of {arch.n_params():,} weights is beyond any quality level")
        if arch.n_params() * len(sessions) > MAX_MASK_BITS:  # decoding reads every session's mask
            raise LimitError(f"{len(sessions)} masks of {arch.n_params():,} weights are beyond the decoder's limit")
        for t, _ in sessions:
            if t * arch.height * arch.width > MAX_VIDEO_PIXELS:
                raise LimitError(f"a session of {t} frames of {arch.width}x{arch.height} is beyond the pixel limit")
        return arch


def _values(res: tuple[dict[str, int], int]) -> tuple[tuple[int, ...], int]:
    return tuple(res[0].values()), res[1]


# -- network -----------------------------------------------------------------------------------


class _Masked(nn.Module):
    """One maskable weight tensor: its values, its scores, and what earlier sessions froze.

    Training: ``forward()`` returns ``where(used, fixed, w) * topk_mask(|score|)`` with a
    straight-through gradient to the scores (WSN); ``w`` goes through fake quantisation on this
    session's grid while ``bits`` is set. Decoding: ``mask`` is set and ``forward()`` is
    ``where(mask, fixed, 0)`` -- only stored values, never a trained float.
    """

    def __init__(self, shape: tuple[int, ...], fan_in: int, k: int, bound: float | None = None) -> None:
        super().__init__()
        # nn.Conv2d's default range, widened by 1 / sqrt(density): a mask keeping k of n weights
        # would otherwise shrink every layer's output and the signal would fade with depth
        b = bound if bound is not None else 1 / math.sqrt(max(1, fan_in) * k / math.prod(shape))
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-b, b))
        self.score = nn.Parameter(torch.empty(shape).uniform_(-b, b))
        self.register_buffer("fixed", torch.zeros(shape))
        self.register_buffer("used", torch.zeros(shape, dtype=torch.bool))
        self.register_buffer("mask", None)
        self.k = k
        self.bits: int | None = None

    @classmethod
    def stored(cls, fixed: torch.Tensor, mask: torch.Tensor) -> "_Masked":
        """A decoding-only tensor: stored values and a session's mask, no scores, no random init."""
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self.register_buffer("fixed", fixed)
        self.register_buffer("mask", mask)
        return self

    def hard_mask(self) -> torch.Tensor:
        flat = self.score.detach().abs().reshape(-1)
        m = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
        m[torch.topk(flat, self.k, sorted=False).indices] = True
        return m.reshape(self.score.shape)

    def step(self, new: torch.Tensor) -> torch.Tensor:
        """This session's quantisation step (float32 scalar) for the weights at ``new``."""
        return _step(self.weight.detach()[new], self.bits or 8)

    def forward(self) -> torch.Tensor:
        if self.mask is not None:
            return torch.where(self.mask, self.fixed, torch.zeros((), device=self.fixed.device))
        hard = self.hard_mask()
        a = self.score.abs()
        m = hard.to(a.dtype) + (a - a.detach())  # straight-through: d mask / d |score| = 1
        w = self.weight
        if self.bits is not None:
            step = self.step(hard & ~self.used)
            w = w + ((w.detach() / step).round() * step - w.detach())
        return torch.where(self.used, self.fixed, w) * m


def _step(values: torch.Tensor, bits: int) -> torch.Tensor:
    levels = (1 << (bits - 1)) - 1
    amax = values.abs().amax().float() if values.numel() else torch.zeros(())
    return torch.where(amax > 0, amax / levels, torch.ones(())).float()


def fso(x: torch.Tensor, re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """Fourier subneural operator: ``irfft2(W * rfft2(x))`` over the kept low frequencies.

    ``x`` is ``N x C x h x w``; ``re`` / ``im`` are ``C x kr x kc``: rows ``0..kr/2-1`` and the last
    ``kr/2`` rows (negative vertical frequencies; every row when ``kr == h``), columns ``0..kc-1``.
    """
    h, w = x.shape[-2:]
    kr, kc = re.shape[-2:]
    spec = torch.fft.rfft2(x, norm="ortho")
    wc = torch.complex(re, im)
    out = torch.zeros_like(spec)
    if kr == h:
        out[..., :, :kc] = spec[..., :, :kc] * wc
    else:
        half = kr // 2
        out[..., :half, :kc] = spec[..., :half, :kc] * wc[:, :half]
        out[..., h - half:, :kc] = spec[..., h - half:, :kc] * wc[:, half:]
    return torch.fft.irfft2(out, s=(h, w), norm="ortho")


class PFNRNet(nn.Module):
    """Frame positions ``t`` (N,) in [0, 1) -> frames (N, 3, h0 * S, w0 * S) in [0, 1]."""

    def __init__(self, arch: PFNRArch, layers: Sequence[_Masked] | None = None,
                 biases: Sequence[torch.Tensor] | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.masked = nn.ModuleDict()
        for i, (name, shape, fan_in) in enumerate(arch.masked_shapes()):
            bound = 0.1 if name.startswith("fso") else None  # a gentle spectral filter at the start
            layer = layers[i] if layers is not None else _Masked(shape, fan_in, arch.topk(math.prod(shape)), bound)
            self.masked[name.replace(".", "_")] = layer
        if biases is None:
            convs = [shape for n, shape, _ in arch.masked_shapes() if n.startswith("conv")]
            fans = [2 * arch.pe_levels, arch.hidden, *(shape[1] * 9 for shape in convs)]
            biases = [torch.empty(n).uniform_(-1 / math.sqrt(f), 1 / math.sqrt(f))
                      for n, f in zip(arch.bias_sizes()[:-1], fans)] + [torch.zeros(3)]
        self.biases = nn.ParameterList([nn.Parameter(b, requires_grad=layers is None) for b in biases])
        self.register_buffer("freqs", _PE_BASE ** torch.arange(arch.pe_levels, dtype=torch.float32) * math.pi)
        self.bias_bits: bool = False  # fake float16 rounding of the biases (quantisation-aware phase)

    @classmethod
    def for_decoding(cls, arch: PFNRArch, fixed: Sequence[torch.Tensor], masks: Sequence[torch.Tensor],
                     biases: Sequence[torch.Tensor]) -> "PFNRNet":
        """The network of one session from stored values only (no scores, no random numbers drawn)."""
        return cls(arch, [_Masked.stored(f, m) for f, m in zip(fixed, masks)], biases)

    def layers(self) -> list[_Masked]:
        return list(self.masked.values())

    def _bias(self, i: int) -> torch.Tensor:
        b = self.biases[i]
        return b + (b.detach().half().float() - b.detach()) if self.bias_bits else b

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        a, m = self.arch, self.masked
        h0, w0 = a.grid
        ang = t.float()[:, None] * self.freqs[None, :]
        x = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
        x = F.gelu(F.linear(x, m["mlp1"](), self._bias(0)))
        x = F.gelu(F.linear(x, m["mlp2"](), self._bias(1))).reshape(-1, a.fc_dim, h0, w0)
        for i, s in enumerate(a.strides):
            if i < a.fso_blocks:
                x = x + fso(x, m[f"fso{i}_re"](), m[f"fso{i}_im"]())
            x = F.gelu(F.pixel_shuffle(F.conv2d(x, m[f"conv{i}"](), self._bias(2 + i), padding=1), s))
        return torch.sigmoid(F.conv2d(x, m["head"](), self._bias(len(a.strides) + 2), padding=1))


def _positions(t: int) -> torch.Tensor:
    return torch.arange(t, dtype=torch.float32) / t


# -- stream coding -----------------------------------------------------------------------------


class _TensorHead(NamedTuple):
    reuse: int
    new: int
    step: float
    scale: int


class _Stream(NamedTuple):
    heads: list[_TensorHead]
    biases: list[np.ndarray]
    mask_body: bytes
    weight_body: bytes


class SessionInfo(NamedTuple):
    """What one session's stream holds (see :meth:`PFNRCodec.inspect`)."""

    frames: int
    channels: int
    weights: int  # maskable weights of the network
    mask_ones: int  # weights this video uses
    new_weights: int  # of which it adds (the rest are reused, frozen)
    mask_bytes: int  # the range-coded masks
    weight_bytes: int  # the range-coded new weights
    stream_bytes: int


def _words(body: bytes) -> np.ndarray:
    if len(body) % 4:
        raise CorruptStreamError("PFNR range-coded body length is not a multiple of 4 bytes")
    return np.frombuffer(body, dtype="<u4").astype(np.uint32)


def _checked_decode(dec, model, n: int) -> np.ndarray:
    try:
        return np.asarray(dec.decode(model, n))
    except (AssertionError, ValueError, RuntimeError, OverflowError) as err:
        raise CorruptStreamError(f"PFNR range-coded data is invalid for its model: {err}") from None


def _bernoulli(ones: int, n: int):
    return _models.Bernoulli(ones / n, perfect=False)


def _gauss(bits: int, std: float):
    lim = (1 << (bits - 1)) - 1
    return _models.QuantizedGaussian(-lim, lim, 0.0, float(std))


def _write_stream(s: int, arch: PFNRArch, used: Sequence[torch.Tensor], masks: Sequence[torch.Tensor],
                  qs: Sequence[np.ndarray], steps: Sequence[float], biases: Sequence[torch.Tensor]) -> bytes:
    """Session ``s``'s stream (layout in the module docstring)."""
    table = coder_for_bits(arch.weight_bits).scale_table
    side = bytearray(encode_varint(s) + encode_varint(arch.n_params()))
    menc, wenc = _queue.RangeEncoder(), _queue.RangeEncoder()
    for u, m, q, step in zip(used, masks, qs, steps):
        u, m = u.reshape(-1).numpy(), m.reshape(-1).numpy()
        for group in (u, ~u):
            bits = m[group].astype(np.int32)
            ones = int(bits.sum())
            side += encode_varint(ones)
            if 0 < ones < bits.size:
                menc.encode(bits, _bernoulli(ones, bits.size))
        if q.size:
            rms = float(np.sqrt(np.mean(q.astype(np.float64) ** 2)))
            idx = int(min(np.searchsorted(table, max(rms, 1e-3)), len(table) - 1))
            side += np.float32(step).astype("<f4").tobytes() + bytes([idx])
            wenc.encode(q.astype(np.int32), _gauss(arch.weight_bits, table[idx]))
    side += b"".join(b.detach().cpu().reshape(-1).to(torch.float16).numpy().astype("<f2").tobytes() for b in biases)
    mbody = menc.get_compressed().astype("<u4").tobytes()
    wbody = wenc.get_compressed().astype("<u4").tobytes()
    return bytes(side) + encode_varint(len(mbody)) + encode_varint(len(wbody)) + mbody + wbody


def _parse_stream(data: bytes, s: int, arch: PFNRArch) -> _Stream:
    """Side information of session ``s``'s stream, checked; the bodies are left coded."""
    try:
        got, pos = decode_varint(data, 0, "session index")
        if got != s:
            raise CorruptStreamError(f"stream {s} says it belongs to session {got}")
        n, pos = decode_varint(data, pos, "weight count")
        if n != arch.n_params():
            raise CorruptStreamError(f"PFNR stream {s} is for {n} weights, the header's network has {arch.n_params()}")
        heads = []
        for name, shape, _ in arch.masked_shapes():
            numel = math.prod(shape)
            reuse, pos = decode_varint(data, pos, "mask count")
            new, pos = decode_varint(data, pos, "mask count")
            if reuse + new != arch.topk(numel):
                raise CorruptStreamError(f"PFNR mask of {name} in session {s} has {reuse + new} ones, "
                                         f"not the {arch.topk(numel)} of its capacity")
            step, scale = 1.0, 0
            if new:
                if pos + 5 > len(data):
                    raise CorruptStreamError("PFNR stream ends inside a quantisation step")
                step = float(np.frombuffer(data[pos : pos + 4], "<f4")[0])
                scale = data[pos + 4]
                pos += 5
                if not (math.isfinite(step) and step > 0) or scale >= 64:
                    raise CorruptStreamError(f"PFNR stream {s} has an invalid step or scale for {name}")
            heads.append(_TensorHead(reuse, new, step, scale))
        biases = []
        for size in arch.bias_sizes():
            end = pos + 2 * size
            if end > len(data):
                raise CorruptStreamError(f"PFNR stream {s} ends inside the biases")
            b = np.frombuffer(data[pos:end], "<f2").astype(np.float32)
            if not np.all(np.isfinite(b)):
                raise CorruptStreamError(f"PFNR stream {s} has a non-finite bias")
            biases.append(b)
            pos = end
        mlen, pos = decode_varint(data, pos, "mask body length")
        wlen, pos = decode_varint(data, pos, "weight body length")
        if pos + mlen + wlen != len(data):  # every byte accounted for: no more, no less
            raise CorruptStreamError(f"PFNR stream {s} holds {len(data) - pos} body bytes, "
                                     f"its header says {mlen} + {wlen}")
        return _Stream(heads, biases, bytes(data[pos : pos + mlen]), bytes(data[pos + mlen :]))
    except CorruptStreamError:
        raise
    except BitstreamError as err:  # a varint cut short or overlong inside a stream: the stream is bad
        raise CorruptStreamError(f"PFNR stream {s}: {err}") from None


class _State(NamedTuple):
    """Decoded weights after some sessions: per tensor the stored values and what is in use."""

    fixed: list[torch.Tensor]
    used: list[torch.Tensor]
    masks: list[torch.Tensor]  # the last decoded session's masks
    biases: list[torch.Tensor]  # the last decoded session's biases


def _load_sessions(arch: PFNRArch, streams: Sequence[bytes], upto: int) -> _State:
    """Decode streams ``0..upto`` (never a later one) into stored weights and session ``upto``'s mask."""
    shapes = [shape for _, shape, _ in arch.masked_shapes()]
    fixed = [torch.zeros(math.prod(sh)) for sh in shapes]
    used = [torch.zeros(math.prod(sh), dtype=torch.bool) for sh in shapes]
    table = coder_for_bits(arch.weight_bits).scale_table
    masks: list[torch.Tensor] = []
    biases: list[torch.Tensor] = []
    for s in range(upto + 1):
        st = _parse_stream(streams[s], s, arch)
        mdec, wdec = _queue.RangeDecoder(_words(st.mask_body)), _queue.RangeDecoder(_words(st.weight_body))
        masks = []
        for j, head in enumerate(st.heads):
            u = used[j].numpy()
            m = np.zeros(u.size, dtype=bool)
            for group, ones in ((u, head.reuse), (~u, head.new)):
                n = int(group.sum())
                if ones > n:
                    raise CorruptStreamError(f"PFNR stream {s}: {ones} mask ones among {n} weights")
                if 0 < ones < n:
                    bits = _checked_decode(mdec, _bernoulli(ones, n), n).astype(bool)
                    if int(bits.sum()) != ones:
                        raise CorruptStreamError(f"PFNR stream {s}: the decoded mask does not have {ones} ones")
                else:
                    bits = np.full(n, ones == n)
                m[group] = bits
            new = m & ~u
            if head.new:
                q = _checked_decode(wdec, _gauss(arch.weight_bits, table[head.scale]), head.new).astype(np.float32)
                # q * step in float32 on every machine: the stored value, identical for every later session
                fixed[j][torch.from_numpy(new)] = torch.from_numpy(q) * torch.tensor(head.step, dtype=torch.float32)
            used[j] |= torch.from_numpy(new)
            masks.append(torch.from_numpy(m))
        if not (mdec.maybe_exhausted() and wdec.maybe_exhausted()):
            raise CorruptStreamError(f"PFNR stream {s} has data left over after its masks and weights")
        biases = [torch.from_numpy(b.copy()) for b in st.biases]
    return _State([f.reshape(sh) for f, sh in zip(fixed, shapes)], [u.reshape(sh) for u, sh in zip(used, shapes)],
                  [m.reshape(sh) for m, sh in zip(masks, shapes)], biases)


# -- the codec ---------------------------------------------------------------------------------


def _fc_dim_for(target: int, strides: tuple[int, ...], h: int, w: int, min_fc: int) -> int:
    """The narrowest ``fc_dim >= min_fc`` whose network has at least ``target`` weights (<= 256)."""
    for fc in range(min_fc, 257):
        if PFNRArch(h, w, strides, fc, max(16, fc)).n_params() >= target:
            return fc
    return 256


class PFNRCodec(RenderedVideoCodec):
    """PFNR as a video codec plugin (see the module docstring).

    Single clip: ``encode`` / ``decode`` are a one-session network. Several videos:
    ``append(payload_or_file, clip)`` adds a session, ``decode_clip(payload_or_file, s)``
    decodes video ``s`` (0-based), ``inspect`` says what every session's stream holds.
    ``epochs`` (passes over a clip per session), ``lr``, ``batch`` and ``qat_share`` set the
    fitting budget; ``capacity`` (percent) overrides the level's mask density of a new file.
    """

    name: ClassVar[str] = "pfnr"
    description: ClassVar[str] = ("PFNR (Kang 2024) video INR: several videos in one network, per-video "
                                  "winning subnetworks with Fourier layers, coded masks + 8-bit weights")
    #: level -> (weights in use per clip pixel, narrowest fc_dim, mask density %): the network has
    #: ``per_pixel / density`` weights per pixel of the first clip, the rest is room for later videos;
    #: the floor keeps the levels apart on clips too small for the per-pixel budget
    levels: ClassVar[dict[int, tuple[float, int, int]]] = {1: (0.01, 6, 30), 2: (0.02, 8, 30), 3: (0.04, 11, 30),
                                                           4: (0.08, 16, 30), 5: (0.16, 22, 30)}
    default_quality = 3

    def __init__(self, epochs: int = 300, lr: float = 3e-2, batch: int = 8, qat_share: float = 0.2,
                 capacity: int | None = None, device: str | torch.device | None = None, seed: int = 0) -> None:
        super().__init__()
        if capacity is not None and not 1 <= int(capacity) <= 100:
            raise ValueError(f"capacity must be a percentage in 1..100, got {capacity}")
        self.epochs, self.lr, self.batch, self.qat_share, self.seed = epochs, lr, batch, qat_share, seed
        self.capacity = capacity
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> "PFNRCodec":
        self.device = torch.device(device)
        return self

    def arch_for(self, shape: tuple[int, int, int, int], quality: int) -> PFNRArch:
        """The network for a first clip of ``T x C x H x W`` at ``quality`` (no sessions yet)."""
        per_pixel, min_fc, cap = self._check_quality(quality)
        cap = self.capacity if self.capacity is not None else cap
        t, _, h, w = shape
        strides = choose_strides(h, w)
        fc = _fc_dim_for(int(per_pixel * t * h * w * 100 / cap), strides, h, w, min_fc)
        arch = PFNRArch(h, w, strides, fc, max(16, fc), capacity_pct=int(cap), fso_blocks=min(2, len(strides)))
        if arch.n_params() > MAX_PARAMS:  # never write a file the decoder would refuse
            raise ValueError(f"pfnr: a {w}x{h} clip needs a network beyond {MAX_PARAMS:,} weights")
        return arch

    # -- encoding ----------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, quality: int, *, fps=None, progress: ProgressFn | None = None) -> Payload:
        t, c, h, w = self._check_input(x)
        arch = self.arch_for((t, c, h, w), quality)
        stream = self._fit_session(arch, (), x, progress)
        return Payload(shape=(t, c, h, w), quality=quality, params=replace(arch, sessions=((t, c),)).to_bytes(),
                       streams=(stream,))

    def append(self, payload: Payload, x: torch.Tensor, *, progress: ProgressFn | None = None) -> Payload:
        """Add ``x`` as the next video of ``payload`` (:class:`~glocal_codec.codecs.MultiClip`).

        The earlier sessions' streams are copied unchanged, so their videos decode exactly as
        before. ``x`` must have the payload's H and W; its frame count and channels are its own.
        """
        if not isinstance(payload, Payload):
            raise TypeError(f"pfnr: append takes a Payload (the video API reads files), got {type(payload).__name__}")
        arch = self._arch_of(payload)
        t, c, h, w = self._check_input(x)
        if (h, w) != (arch.height, arch.width):
            raise ValueError(f"pfnr: every video of one file is {arch.width}x{arch.height}, got {w}x{h}")
        if len(arch.sessions) >= MAX_SESSIONS:
            raise ValueError(f"pfnr: a file holds at most {MAX_SESSIONS} videos")
        stream = self._fit_session(arch, payload.streams, x, progress)
        out = Payload(shape=(t, c, h, w), quality=payload.quality,
                      params=replace(arch, sessions=(*arch.sessions, (t, c))).to_bytes(),
                      streams=(*payload.streams, stream))
        return out

    def _fit_session(self, arch: PFNRArch, streams: Sequence[bytes], x: torch.Tensor,
                     progress: ProgressFn | None) -> bytes:
        """Fit session ``len(streams)`` on top of the decoded earlier ones; return its stream."""
        s = len(streams)
        t, _, h, w = x.shape
        state = _load_sessions(arch, streams, s - 1) if s else None
        torch.manual_seed(self.seed + 7919 * s)  # fresh, reproducible scores and free weights per session
        net = PFNRNet(arch)
        if state is not None:
            for layer, f, u in zip(net.layers(), state.fixed, state.used):
                layer.fixed.copy_(f)
                layer.used.copy_(u)
        dev = self.device
        net = net.to(dev)
        frames = pad_to(x.float().expand(t, 3, h, w), arch.stride).to(dev)
        pos = _positions(t).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, betas=(0.9, 0.99))
        steps_per_epoch = -(-t // self.batch)
        total = max(1, self.epochs * steps_per_epoch)
        qat_from = int(total * (1 - self.qat_share))
        gen = torch.Generator().manual_seed(self.seed + s)
        step = 0
        for _ in range(self.epochs):
            order = torch.randperm(t, generator=gen)
            for i in range(0, t, self.batch):
                quant = step >= qat_from
                for layer in net.layers():
                    layer.bits = arch.weight_bits if quant else None
                net.bias_bits = quant
                for g in opt.param_groups:
                    g["lr"] = cosine_lr(step, total, self.lr)
                idx = order[i : i + self.batch].to(dev)
                loss = F.mse_loss(net(pos[idx]), frames[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                db = 10 * math.log10(1 / max(loss.item(), 1e-12))
                report(progress, step, total, f"video {s + 1}: fit {db:.2f} dB" + (" (quantised)" if quant else ""))
        # what ships: this session's top-k masks, its new weights on its own grid, its biases
        net = net.cpu()
        used, masks, qs, steps = [], [], [], []
        with torch.no_grad():
            for layer in net.layers():
                m = layer.hard_mask()
                new = m & ~layer.used
                vals = layer.weight.detach()[new]
                st = _step(vals, arch.weight_bits)
                lim = (1 << (arch.weight_bits - 1)) - 1
                qs.append((vals / st).round().clamp_(-lim, lim).to(torch.int32).numpy())
                steps.append(float(st))
                used.append(layer.used.clone())
                masks.append(m)
        return _write_stream(s, arch, used, masks, qs, steps, list(net.biases))

    # -- decoding ----------------------------------------------------------------------------
    def clip_shape(self, payload: Payload, index: int | None = None) -> tuple[int, int, int, int]:
        """``(T, C, H, W)`` of video ``index`` (``None``: the last one, the container's shape)."""
        arch = self._arch_of(payload)
        s = self._session(arch, index)
        return (*arch.sessions[s], arch.height, arch.width)

    def render(self, payload: Payload, index: int | None = None) -> Iterator[torch.Tensor]:
        """The frames of video ``index`` (``None``: the file's last video, the one the
        container's shape describes); ``decode`` / ``decode_frames`` and their per-video
        ``decode_clip`` / ``decode_clip_frames`` come from here."""
        arch = self._arch_of(payload)
        return self._render(arch, payload.streams, self._session(arch, index))

    def decode_clip(self, payload: Payload, s: int, *, progress: ProgressFn | None = None) -> torch.Tensor:
        """Video ``s`` (0-based, in the order they were added) of a payload."""
        return self._collect(payload, s, progress)

    def decode_clip_frames(self, payload: Payload, s: int, *, progress: ProgressFn | None = None) -> Iterator[np.ndarray]:
        """Video ``s`` as ``H x W x C`` uint8 frames, decoded while they are consumed."""
        return self._frames_uint8(payload, s, progress)

    @staticmethod
    def _session(arch: PFNRArch, index: int | None) -> int:
        if index is None:
            return len(arch.sessions) - 1
        if not 0 <= index < len(arch.sessions):
            raise IndexError(f"pfnr: the file holds {len(arch.sessions)} video(s), no video {index}")
        return index

    def clips(self, payload: Payload) -> list[ClipInfo]:
        """Frames and channels of every video in the payload (:class:`~glocal_codec.codecs.MultiClip`)."""
        return [ClipInfo(t, c) for t, c in self._arch_of(payload).sessions]

    def inspect(self, payload: Payload) -> list[SessionInfo]:
        """Per session: frames, channels and the bytes of its masks and of its new weights."""
        arch = self._arch_of(payload)
        out = []
        for s, (t, c) in enumerate(arch.sessions):
            st = _parse_stream(payload.streams[s], s, arch)
            out.append(SessionInfo(t, c, arch.n_params(), sum(h.reuse + h.new for h in st.heads),
                                   sum(h.new for h in st.heads), len(st.mask_body), len(st.weight_body),
                                   len(payload.streams[s])))
        return out

    def _render(self, arch: PFNRArch, streams: Sequence[bytes], s: int) -> Iterator[torch.Tensor]:
        with torch.inference_mode():
            state = _load_sessions(arch, streams, s)  # checked now, before the first frame is asked for
            net = PFNRNet.for_decoding(arch, state.fixed, state.masks, state.biases).to(self.device).eval()
        t, c = arch.sessions[s]
        return self._frames(net, t, c, arch.height, arch.width)

    def _frames(self, net: PFNRNet, t: int, c: int, h: int, w: int) -> Iterator[torch.Tensor]:
        pos = _positions(t)
        for i in range(t):  # frame by frame: the same computation for a video whatever else the file holds
            with torch.inference_mode():
                y = net(pos[i : i + 1].to(self.device))[0, :, :h, :w].float().cpu()
            yield y.mean(0, keepdim=True) if c == 1 else y

    # -- helpers -----------------------------------------------------------------------------
    def _arch_of(self, payload: Payload) -> PFNRArch:
        """The validated architecture of a payload whose streams and shape agree with it."""
        t, c, h, w = self._check_payload(payload, streams=None, params=True)
        arch = PFNRArch.from_bytes(payload.params)
        if len(payload.streams) != len(arch.sessions):
            raise CorruptStreamError(f"pfnr: {len(arch.sessions)} video(s) in the header, "
                                     f"{len(payload.streams)} stream(s) in the file")
        if (t, c) != arch.sessions[-1] or (h, w) != (arch.height, arch.width):
            raise CorruptStreamError(f"pfnr: the file's shape {(t, c, h, w)} is not its last video's "
                                     f"{(*arch.sessions[-1], arch.height, arch.width)}")
        return arch

    @staticmethod
    def quality_report(x: torch.Tensor, y: torch.Tensor) -> float:
        """PSNR (dB) of a decoded clip against the original (a helper for benchmarks)."""
        return psnr(x, y)
