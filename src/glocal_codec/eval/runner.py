"""The evaluation runner: every image x codec x quality through real files, resumable, parallel.

For each item the image is encoded with :func:`glocal_codec.encode` into a complete ``.glc``
file and decoded back with :func:`glocal_codec.decode_tensor`; the rate is ``8 * len(file) /
pixels`` -- the real file size, container header included, never an estimate from
likelihoods. Quality is measured with :mod:`.metrics` (PSNR-RGB, MS-SSIM and its dB form,
LPIPS) on the 8-bit images a user would get.

``results.json`` is rewritten atomically after every finished item, so an interrupted run
resumes where it stopped: items already in the file (same image bytes, same codec weights) are
not redone. The output is deterministic given the same inputs: records are sorted by
(codec, quality, image), and every value except the timings depends only on the inputs.

Work is split into one task per image x codec (all of its qualities), run

* in this process (``workers=1``),
* in ``workers`` processes (``spawn``; torch limited to one thread each), or
* as Ray tasks (``ray_address``: ``"local"`` starts a local Ray, anything else is passed to
  ``ray.init(address=...)``); Ray is the optional extra ``glocal-codec[distributed]``. Each
  Ray task carries the image's bytes, so cluster nodes need no shared file system.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import torch

from .. import __version__ as _version
from .. import api
from ..codecs import Placeable, Presets, Refinable, open_codec
from ..errors import WeightsMissingError
from ..datasets import Dataset
from ..imageio import load_image, to_tensor
from .metrics import get_lpips, lpips_status, ms_ssim, ms_ssim_db, ms_ssim_scales, psnr
from .variants import parse_codec_label
from ..util import atomic_write, file_sha256

__all__ = [
    "RESULTS_FORMAT",
    "EvalError",
    "EvalRecord",
    "ImageRecord",
    "EvalResults",
    "Summary",
    "evaluate",
    "load_results",
    "save_results",
    "summarize",
    "Progress",
]

RESULTS_FORMAT = "glocal-codec-eval/1"

#: ``progress(done, total, record)``: called once at the start (``record=None``, ``done`` = items
#: already in ``results.json``) and after every finished item.
Progress = Callable[[int, int, Optional["EvalRecord"]], None]


class EvalError(RuntimeError):
    """The evaluation cannot run as asked (bad codec/quality, foreign results.json, missing Ray)."""


@dataclass(frozen=True)
class EvalRecord:
    """One image coded by one codec at one quality level."""

    image: str
    codec: str
    quality: int
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float  # inf for a lossless result
    ms_ssim: Optional[float]
    ms_ssim_db: Optional[float]
    ms_ssim_scales: int
    lpips: Optional[float]
    encode_s: float
    decode_s: float
    device: str
    weights: str  # hex digest of the codec weights that made the file ("00000000": none)
    # machine task (eval --task): its name, score in [0, 1] and details (``None`` without a task)
    task: Optional[str] = None
    task_score: Optional[float] = None
    task_details: Optional[dict] = field(default=None, compare=False)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.codec, self.quality, self.image)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["lossless"] = math.isinf(self.psnr)
        if self.task is None:  # runs without --task keep the plain record format
            for k in ("task", "task_score", "task_details"):
                d.pop(k)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None  # JSON has no inf; "lossless" says what a null PSNR means
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "EvalRecord":
        vals = {k: d.get(k) for k in cls.__dataclass_fields__}
        if vals["psnr"] is None:
            vals["psnr"] = float("inf")
        if vals["ms_ssim_db"] is None and vals["ms_ssim"] is not None and vals["ms_ssim"] >= 1.0:
            vals["ms_ssim_db"] = float("inf")
        vals["ms_ssim_scales"] = int(vals["ms_ssim_scales"] or 0)
        return cls(**vals)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ImageRecord:
    """An evaluated image: its id in the dataset, size and file sha256 (the resume identity)."""

    id: str
    sha256: str
    width: int
    height: int


@dataclass
class EvalResults:
    """Everything in ``results.json``."""

    dataset: str
    source: str
    images: list[ImageRecord]
    records: list[EvalRecord]
    metrics: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)

    def codecs(self) -> list[str]:
        """Codecs in the order they first appear in ``run['codecs']``, then by name."""
        order = list(self.run.get("codecs", []))
        return order + sorted({r.codec for r in self.records} - set(order))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RESULTS_FORMAT,
            "glocal_codec_version": _version,
            "dataset": self.dataset,
            "source": self.source,
            "rate": "bpp = 8 * bytes of the complete .glc file (header included) / (width * height)",
            "metrics": self.metrics,
            "run": self.run,
            "images": [asdict(i) for i in sorted(self.images, key=lambda i: i.id)],
            "records": [r.to_json() for r in sorted(self.records, key=lambda r: r.key)],
        }


def save_results(results: EvalResults, path: str | os.PathLike) -> Path:
    """Write ``results.json`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results.to_json(), indent=1, allow_nan=False) + "\n"
    atomic_write(path, text, force=True)
    return path


def load_results(path: str | os.PathLike) -> EvalResults:
    """Read a ``results.json`` written by :func:`save_results`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise EvalError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise EvalError(f"{path} is not a glocal-codec results file (format {RESULTS_FORMAT!r})")
    return EvalResults(
        dataset=data.get("dataset", ""),
        source=data.get("source", ""),
        images=[ImageRecord(**i) for i in data.get("images", [])],
        records=[EvalRecord.from_json(r) for r in data.get("records", [])],
        metrics=data.get("metrics", {}),
        run=data.get("run", {}),
    )


# -- the work ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Task:
    """One image x codec, with the qualities still to do."""

    image: str
    path: str
    codec: str
    qualities: tuple[int, ...]
    device: Optional[str]
    lpips: bool
    lpips_weights: Optional[str]
    data_dir: Optional[str]
    data: Optional[bytes] = None  # the image file's bytes (Ray tasks)
    task: Optional[str] = None  # machine task (eval --task)


_warmed: set[tuple[str, str]] = set()


def _codec_device(codec: Any) -> str:
    return str(getattr(codec, "device", "cpu")) if isinstance(codec, Placeable) else "cpu"


def _warm_up(name: str, device: Optional[str]) -> None:  # name: a registered codec, not a label
    """Code one small image once per process and codec, so that loading weights and first-call
    set-up costs are not charged to the first measured image."""
    key = (name, str(device))
    if key in _warmed:
        return
    codec = open_codec(name)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 64, generator=g)
    api.decode_tensor(api.encode(x, codec=name, quality=codec.qualities[0], device=device), device=device)
    _warmed.add(key)


def _run_task(task: _Task, on_record: Optional[Callable[[EvalRecord], None]] = None) -> list[EvalRecord]:
    if task.data is not None:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(task.data)) as img:
            img.load()
            x = to_tensor(img)[0]
    else:
        x = load_image(task.path)[0]
    variant = parse_codec_label(task.codec)
    codec = open_codec(variant.codec)
    if variant.preset:
        codec = codec.with_preset(variant.preset)  # checked by _check_codecs
    _warm_up(variant.codec, task.device)
    metric_device = _codec_device(codec)
    lp = None
    if task.lpips:
        lp, _ = get_lpips(task.lpips_weights, task.data_dir, device=metric_device)
    mtask = None
    if task.task:  # the task may render onto the image: codecs and metrics then see that image
        from .tasks.scoring import prepare, record_fields

        mtask, inp, ref = prepare(task.task, x, task.image)
        x = inp.image
    h, w = int(x.shape[-2]), int(x.shape[-1])
    out = []
    for q in task.qualities:
        t0 = time.perf_counter()
        data = api.encode(x, codec=codec if variant.preset else variant.codec, quality=q, device=task.device,
                          refine=variant.refine)
        t1 = time.perf_counter()
        y = api.decode_tensor(data, device=task.device)
        if torch.cuda.is_available() and metric_device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        ms = ms_ssim(x, y)
        rec = EvalRecord(
            image=task.image, codec=task.codec, quality=int(q), width=w, height=h, bytes=len(data),
            bpp=8.0 * len(data) / (w * h), psnr=psnr(x, y), ms_ssim=ms, ms_ssim_db=ms_ssim_db(ms),
            ms_ssim_scales=ms_ssim_scales(h, w) if ms is not None else 0,
            lpips=lp(x, y) if lp is not None else None,
            encode_s=round(t1 - t0, 6), decode_s=round(t2 - t1, 6), device=_codec_device(codec),
            weights=codec.weights_digest(q).hex(),
            **(record_fields(mtask, inp, ref, y) if mtask is not None else {}),
        )
        out.append(rec)
        if on_record is not None:
            on_record(rec)
    return out


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass  # already set in this process


def _ray_task(task: _Task) -> list[EvalRecord]:  # pragma: no cover - runs inside Ray workers
    _init_worker(1)
    return _run_task(task)


# -- orchestration -------------------------------------------------------------------------------
def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:
        return img.size


def _check_codecs(codecs: Sequence[str], qualities: Optional[Sequence[int]]) -> dict[str, tuple[int, ...]]:
    if not codecs:
        raise EvalError("no codec given (--codec NAME, repeatable; see `glocal-codec list`)")
    plan: dict[str, tuple[int, ...]] = {}
    for name in dict.fromkeys(codecs):
        try:
            variant = parse_codec_label(name)
        except ValueError as e:
            raise EvalError(str(e)) from None
        codec = open_codec(variant.codec)  # UnknownCodecError names the known ones
        if variant.refine and not isinstance(codec, Refinable):
            raise EvalError(f"{name}: {variant.codec} has no encoder-side refinement; the codecs with it are in "
                            f"the refine column of `glocal-codec list`")
        if variant.preset and (not isinstance(codec, Presets) or variant.preset not in codec.presets):
            have = f"its presets are {', '.join(codec.presets)}" if isinstance(codec, Presets) else "it has no presets"
            raise EvalError(f"{name}: {variant.preset!r} is not an encoder preset of {variant.codec} ({have})")
        if codec.media != "image":
            raise EvalError(f"{name} is a {codec.media} codec; eval measures image codecs")
        if not codec.weights_available():
            raise WeightsMissingError(f"{name}: weights are not installed (train them with `glocal-codec train "
                                      f"{name}` or install a release that ships them)")
        levels = tuple(codec.qualities)
        if qualities:
            bad = [q for q in qualities if q not in levels]
            if bad:
                raise EvalError(f"{name} has quality levels {levels[0]}..{levels[-1]}; "
                                f"{', '.join(map(str, bad))} is not one")
            levels = tuple(sorted(set(int(q) for q in qualities)))
        plan[name] = levels
    return plan


def evaluate(dataset: Dataset, codecs: Sequence[str], qualities: Optional[Sequence[int]] = None, *,
             results_path: str | os.PathLike, device: Optional[str] = None, workers: int = 1,
             lpips: bool = True, lpips_weights: Optional[str] = None, data_dir: Optional[str] = None,
             ray_address: Optional[str] = None, fresh: bool = False, progress: Optional[Progress] = None,
             log: Optional[Callable[[str], None]] = None, task: Optional[str] = None) -> EvalResults:
    """Measure every image of ``dataset`` with every codec at every quality (default: all levels).

    ``results_path`` is read first (unless ``fresh``) and rewritten after every finished item.
    ``task``: a machine task (:mod:`.tasks`) scored on every decoded image as well.
    Returns the complete results (earlier and new records).
    """
    say = log or (lambda _m: None)
    task_info: Optional[dict[str, Any]] = None
    ds_name = dataset.name
    if task is not None:
        from .tasks.scoring import dataset_name, run_info

        task_info = run_info(task)  # UnknownTaskError / TaskUnavailableError before any work
        ds_name = dataset_name(task, dataset.name)
    plan = _check_codecs(codecs, qualities)
    if ray_address is not None:
        _import_ray()
    if workers < 1:
        raise EvalError("--workers must be at least 1")
    if device is not None:
        from ..engine import resolve_device

        device = str(resolve_device(device))
    status = lpips_status(lpips_weights, data_dir) if lpips else None
    if status is not None and not status.available:
        say(status.message)
    images = [ImageRecord(e.id, file_sha256(e.path), *_image_size(e.path)) for e in dataset.images]
    by_id = {i.id: i for i in images}
    results_path = Path(results_path)
    old: Optional[EvalResults] = None
    if results_path.exists() and not fresh:
        old = load_results(results_path)
        if old.dataset != ds_name:
            raise EvalError(f"{results_path} holds results for {old.dataset!r}, not {ds_name!r}; "
                            f"use another --report folder (or --fresh to start over)")
        old_task = (old.run.get("task") or {}).get("name")
        if old.records and old_task != task:
            raise EvalError(f"{results_path} holds results " + (f"of task {old_task!r}" if old_task else "without a task")
                            + f", not {'of task ' + repr(task) if task else 'without one'}; use another --report "
                              f"folder (or --fresh to start over)")
    digests = {name: open_codec(parse_codec_label(name).codec).weights_digest(levels[0]).hex()
               for name, levels in plan.items()}
    kept: dict[tuple[str, int, str], EvalRecord] = {}
    old_images = {i.id: i for i in old.images} if old else {}
    if old is not None:
        dropped = 0
        for r in old.records:
            cur = by_id.get(r.image)
            if cur is not None and old_images.get(r.image, cur).sha256 != cur.sha256:
                dropped += 1  # the image file changed: measure again
                continue
            if r.codec in digests and r.weights != digests[r.codec]:
                dropped += 1  # other weights made these numbers
                continue
            if task_info is not None and {k: old.run["task"].get(k) for k in ("version", "model")} != \
                    {k: task_info[k] for k in ("version", "model")}:
                dropped += 1  # another task model or scoring made these scores
                continue
            kept[r.key] = r
        if kept or dropped:
            say(f"resuming from {results_path}: {len(kept)} finished items kept"
                + (f", {dropped} outdated ones dropped (image, weights or task model changed)" if dropped else ""))
    all_images = {**{k: v for k, v in old_images.items() if k not in by_id}, **by_id}
    tasks: list[_Task] = []
    total = 0
    for name, levels in plan.items():
        for entry in dataset.images:
            todo = tuple(q for q in levels if (name, q, entry.id) not in kept)
            total += len(levels)
            if todo:
                tasks.append(_Task(entry.id, str(entry.path), name, todo, device, bool(status and status.available),
                                   lpips_weights, data_dir, task=task))
    done = total - sum(len(t.qualities) for t in tasks)
    lp_info: dict[str, Any] = {"name": "LPIPS v0.1, AlexNet (lpips package)"}
    if status is not None:
        lp_info.update(available=status.available, backbone=status.backbone, message=status.message)
    else:
        lp_info.update(available=False, message="LPIPS turned off (--no-lpips)")
    if old is not None and old.metrics.get("lpips", {}).get("backbone") not in (None, lp_info.get("backbone")):
        lp_info["note"] = f"earlier records used backbone {old.metrics['lpips']['backbone']!r}"
    results = EvalResults(
        dataset=ds_name, source=dataset.source, images=list(all_images.values()),
        records=list(kept.values()),
        metrics={
            "psnr": "PSNR-RGB over 8-bit values, peak 255",
            "ms_ssim": "pytorch_msssim.ms_ssim, data_range 255, 5 scales (fewer for images <= 160 px: "
                       "see ms_ssim_scales); ms_ssim_db = -10 log10(1 - ms_ssim)",
            "lpips": lp_info,
        },
        run={"codecs": list(plan), "qualities": {k: list(v) for k, v in plan.items()}, "device": device or "default",
             "workers": workers, "ray": ray_address, "torch": torch.__version__},
    )
    if task_info is not None:
        results.run["task"] = task_info
    records = dict(kept)

    def merge(new: Iterable[EvalRecord]) -> None:
        nonlocal done
        for r in new:
            records[r.key] = r
            done += 1
            results.records = list(records.values())
            save_results(results, results_path)
            if progress is not None:
                progress(done, total, r)

    if progress is not None:
        progress(done, total, None)
    save_results(results, results_path)
    if tasks:
        if ray_address is not None:
            _run_ray(tasks, ray_address, merge)
        elif workers == 1:
            for t in tasks:
                _run_task(t, on_record=lambda r: merge([r]))
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                        initargs=(1,)) as pool:
                futures = [pool.submit(_run_task, t) for t in tasks]
                try:
                    for fut in cf.as_completed(futures):
                        merge(fut.result())
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    results.records = list(records.values())
    save_results(results, results_path)
    return results


def _import_ray() -> Any:
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        raise EvalError("--ray needs Ray: pip install 'glocal-codec[distributed]'") from None
    return ray


def _run_ray(tasks: list[_Task], address: str, merge: Callable[[Iterable[EvalRecord]], None]) -> None:
    ray = _import_ray()
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in ("GLOCAL_CODEC_WEIGHTS", "GLOCAL_CODEC_DATA", "GLOCAL_CODEC_LPIPS_WEIGHTS")
               if k in os.environ}
        kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}} if env else {}
        if address in ("", "local"):
            ray.init(**kwargs)
        else:
            ray.init(address=address, **kwargs)
    remote = ray.remote(num_cpus=1)(_ray_task)
    pending = {remote.remote(replace(t, data=Path(t.path).read_bytes())): t for t in tasks}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            pending.pop(ref)
            merge(ray.get(ref))


# -- averages ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    """Mean values over images of one codec at one quality (the usual Kodak-average convention:
    mean bpp and mean per-image PSNR / MS-SSIM / LPIPS)."""

    codec: str
    quality: int
    images: int
    bpp: float
    psnr: float
    ms_ssim: Optional[float]
    ms_ssim_db: Optional[float]
    lpips: Optional[float]
    encode_s: float
    decode_s: float


def _mean(values: list[Optional[float]]) -> Optional[float]:
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def summarize(records: Iterable[EvalRecord], images: Optional[set[str]] = None) -> dict[str, dict[int, Summary]]:
    """Per codec and quality, the means over ``images`` (default: the images every codec has
    at every quality it was run at -- so codecs are compared on the same images)."""
    recs = list(records)
    if images is None:
        per_codec: dict[str, set[str]] = {}
        for codec in {r.codec for r in recs}:
            mine = [r for r in recs if r.codec == codec]
            qs = {r.quality for r in mine}
            full = {img for img in {r.image for r in mine}
                    if {r.quality for r in mine if r.image == img} == qs}
            per_codec[codec] = full
        images = set.intersection(*per_codec.values()) if per_codec else set()
    out: dict[str, dict[int, Summary]] = {}
    for codec in sorted({r.codec for r in recs}):
        out[codec] = {}
        for q in sorted({r.quality for r in recs if r.codec == codec}):
            ps = [r for r in recs if r.codec == codec and r.quality == q and r.image in images]
            if not ps:
                continue
            n = len(ps)
            dbs = [r.ms_ssim_db for r in ps]
            out[codec][q] = Summary(
                codec, q, n, sum(r.bpp for r in ps) / n, sum(r.psnr for r in ps) / n,
                _mean([r.ms_ssim for r in ps]),
                None if any(v is None or math.isinf(v) for v in dbs) else _mean(dbs),  # type: ignore[arg-type]
                _mean([r.lpips for r in ps]), sum(r.encode_s for r in ps) / n, sum(r.decode_s for r in ps) / n,
            )
    return out
