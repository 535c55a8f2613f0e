"""Quantisation and entropy coding of an INR's parameters and embeddings.

Public INR video codes (NeRV, HNeRV, NIRVANA) report rate as ``parameters x bits`` after
pruning/quantisation and an optional Huffman estimate; here the numbers become bytes.

* **Weights** (every tensor with two or more dimensions): symmetric per-output-channel uniform
  quantisation to ``bits`` bits, ``q = round(w / step_c)`` with ``step_c = max|w_c| / (2^(b-1) - 1)``
  (HNeRV's per-channel scheme). Quantisation-aware fine-tuning uses :func:`fake_quant` (the same
  rounding with a straight-through gradient), so the network learns to live with the grid.
* **Vectors** (biases, norm parameters, one-dimensional tensors): float16, raw. They are a tiny
  share of the parameters and rounding them is harmless.
* **Embeddings** (HNeRV's per-frame latents): per-channel affine quantisation to ``bits`` bits.

The integers go through :class:`glocal_codec.entropy.GaussianCoder` (constriction's range
coder): every output channel of a weight (every embedding channel) gets a zero-mean quantised
Gaussian whose standard deviation is that channel's own, picked from a log-spaced table and sent
as one byte. That costs a few percent over the empirical entropy and needs no probability table
in the file. INR decoding has no feedback loop through the entropy model, so float differences
between machines only perturb pixels, never the parsing.

Both streams start with a varint: the number of values they hold, so a header that announces
another network or clip size is caught before any decoding. Stream layout of
:func:`encode_tensors` (every multi-byte number little-endian)::

    varint  number of values (all tensors)
    per tensor, in the order the decoder's own model lists them:
      ndim >= 2: float32 step[C_out], uint8 scale_index[C_out]
      ndim <= 1: float16 values[numel]
    then the range-coded symbols of all multi-dimensional tensors (GaussianCoder stream)

``compact=True`` (the ``overfit`` codec's files from params version 3 on, where a kilobyte of
networks weighs against a few kilobytes of image) spends 1 byte per output channel instead of
5: the step is ``2**(e / 8)`` for a signed code ``e`` (one byte, the nearest to the plain scheme's
step), and one scale index serves the whole tensor (the per-channel steps already equalise the
channels' ranges)::

      ndim >= 2: int8 step_code[C_out], uint8 scale_index
      ndim <= 1: float16 values[numel]

Measured on ``overfit`` files (7 grids, ``fast``): 229 bytes less per file (the side information of
both networks from 413 to ~185 bytes), at the same weights up to the step's rounding.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from ..bitstream.errors import CorruptStreamError
from ..bitstream.varint import decode_varint, encode_varint
from .coder import GaussianCoder, default_scale_table

__all__ = [
    "STEP_CODE_RANGE",
    "MIN_BITS",
    "MAX_BITS",
    "fake_quant",
    "fake_quant_affine",
    "quantize_weight",
    "encode_tensors",
    "decode_tensors",
    "encode_embedding",
    "decode_embedding",
    "coder_for_bits",
]

MIN_BITS, MAX_BITS = 2, 16
#: Codes of the compact steps ``2**(e / 8)``: a signed byte, steps from 2^-16 to ~2^15.9.
STEP_CODE_RANGE = (-128, 127)
#: ``2**(m / 8)`` for m = 0..7 as correctly rounded float32 (written out: no libm ``pow`` decides
#: the decoder's weights); a compact step is one of them times an exact power of two.
_EIGHTHS = np.array([float.fromhex(h) for h in (
    "0x1.000000p+0", "0x1.172b84p+0", "0x1.306fe0p+0", "0x1.4bfdaep+0",
    "0x1.6a09e6p+0", "0x1.8ace54p+0", "0x1.ae89fap+0", "0x1.d5818ep+0")], np.float32)


def _check_bits(bits: int) -> int:
    if not MIN_BITS <= int(bits) <= MAX_BITS:
        raise ValueError(f"quantisation bits must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    return int(bits)


def coder_for_bits(bits: int) -> GaussianCoder:
    """A Gaussian coder whose alphabet and scale table cover ``bits``-bit integers."""
    top = float(1 << _check_bits(bits))
    return GaussianCoder(default_scale_table(0.11, top, 64), bound=1 << bits)


def _steps(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel step (float32), shaped to broadcast against ``w``."""
    levels = (1 << (bits - 1)) - 1
    amax = w.detach().reshape(w.shape[0], -1).abs().amax(dim=1).float()
    step = torch.where(amax > 0, amax / levels, torch.ones_like(amax))
    return step.reshape(-1, *([1] * (w.dim() - 1)))


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric quantise-dequantise with a straight-through gradient."""
    if w.dim() < 2:
        return w + (w.detach().half().float() - w.detach())  # vectors are stored as float16
    step = _steps(w, bits).to(w.dtype)
    return w + ((w.detach() / step).round() * step - w.detach())


def fake_quant_affine(e: torch.Tensor, bits: int, dim: int = 1) -> torch.Tensor:
    """Per-channel (along ``dim``) affine quantise-dequantise with a straight-through gradient."""
    lo, step = _affine_params(e.detach(), bits, dim)
    return e + (((e.detach() - lo) / step).round() * step + lo - e.detach())


def _affine_params(e: torch.Tensor, bits: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    moved = e.float().transpose(0, dim).reshape(e.shape[dim], -1)
    lo, hi = moved.amin(dim=1), moved.amax(dim=1)
    step = torch.where(hi > lo, (hi - lo) / ((1 << bits) - 1), torch.ones_like(lo))
    shape = [1] * e.dim()
    shape[dim] = -1
    return lo.reshape(shape), step.reshape(shape)


def quantize_weight(w: torch.Tensor, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(q, step)``: int32 symbols of ``w`` (same shape) and the float32 per-channel steps."""
    step = _steps(w, bits)
    q = (w.detach().float() / step).round().to(torch.int32)
    return q.numpy(), step.reshape(-1).numpy().astype(np.float32)


def compact_step(code: np.ndarray) -> np.ndarray:
    """``2**(code / 8)`` as float32, exactly the same on every machine (a table entry times an
    exact power of two)."""
    code = np.asarray(code, np.int64)
    return np.ldexp(_EIGHTHS[code % 8], code // 8).astype(np.float32)


def _compact_codes(w: torch.Tensor, bits: int) -> np.ndarray:
    """The step code of every output channel: ``e`` nearest to ``8 log2(max|w_c| / levels)`` (the
    channel's largest symbol is then at most ``2**(1/16)`` levels, well inside the coder's
    ``2**bits``). Encoder side only: the decoder reads the codes."""
    levels = (1 << (bits - 1)) - 1
    amax = w.detach().reshape(w.shape[0], -1).abs().amax(dim=1).double().numpy() / levels
    code = np.round(8 * np.log2(np.maximum(amax, 2.0**-30))).astype(np.int64)
    return np.clip(code, *STEP_CODE_RANGE)


def _channel_scale_index(coder: GaussianCoder, q: np.ndarray) -> np.ndarray:
    """One scale index per channel (rows of ``q``): the channel's RMS, in steps."""
    rms = np.sqrt(np.mean(q.astype(np.float64) ** 2, axis=1))
    return coder.scale_index(np.maximum(rms, 1e-3)).astype(np.uint8)


def _check_count(data: bytes, expected: int, what: str) -> int:
    n, pos = decode_varint(data, 0, f"{what} value count")
    if n != expected:
        raise CorruptStreamError(f"the {what} stream holds {n} values, the header implies {expected}")
    return pos


def encode_tensors(tensors: Iterable[torch.Tensor], bits: int, compact: bool = False) -> bytes:
    """Quantise and code ``tensors`` (in a fixed order) into one stream; see the module docstring
    (``compact``: one-byte steps and one scale index per tensor)."""
    bits = _check_bits(bits)
    coder = coder_for_bits(bits)
    tensors = list(tensors)
    side = bytearray(encode_varint(sum(t.numel() for t in tensors)))
    symbols, indexes = [], []
    for t in tensors:
        t = t.detach().cpu()
        if t.dim() < 2:
            side += t.reshape(-1).to(torch.float16).numpy().astype("<f2").tobytes()
            continue
        if compact:
            codes = _compact_codes(t, bits)
            step = compact_step(codes)
            q = np.round(t.float().numpy().reshape(t.shape[0], -1) / step[:, None]).astype(np.int32)
            rows = q
            one = _channel_scale_index(coder, rows.reshape(1, -1))
            idx = np.repeat(one, rows.shape[0])
            side += codes.astype(np.int8).tobytes() + one.tobytes()
        else:
            q, step = quantize_weight(t, bits)
            rows = q.reshape(q.shape[0], -1)
            idx = _channel_scale_index(coder, rows)
            side += step.astype("<f4").tobytes() + idx.tobytes()
        symbols.append(rows.reshape(-1))
        indexes.append(np.repeat(idx.astype(np.int32), rows.shape[1]))
    body = coder.encode(np.concatenate(symbols), np.concatenate(indexes)) if symbols else b""
    return bytes(side) + body


def decode_tensors(data: bytes, shapes: Sequence[torch.Size | tuple[int, ...]], bits: int,
                   compact: bool = False) -> list[torch.Tensor]:
    """Inverse of :func:`encode_tensors` for tensors of the given ``shapes`` (same order)."""
    bits = _check_bits(bits)
    coder = coder_for_bits(bits)
    pos = _check_count(data, sum(int(np.prod(tuple(s))) for s in shapes), "weight")
    plan = []
    n_table = len(coder.scale_table)
    for shape in shapes:
        shape = tuple(int(s) for s in shape)
        numel = int(np.prod(shape)) if shape else 1
        if len(shape) < 2:
            end = pos + 2 * numel
            if end > len(data):
                raise CorruptStreamError("weight stream ends inside the float16 vectors")
            vec = np.frombuffer(data[pos:end], "<f2").astype(np.float32)
            if not np.all(np.isfinite(vec)):
                raise CorruptStreamError("weight stream has a non-finite float16 value")
            plan.append(("vec", shape, vec))
            pos = end
            continue
        c = shape[0]
        end = pos + (c + 1 if compact else 5 * c)
        if end > len(data):
            raise CorruptStreamError("weight stream ends inside the per-channel steps")
        if compact:
            step = compact_step(np.frombuffer(data[pos : pos + c], np.int8))
            idx = np.repeat(np.frombuffer(data[pos + c : end], np.uint8).astype(np.int32), c)
        else:
            step = np.frombuffer(data[pos : pos + 4 * c], "<f4").astype(np.float32)
            idx = np.frombuffer(data[pos + 4 * c : end], np.uint8).astype(np.int32)
        if not np.all(np.isfinite(step)) or (idx >= n_table).any():
            raise CorruptStreamError("weight stream has an invalid step or scale index")
        plan.append(("mat", shape, (step, idx)))
        pos = end
    mats = [(shape, si) for kind, shape, si in plan if kind == "mat"]
    total = sum(int(np.prod(s)) for s, _ in mats)
    if mats:
        all_idx = np.concatenate([np.repeat(idx, int(np.prod(s)) // s[0]) for s, (_, idx) in mats])
        symbols = coder.decode(bytes(data[pos:]), all_idx)
    elif pos != len(data):
        raise CorruptStreamError("trailing bytes after the weight stream")
    out, at = [], 0
    for kind, shape, payload in plan:
        if kind == "vec":
            out.append(torch.from_numpy(payload.copy()).reshape(shape))
            continue
        step, _ = payload
        n = int(np.prod(shape))
        q = symbols[at : at + n].reshape(shape[0], -1).astype(np.float32)
        at += n
        with np.errstate(over="ignore", invalid="ignore"):
            w = q * step[:, None]
        if not np.all(np.isfinite(w)):
            # finite steps times coded integers can still overflow float32: a damaged file
            raise CorruptStreamError("weight stream decodes to non-finite weights")
        out.append(torch.from_numpy(w).reshape(shape))
    assert at == total
    return out


def encode_embedding(e: torch.Tensor, bits: int) -> bytes:
    """Code a ``T x C x h x w`` embedding, per-channel affine ``bits``-bit quantisation.

    Layout: float32 lo[C], float32 step[C], uint16 centre[C], uint8 scale_index[C], then the
    range-coded ``q - centre`` symbols (channel-major order).
    """
    bits = _check_bits(bits)
    coder = coder_for_bits(bits)
    e = e.detach().float().cpu()
    lo, step = _affine_params(e, bits, 1)
    q = ((e - lo) / step).round().clamp_(0, (1 << bits) - 1).to(torch.int64)
    rows = q.transpose(0, 1).reshape(e.shape[1], -1).numpy()
    centre = np.round(rows.mean(axis=1)).astype(np.int64)
    sym = rows - centre[:, None]
    idx = _channel_scale_index(coder, sym)
    side = (encode_varint(e.numel()) + lo.reshape(-1).numpy().astype("<f4").tobytes() + step.reshape(-1).numpy().astype("<f4").tobytes()
            + centre.astype("<u2").tobytes() + idx.tobytes())
    return side + coder.encode(sym.reshape(-1), np.repeat(idx.astype(np.int32), sym.shape[1]))


def decode_embedding(data: bytes, shape: tuple[int, int, int, int], bits: int) -> torch.Tensor:
    """Inverse of :func:`encode_embedding` for an embedding of ``shape`` (T, C, h, w)."""
    bits = _check_bits(bits)
    coder = coder_for_bits(bits)
    t, c, h, w = shape
    data = data[_check_count(data, t * c * h * w, "embedding"):]
    side = 11 * c
    if len(data) < side:
        raise CorruptStreamError("embedding stream ends inside its per-channel parameters")
    lo = np.frombuffer(data[: 4 * c], "<f4").astype(np.float32)
    step = np.frombuffer(data[4 * c : 8 * c], "<f4").astype(np.float32)
    centre = np.frombuffer(data[8 * c : 10 * c], "<u2").astype(np.int64)
    idx = np.frombuffer(data[10 * c : side], np.uint8).astype(np.int32)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(step))) or (idx >= len(coder.scale_table)).any():
        raise CorruptStreamError("embedding stream has an invalid range or scale index")
    n = t * h * w
    sym = coder.decode(bytes(data[side:]), np.repeat(idx, n)).reshape(c, n).astype(np.int64)
    q = (sym + centre[:, None]).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        e = q * step[:, None] + lo[:, None]
    if not np.all(np.isfinite(e)):
        raise CorruptStreamError("embedding stream decodes to non-finite values")
    return torch.from_numpy(e).reshape(c, t, h, w).transpose(0, 1).contiguous()
