"""``ocr``: can a text recogniser still read the text? 1 - character error rate.

**Ground truth.** The task renders known text onto every image before the codecs see it
(:func:`render_text`): up to eight lines of two words and a number (a line too wide for the image
is set smaller, down to 14 px, or left out), in five DejaVu faces (Sans,
Sans Bold, Serif, Serif Italic, Sans Mono: the fonts matplotlib ships, the same files as Debian's
``fonts-dejavu-core``; the system copy is used when matplotlib is absent) at 14-36 px, dark or
light to contrast with the picture underneath, half of them with a thin outline. Everything is
drawn from a random generator seeded with the image's name, so the text set is the same on
every machine. The codecs compress these rendered images; their rates and PSNR / MS-SSIM / LPIPS
are those of the rendered images.

**Model.** PP-OCRv4 text detection and recognition as ONNX models (``ch_PP-OCRv4_det_infer``,
``ch_PP-OCRv4_rec_infer``) run by ``rapidocr-onnxruntime``, whose wheel ships the model files (no
download); the angle classifier is off (all text is upright).

**Score.** Every recognised text box is assigned to the ground-truth line its centre falls in;
the texts of a line are joined left to right, and compared with the truth without whitespace
(the recogniser drops or adds spaces freely). A line's errors are the Levenshtein distance,
capped at its length (a garbage line costs what a missing one does); the score is 1 - errors /
characters over all lines of the image, and over many images the counts are pooled. Text that
was already in the photograph is ignored. The original rendered image usually does not score 1
(small text on busy backgrounds); the report compares codecs with that uncompressed score.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .base import MachineTask, TaskInput, TaskResult, TaskUnavailableError, to_uint8_rgb

__all__ = ["OcrTask", "TextLine", "render_text", "levenshtein", "font_files", "RENDER_VERSION"]

#: Part of every seed: change it (and the task's version in the table) when the rendering changes.
RENDER_VERSION = "ocr-text-v1"
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf")
SIZES = (14, 18, 22, 28, 36)
MAX_LINES = 8
MARGIN = 4
WORDS = (
    "river stone house market seven window garden signal number coffee north bridge paper letter orange silver "
    "motor camera winter harbor street station ticket museum office public garage hotel school doctor pharmacy "
    "bakery exit open closed parking entrance platform north south east west total price sale free daily "
    "service express local green yellow purple black white summer autumn spring monday friday sunday"
).split()
_SYSTEM_FONTS = Path("/usr/share/fonts/truetype/dejavu")


@dataclass(frozen=True)
class TextLine:
    """One rendered line: its text, font file name, size (px) and box (x0, y0, x1, y1)."""

    text: str
    font: str
    size: int
    box: tuple[int, int, int, int]


def font_files() -> Optional[dict[str, Path]]:
    """The five DejaVu files: matplotlib's copies, else the system's; ``None`` if neither has all."""
    dirs = []
    try:
        import matplotlib

        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:
        pass
    dirs.append(_SYSTEM_FONTS)
    for d in dirs:
        found = {f: d / f for f in FONTS}
        if all(p.is_file() for p in found.values()):
            return found
    return None


def _seed(image_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{RENDER_VERSION}|{image_id}".encode()).digest()[:8], "big")


def _line_text(rng: random.Random) -> str:
    w1, w2 = rng.sample(WORDS, 2)
    number = str(rng.randint(1, 9999))
    style = rng.randrange(3)
    if style == 1:
        w1, w2 = w1.capitalize(), w2.capitalize()
    elif style == 2:
        w1, w2 = w1.upper(), w2.upper()
    parts = [w1, w2, number]
    if rng.random() < 0.3:
        parts = [number, w1, w2]
    return " ".join(parts)


def render_text(image: torch.Tensor, image_id: str, fonts: Optional[dict[str, Path]] = None
                ) -> tuple[torch.Tensor, list[TextLine]]:
    """Draw the seeded text lines onto ``image`` (1 x C x H x W in [0, 1]); returns the new image
    (same shape, 8-bit values) and the lines. Images too small for any line come back unchanged
    with no lines."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    fonts = fonts or font_files()
    if fonts is None:
        raise TaskUnavailableError("the DejaVu fonts were not found (install matplotlib or fonts-dejavu-core)")
    channels = int(image.shape[-3])
    img = Image.fromarray(to_uint8_rgb(image), "RGB")
    gray = np.asarray(img.convert("L"), dtype=np.float64)
    draw = ImageDraw.Draw(img)
    w, h = img.size
    rng = random.Random(_seed(image_id))
    lines: list[TextLine] = []
    y = MARGIN + rng.randint(0, 12)
    for _ in range(MAX_LINES):
        fname = rng.choice(FONTS)
        size = rng.choice(SIZES)
        text = _line_text(rng)
        outline = rng.random() < 0.5
        gap = rng.randint(int(0.8 * size), 2 * size)
        xr = rng.random()
        for size in [s for s in SIZES if s <= size][::-1]:  # too wide: the next smaller size that fits
            font = ImageFont.truetype(str(fonts[fname]), size)
            stroke = max(1, size // 14) if outline else 0
            x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
            tw, th = x1 - x0, y1 - y0
            if tw <= w - 2 * MARGIN:
                break
        if y + th > h - MARGIN:
            break
        if tw > w - 2 * MARGIN:
            y += th + gap
            continue  # too wide even at the smallest size: leave the row empty
        x = MARGIN + int(xr * (w - 2 * MARGIN - tw)) - x0
        top = y - y0
        box = (x + x0, top + y0, x + x1, top + y1)
        lum = gray[box[1]:box[3], box[0]:box[2]].mean()
        fill, other = ((0, 0, 0), (255, 255, 255)) if lum > 110 else ((255, 255, 255), (0, 0, 0))
        draw.text((x, top), text, font=font, fill=fill, stroke_width=stroke, stroke_fill=other)
        lines.append(TextLine(text, fname, size, box))
        y += th + gap
    out = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float() / 255.0
    if channels == 1:
        out = torch.from_numpy(np.asarray(img.convert("L")).copy())[None, None].float() / 255.0
    return out, lines


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _squash(s: str) -> str:
    return "".join(s.split())


def assign(lines: Sequence[TextLine], found: Sequence[tuple[Sequence[Sequence[float]], str]]) -> list[str]:
    """The text read for every ground-truth line: the recognised boxes whose centre lies in the
    line's box (grown by half its height up and down and one height left and right), joined left
    to right; a box near two lines goes to the one whose centre is closest."""
    per_line: list[list[tuple[float, str]]] = [[] for _ in lines]
    for quad, text in found:
        cx = sum(p[0] for p in quad) / len(quad)
        cy = sum(p[1] for p in quad) / len(quad)
        best, best_d = None, None
        for k, ln in enumerate(lines):
            x0, y0, x1, y1 = ln.box
            hh = y1 - y0
            if x0 - hh <= cx <= x1 + hh and y0 - hh / 2 <= cy <= y1 + hh / 2:
                d = abs(cy - (y0 + y1) / 2)
                if best_d is None or d < best_d:
                    best, best_d = k, d
        if best is not None:
            per_line[best].append((cx, text))
    return ["".join(t for _, t in sorted(items)) for items in per_line]


class OcrTask(MachineTask):
    name = "ocr"
    description = "text recognition of rendered text: 1 - character error rate"
    model = "PP-OCRv4 detection + recognition (ONNX, rapidocr-onnxruntime), no angle classifier"
    weights = ("ch_PP-OCRv4_det_infer.onnx and ch_PP-OCRv4_rec_infer.onnx inside the rapidocr-onnxruntime wheel; "
               "never downloaded")
    score_text = "1 - character error rate on the rendered lines (counts pooled over images)"
    notes = ("Input: every image with up to 8 lines of seeded text rendered onto it (DejaVu fonts, 14-36 px); "
             "rates and PSNR / MS-SSIM / LPIPS are those of these rendered images.",)
    transforms_input = True
    input_tag = "text"

    def __init__(self) -> None:
        fonts = font_files()
        if fonts is None:
            raise TaskUnavailableError("the DejaVu fonts were not found (install matplotlib or fonts-dejavu-core)")
        self.fonts = fonts
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime import RapidOCR

        threads = max(1, torch.get_num_threads())
        self._version = getattr(rapidocr_onnxruntime, "__version__", None) or _dist_version("rapidocr-onnxruntime")
        self._engine = RapidOCR(use_cls=False, print_verbose=False, intra_op_num_threads=threads,
                                inter_op_num_threads=1)
        self._lock = threading.Lock()

    @classmethod
    def check(cls) -> Optional[str]:
        if font_files() is None:
            return "the DejaVu fonts were not found (install matplotlib, or the system package fonts-dejavu-core)"
        return None

    @classmethod
    def located(cls) -> Optional[str]:
        import importlib.util

        spec = importlib.util.find_spec("rapidocr_onnxruntime")
        if spec is None or not spec.submodule_search_locations:
            return None
        return str(Path(list(spec.submodule_search_locations)[0]) / "models")

    def model_id(self) -> str:
        return f"{self.model}, rapidocr-onnxruntime {self._version}, {RENDER_VERSION}"

    def prepare(self, image: torch.Tensor, image_id: str) -> TaskInput:
        img, lines = render_text(image, image_id, self.fonts)
        return TaskInput(img, tuple(lines))

    def read(self, x: torch.Tensor) -> list[tuple[Any, str]]:
        """Every text box the model finds: (four corner points, text)."""
        bgr = to_uint8_rgb(x)[:, :, ::-1].copy()
        with self._lock:
            res, _ = self._engine(bgr)
        return [(r[0], str(r[1])) for r in (res or [])]

    def score(self, inp: TaskInput, decoded: torch.Tensor) -> TaskResult:
        lines: Sequence[TextLine] = inp.truth or ()
        if not lines:
            return TaskResult(None, {"reason": "the image is too small for any text line", "lines": 0,
                                     "chars": 0, "edits": 0})
        read = assign(lines, self.read(decoded))
        chars = edits = 0
        for ln, got in zip(lines, read):
            truth = _squash(ln.text)
            chars += len(truth)
            edits += min(len(truth), levenshtein(truth, _squash(got)))
        return TaskResult(round(1.0 - edits / chars, 6), {"lines": len(lines), "chars": chars, "edits": edits,
                                                          "read": read})

    @staticmethod
    def aggregate(results: Sequence[TaskResult]) -> Optional[float]:
        chars = sum(int(r.details.get("chars", 0)) for r in results)
        if not results or chars == 0:
            return None
        return 1.0 - sum(int(r.details.get("edits", 0)) for r in results) / chars


def _dist_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"

