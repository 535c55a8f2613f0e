"""Files are the same on every machine: encoder output for every image codec of the registry is
identical with one thread or many, and in a fresh process with ``ATEN_CPU_CAPABILITY=default``
(torch's plain kernels, a stand-in for another CPU). Decoded pixels are identical too for the
classical codecs and for learned codecs with a fixed-point synthesis (``ExactSynthesis``:
every learned image codec); a codec without one would be held to within one 8-bit level.
docs/bitstream.md says what is promised.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import glocal_codec as gc

_NAMES = [c.name for c in gc.list_codecs(media="image")]


def _exact(name: str) -> bool:
    """Whether decoded pixels are promised bit-identical for this codec."""
    from glocal_codec.codecs import ExactSynthesis, open_codec
    from glocal_codec.codecs.learned import LearnedImageCodec

    c = open_codec(name)
    return not isinstance(c, LearnedImageCodec) or isinstance(c.model, ExactSynthesis)

_PROBE = """
import hashlib, json, sys
import numpy as np, torch
import glocal_codec as gc
torch.manual_seed(0)
x = torch.rand(1, 3, 40, 56)
out = {}
for name in json.loads(sys.argv[1]):
    data = gc.encode(x, codec=name)
    px = np.asarray(gc.decode(data), dtype=np.uint8)
    out[name] = [hashlib.sha256(data).hexdigest(), px.tolist()]
print(json.dumps(out))
"""


def _image() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(1, 3, 40, 56)


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield n
    torch.set_num_threads(n)


@pytest.mark.slow
def test_encoded_bytes_do_not_depend_on_the_thread_count(restore_threads: int) -> None:
    x = _image()
    ref = {n: gc.encode(x, codec=n) for n in _NAMES}
    torch.set_num_threads(1)
    for n in _NAMES:
        assert gc.encode(x, codec=n) == ref[n], f"{n}: other bytes with one thread"


@pytest.mark.slow
def test_same_bytes_in_a_process_with_plain_cpu_kernels() -> None:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(_NAMES)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    other = json.loads(run.stdout.strip().splitlines()[-1])
    x = _image()
    for name in _NAMES:
        data = gc.encode(x, codec=name)
        assert hashlib.sha256(data).hexdigest() == other[name][0], f"{name}: other bytes with ATEN_CPU_CAPABILITY=default"
        here = np.asarray(gc.decode(data), dtype=np.int16)
        there = np.asarray(other[name][1], dtype=np.int16)
        if _exact(name):
            assert np.array_equal(here, there), f"{name}: decoded pixels differ with ATEN_CPU_CAPABILITY=default"
        else:
            assert np.abs(here - there).max() <= 1, f"{name}: decoded pixels differ by more than one level"


@pytest.mark.slow
def test_exact_decoders_give_the_same_pixels_under_every_setting(restore_threads: int) -> None:
    """Thread counts and oneDNN on/off: the fixed-point synthesis decodes to identical bytes."""
    x = _image()
    for name in [n for n in _NAMES if _exact(n)]:
        data = gc.encode(x, codec=name)
        ref = np.asarray(gc.decode(data))
        torch.set_num_threads(1)
        one = np.asarray(gc.decode(data))
        torch.set_num_threads(restore_threads)
        with torch.backends.mkldnn.flags(enabled=False):
            no_onednn = np.asarray(gc.decode(data))
        assert np.array_equal(ref, one) and np.array_equal(ref, no_onednn), name
