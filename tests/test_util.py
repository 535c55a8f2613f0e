"""The shared helpers: one atomic writer (no races, no leftovers), one sha256, one PSNR."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from glocal_codec.util import atomic_write, file_sha256, psnr


def test_write_refuse_force_and_no_leftovers(tmp_path: Path) -> None:
    p = tmp_path / "a.glc"
    atomic_write(p, b"one")
    with pytest.raises(FileExistsError, match="--force"):
        atomic_write(p, b"two")
    assert p.read_bytes() == b"one"
    atomic_write(p, "two", force=True)
    assert p.read_text() == "two"
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "b.glc", lambda tmp: (_ for _ in ()).throw(RuntimeError("writer failed")))
    assert sorted(os.listdir(tmp_path)) == ["a.glc"]
    atomic_write(tmp_path / "deep" / "er" / "c.txt", b"x", mkdir=True)
    assert (tmp_path / "deep" / "er" / "c.txt").read_bytes() == b"x"


def test_racing_writers_without_force_one_wins(tmp_path: Path) -> None:
    """Many threads create the same new name: exactly one succeeds, the others get FileExistsError."""
    for trial in range(20):
        p = tmp_path / f"race{trial}.glc"
        results: list[str] = []
        barrier = threading.Barrier(4)

        def write(i: int) -> None:
            barrier.wait()
            try:
                atomic_write(p, f"writer {i}".encode())
                results.append(f"ok {i}")
            except FileExistsError:
                results.append("exists")

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [r for r in results if r.startswith("ok")]
        assert len(winners) == 1 and results.count("exists") == 3, results
        assert p.read_bytes() == f"writer {winners[0].split()[1]}".encode()  # the winner's bytes, whole
    assert not [n for n in os.listdir(tmp_path) if ".partial" in n]


def test_a_killed_writers_temp_file_is_cleaned_by_the_next_write(tmp_path: Path) -> None:
    code = ("import os, sys\nfrom glocal_codec.util import atomic_write\n"
            "atomic_write(sys.argv[1], lambda tmp: (open(tmp, 'wb').write(b'x' * 100), os.kill(os.getpid(), 9)))")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big.glc")], capture_output=True, timeout=120)
    assert run.returncode != 0
    left = [n for n in os.listdir(tmp_path) if ".partial" in n]
    assert left and all(n.startswith(".big.glc.") for n in left)  # recognisable
    atomic_write(tmp_path / "big.glc", b"done")
    assert os.listdir(tmp_path) == ["big.glc"]


def test_file_sha256_and_psnr(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc" * 1_000_000)
    assert file_sha256(p) == hashlib.sha256(b"abc" * 1_000_000).hexdigest()
    a = torch.zeros(1, 3, 4, 4)
    assert psnr(a, a) == float("inf")
    b = a.clone()
    b[0, 0, 0, 0] = 1.0  # one sample off by 255 in 48: MSE = 255^2 / 48
    assert psnr(a, b) == pytest.approx(10 * torch.log10(torch.tensor(48.0)).item())
    with pytest.raises(ValueError):
        psnr(a, torch.zeros(1, 3, 4, 5))


def test_exact_functions_give_the_same_bits_on_any_number_of_threads() -> None:
    """exp_exact / erfc_exact run on torch's threads: same operations per element whatever their number."""
    from glocal_codec.util import erfc_exact, exp_exact

    x = np.random.default_rng(3).normal(size=(5, 40_001)) * 6  # not a multiple of the chunk
    n = torch.get_num_threads()
    for fn in (exp_exact, erfc_exact):
        ref = fn(x)
        try:
            for t in (1, 3, 7):
                torch.set_num_threads(t)
                assert np.array_equal(fn(x, threads=t), ref)
        finally:
            torch.set_num_threads(n)
    assert exp_exact(np.float64(0.0), threads=2) == 1.0  # 0-d in, scalar out
