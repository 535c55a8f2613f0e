"""Machine perceptual quality: how well models still see through a codec (``eval --task``).

Each task takes the image a codec was given and the image it decoded and returns a score in
[0, 1] plus details (:class:`TaskResult`). The tasks are rows of a frozen table (:mod:`.table`),
one module each, imported on first use; their models come only from packages that ship the
weights inside the wheel, or from the offline ImageNet trunks the project already uses for LPIPS,
so nothing is downloaded at run time:

* ``ocr`` (:mod:`.ocr`): PP-OCRv4 text detection + recognition (``rapidocr-onnxruntime``) on
  text the task renders onto the images (known ground truth); 1 - character error rate.
* ``faces`` (:mod:`.faces`): OpenCV's bundled Haar cascade; pseudo ground truth from the
  original; F1 at IoU 0.5.
* ``features`` (:mod:`.features`): cosine similarity of ImageNet feature maps (SqueezeNet 1.1,
  else AlexNet) of decoded and original.

``glocal-codec tasks`` lists them with their availability.
"""

from .base import MachineTask, TaskError, TaskInput, TaskResult, TaskUnavailableError, UnknownTaskError
from .registry import TaskInfo, list_tasks, open_task, task_class, task_names, task_status
from .table import INSTALL_TASKS, TASK_TABLE, TASKS, TaskRow

__all__ = [
    "MachineTask", "TaskError", "TaskInput", "TaskResult", "TaskUnavailableError", "UnknownTaskError",
    "TaskInfo", "list_tasks", "open_task", "task_class", "task_names", "task_status",
    "INSTALL_TASKS", "TASK_TABLE", "TASKS", "TaskRow",
]
