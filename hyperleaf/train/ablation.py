"""Deprecated: the ablation moved to :mod:`hyperleaf.experiments` (design, statistics, report,
runner). Every former name still resolves here, with a ``DeprecationWarning`` naming its new
home. The command is ``hyperleaf ablate ARGS`` (``python -m hyperleaf.train.ablation`` says so).

The names are imported on first use, in :func:`__getattr__`: :mod:`hyperleaf.train` sits below
:mod:`hyperleaf.experiments` in the import layers, and this shim's import of it is the one
exception ``.importlinter`` lists (``ignore_imports``), in plain sight.

Example::

    >>> import warnings
    >>> import hyperleaf.train.ablation as old
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     ci = old.confidence_interval
    >>> ci.__module__, w[0].category.__name__
    ('hyperleaf.experiments.statistics', 'DeprecationWarning')
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from typing import Any

#: Former names of this module and the module of hyperleaf.experiments that now holds each.
MOVED: dict[str, str] = {
    **dict.fromkeys(("ARMS", "ARM_LABELS", "DEFAULT_METRICS", "AblationError", "AblationSpec",
                     "heldout_count", "split_by_name", "make_split_view"), "design"),
    **dict.fromkeys(("Interval", "PairedDifference", "confidence_interval",
                     "paired_difference", "t_critical", "summarise"), "statistics"),
    **dict.fromkeys(("markdown_report", "plot_ablation"), "report"),
    **dict.fromkeys(("FORMAT", "run_ablation", "run_one"), "runner"),
}

__all__ = sorted(MOVED) + ["main"]  # noqa: PLE0605 - resolved by __getattr__


def __getattr__(name: str) -> Any:
    where = MOVED.get(name)
    if where is None:
        raise AttributeError(f"module 'hyperleaf.train.ablation' has no attribute {name!r}")
    from hyperleaf.experiments import design, report, runner, statistics  # the listed exception

    module = {"design": design, "statistics": statistics, "report": report, "runner": runner}
    warnings.warn(f"hyperleaf.train.ablation.{name} is deprecated; import it from "
                  f"hyperleaf.experiments (hyperleaf.experiments.{where})", DeprecationWarning,
                  stacklevel=2)
    return getattr(module[where], name)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hyperleaf.train.ablation``: no longer a command of its own; says which is."""
    print("hyperleaf.train.ablation: error: this module is no longer a command; run "
          "`hyperleaf ablate ARGS` (or `python -m hyperleaf ablate ARGS`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
