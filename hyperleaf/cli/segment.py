"""Deprecated old home of ``hyperleaf evaluate --task segment``: the segment task evaluates
itself (:meth:`hyperleaf.tasks.segment.SegmentTask.evaluate_command`, its scores
:func:`hyperleaf.tasks.segment.segment_report`), and ``hyperleaf evaluate`` dispatches to it as
to every task (:mod:`hyperleaf.cli.evaluate`). Each former name still resolves here, with a
``DeprecationWarning`` naming its new home.

    hyperleaf evaluate --task segment --weights runs/msrs --data MSRS_test/ --out scores.json
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

#: Former names, resolved by :func:`__getattr__`.
MOVED = ("AUTHORS_NOTE", "evaluate_run", "format_report", "segment_report")
__all__ = list(MOVED)  # noqa: PLE0605 - resolved by __getattr__


def _evaluate_run(args: argparse.Namespace) -> int:
    """The former ``evaluate_run(args)``: ``hyperleaf evaluate --task segment`` with ``args``."""
    from hyperleaf.cli import evaluate

    args.task = "segment"
    return evaluate.run(args)


def _segment_report(args: argparse.Namespace) -> dict[str, Any]:
    """The former ``segment_report(args)``: the scores of the run ``args.weights`` on
    ``args.data`` (:func:`hyperleaf.tasks.segment.segment_report`)."""
    import torch

    from hyperleaf.runs import load_run
    from hyperleaf.tasks.segment import segment_report

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run = load_run(args.weights, device, task="segment")
    return segment_report(run.config, run.model, args.data, device, args.weights)


def __getattr__(name: str) -> Any:
    from hyperleaf.tasks import segment

    moved = {"AUTHORS_NOTE": segment.AUTHORS_NOTE, "format_report": segment.format_segment_report,
             "segment_report": _segment_report, "evaluate_run": _evaluate_run}
    if name not in moved:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = {"format_report": "hyperleaf.tasks.segment.format_segment_report",
            "evaluate_run": "hyperleaf.cli.evaluate.run (--task segment)"}.get(
        name, f"hyperleaf.tasks.segment.{name}")
    warnings.warn(f"hyperleaf.cli.segment.{name} is deprecated; use {home}", DeprecationWarning,
                  stacklevel=2)
    return moved[name]
