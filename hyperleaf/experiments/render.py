"""Docs tables rendered from committed results files.

A results table in ``docs/*.md`` or ``benchmarks/README.md`` sits between two markers naming
its file::

    <!-- BEGIN RESULTS results/NAME.json -->
    ... (generated: do not edit) ...
    <!-- END RESULTS -->

and is the output of :func:`render_file` for that file: an ablation record
(``hyperleaf-results/1`` with ``kind: ablation``) gives :func:`~hyperleaf.experiments.report.
render_results_table`; a table record (``kind: table``: ``columns``, ``rows``, ``caption``)
gives a plain markdown table. ``python -m hyperleaf.experiments.render`` rewrites every block
(atomically); ``--check`` only reports stale ones (exit 1). ``tests/test_results_docs.py`` runs
the check.

Example::

    >>> rec = {"results_format": "hyperleaf-results/1", "kind": "table", "caption": "c.",
    ...        "columns": ["a", "b"], "rows": [[1, "x"]], "commit": "abc", "command": "cmd"}
    >>> print(render_record(rec), end="")
    Results file: commit abc; command `cmd`.
    <BLANKLINE>
    c.
    <BLANKLINE>
    | a | b |
    |---|---|
    | 1 | x |
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyperleaf.atomic import atomic_write_text
from hyperleaf.experiments.report import RESULTS_FORMAT, render_results_table

__all__ = ["BLOCK", "render_record", "render_file", "render_docs", "file_ablation", "main",
           "DOC_FILES", "REQUIRED_KEYS"]

#: A results block: the file it renders and its current content.
BLOCK = re.compile(r"<!-- BEGIN RESULTS (?P<file>\S+) -->\n(?P<body>.*?)<!-- END RESULTS -->",
                   re.S)

#: The documents whose results blocks are rendered (relative to the repository root).
DOC_FILES = ("docs/*.md", "benchmarks/README.md")

#: What every results file records besides its numbers.
REQUIRED_KEYS = ("results_format", "kind", "commit", "command", "config", "inputs",
                 "hardware", "wall_seconds")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_record(record: dict[str, Any]) -> str:
    """The markdown of one results record (see the module docstring)."""
    if record.get("results_format") != RESULTS_FORMAT:
        raise ValueError(f"record: expected results_format {RESULTS_FORMAT!r}, got "
                         f"{record.get('results_format')!r}")
    kind = record.get("kind")
    if kind == "ablation":
        return render_results_table(record)
    if kind == "table":
        head = (f"Results file: commit {record.get('commit')}; command "
                f"`{record.get('command')}`"
                + (f"; **{record['label']}**" if record.get("label") else "") + ".")
        cols = record["columns"]
        lines = [head, "", record.get("caption", ""), "",
                 "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in record["rows"]]
        return "\n".join(lines) + "\n"
    raise ValueError(f"record: unknown kind {kind!r} (ablation or table)")


def render_file(path: str | Path) -> str:
    """:func:`render_record` of a results JSON file."""
    return render_record(json.loads(Path(path).read_text(encoding="utf-8")))


def _docs(root: Path) -> list[Path]:
    return sorted({p for pattern in DOC_FILES for p in root.glob(pattern)})


def render_docs(root: str | Path, write: bool = False) -> dict[Path, list[str]]:
    """Re-render every results block under ``root``; returns ``{doc: [stale files]}`` (blocks
    whose text differs from the rendering). With ``write`` the documents are rewritten."""
    root = Path(root)
    stale: dict[Path, list[str]] = {}
    for doc in _docs(root):
        text = doc.read_text(encoding="utf-8")
        bad: list[str] = []

        def sub(m: re.Match, bad=bad) -> str:
            body = render_file(root / m.group("file"))
            if body != m.group("body"):
                bad.append(m.group("file"))
            return f"<!-- BEGIN RESULTS {m.group('file')} -->\n{body}<!-- END RESULTS -->"

        new = BLOCK.sub(sub, text)
        if bad:
            stale[doc] = bad
            if write:
                atomic_write_text(doc, new)
    return stale


def file_ablation(src: str | Path, dest: str | Path, label: str = "") -> Path:
    """Copy an ``ablation.json`` (``hyperleaf ablate``'s record, provenance included) to a
    results file ``dest`` (``results_format``, ``kind: ablation`` and ``label`` added; the
    run folders' paths are dropped: they are not on file)."""
    rec = json.loads(Path(src).read_text(encoding="utf-8"))
    missing = [k for k in ("commit", "command", "inputs", "hardware", "wall_seconds", "runs")
               if k not in rec]
    if missing:
        raise ValueError(f"src: {src} is not an ablation record with provenance (no "
                         f"{', '.join(missing)})")
    rec = {"results_format": RESULTS_FORMAT, "kind": "ablation", "label": label, **rec}
    rec.pop("out", None)
    for r in rec["runs"]:
        r.pop("out", None)
        r.get("val_last", {}).pop("geometry", None)  # per-group dicts: in the run's log only
    return atomic_write_text(dest, json.dumps(rec, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hyperleaf.experiments.render [--check] [--root DIR]``, or
    ``--file OUT/ablation.json results/NAME.json --label TEXT`` to file an ablation first."""
    ap = argparse.ArgumentParser(prog="python -m hyperleaf.experiments.render",
                                 description="Render the docs' results tables from results/.")
    ap.add_argument("--root", default=".", help="repository root (default: .)")
    ap.add_argument("--check", action="store_true", help="only report stale tables (exit 1)")
    ap.add_argument("--file", nargs=2, metavar=("ABLATION_JSON", "RESULTS_JSON"),
                    help="first copy an ablation.json to a results file")
    ap.add_argument("--label", default="", help="with --file: e.g. 'smoke run, not evidence'")
    args = ap.parse_args(argv)
    if args.file:
        print(f"wrote {file_ablation(args.file[0], args.file[1], args.label)}")
    stale = render_docs(args.root, write=not args.check)
    for doc, files in stale.items():
        print(f"{doc}: {'stale' if args.check else 'rewrote'} {', '.join(files)}")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
