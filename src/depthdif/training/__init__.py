"""Lightning training of the conditional denoiser (standard | ambient) and the unet baseline."""

from depthdif.training.datamodule import ShardDataModule
from depthdif.training.fit import merge_metrics, train
from depthdif.training.module import DepthDifModule, build_model, model_hparams, reconstruct
from depthdif.training.settings import TrainSettings

__all__ = ["DepthDifModule", "ShardDataModule", "TrainSettings", "build_model", "merge_metrics", "model_hparams",
           "reconstruct", "train"]
