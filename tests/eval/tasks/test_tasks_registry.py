"""The machine-task registry (issue 35): a frozen table, lazy imports, clear unavailability."""

from __future__ import annotations

import json
import subprocess
import sys
from types import MappingProxyType

import pytest

from glocal_codec.eval import tasks as T
from glocal_codec.eval.tasks import registry


def test_table_is_frozen_and_unique() -> None:
    assert T.task_names() == ["ocr", "faces", "features"]
    assert isinstance(T.TASKS, MappingProxyType)
    assert len({r.name for r in T.TASK_TABLE}) == len(T.TASK_TABLE)
    for row in T.TASK_TABLE:
        cls = T.task_class(row.name)
        assert cls.name == row.name and row.version >= 1
        assert cls.model and cls.weights and cls.score_text and cls.description


def test_list_tasks_says_what_and_where() -> None:
    infos = {t.name: t for t in T.list_tasks()}
    assert set(infos) == {"ocr", "faces", "features"}
    for t in infos.values():
        assert t.available == (t.reason == "")
        assert "download" in t.weights  # every task says its weights are never downloaded
    assert "rapidocr-onnxruntime" in infos["ocr"].weights
    assert "cv2.data.haarcascades" in infos["faces"].weights


def test_unknown_task_is_a_clear_error() -> None:
    with pytest.raises(T.UnknownTaskError, match="unknown task 'nope'; known: ocr, faces, features"):
        T.open_task("nope")
    assert issubclass(T.UnknownTaskError, ValueError)  # the CLI prints it as one error line


def test_missing_package_makes_a_task_unavailable_with_its_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry.importlib.util.find_spec

    def find_spec(name: str, *a, **k):  # noqa: ANN002, ANN003, ANN202
        return None if name == "rapidocr_onnxruntime" else real(name, *a, **k)

    monkeypatch.setattr(registry.importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(registry, "_instances", {})
    why = T.task_status("ocr")
    assert why is not None and "rapidocr_onnxruntime" in why and "pip install 'glocal-codec[tasks]'" in why
    info = next(t for t in T.list_tasks() if t.name == "ocr")
    assert not info.available and info.install == "pip install 'glocal-codec[tasks]'" and info.found is None
    with pytest.raises(T.TaskUnavailableError, match=r"task 'ocr' is not available here: .*glocal-codec\[tasks\]"):
        T.open_task("ocr")


_PROBE = """
import json, sys
from glocal_codec.eval import tasks
tasks.list_tasks()
print(json.dumps(sorted(m for m in ("cv2", "onnxruntime", "rapidocr_onnxruntime", "torchvision") if m in sys.modules)))
"""


def test_listing_imports_no_task_package() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
