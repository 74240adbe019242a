"""Training with geoopt's Riemannian optimizers: ``hyperleaf train``.

* :func:`train` / :class:`Trainer` -- the loop (checkpoints, resume, DDP, non-finite guards);
* :class:`TrainConfig` -- every option, with the embedded demo run as defaults;
* :func:`load_run` -- deprecated: runs load with :func:`hyperleaf.runs.load_run`;
* :class:`CheckpointError` -- a checkpoint that is damaged, unsafe or not hyperleaf's;
* :class:`FusionLoss` -- SHIP's unsupervised fusion losses.

The names resolve on first use (:func:`__getattr__`), so that reading the configuration's keys
(:mod:`hyperleaf.train.config`, what the command line builds its flags from) loads no torch.
"""

from __future__ import annotations

from typing import Any

#: Public name -> the module defining it.
_WHERE: dict[str, str] = {
    "train": "hyperleaf.train.trainer", "Trainer": "hyperleaf.train.trainer",
    "TrainingError": "hyperleaf.train.trainer", "NonFiniteLossError": "hyperleaf.train.trainer",
    "RunResult": "hyperleaf.train.trainer",
    "TrainConfig": "hyperleaf.train.config", "ConfigError": "hyperleaf.train.config",
    "CheckpointError": "hyperleaf.train.checkpoint",
    "build_objective": "hyperleaf.train.build", "load_run": "hyperleaf.train.build",
    "FusionLoss": "hyperleaf.losses.fusion",
}

__all__ = ["train", "Trainer", "TrainConfig", "ConfigError", "TrainingError",
           "NonFiniteLossError", "CheckpointError", "RunResult", "FusionLoss", "build_objective",
           "load_run"]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'hyperleaf.train' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(where), name)
    globals()[name] = value  # once resolved, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
