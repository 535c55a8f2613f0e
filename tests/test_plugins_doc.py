"""docs/plugins.md's worked example is code that runs: a stride-8 learned codec round-trips.

The example's Python block is executed as printed, its codec registered (with a third-party id,
since the test cannot add a row to the frozen table) and its untrained weights written to a
temporary weights folder with a manifest entry -- the three things a new family needs.
Also the same round trip at stride 64, the other side of the stride-16 the shipped codecs use.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from torch import nn

import glocal_codec as gc
from glocal_codec.codecs import register_codec, unregister_codec
from glocal_codec.weights import save_state, update_manifest

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _example() -> dict:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/plugins.md has no python example"
    ns: dict = {}
    exec(compile(blocks[0], str(DOC), "exec"), ns)  # noqa: S102 - our own documentation
    return ns


def _install(codec_cls: type, codec_id: int, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Untrained weights + manifest entry in ``folder``, the codec registered under its name."""
    monkeypatch.setenv("GLOCAL_CODEC_WEIGHTS", str(folder))
    torch.manual_seed(0)
    model = codec_cls.model_class().eval()
    model.build_tables()
    sha = save_state(dict(model.state_dict()), folder / f"{codec_cls.name}.safetensors")
    update_manifest(codec_cls.name, {"file": f"{codec_cls.name}.safetensors", "sha256": sha,
                                     "config": asdict(model.cfg)}, folder)
    register_codec(codec_cls.name, codec_id=codec_id)(codec_cls)


def _round_trips(name: str, sizes: list[tuple[int, int]]) -> None:
    for h, w in sizes:
        for c in (3, 1):
            x = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(h * w + c))
            data = gc.encode(x, codec=name, quality=2)
            info = gc.read_info(data)
            assert info.codec == name and info.shape == (c, h, w)
            y = gc.decode_tensor(data)
            assert y.shape == x.shape and torch.isfinite(y).all()
            assert gc.decode_tensor(data).equal(y)


def test_the_documented_stride8_codec_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = _example()
    cls = ns["Stride8Codec"]
    _install(cls, 1700, tmp_path, monkeypatch)
    try:
        codec = gc.open_codec("stride8")
        assert codec.model.downsample == 8 and codec.pad_multiple == 8
        assert "stride8" in {c.name for c in gc.list_codecs()}
        _round_trips("stride8", [(13, 29), (8, 8), (33, 17)])
        # the latent grid really is 8 pixels: a 40 x 40 image has 5 x 5 latents per channel
        y = codec.model.analysis(torch.rand(1, 3, 40, 40), 0)
        assert tuple(y.shape[-2:]) == (5, 5)
        data = gc.encode(torch.rand(1, 3, 24, 24), codec="stride8", quality=3, refine=2)  # Refinable too
        assert gc.decode_tensor(data).shape == (1, 3, 24, 24)
    finally:
        unregister_codec("stride8")


def test_a_stride64_codec_round_trips_odd_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glocal_codec.codecs.hyperprior import FactorizedPrior, ModelConfig
    from glocal_codec.codecs.learned import LearnedImageCodec
    from glocal_codec.nn import conv, deconv

    class Stride64Prior(FactorizedPrior):
        downsample = 64
        pad_multiple = 64

        def __init__(self, cfg: ModelConfig = ModelConfig(n=8, m=8)) -> None:
            super().__init__(cfg)
            n, m = cfg.n, cfg.m
            self.g_a = nn.Sequential(conv(3, n), *[conv(n, n) for _ in range(4)], conv(n, m))
            self.g_s = nn.Sequential(deconv(m, n), *[deconv(n, n) for _ in range(4)], deconv(n, 3))

    class Stride64Codec(LearnedImageCodec):
        name = "stride64"
        description = "test: a 64-pixel latent grid"
        model_class = Stride64Prior

    _install(Stride64Codec, 1701, tmp_path, monkeypatch)
    try:
        assert gc.open_codec("stride64").model.downsample == 64
        _round_trips("stride64", [(65, 3), (70, 130)])
    finally:
        unregister_codec("stride64")
