"""The table printed at the end of ``hyperleaf train``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hyperleaf.tasks import Task
from hyperleaf.train.trainer import RunResult

__all__ = ["print_summary"]


def print_summary(r: RunResult, task: Task | None = None) -> None:
    """The end-of-run table; with ``task``, validation scores by its labels and directions
    (``Task.describe_score``: ↑ higher is better, ↓ lower is better)."""
    t = Table(title=f"hyperleaf train: {r.out}", show_header=True)
    t.add_column("metric")
    t.add_column("start", justify="right")
    t.add_column("end", justify="right")
    t.add_row("train loss ↓", f"{r.first_loss:.4f}", f"{r.last_loss:.4f}")
    for k in sorted(set(r.val_first) | set(r.val_last)):
        a, b = r.val_first.get(k), r.val_last.get(k)
        label = task.describe_score(k) if task is not None else k
        t.add_row(f"val {label}", "-" if a is None else f"{a:.4f}",
                  "-" if b is None else f"{b:.4f}")
    t.add_row("steps", "", str(r.steps))
    t.add_row("skipped (non-finite)", "", str(r.skipped_nonfinite))
    t.add_row("time", "", f"{r.seconds:.1f} s")
    Console().print(t)
