"""Deprecated old path: a run is validated by its task's own
:meth:`hyperleaf.tasks.Task.evaluate` (``get_task(cfg.task).evaluate(...)``), and
:func:`val_batches` is in :mod:`hyperleaf.tasks.common`. Each former name still resolves here,
with a ``DeprecationWarning`` naming its new home.

Example::

    >>> import warnings
    >>> import hyperleaf.train.evaluate as old
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     f = old.val_batches
    >>> f.__module__, w[0].category.__name__
    ('hyperleaf.tasks.common', 'DeprecationWarning')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hyperleaf.deprecation import moved_name

#: Former names of this module -> where each now is.
MOVED: dict[str, str] = {"val_batches": "hyperleaf.tasks.common",
                         "evaluate": "hyperleaf.tasks (get_task(cfg.task).evaluate)"}

__all__ = sorted(MOVED)  # noqa: PLE0605 - resolved by __getattr__


def _evaluate(cfg: Any, objective: torch.nn.Module, val_set: Any, device: torch.device,
              samples_dir: Path | None = None) -> dict[str, object]:
    """Mean validation metrics of ``cfg.task`` over ``val_set``: the former
    ``hyperleaf.train.evaluate.evaluate``, now ``get_task(cfg.task).evaluate(...)``."""
    from hyperleaf.tasks import get_task

    return get_task(cfg.task).evaluate(cfg, objective, val_set, device, samples_dir)


def __getattr__(name: str) -> Any:
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from hyperleaf.tasks import common

    value = common.val_batches if name == "val_batches" else _evaluate
    return moved_name(__name__, name, MOVED[name], value)
