"""``ocr``: seeded text rendering, CER, box assignment, and PP-OCR on a small rendered crop."""

from __future__ import annotations

import pytest
import torch

from glocal_codec.eval.tasks import TaskResult
from glocal_codec.eval.tasks.ocr import OcrTask, TextLine, assign, font_files, levenshtein, render_text


def _photo(h: int = 200, w: int = 320) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    g = torch.Generator().manual_seed(0)
    x = torch.stack([0.3 + 0.4 * xx, 0.5 + 0.2 * yy, 0.6 - 0.3 * xx * yy])[None]
    return (x + 0.03 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def test_levenshtein() -> None:
    assert levenshtein("", "") == 0
    assert levenshtein("abc", "") == 3 and levenshtein("", "ab") == 2
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("river7307", "river7307") == 0


needs_fonts = pytest.mark.skipif(font_files() is None, reason="no DejaVu fonts here")


@needs_fonts
def test_rendering_is_seeded_by_the_image_name() -> None:
    x = _photo()
    a, la = render_text(x, "kodim01.png")
    b, lb = render_text(x.clone(), "kodim01.png")
    c, lc = render_text(x, "kodim02.png")
    assert torch.equal(a, b) and la == lb
    assert la != lc
    assert a.shape == x.shape and not torch.equal(a, x)
    assert 1 <= len(la) <= 8
    for ln in la:
        x0, y0, x1, y1 = ln.box
        assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 200
        assert ln.text.split() and ln.size in (14, 18, 22, 28, 36)
    # lines do not overlap vertically
    spans = sorted((ln.box[1], ln.box[3]) for ln in la)
    assert all(b0 >= a1 for (_, a1), (b0, _) in zip(spans, spans[1:]))
    # values stay 8-bit
    assert torch.equal((a * 255).round(), a * 255)


@needs_fonts
def test_gray_input_stays_gray_and_tiny_images_get_no_text() -> None:
    g = _photo()[:, :1]
    out, lines = render_text(g, "g.png")
    assert out.shape == g.shape and lines
    tiny = _photo(10, 12)
    out, lines = render_text(tiny, "t.png")
    assert lines == [] and torch.equal(out, (tiny * 255).round() / 255)


def test_assign_boxes_to_lines() -> None:
    lines = [TextLine("seven winter 1043", "f", 14, (10, 10, 140, 24)),
             TextLine("river camera 160", "f", 18, (40, 60, 200, 80))]
    quad = lambda x0, y0, x1, y1: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]  # noqa: E731
    found = [(quad(80, 10, 140, 24), "1043"), (quad(10, 10, 78, 24), "sevenwinter"),
             (quad(40, 60, 200, 80), "river camera 160"), (quad(300, 150, 350, 170), "SUZUKI")]
    assert assign(lines, found) == ["sevenwinter1043", "river camera 160"]  # left to right; stray text ignored


def test_pooled_character_error_rate() -> None:
    rs = [TaskResult(0.5, {"chars": 10, "edits": 5}), TaskResult(1.0, {"chars": 30, "edits": 0})]
    assert OcrTask.aggregate(rs) == pytest.approx(1 - 5 / 40)
    assert OcrTask.aggregate([TaskResult(None, {"chars": 0, "edits": 0})]) is None


@pytest.fixture(scope="module")
def ocr() -> OcrTask:
    pytest.importorskip("rapidocr_onnxruntime")
    if font_files() is None:
        pytest.skip("no DejaVu fonts here")
    return OcrTask()


def test_reads_rendered_text_and_loses_it_when_erased(ocr: OcrTask) -> None:
    inp = ocr.prepare(_photo(), "kodim05.png")
    ref = ocr.score(inp, inp.image)
    assert ref.details["lines"] == len(inp.truth) and ref.details["chars"] > 0
    assert ref.score >= 0.8, ref.details  # clean text on a smooth background: (nearly) all of it is read
    blank = ocr.score(inp, _photo())  # the picture without its text
    assert blank.score == 0.0 and blank.details["edits"] == blank.details["chars"]
    assert 0.0 <= ref.score <= 1.0


def test_too_small_for_text(ocr: OcrTask) -> None:
    x = _photo(12, 16)
    inp = ocr.prepare(x, "t.png")
    r = ocr.score(inp, inp.image)
    assert r.score is None and r.details["lines"] == 0
