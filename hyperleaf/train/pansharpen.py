r"""Deprecated old path of pan-sharpening's entry points; each former name still resolves here,
with a ``DeprecationWarning`` naming its new home:

* ``train_pansharpen`` -- :mod:`hyperleaf.experiments.pansharpen`;
* ``load_pansharpen`` -- replaced by :func:`hyperleaf.runs.load_run` (``load_run(run,
  task="pansharpen")``: ``.model`` is the network, ``.config`` the configuration); the old
  name still returns ``(network in eval mode, config dict)``;
* ``evaluate_methods``, ``markdown_tables``, ``score_fused`` -- :mod:`hyperleaf.pansharpen.evaluation`;
* ``patches``, ``split_indices``, ``band_statistics`` -- :mod:`hyperleaf.pansharpen.patches`;
* ``Standardised``, ``sharpen`` -- :mod:`hyperleaf.pansharpen.network`.

The task itself is :mod:`hyperleaf.tasks.pansharpen`. ``train_pansharpen`` and
``load_pansharpen`` are imported on first use, in :func:`__getattr__`: they sit above
:mod:`hyperleaf.train` in the import layers, and these imports are exceptions
``.importlinter`` lists (``ignore_imports``), in plain sight.

Example::

    >>> import warnings
    >>> import hyperleaf.train.pansharpen as old
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     f = old.sharpen
    >>> f.__module__, w[0].category.__name__
    ('hyperleaf.pansharpen.network', 'DeprecationWarning')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from hyperleaf.deprecation import moved_name

#: Former names of this module -> where each now is.
MOVED: dict[str, str] = {
    **dict.fromkeys(("evaluate_methods", "markdown_tables", "score_fused"),
                    "hyperleaf.pansharpen.evaluation"),
    **dict.fromkeys(("patches", "split_indices", "band_statistics"),
                    "hyperleaf.pansharpen.patches"),
    **dict.fromkeys(("Standardised", "sharpen"), "hyperleaf.pansharpen.network"),
    "train_pansharpen": "hyperleaf.experiments.pansharpen",
    "load_pansharpen": "hyperleaf.runs (load_run(run, task='pansharpen'))",
}

__all__ = sorted(MOVED)  # noqa: PLE0605 - resolved by __getattr__


def _load_pansharpen(run: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(network in eval mode, config)`` of a pan-sharpening run: the former
    ``load_pansharpen``, now :func:`hyperleaf.runs.load_run` (``config`` is the run's
    configuration as a dict; that of a ``config.json`` folder of the earlier loop as stored)."""
    from hyperleaf.runs import load_run  # a listed exception to the layers (module docstring)

    loaded = load_run(run, task="pansharpen")
    legacy = loaded.path / "config.json"
    if loaded.path.is_dir() and legacy.is_file() and not (loaded.path / "config.yaml").is_file():
        return loaded.model, json.loads(legacy.read_text())
    return loaded.model, loaded.config.to_dict()


def __getattr__(name: str) -> Any:
    where = MOVED.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "load_pansharpen":
        return moved_name(__name__, name, where, _load_pansharpen)
    if name == "train_pansharpen":
        from hyperleaf.experiments import pansharpen  # a listed exception to the layers

        return moved_name(__name__, name, where, pansharpen.train_pansharpen)
    from hyperleaf.pansharpen import evaluation, network, patches

    module = {"hyperleaf.pansharpen.evaluation": evaluation,
              "hyperleaf.pansharpen.patches": patches,
              "hyperleaf.pansharpen.network": network}[where]
    return moved_name(__name__, name, where, getattr(module, name))
