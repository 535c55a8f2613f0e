"""``hnerv``: HNeRV, a hybrid neural representation for videos, with a real bitstream.

Chen et al., "HNeRV: A Hybrid Neural Representation for Videos", CVPR 2023. A ConvNeXt-style
encoder turns every frame into a tiny content-adaptive embedding (``d x h x w``, e.g.
16 x 5 x 8 for 360 x 640); a NeRV-style decoder of upsampling blocks (conv -> PixelShuffle ->
GELU) renders the frame from it. Encoding a clip *is* fitting encoder and decoder to it; the file
holds only what the decoder needs:

* ``params``: the decoder's architecture (:class:`HNeRVArch`, version byte + varints);
* stream 0: the decoder's weights, 8-bit per-channel quantised and range coded
  (:func:`.quant.encode_tensors`);
* stream 1: the embeddings, per-channel quantised and range coded (:func:`.quant.encode_embedding`).

The decoder rebuilds the network from ``params`` alone and renders frame by frame.

Following the paper: channel widths fall by ``reduce`` (1.2) per stage down to ``min_ch``; the
first block's kernel is 1x1 and the later ones are 5x5, which spreads the parameters over the
stages instead of piling them into the first one; the strides multiply to the embedding's
downsampling factor. The quality level sets the decoder's size in *parameters per pixel of the
clip* (so a level means about the same bpp for any clip) and the embedding width.

The schedule: Adam with warm-up + cosine decay on an L2 loss, then a quantisation-aware phase
(the last ``qat_share`` of the steps) in which decoder weights and embeddings go through
fake quantisation with straight-through gradients, so the weights that ship are the weights the
network was tuned with.

Where the glocal blocks fit: the last encoder stage is a :class:`glocal_codec.nn.GlocalBlock`
(window attention + global-token attention) on the low-resolution feature map just before the
embedding. The encoder is never transmitted, so its attention costs no rate, and it lets every
embedding cell see the whole frame. The decoder stays convolutional: its parameters are the rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..bitstream.errors import CorruptStreamError
from ..bitstream.varint import decode_varint
from .base import Payload
from ..nn.glocal_block import GlocalBlock
from ..nn.residual import DepthwiseConvBlock
from .video_base import ProgressFn, RenderedVideoCodec
from ..nn.inr import QConv2d, pad_to, set_qbits
from ..bitstream.fields import check_end, check_version, pack_fields, read_fields
from ..engine.fit import cosine_lr, report
from ..util import psnr
from ..entropy.params import decode_embedding, decode_tensors, encode_embedding, encode_tensors, fake_quant_affine

__all__ = ["HNeRVArch", "HNeRVDecoder", "HNeRVEncoder", "HNeRVCodec", "choose_strides"]

_VERSION = 1
#: Stride lists by total downsampling (HNeRV uses 5,4,4,2,2 for 640 x 1280 frames).
_STRIDES = {320: (5, 4, 4, 2, 2), 160: (5, 4, 2, 2, 2), 80: (5, 2, 2, 2, 2), 40: (5, 2, 2, 2), 16: (2, 2, 2, 2),
            8: (2, 2, 2), 4: (2, 2), 2: (2,)}


def choose_strides(h: int, w: int) -> tuple[int, ...]:
    """The largest downsampling that leaves the embedding at least 3 cells on its short side."""
    for total in sorted(_STRIDES, reverse=True):
        if min(h, w) / total >= 3:
            return _STRIDES[total]
    return _STRIDES[2]


@dataclass(frozen=True)
class HNeRVArch:
    """Everything the decoder needs to rebuild itself (stored in the file's ``params``)."""

    embed_dim: int  # d: embedding channels
    strides: tuple[int, ...]  # upsampling per decoder block
    fc_dim: int  # channels of the first block
    reduce_pct: int = 120  # width divisor per block, in percent
    min_ch: int = 12  # narrowest block
    k_first: int = 1  # kernel of the first block
    k_rest: int = 5  # kernel of the later blocks
    weight_bits: int = 8
    embed_bits: int = 8

    @property
    def stride(self) -> int:
        return math.prod(self.strides)

    def widths(self) -> list[int]:
        out, c = [], float(self.fc_dim)
        for _ in self.strides:
            out.append(max(int(round(c)), self.min_ch))
            c /= self.reduce_pct / 100
        return out

    def to_bytes(self) -> bytes:
        return pack_fields(_VERSION, [self.embed_dim, self.fc_dim, self.reduce_pct, self.min_ch, self.k_first,
                                      self.k_rest, self.weight_bits, self.embed_bits, len(self.strides),
                                      *self.strides])

    @classmethod
    def from_bytes(cls, data: bytes) -> "HNeRVArch":
        base = [("embed_dim", 1, 256), ("fc_dim", 1, 1024), ("reduce_pct", 100, 400), ("min_ch", 1, 256),
                ("k_first", 1, 9), ("k_rest", 1, 9), ("weight_bits", 2, 16), ("embed_bits", 2, 16),
                ("n_strides", 1, 8)]
        f, pos = read_fields(data, check_version(data, _VERSION), base)
        n = f.pop("n_strides")
        st, pos = read_fields(data, pos, [(f"stride {i}", 1, 8) for i in range(n)])
        check_end(data, pos)
        strides = tuple(st.values())
        if f["k_first"] % 2 == 0 or f["k_rest"] % 2 == 0:
            raise CorruptStreamError("HNeRV kernel sizes must be odd")
        arch = cls(strides=strides, **f)
        if arch.n_params() > 64_000_000:
            raise CorruptStreamError(f"HNeRV decoder of {arch.n_params():,} parameters is beyond any quality level")
        return arch

    def n_params(self) -> int:
        """Parameters of the decoder this config builds (without building it)."""
        total, cin = 0, self.embed_dim
        for i, (s, c) in enumerate(zip(self.strides, self.widths())):
            k = self.k_first if i == 0 else self.k_rest
            total += cin * c * s * s * k * k + c * s * s
            cin = c
        return total + cin * 3 * 9 + 3


class _Block(nn.Module):
    """NeRV block: conv (C_in -> C_out * s^2) -> PixelShuffle(s) -> GELU."""

    def __init__(self, cin: int, cout: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.conv = QConv2d(cin, cout * stride * stride, kernel, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(stride)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


class HNeRVDecoder(nn.Module):
    """Embedding (N, d, h, w) -> frames (N, 3, h * S, w * S) in [0, 1]."""

    def __init__(self, arch: HNeRVArch) -> None:
        super().__init__()
        self.arch = arch
        blocks, cin = [], arch.embed_dim
        for i, (s, c) in enumerate(zip(arch.strides, arch.widths())):
            blocks.append(_Block(cin, c, s, arch.k_first if i == 0 else arch.k_rest))
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.head = QConv2d(cin, 3, 3, padding=1)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.blocks(e)))

    def coded_tensors(self) -> list[torch.Tensor]:
        """The tensors that go into the file, in a fixed order (sorted by name)."""
        sd = self.state_dict()
        return [sd[k] for k in sorted(sd)]

    def load_coded(self, tensors: list[torch.Tensor]) -> None:
        sd = self.state_dict()
        self.load_state_dict({k: t.to(sd[k].dtype) for k, t in zip(sorted(sd), tensors)})


class HNeRVEncoder(nn.Module):
    """Frame (N, 3, H, W) -> embedding (N, d, H / S, W / S): ConvNeXt stages, a GlocalBlock last."""

    def __init__(self, strides: tuple[int, ...], embed_dim: int, dim: int = 48) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for s in reversed(strides):  # the decoder's last (smallest) stride is the encoder's first
            layers += [nn.Conv2d(cin, dim, s, stride=s), DepthwiseConvBlock(dim, kernel=7)]
            cin = dim
        layers += [GlocalBlock(dim, window=8, tokens=2, head_dim=16), nn.Conv2d(dim, embed_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _fc_dim_for(target_params: int, embed_dim: int, strides: tuple[int, ...], min_fc: int = 4) -> tuple[int, int]:
    """``(fc_dim, min_ch)`` of the decoder closest to ``target_params``, with ``fc_dim >= min_fc``
    (the paper's floor of 12 channels is lowered only when a tiny clip cannot afford it)."""
    best, best_err = (min_fc, min(12, min_fc)), float("inf")
    for fc in range(min_fc, 1025):
        min_ch = min(12, fc)
        err = abs(HNeRVArch(embed_dim, strides, fc, min_ch=min_ch).n_params() - target_params)
        if err < best_err:
            best, best_err = (fc, min_ch), err
    return best


class HNeRVCodec(RenderedVideoCodec):
    """HNeRV as a video codec plugin (see the module docstring).

    ``epochs`` (passes over the clip), ``lr`` and ``batch`` set the fitting budget; the registry
    builds the codec with the defaults, tests and benchmarks pass their own.
    """

    name: ClassVar[str] = "hnerv"
    description: ClassVar[str] = "HNeRV (Chen 2023) video INR: fitted per clip, 8-bit weights + embeddings, range coded"
    #: level -> (decoder parameters per clip pixel, embedding channels, narrowest first block);
    #: the floor keeps the levels apart on clips too small for the per-pixel budget
    levels: ClassVar[dict[int, tuple[float, int, int]]] = {1: (0.004, 8, 4), 2: (0.008, 12, 6), 3: (0.016, 16, 8),
                                                           4: (0.032, 16, 11), 5: (0.064, 16, 16)}
    default_quality = 3

    def __init__(self, epochs: int = 60, lr: float = 5e-3, batch: int = 2, qat_share: float = 0.2,
                 device: str | torch.device | None = None, seed: int = 0) -> None:
        super().__init__()
        self.epochs, self.lr, self.batch, self.qat_share, self.seed = epochs, lr, batch, qat_share, seed
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> "HNeRVCodec":
        self.device = torch.device(device)
        return self

    def arch_for(self, shape: tuple[int, int, int, int], quality: int) -> HNeRVArch:
        """The decoder for a ``T x C x H x W`` clip at ``quality``."""
        per_pixel, d, min_fc = self._check_quality(quality)
        t, _, h, w = shape
        strides = choose_strides(h, w)
        fc, min_ch = _fc_dim_for(int(per_pixel * t * h * w), d, strides, min_fc)
        return HNeRVArch(d, strides, fc, min_ch=min_ch)

    # -- encoding (fitting) ----------------------------------------------------------------
    def encode(self, x: torch.Tensor, quality: int, *, fps=None, progress: ProgressFn | None = None) -> Payload:
        t, c, h, w = self._check_input(x)
        arch = self.arch_for((t, c, h, w), quality)
        torch.manual_seed(self.seed)
        dev = self.device
        frames = pad_to(x.float().expand(t, 3, h, w), arch.stride).to(dev)
        enc = HNeRVEncoder(arch.strides, arch.embed_dim).to(dev)
        dec = HNeRVDecoder(arch).to(dev)
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=self.lr, betas=(0.9, 0.99))
        steps_per_epoch = -(-t // self.batch)
        total = max(1, self.epochs * steps_per_epoch)
        qat_from = int(total * (1 - self.qat_share))
        gen = torch.Generator().manual_seed(self.seed)
        step, last = 0, float("nan")
        for _ in range(self.epochs):
            order = torch.randperm(t, generator=gen)
            for i in range(0, t, self.batch):
                quant = step >= qat_from
                set_qbits(dec, arch.weight_bits if quant else None)
                for g in opt.param_groups:
                    g["lr"] = cosine_lr(step, total, self.lr)
                idx = order[i : i + self.batch].to(dev)
                gt = frames[idx]
                e = enc(gt)
                if quant:
                    e = fake_quant_affine(e, arch.embed_bits)
                out = dec(e)
                loss = F.mse_loss(out, gt)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                last = 10 * math.log10(1 / max(loss.item(), 1e-12))
                report(progress, step, total, f"fit {last:.2f} dB" + (" (quantised)" if quant else ""))
        set_qbits(dec, None)
        with torch.no_grad():
            emb = torch.cat([enc(frames[i : i + self.batch]) for i in range(0, t, self.batch)]).cpu()
        dec = dec.cpu()
        return Payload(shape=(t, c, h, w), quality=quality, params=arch.to_bytes(),
                       streams=(encode_tensors(dec.coded_tensors(), arch.weight_bits),
                                encode_embedding(emb, arch.embed_bits)))

    # -- decoding --------------------------------------------------------------------------
    def render(self, payload: Payload, index: int | None = None) -> Iterator[torch.Tensor]:
        """The frames, one network pass each (:class:`RenderedVideoCodec`: ``decode`` and the
        streamed ``decode_frames`` come from here)."""
        t, c, h, w = self._check_payload(payload, streams=2, params=True)
        arch = HNeRVArch.from_bytes(payload.params)
        count, _ = decode_varint(payload.streams[0], 0, "weight value count")
        if count != arch.n_params():  # checked before the network is allocated
            raise CorruptStreamError(f"the weight stream holds {count} values, the HNeRV config needs {arch.n_params()}")
        dec = HNeRVDecoder(arch)
        shapes = [v.shape for _, v in sorted(dec.state_dict().items())]
        dec.load_coded(decode_tensors(payload.streams[0], shapes, arch.weight_bits))
        eh, ew = -(-h // arch.stride), -(-w // arch.stride)
        emb = decode_embedding(payload.streams[1], (t, arch.embed_dim, eh, ew), arch.embed_bits)
        dec = dec.to(self.device).eval()
        return self._frames(dec, emb, c, h, w)

    def _frames(self, dec: HNeRVDecoder, emb: torch.Tensor, c: int, h: int, w: int) -> Iterator[torch.Tensor]:
        for i in range(emb.shape[0]):
            with torch.inference_mode():
                y = dec(emb[i : i + 1].to(self.device))[0, :, :h, :w].float().cpu()
            yield y.mean(0, keepdim=True) if c == 1 else y

    @staticmethod
    def quality_report(x: torch.Tensor, y: torch.Tensor) -> float:
        """PSNR (dB) of a decoded clip against the original (a helper for benchmarks)."""
        return psnr(x, y)
