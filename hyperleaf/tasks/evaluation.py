"""What ``hyperleaf evaluate --task T`` gets back from a task: :class:`EvaluationReport`.

The command dispatches every task the same way (:meth:`hyperleaf.tasks.Task.evaluate_command`):
the task declares the options it reads (``evaluate_options``; the command refuses any other
one given, by name) and those it needs (``evaluate_requires``), names the files it will write
before any work (``evaluate_outputs``), and returns one report, which the command prints and
writes as ``--csv`` (:meth:`EvaluationReport.csv`), ``--json`` and ``--markdown``, each
atomically. Options are passed by their argument names (``weights``, ``data``, ``fused``, ...),
and a task's errors name those (``fused: not a folder``), never a flag.

Example::

    >>> rep = scores_report("toy", {"weights": "runs/t", "data": "d.npy"},
    ...                     {"scores": {"mse": 0.25}, "higher_is_better": {"mse": False}})
    >>> print(rep.text)
    mse ↓: 0.25
    >>> print(rep.csv(), end="")
    score,value,higher_is_better
    mse,0.25,False
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OUTPUT_KINDS", "EvaluationReport", "given_outputs", "scores_report", "arrow"]

#: The machine-readable outputs every task's evaluation writes when asked (option names).
OUTPUT_KINDS = ("csv", "json", "markdown")


def arrow(higher_is_better: bool | None) -> str:
    """``↑`` (higher is better), ``↓`` (lower is better) or ``""`` (no direction).

    >>> arrow(True), arrow(False), arrow(None)
    ('↑', '↓', '')
    """
    return "" if higher_is_better is None else ("↑" if higher_is_better else "↓")


@dataclass
class EvaluationReport:
    """One evaluation's results, in the forms ``hyperleaf evaluate`` prints and writes.

    * ``record``: the ``--json`` document (non-finite numbers written as null);
    * ``rows``: the ``--csv`` rows, dicts over the same columns (a column a row lacks is
      empty; floats written with 10 significant digits);
    * ``markdown``: the ``--markdown`` text;
    * ``text``: what is printed; or ``table`` ``(title, header, rows)``, printed as a table
      whose last row (the mean) is bold.
    """

    record: dict[str, Any]
    rows: list[dict[str, Any]]
    markdown: str
    text: str | None = None
    table: tuple[str, list[str], list[list[str]]] | None = None

    def json(self) -> str:
        """The ``--json`` text: :attr:`record`, non-finite numbers as null."""
        from hyperleaf.metrics.leaderboard import json_safe  # on use: it imports SciPy

        return json.dumps(json_safe(self.record), indent=2, allow_nan=False) + "\n"

    def csv(self) -> str:
        """The ``--csv`` text of :attr:`rows` (columns in first-seen order)."""
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
        return buf.getvalue()

    def render(self, kind: str) -> str:
        """The text of output ``kind`` (one of :data:`OUTPUT_KINDS`)."""
        if kind == "json":
            return self.json()
        if kind == "csv":
            return self.csv()
        if kind == "markdown":
            return self.markdown if self.markdown.endswith("\n") else self.markdown + "\n"
        raise ValueError(f"kind: expected one of {', '.join(OUTPUT_KINDS)}, got {kind!r}")


def given_outputs(options: Mapping[str, Any], kinds: Sequence[str] = OUTPUT_KINDS
                  ) -> dict[str, Path]:
    """``{kind: path}`` of the outputs among ``kinds`` given in ``options``.

    >>> given_outputs({"csv": "s.csv", "json": None})
    {'csv': PosixPath('s.csv')}
    """
    return {k: Path(options[k]) for k in kinds if options.get(k)}


def scores_report(task: str, options: Mapping[str, Any], report: Mapping[str, Any]
                  ) -> EvaluationReport:
    """The report of a task's ``evaluate_run`` result ``{"scores", "higher_is_better"[,
    "items"]}`` on ``options["weights"]`` and ``options["data"]``: one line per score with its
    direction, a ``score,value,higher_is_better`` CSV, a Markdown table, and the JSON record
    ``{"task", "weights", "data", **report}``."""
    scores, higher = dict(report["scores"]), dict(report["higher_is_better"])
    missing = [k for k in scores if k not in higher]
    if missing:
        raise ValueError(f"higher_is_better: the {task} task's evaluation gives no direction "
                         f"for {missing}")
    lines = [f"{k} {arrow(higher[k])}: {v:.6g}" for k, v in scores.items()]
    md = ["| score | value |", "|---|---:|",
          *(f"| {k} {arrow(higher[k])} | {v:.4f} |" for k, v in scores.items())]
    return EvaluationReport(
        record={"task": task, "weights": str(options.get("weights")),
                "data": str(options.get("data")), **report},
        rows=[{"score": k, "value": float(v), "higher_is_better": higher[k]}
              for k, v in scores.items()],
        markdown="\n".join(md) + "\n", text="\n".join(lines))
