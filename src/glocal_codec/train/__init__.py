"""Training: the variable-rate loop, data sampling and weight export."""

from .loop import TrainConfig, TrainResult, build_model, model_class, rd_loss, train, trainable_codecs

__all__ = ["TrainConfig", "TrainResult", "build_model", "model_class", "rd_loss", "train", "trainable_codecs"]
