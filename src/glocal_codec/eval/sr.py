"""Super-resolution evaluation (``glocal-codec eval --scale r``).

Each image is downsampled by ``r`` (bicubic, antialiased: Pillow's resampling widens the filter
when it reduces), the small image is encoded, and the file is decoded twice against the
original: rendered directly at the original size by a codec that can
(:class:`~glocal_codec.codecs.Rescalable`, ``gblsr``), and decoded at its coded size then
upscaled bicubically (the baseline every codec has). Both use the same file, so they have the
same rate: ``bpp`` is bits per *coded* pixel (the small image), ``bpp_output`` bits per pixel of
the original size. Results are written to ``results.json`` after every image (resumable).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

__all__ = ["SRRecord", "evaluate_scaled", "summarize_scaled", "write_sr_report"]


@dataclass(frozen=True)
class SRRecord:
    image: str
    codec: str
    quality: int
    scale: float
    bytes: int
    bpp: float  # per coded (downsampled) pixel
    bpp_output: float  # per pixel of the original size
    psnr: Optional[float]  # the codec's own render at the original size (None: not rescalable)
    psnr_bicubic: float  # native decode + bicubic upscaling
    lpips: Optional[float] = None
    lpips_bicubic: Optional[float] = None
    decode_s: Optional[float] = None

    def key(self) -> tuple[str, str, int, float]:
        return self.image, self.codec, self.quality, self.scale


def _downsample(x, scale: float):
    """1 x C x H x W in [0, 1] -> the antialiased bicubic downsample by ``scale`` (8-bit, as a user's file)."""
    from PIL import Image

    from ..imageio import to_pil, to_tensor

    h, w = x.shape[-2:]
    img = to_pil(x)
    small = img.resize((max(1, round(w / scale)), max(1, round(h / scale))), Image.Resampling.BICUBIC)
    return to_tensor(small)[0]


def _upscale(x, height: int, width: int):
    from PIL import Image

    from ..imageio import to_pil, to_tensor

    return to_tensor(to_pil(x).resize((width, height), Image.Resampling.BICUBIC))[0]


def evaluate_scaled(images: Iterable[Path], codec: str, qualities: Iterable[int], scale: float, *,
                    use_lpips: bool = True, lpips_weights=None, done: Iterable[SRRecord] = (),
                    on_record: Callable[[SRRecord], None] | None = None) -> list[SRRecord]:
    """Records for every image and quality (skipping those in ``done``)."""
    from .. import api
    from ..codecs import Rescalable, open_codec
    from ..imageio import load_image
    from .metrics import get_lpips, psnr

    if not scale > 1:
        raise ValueError(f"the super-resolution eval needs a scale above 1, got {scale}")
    rescalable = isinstance(open_codec(codec), Rescalable)
    lp = get_lpips(lpips_weights)[0] if use_lpips else None  # None: LPIPS unavailable
    have = {r.key() for r in done}
    out: list[SRRecord] = []
    qualities = list(qualities)
    for path in images:
        x = load_image(path)[0]
        c, h, w = x.shape[-3:]
        small = _downsample(x, scale)
        for q in qualities:
            key = (Path(path).name, codec, q, float(scale))
            if key in have:
                continue
            data = api.encode(small, codec=codec, quality=q)
            base = _upscale(api.decode_tensor(data), h, w)
            t0 = time.perf_counter()
            own = api.decode_tensor(data, size=(h, w)) if rescalable else None
            secs = time.perf_counter() - t0 if rescalable else None
            rec = SRRecord(
                image=key[0], codec=codec, quality=q, scale=float(scale), bytes=len(data),
                bpp=8 * len(data) / (small.shape[-2] * small.shape[-1]), bpp_output=8 * len(data) / (h * w),
                psnr=psnr(own, x) if own is not None else None, psnr_bicubic=psnr(base, x),
                lpips=lp(own, x) if (lp is not None and own is not None) else None,
                lpips_bicubic=lp(base, x) if lp is not None else None,
                decode_s=secs,
            )
            out.append(rec)
            if on_record:
                on_record(rec)
    return out


def summarize_scaled(records: Iterable[SRRecord]) -> list[dict]:
    """Means per (codec, quality, scale): rate, both PSNRs, both LPIPS, and the differences."""
    groups: dict[tuple[str, int, float], list[SRRecord]] = {}
    for r in records:
        groups.setdefault((r.codec, r.quality, r.scale), []).append(r)

    def mean(vals):
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None

    rows = []
    for (codec, q, s), rs in sorted(groups.items()):
        row = {"codec": codec, "quality": q, "scale": s, "images": len(rs),
               "bpp": mean([r.bpp for r in rs]), "bpp_output": mean([r.bpp_output for r in rs]),
               "psnr": mean([r.psnr for r in rs]), "psnr_bicubic": mean([r.psnr_bicubic for r in rs]),
               "lpips": mean([r.lpips for r in rs]), "lpips_bicubic": mean([r.lpips_bicubic for r in rs])}
        row["psnr_gain"] = None if row["psnr"] is None else row["psnr"] - row["psnr_bicubic"]
        row["lpips_gain"] = (None if row["lpips"] is None or row["lpips_bicubic"] is None
                             else row["lpips_bicubic"] - row["lpips"])
        rows.append(row)
    return rows


def load_sr_records(path: Path) -> list[SRRecord]:
    if not path.is_file():
        return []
    return [SRRecord(**d) for d in json.loads(path.read_text())["records"]]


def write_sr_report(records: list[SRRecord], out_dir: Path) -> Path:
    """``results.json`` (records + summary), ``summary.md`` and ``sr_psnr.png`` in ``out_dir``."""
    from ..util import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summarize_scaled(records)
    payload = {"records": [asdict(r) for r in records], "summary": rows}
    atomic_write(out_dir / "results.json", lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=1)), force=True)

    def f(v, d=3):
        return "-" if v is None else f"{v:.{d}f}"

    lines = ["# Super-resolution from the coded file", "",
             "Each image downsampled by the scale (bicubic, antialiased), encoded; decoded at the original size by the",
             "codec's own render (`decode --scale`) and, as the baseline, at the coded size then upscaled bicubically.",
             "Same file, same rate; `bpp` per coded pixel.", "",
             "| codec | q | scale | bpp | PSNR render | PSNR bicubic | gain dB | LPIPS render | LPIPS bicubic |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['codec']} | {r['quality']} | {r['scale']:g} | {f(r['bpp'])} | {f(r['psnr'], 2)} | "
                     f"{f(r['psnr_bicubic'], 2)} | {f(r['psnr_gain'], 2)} | {f(r['lpips'])} | {f(r['lpips_bicubic'])} |")
    atomic_write(out_dir / "summary.md", lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"), force=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for codec in sorted({r["codec"] for r in rows}):
            for s in sorted({r["scale"] for r in rows if r["codec"] == codec}):
                sel = [r for r in rows if r["codec"] == codec and r["scale"] == s]
                if sel[0]["psnr"] is not None:
                    ax.plot([r["bpp"] for r in sel], [r["psnr"] for r in sel], "o-", label=f"{codec} render x{s:g}")
                ax.plot([r["bpp"] for r in sel], [r["psnr_bicubic"] for r in sel], "s--",
                        label=f"{codec} + bicubic x{s:g}")
        ax.set_xlabel("bits per coded pixel")
        ax.set_ylabel("PSNR against the original (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_write(out_dir / "sr_psnr.png", lambda tmp: fig.savefig(tmp, format="png", dpi=110), force=True)
        plt.close(fig)
    except ImportError:  # matplotlib is in the eval extra; the tables are written anyway
        pass
    return out_dir / "results.json"
