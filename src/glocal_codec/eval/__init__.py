"""Evaluation: metrics, BD-rate, the RD runner, published anchors, reports and plots.

* :mod:`.metrics` -- PSNR-RGB, MS-SSIM (and in dB), LPIPS (AlexNet; ``None`` when its weights are absent)
* :mod:`.bdrate` -- Bjøntegaard delta rate / quality, cubic (VCEG-M33) and pchip (JVET CTC)
* :mod:`.runner` -- every image x codec x quality through real files; resumable, parallel, Ray
* :mod:`.anchors` -- published Kodak RD points (VTM, BPG, AV1, CompressAI models)
* :mod:`.report` -- Markdown / HTML summaries and matplotlib RD plots
* :mod:`.rd` -- the small PSNR-only measurement used by ``benchmarks/kodak_rd.py``
* :mod:`.tasks` -- machine tasks for ``eval --task`` (ocr, faces, features); :mod:`.task_report` their report
"""

from .anchors import PublishedAnchor, anchor_curve, published_anchors
from .bdrate import BDRateWarning, BDResult, Curve, NoOverlapError, bd_psnr, bd_quality, bd_rate, compare
from .metrics import lpips_distance, lpips_status, ms_ssim, ms_ssim_db, psnr
from .rd import RDPoint, average, measure
from .runner import EvalError, EvalRecord, EvalResults, evaluate, load_results, save_results, summarize
from .variants import CodecVariant, parse_codec_label

__all__ = [
    "psnr", "ms_ssim", "ms_ssim_db", "lpips_distance", "lpips_status",
    "bd_rate", "bd_psnr", "bd_quality", "compare", "Curve", "BDResult", "BDRateWarning", "NoOverlapError",
    "PublishedAnchor", "published_anchors", "anchor_curve",
    "EvalError", "EvalRecord", "EvalResults", "evaluate", "load_results", "save_results", "summarize",
    "RDPoint", "average", "measure",
    "CodecVariant", "parse_codec_label",
]
