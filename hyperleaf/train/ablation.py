"""Deprecated: the ablation moved to :mod:`hyperleaf.experiments` (design, statistics, report,
runner). Every former name still resolves here, with a ``DeprecationWarning`` naming its new
home; ``python -m hyperleaf.train.ablation ARGS`` is still ``hyperleaf ablate ARGS``.

The names are looked up by module name (``importlib``) on first use: :mod:`hyperleaf.train`
sits below :mod:`hyperleaf.experiments` in the import layers and may not import it.

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

import importlib
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
    module = f"hyperleaf.experiments.{where}"
    warnings.warn(f"hyperleaf.train.ablation.{name} is deprecated; import it from "
                  f"hyperleaf.experiments ({module})", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hyperleaf.train.ablation ARGS``: the same as ``hyperleaf ablate ARGS``."""
    cli = importlib.import_module("hyperleaf.cli")
    return int(cli.main(["ablate", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
