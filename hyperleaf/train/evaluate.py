"""Validation of a run: the task's own :meth:`hyperleaf.tasks.Task.evaluate`."""

from __future__ import annotations

from pathlib import Path

import torch

from hyperleaf.tasks import get_task
from hyperleaf.tasks.common import val_batches

__all__ = ["evaluate", "val_batches"]


def evaluate(cfg, objective, val_set, device: torch.device,
             samples_dir: Path | None = None) -> dict[str, object]:
    """Mean validation metrics of ``cfg.task`` over ``val_set`` (model put in eval mode)."""
    return get_task(cfg.task).evaluate(cfg, objective, val_set, device, samples_dir)
