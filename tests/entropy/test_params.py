"""Quantisation and range coding of INR weights and embeddings (video/inr/quant.py)."""

from __future__ import annotations

import pytest
import torch

from glocal_codec.bitstream import BitstreamError, CorruptStreamError
from glocal_codec.entropy.params import (
    decode_embedding,
    decode_tensors,
    encode_embedding,
    encode_tensors,
    fake_quant,
    fake_quant_affine,
    quantize_weight,
)


def _tensors() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(16, 8, 3, 3, generator=g) * 0.1, torch.randn(16, generator=g),
            torch.randn(3, 16, 1, 1, generator=g), torch.zeros(4, 4), torch.randn(3, generator=g)]


@pytest.mark.parametrize("bits", [4, 6, 8, 10])
def test_weights_decode_to_the_fake_quantised_values(bits: int) -> None:
    ts = _tensors()
    data = encode_tensors(ts, bits)
    back = decode_tensors(data, [t.shape for t in ts], bits)
    for t, b in zip(ts, back):
        assert b.shape == t.shape
        # exactly what quantisation-aware training saw (up to float32 rounding of q * step)
        torch.testing.assert_close(b, fake_quant(t, bits), rtol=0, atol=1e-6)


def test_rate_follows_bits_and_beats_raw_bits() -> None:
    ts = _tensors()
    n = sum(t.numel() for t in ts if t.dim() >= 2)
    sizes = {b: len(encode_tensors(ts, b)) for b in (4, 6, 8)}
    assert sizes[4] < sizes[6] < sizes[8]
    assert sizes[8] < n * 8 / 8 + 200  # entropy coding: no more than the raw 8 bits plus side info


def test_fake_quant_passes_gradients_straight_through() -> None:
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    fake_quant(w, 6).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))
    e = torch.randn(2, 4, 3, 5, requires_grad=True)
    fake_quant_affine(e, 8).sum().backward()
    assert torch.equal(e.grad, torch.ones_like(e))


def test_per_channel_steps() -> None:
    w = torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 100.0)])
    q, step = quantize_weight(w, 8)
    assert step.tolist() == pytest.approx([1 / 127, 100 / 127])
    assert (abs(q) <= 127).all()


@pytest.mark.parametrize("bits", [6, 8, 12])
def test_embedding_round_trip(bits: int) -> None:
    e = torch.randn(5, 4, 3, 6) * torch.tensor([1.0, 5.0, 0.1, 20.0]).view(1, 4, 1, 1) + 3
    back = decode_embedding(encode_embedding(e, bits), tuple(e.shape), bits)
    torch.testing.assert_close(back, fake_quant_affine(e, bits), rtol=0, atol=1e-4)


def test_damaged_or_mismatched_streams_are_bitstream_errors() -> None:
    ts = _tensors()
    shapes = [t.shape for t in ts]
    data = encode_tensors(ts, 8)
    with pytest.raises(CorruptStreamError, match="holds"):
        decode_tensors(data, shapes[:-1], 8)  # another network than the one coded
    for n in (0, 1, 5, len(data) // 2, len(data) - 1):
        # a cut inside the range-coded body can decode to (wrong) numbers -- the container's CRC
        # catches real truncation -- but never to another shape or another exception
        try:
            out = decode_tensors(data[:n], shapes, 8)
        except BitstreamError:
            continue
        assert [o.shape for o in out] == shapes
    e = torch.randn(2, 3, 2, 2)
    emb = encode_embedding(e, 8)
    with pytest.raises(CorruptStreamError):
        decode_embedding(emb, (3, 3, 2, 2), 8)
    for n in (0, 3, 20, len(emb) - 1):
        try:
            assert decode_embedding(emb[:n], (2, 3, 2, 2), 8).shape == (2, 3, 2, 2)
        except BitstreamError:
            pass
    with pytest.raises(ValueError):
        encode_tensors(ts, 1)


def test_non_finite_weights_are_refused() -> None:
    """Finite steps times coded integers can overflow float32, and float16 vectors can hold inf:
    a damaged (CRC-fixed) file must not hand a network infinities (#36 fuzzing)."""
    import struct

    from glocal_codec.entropy.params import _check_count

    ts = _tensors()
    shapes = [t.shape for t in ts]
    data = bytearray(encode_tensors(ts, 8))
    pos = _check_count(bytes(data), sum(t.numel() for t in ts), "weight")
    huge = bytearray(data)
    huge[pos : pos + 4] = struct.pack("<f", 3e38)  # the first channel's step of the first tensor
    with pytest.raises(CorruptStreamError, match="non-finite"):
        decode_tensors(bytes(huge), shapes, 8)
    vec_at = pos + 5 * 16  # the second tensor (16 values) is a float16 vector
    inf = bytearray(data)
    inf[vec_at : vec_at + 2] = struct.pack("<e", float("inf"))
    with pytest.raises(CorruptStreamError, match="non-finite"):
        decode_tensors(bytes(inf), shapes, 8)
    e = torch.randn(2, 3, 2, 2)
    emb = bytearray(encode_embedding(e, 8))
    at = _check_count(bytes(emb), e.numel(), "embedding") + 4 * 3  # the first channel's step
    emb[at : at + 4] = struct.pack("<f", 3e38)
    with pytest.raises(CorruptStreamError, match="non-finite"):
        decode_embedding(bytes(emb), (2, 3, 2, 2), 8)


@pytest.mark.parametrize("bits", [2, 6, 8, 16])
def test_compact_form_round_trip_and_side_information(bits: int) -> None:
    """``compact``: one signed byte of step code per output channel and one scale index per
    tensor (instead of a float32 step and an index per channel); steps ``2**(e/8)`` decoded from
    a table of exact float32 values, at most 2**(1/16) off the plain form's."""
    import numpy as np

    from glocal_codec.entropy.params import compact_step

    ts = _tensors()
    shapes = [t.shape for t in ts]
    plain, compact = encode_tensors(ts, bits), encode_tensors(ts, bits, compact=True)
    channels = sum(t.shape[0] for t in ts if t.dim() >= 2)
    mats = sum(1 for t in ts if t.dim() >= 2)
    # side information: 5 bytes per channel -> 1 per channel + 1 per tensor (the symbols may differ a little)
    assert len(plain) - len(compact) >= 4 * channels - mats - 16
    back = decode_tensors(compact, shapes, bits, compact=True)
    for t, b in zip(ts, back):
        assert b.shape == t.shape
        if t.dim() < 2:
            assert torch.equal(b, t.half().float())
            continue
        rows, amax = t.reshape(t.shape[0], -1), t.reshape(t.shape[0], -1).abs().amax(1)
        levels = (1 << (bits - 1)) - 1
        err = (b.reshape(rows.shape) - rows).abs().amax(1)
        step_plain = (amax / levels).clamp_min(2.0**-16)
        assert (err <= step_plain * 2 ** (1 / 16) / 2 + 1e-7).all()  # half a step, the step within 2^(1/16)
    e = np.arange(-128, 128)
    assert np.array_equal(compact_step(e), (2.0 ** (e / 8)).astype(np.float32))  # correctly rounded, any machine


def test_compact_form_damaged_streams_are_bitstream_errors() -> None:
    ts = _tensors()
    shapes = [t.shape for t in ts]
    data = encode_tensors(ts, 8, compact=True)
    with pytest.raises(CorruptStreamError, match="holds"):
        decode_tensors(data, shapes[:-1], 8, compact=True)
    for n in (0, 1, 5, len(data) // 2, len(data) - 1):
        try:
            out = decode_tensors(data[:n], shapes, 8, compact=True)
        except BitstreamError:
            continue
        assert [o.shape for o in out] == shapes
    from glocal_codec.bitstream.varint import decode_varint

    _, pos = decode_varint(data, 0, "count")
    bad = bytearray(data)
    bad[pos + 16] = 255  # the first tensor's scale index (after its 16 step codes), past the table
    with pytest.raises(CorruptStreamError, match="scale index"):
        decode_tensors(bytes(bad), shapes, 8, compact=True)
