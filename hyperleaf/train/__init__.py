"""Training with geoopt's Riemannian optimizers: ``hyperleaf train``.

* :func:`train` / :class:`Trainer` -- the loop (checkpoints, resume, DDP, non-finite guards);
* :class:`TrainConfig` -- every option, with the embedded demo run as defaults;
* :func:`load_run` -- deprecated: runs load with :func:`hyperleaf.runs.load_run`;
* :class:`CheckpointError` -- a checkpoint that is damaged, unsafe or not hyperleaf's;
* :class:`FusionLoss` -- SHIP's unsupervised fusion losses.
"""

from hyperleaf.losses.fusion import FusionLoss
from hyperleaf.train.build import build_objective, load_run
from hyperleaf.train.checkpoint import CheckpointError
from hyperleaf.train.config import ConfigError, TrainConfig
from hyperleaf.train.trainer import NonFiniteLossError, RunResult, Trainer, TrainingError, train

__all__ = ["train", "Trainer", "TrainConfig", "ConfigError", "TrainingError",
           "NonFiniteLossError", "CheckpointError", "RunResult", "FusionLoss", "build_objective",
           "load_run"]
