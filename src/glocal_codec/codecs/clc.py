"""``clc``: conditional latent coding with references retrieved from a dictionary.

After Chen et al., "Conditional Latent Coding with Learnable Synthesized Reference for Deep
Image Compression" (AAAI 2025; public code ydchen0806/CLC), built on this project's ``msh``:

* **Dictionary** -- K representative images of an external corpus (the training photos for the
  built-in one; any folder for a user one, ``glocal-codec clc build-dictionary``): every image's
  ``msh`` analysis latent ``g_a(x)`` gives a *retrieval feature* (per-channel mean and standard
  deviation, L2-normalised: ``2M`` numbers) and *reference tokens* (the latent average-pooled to a
  ``grid x grid`` grid: ``T = grid**2`` tokens of ``M`` channels). Spherical k-means
  (:func:`glocal_codec.nn.vq.kmeans`) clusters the features into K groups; each group's
  representative is its image nearest to the centroid. The decoder needs only the tokens; the
  built-in dictionary is stored in the weights (buffers ``dict_features``, ``dict_tokens``, under
  the weights digest), a user dictionary is a safetensors file with its own digest.
* **Retrieval** (encoder only) -- the ``k`` entries (1..``k_max``, default 2) whose features have
  the largest cosine with the input's feature, ties broken by the lower id; the ids and the
  dictionary's digest go into the file (:mod:`.clc_header`, 9 bytes for k = 2), so the decoder
  never recomputes them. ``retrieval="random"`` draws ids instead (the ablation).
* **Conditional coding** -- ``msh``'s hyper-synthesis ``h_s`` is split after its second
  up-sampling stage: the ``3M/2``-channel features there attend to the ``k T`` reference tokens
  (:func:`~glocal_codec.nn.reference_attention.reference_attention`: pooled-token cross-attention,
  :class:`~glocal_codec.nn.GlobalTokenAttention` with the tokens as its context) and the result,
  times a per-channel gate initialised at zero, is *added* to ``h_s``'s output (the Gaussian
  scales and means of every latent element). At gate zero the model is exactly ``msh``:
  ``train clc --init-from msh.safetensors`` starts at msh's rate-distortion point.
* **Determinism** -- as ``msh``: scales from the float64 ``h_s`` (scale indices), means from the
  fixed-point ``h_s`` (:mod:`glocal_codec.nn.fixed_point`); the fusion's contribution is computed
  on the fixed-point grid (:class:`~glocal_codec.nn.reference_attention.ExactReferenceAttention`)
  and added exactly, so the decoder's means are the same bits on every machine; the synthesis is
  msh's fixed-point one.

Training (``glocal-codec train clc``, see ``docs/clc.md``): the references of each crop are
retrieved from the model's dictionary (``--arch dictionary_file=...`` loads it at
``--init-from``); ``--arch zero_refs=true`` is the ablation with the reference input zeroed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bitstream.errors import CorruptStreamError, WeightsMismatchError
from ..engine import pad_to_multiple
from ..nn import GlobalTokenAttention, ste_round
from ..nn.fixed_point import FRAC, FixedPointNet, to_grid
from ..nn.reference_attention import ExactReferenceAttention, reference_attention
from .base import Payload, ProgressFn
from .clc_header import BUILTIN, DIGEST_BYTES, MAX_ENTRIES, MAX_REFS, USER, ClcParams, pack_params, unpack_params
from .hyperprior import ForwardResult, MeanScaleHyperprior, _full_precision, _widen_float
from ..entropy import factorized_bits
from .learned import LearnedImageCodec

__all__ = ["ClcConfig", "ClcModel", "ClcCodec", "ClcDictionary", "DictionaryError", "dictionary_digest",
           "retrieval_features", "reference_tokens", "nearest", "build_dictionary", "save_dictionary",
           "load_dictionary", "image_latent"]

#: Dictionary files larger than this are refused before they are read.
MAX_DICTIONARY_BYTES = 256 << 20
_FORMAT = "glocal-codec clc dictionary"
_FORMAT_VERSION = "1"


class DictionaryError(ValueError):
    """A clc dictionary file is not valid, or does not fit the model."""


@dataclass(frozen=True)
class ClcConfig:
    """Architecture hyper-parameters of :class:`ClcModel` (stored in the weights manifest)."""

    n: int = 128  # msh's transform / hyper-latent channels
    m: int = 192  # msh's latent channels
    levels: int = 6
    entries: int = 128  # K: entries of the built-in dictionary
    grid: int = 4  # reference tokens per side: grid**2 tokens per reference
    k: int = 2  # references per image (the encoder's default)
    k_max: int = 3  # most references the fusion is built for
    heads: int = 4
    inner: int = 128  # width of the cross-attention
    zero_refs: bool = False  # ablation: the reference tokens are zeroed (same parameters, no references)
    #: Training only: the dictionary file (``benchmarks/clc_dictionary.py``) whose entries become the
    #: built-in dictionary when training starts from msh (``--init-from``); the weights carry it after.
    dictionary_file: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.k_max <= MAX_REFS:
            raise ValueError(f"need 1 <= k <= k_max <= {MAX_REFS}, got k={self.k}, k_max={self.k_max}")
        if not 1 <= self.entries <= MAX_ENTRIES or self.grid < 1:
            raise ValueError(f"entries must be 1..{MAX_ENTRIES} and grid >= 1")
        if self.inner % self.heads:
            raise ValueError(f"inner {self.inner} is not divisible by heads {self.heads}")

    @property
    def tokens(self) -> int:
        """Reference tokens per dictionary entry."""
        return self.grid * self.grid


# -- features, tokens, retrieval ------------------------------------------------------------------
def retrieval_features(y: torch.Tensor) -> torch.Tensor:
    """(N, M, h, w) analysis latents -> (N, 2M) float64 retrieval features: per-channel mean and
    standard deviation over the positions, L2-normalised (cosine retrieval)."""
    t = y.detach().double().flatten(2)
    f = torch.cat([t.mean(-1), t.std(-1, unbiased=False)], dim=1)
    return F.normalize(f, dim=1)


def reference_tokens(y: torch.Tensor, grid: int) -> torch.Tensor:
    """(N, M, h, w) analysis latents -> (N, grid**2, M) float32 tokens (average-pooled cells)."""
    return F.adaptive_avg_pool2d(y.detach().float(), (grid, grid)).flatten(2).transpose(1, 2).contiguous()


def nearest(features: torch.Tensor, entries: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k) ids of the ``k`` entries with the largest cosine to each feature (features are
    normalised), best first; equal scores go to the lower id."""
    if not 1 <= k <= entries.shape[0]:
        raise ValueError(f"cannot retrieve {k} references from a dictionary of {entries.shape[0]}")
    scores = features.double() @ entries.double().t()
    return torch.sort(-scores, dim=1, stable=True).indices[:, :k]


def dictionary_digest(features: torch.Tensor, tokens: torch.Tensor) -> bytes:
    """The 4-byte digest files carry: sha256 of the dictionary's shapes and float32 contents."""
    f = features.detach().float().cpu().contiguous().numpy().astype("<f4")
    t = tokens.detach().float().cpu().contiguous().numpy().astype("<f4")
    if f.ndim != 2 or t.ndim != 3:
        raise DictionaryError(f"features must be (K, 2M) and tokens (K, T, M), got {f.shape} and {t.shape}")
    h = hashlib.sha256(_FORMAT.encode() + struct.pack("<4Q", *f.shape, *t.shape[1:]))
    h.update(f.tobytes())
    h.update(t.tobytes())
    return h.digest()[:DIGEST_BYTES]


@dataclass(frozen=True)
class ClcDictionary:
    """``features`` (K, 2M) and ``tokens`` (K, T, M), float32; ``kind`` (built-in or user file),
    ``digest`` (what files carry) and ``source`` (for messages)."""

    features: torch.Tensor
    tokens: torch.Tensor
    kind: int
    digest: bytes
    source: str

    @property
    def entries(self) -> int:
        return int(self.features.shape[0])

    @property
    def name(self) -> str:
        what = "built-in dictionary" if self.kind == BUILTIN else f"dictionary {self.source}"
        return f"{what} ({self.digest.hex()})"


def save_dictionary(path: Path, features: torch.Tensor, tokens: torch.Tensor, *, model: str = "",
                    images: int = 0) -> bytes:
    """Write a user dictionary (safetensors: ``features``, ``tokens``; metadata with its digest);
    returns the digest."""
    from safetensors.torch import save_file

    from ..util import atomic_write

    features, tokens = features.detach().float().cpu().contiguous(), tokens.detach().float().cpu().contiguous()
    digest = dictionary_digest(features, tokens)
    meta = {"format": _FORMAT, "version": _FORMAT_VERSION, "digest": digest.hex(), "model": model,
            "images": str(images)}
    atomic_write(Path(path), lambda tmp: save_file({"features": features, "tokens": tokens}, tmp, metadata=meta),
                 force=True, mkdir=True)
    return digest


def load_dictionary(path: str | Path, *, channels: int | None = None, tokens: int | None = None) -> ClcDictionary:
    """Read a dictionary file strictly: size limit, exact keys, dtypes and shapes checked from the
    header before any tensor is read, finite values, the stored digest recomputed.
    ``channels`` / ``tokens``: what the model needs (M, T). Raises :class:`DictionaryError`."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_DICTIONARY_BYTES:
        raise DictionaryError(f"{path}: {size:,} bytes, more than a clc dictionary may have")
    data = path.read_bytes()
    if len(data) < 8:
        raise DictionaryError(f"{path}: not a clc dictionary (too short)")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > len(data) - 8 or hlen > 1 << 20:
        raise DictionaryError(f"{path}: not a clc dictionary (bad header length)")
    try:
        header = json.loads(data[8:8 + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DictionaryError(f"{path}: not a clc dictionary (unreadable header)") from None
    meta = header.pop("__metadata__", None) if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise DictionaryError(f"{path}: not a clc dictionary")
    if meta.get("version") != _FORMAT_VERSION:
        raise DictionaryError(f"{path}: clc dictionary version {meta.get('version')!r}, this reader knows "
                              f"{_FORMAT_VERSION}")
    if set(header) != {"features", "tokens"}:
        raise DictionaryError(f"{path}: a clc dictionary holds 'features' and 'tokens', found {sorted(header)}")
    fs, ts = header["features"].get("shape"), header["tokens"].get("shape")
    if any(header[k].get("dtype") != "F32" for k in header) or len(fs or ()) != 2 or len(ts or ()) != 3:
        raise DictionaryError(f"{path}: features must be float32 (K, 2M) and tokens float32 (K, T, M)")
    k = fs[0]
    if not 1 <= k <= MAX_ENTRIES or ts[0] != k or fs[1] != 2 * ts[2]:
        raise DictionaryError(f"{path}: inconsistent shapes features {fs}, tokens {ts}")
    if channels is not None and ts[2] != channels:
        raise DictionaryError(f"{path}: built for a model with {ts[2]} latent channels, this one has {channels}")
    if tokens is not None and ts[1] != tokens:
        raise DictionaryError(f"{path}: {ts[1]} tokens per entry, this model uses {tokens}")
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    try:
        t = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise DictionaryError(f"{path}: damaged clc dictionary ({e})") from None
    f, tk = t["features"], t["tokens"]
    if not (torch.isfinite(f).all() and torch.isfinite(tk).all()):
        raise DictionaryError(f"{path}: the dictionary holds non-finite values")
    digest = dictionary_digest(f, tk)
    if meta.get("digest") != digest.hex():
        raise DictionaryError(f"{path}: damaged clc dictionary (digest {digest.hex()}, the file says "
                              f"{meta.get('digest')})")
    return ClcDictionary(f, tk, USER, digest, str(path))


def image_latent(g_a: nn.Module, x: torch.Tensor, pad_multiple: int = 64) -> torch.Tensor:
    """The analysis latent (no gain) of a 1 x C x H x W image, padded as the codec pads it."""
    c, h, w = x.shape[1:]
    xin = x.expand(1, 3, h, w) if c == 1 else x
    return g_a(pad_to_multiple(xin.float(), pad_multiple))


@torch.no_grad()
def build_dictionary(g_a: nn.Module, images: Sequence[Path], *, entries: int = 128, grid: int = 4,
                     max_side: int = 768, seed: int = 0, iters: int = 20,
                     progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (K, 2M) and tokens (K, grid**2, M) of a dictionary of ``images``.

    Every image (shrunk so its longer side is at most ``max_side``) goes through the analysis
    ``g_a``; spherical k-means (seeded) clusters the features into ``min(entries, len(images))``
    groups; each group is represented by its image nearest to the centroid (a real image, so
    its tokens are a real latent's). Deterministic for the same images, weights and seed.
    """
    from ..imageio import load_image
    from ..nn.vq import kmeans

    if not images:
        raise DictionaryError("no images to build a dictionary from")
    feats, toks = [], []
    for i, p in enumerate(images):
        x = load_image(p)[0]
        h, w = x.shape[-2:]
        if max(h, w) > max_side:
            s = max_side / max(h, w)
            x = F.interpolate(x, size=(max(16, round(h * s)), max(16, round(w * s))), mode="bicubic",
                              align_corners=False, antialias=True).clamp(0, 1)
        y = image_latent(g_a, x)
        feats.append(retrieval_features(y))
        toks.append(reference_tokens(y, grid))
        if progress is not None:
            progress(i + 1, len(images))
    f, t = torch.cat(feats), torch.cat(toks)
    k = min(entries, f.shape[0])
    if k == f.shape[0]:
        chosen = list(range(k))
    else:
        gen = torch.Generator().manual_seed(seed)
        cent, _ = kmeans(f.float(), k, iters=iters, generator=gen, spherical=True)
        scores = F.normalize(cent.double(), dim=1) @ f.t()  # (k, N)
        chosen, used = [], set()
        for j in range(k):  # each centroid's nearest image not taken yet
            for i in torch.sort(-scores[j], stable=True).indices.tolist():
                if i not in used:
                    used.add(i)
                    chosen.append(i)
                    break
    idx = torch.tensor(chosen)
    return f[idx].float(), t[idx].float()


# -- the model ---------------------------------------------------------------------------------------
#: The references a model codes with, per thread and model: set by ClcModel.references().
_ACTIVE = threading.local()


class ClcModel(MeanScaleHyperprior):
    """msh plus a dictionary and a reference fusion in the hyper-synthesis (see the module docs).

    Follows :class:`~glocal_codec.codecs.base.RefinableLatentModel` and
    :class:`~glocal_codec.codecs.base.ExactSynthesis` like msh; the references of ``compress``,
    ``decompress`` and ``rd_terms`` are set around them with :meth:`references`.
    """

    config_class = ClcConfig

    def __init__(self, cfg: ClcConfig = ClcConfig()) -> None:
        super().__init__(cfg)
        m = cfg.m
        self.fusion = GlobalTokenAttention(m * 3 // 2, cfg.heads, tokens=cfg.k_max * cfg.tokens, context_dim=m,
                                           inner=cfg.inner, out_dim=2 * m)
        self.gate = nn.Parameter(torch.zeros(2 * m))  # zero: exactly msh
        # the built-in dictionary (random until one is loaded: a stand-in that still retrieves)
        self.register_buffer("dict_features", F.normalize(torch.randn(cfg.entries, 2 * m), dim=1))
        self.register_buffer("dict_tokens", 0.5 * torch.randn(cfg.entries, cfg.tokens, m))
        self._exact: list = []  # [ExactReferenceAttention, gate on the grid], built on first use
        self._digest: list[bytes] = []

    # -- dictionary and references -------------------------------------------------------------
    def builtin_dictionary(self) -> ClcDictionary:
        if not self._digest:
            self._digest.append(dictionary_digest(self.dict_features, self.dict_tokens))
        return ClcDictionary(self.dict_features.detach().cpu(), self.dict_tokens.detach().cpu(), BUILTIN,
                             self._digest[0], "built-in")

    def gather(self, tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(N, k) ids into a (K, T, M) token table -> (N, k T, M); zeros with ``zero_refs``."""
        out = tokens[ids.to(tokens.device)].flatten(1, 2)
        return torch.zeros_like(out) if self.cfg.zero_refs else out

    @contextmanager
    def references(self, tokens: torch.Tensor) -> Iterator[None]:
        """Code with ``tokens`` (1, S, M) as the references (this thread, inside the block)."""
        if tokens.dim() != 3 or tokens.shape[2] != self.cfg.m or tokens.shape[1] > self.fusion.tokens:
            raise ValueError(f"references must be (N, <= {self.fusion.tokens}, {self.cfg.m}), got {tuple(tokens.shape)}")
        if self.cfg.zero_refs:
            tokens = torch.zeros_like(tokens)
        table = getattr(_ACTIVE, "refs", None)
        if table is None:
            table = _ACTIVE.refs = {}
        prev = table.get(id(self))
        table[id(self)] = tokens
        try:
            yield
        finally:
            if prev is None:
                table.pop(id(self), None)
            else:
                table[id(self)] = prev

    def _active(self) -> torch.Tensor:
        t = getattr(_ACTIVE, "refs", {}).get(id(self))
        if t is None:
            raise RuntimeError("clc codes with references: call compress / decompress / rd_terms inside "
                               "model.references(tokens)")
        return t

    # -- the conditional hyper-synthesis --------------------------------------------------------
    def hyper(self, z_hat: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``h_s(z_hat)`` plus the gated fusion of ``tokens``: (N, 2M, H, W), scales then means."""
        feat = self.h_s[:4](z_hat)
        base = self.h_s[4](feat)
        delta = reference_attention(self.fusion, feat, tokens.to(feat.device, feat.dtype))
        return base + self.gate.view(1, -1, 1, 1) * delta

    def forward(self, x: torch.Tensor, q: int, **_: object) -> ForwardResult:
        """Training pass: each crop's references retrieved from the dictionary (k drawn from
        1..k_max per step with torch's global generator, so every k the encoder may use is trained)."""
        y_raw = self.g_a(x)
        y = _widen_float(self.gain(y_raw, q))
        k = int(torch.randint(1, self.cfg.k_max + 1, ())) if self.training else self.cfg.k
        with torch.no_grad():
            ids = nearest(retrieval_features(y_raw), self.dict_features, min(k, self.cfg.entries))
        tokens = self.gather(self.dict_tokens, ids)
        with _full_precision(x):
            z = self.h_a(y)
            z_hat, z_lik = self.ebs[q](z)
            scales, means = self.hyper(z_hat, tokens).chunk(2, 1)
            _, y_lik = self.gaussian(y, scales, means=means)
        y_hat = ste_round(y - means) + means
        x_hat = self.g_s(self.gain(y_hat, q, inverse=True))
        return ForwardResult(_widen_float(x_hat), {"y": y_lik, "z": z_lik},
                             stats={"gate": float(self.gate.detach().abs().mean())})

    def rd_terms(self, latents: list[torch.Tensor], rounding, q: int) -> tuple[torch.Tensor, torch.Tensor]:
        """msh's (bits, reconstruction) with the active references in the hyper-synthesis."""
        y, z = latents
        z_hat = rounding(z)
        scales, means = self.hyper(z_hat, self._active()).chunk(2, 1)
        y_hat = rounding(y - means) + means
        lik = self.gaussian.likelihood_lower_bound(self.gaussian._likelihood(y_hat, scales, means))
        bits = factorized_bits(self.ebs[q], z_hat) - torch.log2(lik).sum()
        return bits, self.synthesis(y_hat, q)

    def entropy_parameters(self, z_hat: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """msh's scale indices and means (float64 scales, fixed-point means) plus the fusion of the
        active references, computed on the fixed-point grid and added exactly: the gate and the
        attention output are on ``2**-16``, their product on ``2**-32`` (exact in float64), and so
        is its sum with the fixed-point means. At gate zero these are msh's numbers, bit for bit."""
        tokens = self._active()
        if not self._h_s64:
            self._h_s64.append(copy.deepcopy(self.h_s).double().cpu().eval())
        if "h_s_trunk" not in self._fixed:
            self._fixed["h_s_trunk"] = FixedPointNet(nn.Sequential(*list(self.h_s)[:4]))
            self._fixed["h_s_head"] = FixedPointNet(nn.Sequential(self.h_s[4]))
        if not self._exact:
            self._exact.extend([ExactReferenceAttention(self.fusion), to_grid(self.gate.detach().double().cpu())])
        fusion, gate = self._exact
        with torch.no_grad():
            scales, _ = self._h_s64[0](z_hat.double().cpu()).chunk(2, 1)
            feat = self._fixed["h_s_trunk"](z_hat.cpu())
            base = self._fixed["h_s_head"](feat)
            delta = fusion(feat.permute(0, 2, 3, 1).contiguous(), tokens.cpu()).permute(0, 3, 1, 2)
            limit = 2.0 ** (53 - 2 * FRAC)
            if float(delta.abs().max() * gate.abs().max()) + float(base.abs().max()) >= limit:
                from ..nn.fixed_point import NotExactError

                raise NotExactError("clc fusion: values beyond the exact float64 range")
            delta = delta * gate.view(1, -1, 1, 1)  # exact: both on the 2**-16 grid
            d_scales, _ = delta.chunk(2, 1)
            _, means = (base + delta).chunk(2, 1)  # exact sum on the 2**-32 grid
            scales = scales + d_scales
        return self.coder.scale_index(scales.numpy()), means.numpy()

    def _reset_caches(self) -> None:
        super()._reset_caches()
        if hasattr(self, "_exact"):
            self._exact.clear()
            self._digest.clear()

    # -- warm start ------------------------------------------------------------------------------
    def adapt_source(self, src: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
        """``train clc --init-from msh.safetensors``: msh's tensors as they are (the fusion's gate
        stays zero: exactly msh, densities included, hence ``True``), plus the dictionary of
        ``cfg.dictionary_file`` when given. A clc source is returned unchanged (``False``)."""
        if "h_s.0.weight" not in src or "gate" in src:
            return src, False
        out = dict(src)
        if self.cfg.dictionary_file:
            d = load_dictionary(self.cfg.dictionary_file, channels=self.cfg.m, tokens=self.cfg.tokens)
            if d.entries != self.cfg.entries:
                raise DictionaryError(f"{self.cfg.dictionary_file} has {d.entries} entries, the model "
                                      f"{self.cfg.entries} (--arch entries={d.entries})")
            out["dict_features"], out["dict_tokens"] = d.features, d.tokens
        elif not self.cfg.zero_refs:
            warnings.warn("clc starts from msh without a dictionary (--arch dictionary_file=...): its references "
                          "are random stand-ins; build one with benchmarks/clc_dictionary.py", stacklevel=2)
        return out, True


# -- the codec ---------------------------------------------------------------------------------------
class ClcCodec(LearnedImageCodec):
    """The ``clc`` plugin. ``dictionary``: a user dictionary file (default: the built-in one);
    ``k``: references per image (default: the model's, 2); ``retrieval``: ``"nearest"`` or
    ``"random"`` (ablation: ids drawn from a generator seeded by ``seed`` and the image)."""

    name = "clc"
    description = ("conditional latent coding (CLC, Chen 2025) on msh: k references retrieved from a dictionary "
                   "(built-in or --dictionary), fused into the hyperprior; ids in the file")
    model_class = ClcModel
    #: the header parameters name the references; strips are padded, not folded
    folds_strips = False

    def __init__(self, device: str | torch.device | None = None, *, dictionary: str | Path | None = None,
                 k: int | None = None, retrieval: str = "nearest", seed: int = 0) -> None:
        super().__init__(device)
        if retrieval not in ("nearest", "random"):
            raise ValueError(f"retrieval must be 'nearest' or 'random', got {retrieval!r}")
        if k is not None and not 1 <= k <= MAX_REFS:
            raise ValueError(f"k must be 1..{MAX_REFS}, got {k}")
        self.dictionary_file = None if dictionary is None else Path(dictionary)
        if self.dictionary_file is not None and not self.dictionary_file.is_file():
            raise FileNotFoundError(f"no such dictionary file: {self.dictionary_file}")
        self.k, self.retrieval, self.seed = k, retrieval, int(seed)
        self._dictionary: ClcDictionary | None = None

    @property
    def dictionary(self) -> ClcDictionary:
        """The dictionary this codec codes with (loaded on first use)."""
        if self._dictionary is None:
            model = self.model
            if self.dictionary_file is None:
                d = model.builtin_dictionary()
            else:
                d = load_dictionary(self.dictionary_file, channels=model.cfg.m, tokens=model.cfg.tokens)
            self._dictionary = d
        return self._dictionary

    def _tokens(self, d: ClcDictionary, ids: Sequence[int]) -> torch.Tensor:
        return self.model.gather(d.tokens, torch.tensor([list(ids)]))

    @torch.inference_mode()
    def select_references(self, x: torch.Tensor, k: int | None = None) -> tuple[int, ...]:
        """The encoder's choice of reference ids for image ``x`` (1 x C x H x W)."""
        model, d = self.model, self.dictionary
        k = k or self.k or model.cfg.k
        if not 1 <= k <= min(model.cfg.k_max, d.entries):
            raise ValueError(f"clc: k must be 1..{min(model.cfg.k_max, d.entries)} (the model fuses at most "
                             f"{model.cfg.k_max} references; the dictionary has {d.entries}), got {k}")
        if self.retrieval == "random":
            seed = int.from_bytes(hashlib.sha256(x.detach().float().cpu().numpy().tobytes()).digest()[:8], "little")
            gen = torch.Generator().manual_seed((seed + self.seed) % (1 << 63))
            return tuple(int(i) for i in torch.randperm(d.entries, generator=gen)[:k])
        c, h, w = x.shape[1:]
        xin = x.expand(1, 3, h, w) if c == 1 else x
        xin = pad_to_multiple(xin.to(self.device, torch.float32), self.pad_multiple)
        y = self._transform(model.g_a, xin, analysis=True)
        return tuple(int(i) for i in nearest(retrieval_features(y), d.features, k)[0])

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, quality: int, *, refine: int = 0,
               ids: Sequence[int] | None = None) -> Payload:
        """Encode ``x``; ``ids`` overrides the retrieval (the references to code with)."""
        return self._encode(x, quality, refine, ids=ids)

    def _encode(self, x: torch.Tensor, quality: int, refine: int, progress: ProgressFn | None = None,
                ids: Sequence[int] | None = None) -> Payload:
        self._check_quality(quality)
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected a 1 x C x H x W tensor with C in (1, 3), got {tuple(x.shape)}")
        model, d = self.model, self.dictionary
        if ids is None:
            ids = self.select_references(x)
        ids = tuple(int(i) for i in ids)
        if not 1 <= len(ids) <= model.cfg.k_max or not all(0 <= i < d.entries for i in ids):
            raise ValueError(f"clc: 1..{model.cfg.k_max} reference ids below {d.entries}, got {ids}")
        with model.references(self._tokens(d, ids)):
            payload = super()._encode(x, quality, refine, progress)
        return Payload(payload.shape, payload.quality, pack_params(ClcParams(d.kind, d.digest, ids)), payload.streams)

    @torch.inference_mode()
    def decode(self, payload: Payload) -> torch.Tensor:
        self._check_quality(payload.quality)
        p = unpack_params(payload.params)
        model, d = self.model, self.dictionary
        if (p.kind, p.digest) != (d.kind, d.digest):
            hint = ("decode it with --dictionary FILE, the dictionary it was encoded with" if p.kind == USER
                    else "decode it without --dictionary (the built-in dictionary of the weights that made it)")
            raise WeightsMismatchError(f"file was coded with the clc {p.dictionary} dictionary, this decoder has the "
                                       f"{d.name}: {hint}")
        if len(p.ids) > model.cfg.k_max or max(p.ids) >= d.entries:
            raise CorruptStreamError(f"clc references {p.ids}: the model fuses at most {model.cfg.k_max} of the "
                                     f"{d.entries} dictionary entries")
        with model.references(self._tokens(d, p.ids)):
            return super().decode(Payload(payload.shape, payload.quality, b"", payload.streams))
