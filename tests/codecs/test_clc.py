"""``clc``: conditional latent coding with references from a dictionary (issue 32).

Starts exactly at msh; dictionaries built from a folder work end to end (build -> encode with
--dictionary -> decode; the wrong dictionary is a WeightsMismatchError); the reference ids and
the dictionary digest are in the file and ``info`` shows them; bad parameters are
BitstreamErrors; retrieval and the entropy parameters are deterministic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

import glocal_codec as gc
from glocal_codec.bitstream import BitstreamError, CorruptStreamError, WeightsMismatchError, read_container, write_container
from glocal_codec.cli import app
from glocal_codec.codecs import open_codec
from glocal_codec.codecs.clc import (ClcCodec, ClcConfig, ClcModel, DictionaryError, build_dictionary,
                                     load_dictionary, nearest, retrieval_features, save_dictionary)
from glocal_codec.codecs.clc_header import BUILTIN, USER, ClcParams, file_facts, pack_params, unpack_params
from glocal_codec.codecs.hyperprior import MeanScaleHyperprior, ModelConfig
from glocal_codec.train.loop import init_from

CFG = dict(n=16, m=24, levels=2, entries=8, grid=2, inner=16)


def _image(seed: int = 0, h: int = 40, w: int = 56) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(1, 3, h, w)


@pytest.fixture(scope="module")
def from_msh(tmp_path_factory) -> tuple[ClcModel, MeanScaleHyperprior]:
    """A clc model initialised from a (perturbed, trained-looking) msh, and that msh."""
    tmp = tmp_path_factory.mktemp("msh")
    torch.manual_seed(0)
    msh = MeanScaleHyperprior(ModelConfig(n=16, m=24, levels=2))
    src = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in msh.state_dict().items()}
    msh.load_state_dict(src)
    msh.build_tables()
    save_file({k: v.contiguous() for k, v in msh.state_dict().items()}, str(tmp / "msh.safetensors"))
    clc = ClcModel(ClcConfig(**CFG))
    with pytest.warns(UserWarning, match="without a dictionary"):
        copied = init_from(clc, tmp / "msh.safetensors")
    assert copied == len(src)  # every msh tensor (the z densities too), nothing of clc's own
    return clc.eval(), msh.eval()


def _tokens(model: ClcModel, x: torch.Tensor, k: int = 2) -> torch.Tensor:
    with torch.no_grad():
        ids = nearest(retrieval_features(model.g_a(x)), model.dict_features, k)
    return model.gather(model.dict_tokens, ids)


# -- starts at msh -----------------------------------------------------------------------------------
def test_starts_exactly_at_msh(from_msh) -> None:
    clc, msh = from_msh
    assert float(clc.gate.detach().abs().max()) == 0.0
    x = _image(1, 64, 128)
    with torch.no_grad():
        for q in range(2):
            a, b = clc(x, q), msh(x, q)
            assert torch.equal(a.x_hat, b.x_hat)
            for name in ("y", "z"):
                assert torch.equal(a.likelihoods[name], b.likelihoods[name])
            # real bits: the same streams, the same decoded latents
            y = clc.analysis(x, q)
            latents = clc.latents(y, q)
            with clc.references(_tokens(clc, x)):
                streams = clc.compress(latents, q)
                y_hat = clc.decompress(streams, tuple(y.shape), q)
            assert streams == msh.compress(latents, q)
            assert torch.equal(y_hat, msh.decompress(streams, tuple(y.shape), q))


def test_references_change_the_bits_once_the_gate_opens(from_msh) -> None:
    clc, _ = from_msh
    model = ClcModel(ClcConfig(**CFG))
    model.load_state_dict(clc.state_dict())
    model.eval()
    with torch.no_grad():
        model.gate.normal_(0, 1.0)
        model.fusion.proj.weight.mul_(20)
    model._reset_caches()
    x = _image(2, 64, 64)
    y = model.analysis(x, 1)
    z = torch.round(model.h_a(y))
    means = []
    for ids in ([0, 1], [2, 3]):
        with model.references(model.gather(model.dict_tokens, torch.tensor([ids]))):
            _, m = model.entropy_parameters(z)
            means.append(m)
            # the exact means are the float hyper-synthesis's up to the fixed-point grid
            with torch.no_grad():
                ref = model.hyper(z, model._active()).chunk(2, 1)[1].double().numpy()
            assert np.abs(ref - m).max() < 1e-3
    assert not np.array_equal(means[0], means[1])


def test_compress_needs_references(from_msh) -> None:
    clc, _ = from_msh
    y = clc.analysis(_image(), 0)
    with pytest.raises(RuntimeError, match="references"):
        clc.compress(clc.latents(y, 0), 0)


# -- retrieval ------------------------------------------------------------------------------------------
def test_retrieval_is_deterministic_and_best_first() -> None:
    torch.manual_seed(0)
    entries = torch.nn.functional.normalize(torch.randn(16, 6, dtype=torch.float64), dim=1)
    f = entries[[5, 9]] + 1e-3
    ids = nearest(torch.nn.functional.normalize(f, dim=1), entries, 3)
    assert ids[:, 0].tolist() == [5, 9]
    assert torch.equal(ids, nearest(torch.nn.functional.normalize(f, dim=1), entries, 3))
    # ties go to the lower id
    same = torch.zeros(4, 6, dtype=torch.float64)
    same[:, 0] = 1
    assert nearest(same[:1], same, 3).tolist() == [[0, 1, 2]]


def test_codec_retrieval_is_stable_and_in_the_file() -> None:
    c = open_codec("clc")
    x = _image(3)
    ids = c.select_references(x)
    assert ids == c.select_references(x) and len(ids) == c.model.cfg.k
    data = gc.encode(x, codec="clc")
    p = unpack_params(read_container(data).params)
    assert p.ids == ids and p.kind == BUILTIN and p.digest == c.dictionary.digest
    # encoding twice gives the same bytes; k = 1 and k = 3 round trip too
    assert gc.encode(x, codec="clc") == data
    for k in (1, 3):
        other = ClcCodec(k=k)
        d = gc.encode(x, codec=other)
        assert len(unpack_params(read_container(d).params).ids) == k
        assert np.asarray(gc.decode(d)).shape == (40, 56, 3)


def test_random_references_ablation() -> None:
    x = _image(4)
    rnd = ClcCodec(retrieval="random", seed=1)
    data = gc.encode(x, codec=rnd)
    ids = unpack_params(read_container(data).params).ids
    assert data == gc.encode(x, codec=ClcCodec(retrieval="random", seed=1))  # reproducible
    assert len(set(ids)) == len(ids)
    assert np.asarray(gc.decode(data)).shape == (40, 56, 3)  # the usual decoder reads them
    # explicit ids
    c = open_codec("clc")
    payload = c.encode(x, c.default_quality, ids=(3, 0))
    assert unpack_params(payload.params).ids == (3, 0)
    with pytest.raises(ValueError, match="reference ids"):
        c.encode(x, c.default_quality, ids=(999,))


# -- the params header ----------------------------------------------------------------------------------
def test_params_round_trip_and_bad_params() -> None:
    p = ClcParams(USER, b"\x01\x02\x03\x04", (0, 127, 5))
    data = pack_params(p)
    assert unpack_params(data) == p and len(data) == 10
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            unpack_params(data[:n])
    for bad in (b"\x02" + data[1:], data[:1] + b"\x07" + data[2:], data + b"\x00",
                data[:6] + b"\x00" + data[7:], data[:6] + b"\x09" + data[7:]):
        with pytest.raises(BitstreamError):
            unpack_params(bad)
    facts = file_facts(data)
    assert facts["references"] == "0 127 5" and "01020304" in facts["dictionary"]


def test_damaged_params_in_a_file_are_bitstream_errors() -> None:
    data = gc.encode(_image(5), codec="clc")
    c = read_container(data)

    def with_params(params: bytes) -> bytes:
        return write_container(c.__class__(c.codec_id, c.weights_digest, c.media, c.shape, c.quality, params,
                                           c.streams))

    for params in (b"", c.params[:-1], c.params + b"\x00", b"\x09" + c.params[1:]):
        with pytest.raises(BitstreamError):
            gc.decode(with_params(params))
    p = unpack_params(c.params)
    too_far = pack_params(ClcParams(p.kind, p.digest, (p.ids[0], 60000)))
    with pytest.raises(CorruptStreamError, match="references"):
        gc.decode(with_params(too_far))
    other_digest = pack_params(ClcParams(p.kind, b"\xff" * 4, p.ids))
    with pytest.raises(WeightsMismatchError, match="dictionary"):
        gc.decode(with_params(other_digest))


# -- user dictionaries, end to end --------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for i in range(5):
        h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        base = rng.integers(0, 256, size=3)
        arr = np.clip(base + rng.normal(0, 10 + 20 * i, size=(h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"img{i}.png")
    Image.fromarray(np.full((50, 60), 128, np.uint8)).save(folder / "gray.png")  # grayscale too
    return folder


def _ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def test_user_dictionary_end_to_end(corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner(env={"NO_COLOR": "1", "COLUMNS": "200"})
    d = tmp_path / "my.dict"
    out = json.loads(_ok(runner.invoke(app, ["clc", "build-dictionary", str(corpus), "-o", str(d), "--entries",
                                             "4", "--json"])))
    assert out["entries"] == 4 and out["images"] == 6
    loaded = load_dictionary(d)
    assert loaded.digest.hex() == out["digest"] and loaded.entries == 4
    # a second build gives the same file contents (deterministic)
    d2 = tmp_path / "again.dict"
    _ok(runner.invoke(app, ["clc", "build-dictionary", str(corpus), "-o", str(d2), "--entries", "4"]))
    assert load_dictionary(d2).digest == loaded.digest
    # existing output refused
    r = runner.invoke(app, ["clc", "build-dictionary", str(corpus), "-o", str(d)])
    assert r.exit_code == 1 and "exists" in r.output

    png = tmp_path / "photo.png"
    Image.fromarray((_image(6, 48, 64)[0].permute(1, 2, 0) * 255).round().byte().numpy()).save(png)
    glc = tmp_path / "p.glc"
    _ok(runner.invoke(app, ["encode", str(png), "-c", "clc", "--dictionary", str(d), "-o", str(glc)]))
    p = unpack_params(read_container(glc.read_bytes()).params)
    assert p.kind == USER and p.digest == loaded.digest and all(i < 4 for i in p.ids)
    info = json.loads(_ok(runner.invoke(app, ["info", str(glc), "--json"])))
    assert info["details"]["dictionary"] == f"user {loaded.digest.hex()}"
    assert info["details"]["references"] == " ".join(map(str, p.ids))
    text = _ok(runner.invoke(app, ["info", str(glc)]))
    assert loaded.digest.hex() in text and "references" in text

    # decoding needs the same dictionary
    r = runner.invoke(app, ["decode", str(glc), "-o", str(tmp_path / "no.png")])
    assert r.exit_code == 1 and "dictionary" in r.output and "--dictionary" in r.output
    with pytest.raises(WeightsMismatchError, match=loaded.digest.hex()):
        gc.decode(glc.read_bytes())
    other = tmp_path / "other.dict"
    _ok(runner.invoke(app, ["clc", "build-dictionary", str(corpus), "-o", str(other), "--entries", "3"]))
    with pytest.raises(WeightsMismatchError, match="dictionary"):
        gc.decode(glc.read_bytes(), codec=ClcCodec(dictionary=other))
    _ok(runner.invoke(app, ["decode", str(glc), "--dictionary", str(d), "-o", str(tmp_path / "ok.png")]))
    api_img = gc.decode(glc.read_bytes(), codec=ClcCodec(dictionary=d))
    with Image.open(tmp_path / "ok.png") as img:
        assert np.array_equal(np.asarray(img), np.asarray(api_img))
    # a built-in file decoded with --dictionary: refused too (the dictionaries differ)
    builtin = gc.encode(_image(6, 48, 64), codec="clc")
    with pytest.raises(WeightsMismatchError, match="without --dictionary"):
        gc.decode(builtin, codec=ClcCodec(dictionary=d))
    # --dictionary with another codec: a clear error
    r = runner.invoke(app, ["encode", str(png), "-c", "msh", "--dictionary", str(d), "-o", str(tmp_path / "m.glc")])
    assert r.exit_code == 1 and "clc" in r.output


def test_strict_dictionary_reader(corpus: Path, tmp_path: Path) -> None:
    model = open_codec("clc").model
    f, t = build_dictionary(model.g_a, sorted(corpus.glob("*.png")), entries=3, grid=model.cfg.grid)
    good = tmp_path / "good.dict"
    save_dictionary(good, f, t)
    data = good.read_bytes()
    cases = {
        "short.dict": data[:5],
        "cut.dict": data[:-7],
        "flip.dict": data[:-3] + bytes([data[-3] ^ 1]) + data[-2:],  # a value changed: digest differs
        "other.dict": b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}       ",
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(DictionaryError):
            load_dictionary(tmp_path / name)
    with pytest.raises(DictionaryError, match="channels"):
        load_dictionary(good, channels=model.cfg.m + 1)
    nan = f.clone()
    nan[0, 0] = float("nan")
    save_file({"features": nan, "tokens": t}, str(tmp_path / "nan.dict"),
              metadata={"format": "glocal-codec clc dictionary", "version": "1", "digest": "00"})
    with pytest.raises(DictionaryError):
        load_dictionary(tmp_path / "nan.dict")
    with pytest.raises(FileNotFoundError):
        ClcCodec(dictionary=tmp_path / "missing.dict")


def test_info_shows_builtin_references() -> None:
    data = gc.encode(_image(7), codec="clc")
    info = gc.read_info(data)
    c = open_codec("clc")
    assert info.details["dictionary"] == f"built-in {c.dictionary.digest.hex()}"
    assert info.details["references"] == " ".join(map(str, unpack_params(read_container(data).params).ids))


# -- determinism ----------------------------------------------------------------------------------------
_PROBE = """
import hashlib, json, sys
import numpy as np, torch
import glocal_codec as gc
from glocal_codec.codecs import open_codec
torch.manual_seed(0)
x = torch.rand(1, 3, 64, 80)
m = open_codec("clc").model
with torch.no_grad():  # an open gate made with integer arithmetic: normal_() differs between CPU kernels
    m.gate.copy_(((torch.arange(m.gate.numel()) * 37) % 101 - 50).float().div(50).view_as(m.gate))
m._reset_caches()
y = m.analysis(x, 1)
z = torch.round(m.h_a(y))
with m.references(m.gather(m.dict_tokens, torch.tensor([[0, 1, 2]]))):
    idx, means = m.entropy_parameters(z)
print(json.dumps([hashlib.sha256(idx.tobytes()).hexdigest(), hashlib.sha256(means.tobytes()).hexdigest()]))
"""


def test_entropy_parameters_bit_exact_across_threads_and_kernels() -> None:
    """The fused means (and scale indices) with an open gate: the same bits with 1 or 4 threads and
    with torch's plain kernels (ATEN_CPU_CAPABILITY=default), in fresh processes."""
    outs = []
    for env in ({"OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "4"},
                {"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "default"}):
        run = subprocess.run([sys.executable, "-c", _PROBE], env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        outs.append(json.loads(run.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1] == outs[2]


def test_files_decode_to_the_same_pixels_with_other_thread_counts() -> None:
    x = _image(8, 64, 64)
    data = gc.encode(x, codec="clc")
    n = torch.get_num_threads()
    try:
        ref = np.asarray(gc.decode(data))
        torch.set_num_threads(1)
        assert gc.encode(x, codec="clc") == data
        assert np.array_equal(np.asarray(gc.decode(data)), ref)
    finally:
        torch.set_num_threads(n)


# -- training --------------------------------------------------------------------------------------------
def test_two_training_steps_from_msh_with_a_dictionary(corpus: Path, tmp_path: Path) -> None:
    """``train clc --init-from msh --arch dictionary_file=... --warmup-steps 1``: runs, loads the
    dictionary into the model, trains only clc's own tensors during the warm-up."""
    from glocal_codec.train import TrainConfig, train

    torch.manual_seed(0)
    msh = MeanScaleHyperprior(ModelConfig(n=16, m=24, levels=6))
    save_file({k: v.contiguous() for k, v in msh.state_dict().items()}, str(tmp_path / "msh.safetensors"))
    f, t = build_dictionary(msh.g_a, sorted(corpus.glob("*.png")), entries=4, grid=2)
    save_dictionary(tmp_path / "train.dict", f, t)
    arch = dict(n=16, m=24, entries=4, grid=2, inner=16, dictionary_file=str(tmp_path / "train.dict"))
    cfg = TrainConfig(codec="clc", data=[str(corpus)], out=str(tmp_path / "runs"), steps=2, batch=2, crop=64,
                      threads=1, arch=arch, init_from=str(tmp_path / "msh.safetensors"), warmup_steps=1,
                      log_every=1)
    logs: list[str] = []
    result = train(cfg, log=logs.append)
    assert result.steps == 2 and np.isfinite(result.last_loss)
    state = torch.load(result.checkpoint, map_location="cpu", weights_only=False)
    assert torch.equal(state["model"]["dict_tokens"], t) and torch.equal(state["model"]["dict_features"], f)
    assert float(state["model"]["gate"].abs().max()) > 0  # the gate learns from the first step
    assert any("gate" in line for line in logs)
    # the zeroed-reference ablation trains too
    cfg0 = TrainConfig(codec="clc", data=[str(corpus)], out=str(tmp_path / "runs0"), steps=1, batch=1, crop=64,
                       threads=1, arch={**arch, "zero_refs": True}, init_from=str(tmp_path / "msh.safetensors"))
    assert train(cfg0, log=lambda s: None).steps == 1


def test_dictionary_must_fit_the_model(corpus: Path, tmp_path: Path) -> None:
    model = ClcModel(ClcConfig(**CFG))
    f, t = build_dictionary(model.g_a, sorted(corpus.glob("*.png")), entries=3, grid=2)
    save_dictionary(tmp_path / "three.dict", f, t)
    model = ClcModel(ClcConfig(**{**CFG, "dictionary_file": str(tmp_path / "three.dict")}))
    with pytest.raises(DictionaryError, match="entries"):
        model.adapt_source(MeanScaleHyperprior(ModelConfig(n=16, m=24, levels=2)).state_dict())
