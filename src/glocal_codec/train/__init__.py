"""Training: the variable-rate loop, data sampling and weight export."""

from .loop import MODELS, TrainConfig, TrainResult, build_model, rd_loss, train

__all__ = ["MODELS", "TrainConfig", "TrainResult", "build_model", "rd_loss", "train"]
