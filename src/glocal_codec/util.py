"""Small helpers every layer shares: one atomic writer, one file hash, one PSNR.

They sit at the bottom of the package (nothing here imports another ``glocal_codec`` module), so
codecs, the APIs, evaluation, training and the CLI all use the same code instead of copies
that drift apart. torch is imported by :func:`psnr` only (the CLI's light commands use the rest).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["atomic_write", "file_sha256", "psnr", "exp_exact", "exp_exact_t", "erf_exact", "erfc_exact", "erfc_exact_t",
           "LN2_HI", "LN2_LO", "INV_LN2", "EXP_COEFFS", "ERFC_COEFFS"]

#: Bytes or text to write, or a callable that writes the file at the temporary path it is given
#: (for writers that want a file name: ``torch.save``, safetensors, PyAV, matplotlib).
Content = Union[bytes, str, Callable[[str], None]]


def _plain_mode(path: str) -> None:
    """Give a ``mkstemp`` file (mode 0600) the mode a plain ``open`` would have (0666 & ~umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _clean_stale(folder: Path, name: str) -> None:
    """Remove temporary files of ``name`` left by writers that were killed (their pid is gone)."""
    for p in folder.glob(f".{name}.*{_PARTIAL}*"):
        try:
            pid = int(p.name[len(name) + 2:].split(".", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            p.unlink(missing_ok=True)


#: Marks temporary files: ``.<name>.<pid>.<random>.partial[<suffix>]`` in the target's folder.
_PARTIAL = ".partial"


def atomic_write(path: str | os.PathLike, content: Content, *, force: bool = False, mkdir: bool = False,
                 suffix: str = "") -> Path:
    """Write ``content`` to ``path`` atomically: a temporary file in the same folder, then a rename.

    A reader sees the old file or the new one, never a partial one; a failed write leaves
    nothing behind. Without ``force`` an existing file is never replaced, and the final step
    is an exclusive create (a hard link, which fails if the name exists), so of two writers
    racing for the same new name exactly one wins and the other gets ``FileExistsError``.
    ``mkdir`` creates missing parent folders; ``suffix`` ends the temporary file's name (some
    writers pick the format from it). Temporary files are named ``.<name>.<pid>.*.partial``;
    those of killed writers are removed by the next write to the same name.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    folder = path.parent if str(path.parent) else Path(".")
    if mkdir:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise FileNotFoundError(f"output folder {folder} does not exist")
    _clean_stale(folder, path.name)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.{os.getpid()}.", suffix=_PARTIAL + suffix)
    try:
        if callable(content):
            os.close(fd)
            content(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
        _plain_mode(tmp)
        if force:
            os.replace(tmp, path)
        else:
            _create_exclusive(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _create_exclusive(tmp: str, path: Path) -> None:
    """Give ``tmp`` the name ``path`` only if nothing has that name (atomically), then drop ``tmp``."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it") from None
    except OSError:  # a file system without hard links: the best it offers is check-then-rename
        if path.exists():
            raise FileExistsError(f"{path} exists; pass --force to overwrite it") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (never the whole file in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB over all channels of two images in [0, 1], both first rounded to 8 bits.

    ``10 log10(255^2 / MSE)``; ``inf`` for identical images. Integer arithmetic on the 8-bit
    values, so the number is the same whatever the thread count or summation order, and it is
    the PSNR of what a user actually gets (an 8-bit image), not of the float output.
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    diff = _to8(a) - _to8(b)
    sse = int((diff * diff).sum().item())
    if sse == 0:
        return float("inf")
    return 10 * math.log10(255.0**2 * diff.numel() / sse)


def _to8(x: torch.Tensor) -> torch.Tensor:
    import torch

    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.int64)


# exp(x) from correctly rounded +, -, *, / and ldexp only (Cody-Waite range reduction with the
# fdlibm split of ln 2, then a fixed-order Taylor polynomial). np.exp / torch.exp are *not*
# bit-identical across CPUs: they dispatch to AVX2 / AVX-512 kernels whose results differ from
# the scalar libm path in the last bit. Anything that must be identical on every machine (coding
# tables, fixed-point decoders) uses this instead.
LN2_HI = 6.93147180369123816490e-01  # low 32 bits zero: k * LN2_HI is exact for |k| < 2**20
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
EXP_COEFFS = [1.0 / math.factorial(n) for n in range(13, -1, -1)]  # |r| <= 0.35: error < 1e-17


#: Elements per pass of the polynomial loops: small enough that the ~30 passes stay in the CPU
#: cache (several times faster on the millions of values of a fixed-point attention decoder),
#: large enough for torch to split each pass over its threads; every element goes through the
#: same operations whatever the chunking.
_CHUNK = 1 << 16


def _chunked_t(fn: Callable[["torch.Tensor", "torch.Tensor"], None], x: "torch.Tensor") -> "torch.Tensor":
    """``fn(x_chunk, out_chunk)`` over the flattened float64 CPU tensor ``x``, chunk by chunk.

    The chunks run torch's elementwise kernels, which use torch's threads and SIMD width; the
    operations are single, correctly rounded IEEE ones (``*``, ``+``, ``-``, ``/``, round to
    nearest even) never fused with each other, so the bits depend on neither (numpy's ufuncs,
    used before, gave the same bits at about half the speed)."""
    import torch

    x = x.detach().to("cpu", torch.float64).contiguous()
    out = torch.empty_like(x)
    xf, of = x.view(-1), out.view(-1)
    for i in range(0, xf.numel(), _CHUNK):
        fn(xf[i: i + _CHUNK], of[i: i + _CHUNK])
    return out


def _as_numpy_op(fn: Callable[["torch.Tensor"], "torch.Tensor"], x: np.ndarray) -> np.ndarray:
    """A tensor function of :func:`_chunked_t` on a numpy array; 0-d in, scalar out."""
    import torch

    a = np.asarray(x, dtype=np.float64)
    c = np.ascontiguousarray(a)
    if not c.flags.writeable:  # torch.from_numpy warns on read-only memory (it is only read here)
        c = c.copy()
    out = fn(torch.from_numpy(c)).numpy().reshape(a.shape)
    return out if out.ndim else out[()]


def _pow2_t(k: "torch.Tensor") -> "torch.Tensor":
    """``2.0**k`` for an int64 tensor with ``-1022 <= k <= 1023``, built from the exponent bits."""
    import torch

    return ((k + 1023) << 52).view(torch.float64)


def _exp_chunk(x: "torch.Tensor", out: "torch.Tensor") -> None:
    import torch

    k = torch.round(x * INV_LN2)
    r = x - k * LN2_HI
    r -= k * LN2_LO
    poly = torch.full_like(r, EXP_COEFFS[0])
    for c in EXP_COEFFS[1:]:
        poly.mul_(r)  # two kernels: no fused multiply-add, same rounding everywhere
        poly.add_(c)
    # ldexp(poly, k) as two power-of-two products (each half of k keeps 2**e normal): the first
    # is exact, the second rounds once, as ldexp does, into overflow or subnormals alike
    ki = k.clamp(-2000, 2000).to(torch.int64)
    half = ki >> 1
    poly.mul_(_pow2_t(half))
    torch.mul(poly, _pow2_t(ki - half), out=out)


def exp_exact_t(x: "torch.Tensor") -> "torch.Tensor":
    """:func:`exp_exact` on a tensor (float64 on the CPU out)."""
    return _chunked_t(_exp_chunk, x.detach().double().clamp_min(-700.0))


def exp_exact(x: np.ndarray, threads: int = 1) -> np.ndarray:
    """exp of a float64 array (x <= 709; below -700 it is taken as -700, ~1e-304), bit-identical
    on every IEEE-754 machine. ``threads`` is accepted for compatibility: the work runs on
    torch's threads, and the bits do not depend on their number."""
    return _as_numpy_op(exp_exact_t, x)


# erfc(x) for x >= 0 from the Chebyshev-fitted form of Press et al., "Numerical Recipes" (2nd ed.,
# section 6.2, erfcc): t exp(-x^2 + P(t)), t = 1 / (1 + x / 2), with a *relative* error below
# 1.2e-7 everywhere (so GELU's small negative tail stays accurate too). Built like exp_exact from
# single elementwise operations (no fused multiply-add) and exp_exact: bit-identical on every machine.
ERFC_COEFFS = [0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806,
                0.09678418, 0.37409196, 1.00002368, -1.26551223]


def _erfc_chunk(x: "torch.Tensor", out: "torch.Tensor") -> None:
    """erfc(x) (relative error < 1.2e-7 for x >= 0), via erfc(-z) = 2 - erfc(z)."""
    import torch

    z = x.abs()
    t = (z * 0.5).add_(1.0)
    t = torch.full_like(t, 1.0).div_(t)  # a true division (not an approximate reciprocal)
    poly = torch.full_like(z, ERFC_COEFFS[0])
    for c in ERFC_COEFFS[1:]:
        poly.mul_(t)
        poly.add_(c)
    z.mul_(z)
    poly.sub_(z)  # -z^2 + P(t)
    poly.clamp_min_(-700.0)
    _exp_chunk(poly, out)
    out.mul_(t)
    torch.where(x < 0, 2.0 - out, out, out=out)  # elementwise: no boolean gather / scatter


def erfc_exact_t(x: "torch.Tensor") -> "torch.Tensor":
    """:func:`erfc_exact` on a tensor (float64 on the CPU out)."""
    return _chunked_t(_erfc_chunk, x)


def erfc_exact(x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Complementary error function of a float64 array, bit-identical on every IEEE-754 machine
    (``np.exp`` / ``math.erfc`` / ``torch.erf`` are not: SIMD kernels differ in the last bit).
    Relative error below 1.2e-7 for x >= 0, absolute error below 2.4e-7 for x < 0. ``threads``:
    as in :func:`exp_exact`."""
    return _as_numpy_op(erfc_exact_t, x)


def erf_exact(x: np.ndarray) -> np.ndarray:
    """Error function of a float64 array (absolute error below 1.2e-7), bit-identical on every
    IEEE-754 machine; for the exact GELU of the fixed-point attention decoders."""
    x = np.asarray(x, dtype=np.float64)
    r = 1.0 - erfc_exact(np.abs(x))
    return np.where(x >= 0, r, -r) if np.ndim(r) else (r if x >= 0 else -r)
