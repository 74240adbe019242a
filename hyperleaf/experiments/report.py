"""The ablation's outputs: the printed tables (``ablation.md``), the figure, the per-image CSV,
the results file's provenance (commit, command, configuration, inputs with SHA-256, hardware,
wall time) and the rendering of docs tables from committed results files.

Every file is written atomically (:mod:`hyperleaf.atomic`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hyperleaf.atomic import atomic_write_bytes
from hyperleaf.experiments.design import ARM_LABELS, higher_is_better

__all__ = ["markdown_report", "plot_ablation", "csv_text", "provenance", "write_results",
           "file_sha256",
           "render_results_table", "RESULTS_FORMAT"]

#: Format tag of a committed results file (``results/*.json``).
RESULTS_FORMAT = "hyperleaf-results/1"


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _arrow(m: str) -> str:
    return "↑" if higher_is_better(m) else "↓"


def _label(a: str) -> str:
    return ARM_LABELS.get(a, a)


#: Per task, the configuration keys the report's "Budget per run" line shows.
_BUDGET_KEYS: dict[str, tuple[str, ...]] = {
    "fuse": ("steps", "batch_size", "crop", "lr", "n_feat", "loss", "recipe", "init"),
    "pansharpen": ("steps", "batch_size", "crop", "lr", "n_feat", "hdgfb_mode", "h2fr_weight",
                   "sensor", "val_index", "val_crop"),
    "segment": ("steps", "batch_size", "crop", "lr", "recipe", "model", "widths3d",
                "leaf_mode", "lesion_fraction", "h2fr_weight", "init"),
}


def markdown_report(record: dict[str, Any]) -> str:
    """The tables ``hyperleaf ablate`` prints (and writes to ``ablation.md``), from the
    ``ablation.json`` record: the unit of replication, the per-arm means with their interval
    over seeds and parameter counts, and per arm its paired difference to the reference with
    (a) the interval over seeds, (b) the hierarchical bootstrap interval, the Holm-adjusted p,
    the sign-test p, the smallest effect of interest and the verdict."""
    summ, arms, metrics = record["summary"], record["arms"], record["metrics"]
    seeds, split = record["seeds"], record["split"]
    k = len(seeds)
    pct = f"{100 * summ['level']:g} %"
    cfg = record["config"]
    task = record.get("task", "fuse")
    budget = ", ".join(f"{key} {cfg[key]}" for key in _BUDGET_KEYS.get(task, _BUDGET_KEYS["fuse"])
                       if cfg.get(key) is not None)
    n_img = len(split["heldout"])
    if task == "fuse":
        trained = f"{len(split['train'])} training items"
    elif task == "segment":
        trained = f"{len(split['train'])} training item(s) ({', '.join(split['train'])})"
    else:  # pansharpen: the training samples are tiles, counted
        trained = ", ".join(split["train"])
    lines = [
        f"Task: {task}. Data: {record['data']}; "
        f"{trained}, {n_img} held out ({split['rule']}): "
        f"{', '.join(split['heldout'])}.",
        f"Budget per run: {budget}. Seeds: {', '.join(map(str, seeds))} (K = {k}).",
        f"{summ['unit']} (a) interval over the K = {k} seeds of the per-run means over the "
        f"{n_img} images (Student t, K - 1 = {k - 1} dof); (b) paired hierarchical bootstrap "
        f"over seeds x images ({summ['n_boot']} resamples: seeds, then images within each).",
        f"Verdicts: Holm-adjusted paired-t p over the {len(metrics) * (len(arms) - 1)} tests "
        f"of this table < {1 - summ['level']:g} and (b) excluding 0; none below K = "
        f"{summ['min_seeds_for_verdict']} seeds (\"too few seeds\"); \"no difference\" when "
        "(a) and (b) lie inside ± the smallest effect of interest, else \"too noisy to say\".",
        "", "| metric | " + " | ".join(_label(a) for a in arms) + " |",
        "|---|" + "---:|" * len(arms)]
    for m in metrics:
        cells = [f"{_fmt(summ['arms'][a][m]['mean'])} ± {_fmt(summ['arms'][a][m]['half_width'])}"
                 for a in arms]
        lines.append(f"| {m} {_arrow(m)} | " + " | ".join(cells) + " |")
    params = record.get("parameters") or {}
    if params:
        lines.append("| parameters | " + " | ".join(f"{params[a]:,}" for a in arms) + " |")
    ref = summ["reference"]
    for a in arms[1:]:
        comp = summ["paired"][f"{a}-{ref}"]
        name = f"{_label(a)} − {_label(ref)}"
        lines += ["", f"Paired difference {name}, seed by seed ({', '.join(map(str, seeds))}):",
                  "", f"| metric | per seed | (a) mean, {pct} CI over seeds | (b) {pct} "
                  "bootstrap CI | p Holm | p sign | min effect | verdict |",
                  "|---|---|---|---|---:|---:|---:|---|"]
        for m in metrics:
            c = comp[m]
            per = ", ".join(f"{v:+.4f}" for v in c["per_seed"])
            me = "—" if c["min_effect"] is None else f"{c['min_effect']:g}"
            lines.append(f"| {m} {_arrow(m)} | {per} | {c['mean']:+.4f} [{c['low']:+.4f}, "
                         f"{c['high']:+.4f}] | [{c['boot']['low']:+.4f}, "
                         f"{c['boot']['high']:+.4f}] | {c['p_holm']:.3f} | {c['sign_p']:.3f} "
                         f"| {me} | {c['verdict']} |")
    secs = [r["train_seconds"] for r in record["runs"]]
    evals = [r["eval_seconds"] for r in record["runs"]]
    lines += ["", f"Wall time: {record['wall_seconds'] / 60:.1f} min for {len(record['runs'])} "
              f"runs with {record['workers']} worker process(es); training {min(secs):.0f}-"
              f"{max(secs):.0f} s per run, held-out evaluation {min(evals):.0f}-"
              f"{max(evals):.0f} s per run."]
    return "\n".join(lines) + "\n"


def plot_ablation(record: dict[str, Any], path: str | Path) -> Path:
    """The ablation's figure, written to ``path`` (PNG) atomically.

    Upper panels, one per metric: every seed's score per arm (the runs of one seed joined by a
    grey line) and each arm's mean with its interval over seeds. Lower panels: the paired
    differences to the reference arm, seed by seed (grey), their mean with the interval over
    seeds (colour) and the hierarchical bootstrap interval (black bar), with 0 dashed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms, metrics, seeds = record["arms"], record["metrics"], record["seeds"]
    summ = record["summary"]
    ref = summ["reference"]
    score = {(r["arm"], r["seed"]): r["metrics"] for r in record["runs"]}
    ncol = min(4, len(metrics))
    nblock = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(2 * nblock, ncol, figsize=(3.2 * ncol, 2.8 * 2 * nblock),
                             squeeze=False)
    top = [axes[r, c] for r in range(nblock) for c in range(ncol)]
    low = [axes[nblock + r, c] for r in range(nblock) for c in range(ncol)]
    xs = list(range(len(arms)))
    others = arms[1:]
    for i, m in enumerate(metrics):
        ax = top[i]
        for s in seeds:
            ax.plot(xs, [score[a, s][m] for a in arms], color="0.75", lw=0.8, zorder=1)
            ax.scatter(xs, [score[a, s][m] for a in arms], s=14, color="0.45", zorder=2)
        for x, a in zip(xs, arms, strict=True):
            ci = summ["arms"][a][m]
            ax.errorbar([x + 0.12], [ci["mean"]], yerr=[[ci["half_width"]], [ci["half_width"]]],
                        fmt="o", color=f"C{x}", capsize=4, zorder=3)
        # names of 5 arms overlap when set flat: tilted, anchored at their right end
        ax.set_xticks(xs, [_label(a) for a in arms], fontsize=7, rotation=30, ha="right")
        ax.set_xlim(-0.5, len(arms) - 0.5)
        ax.set_title(f"{m} {_arrow(m)}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax = low[i]
        ax.axhline(0.0, color="0.3", ls="--", lw=0.8)
        for j, a in enumerate(others):
            c = summ["paired"][f"{a}-{ref}"][m]
            ax.scatter([j] * len(c["per_seed"]), c["per_seed"], s=14, color="0.45", zorder=2)
            ax.errorbar([j + 0.12], [c["mean"]], yerr=[[c["half_width"]], [c["half_width"]]],
                        fmt="o", color=f"C{arms.index(a)}", capsize=4, zorder=3)
            b = c["boot"]
            ax.plot([j + 0.24] * 2, [b["low"], b["high"]], color="k", lw=2, zorder=3)
        ax.set_xticks(range(len(others)), [_label(a) for a in others], fontsize=7, rotation=30,
                      ha="right")
        ax.set_xlim(-0.5, len(others) - 0.5)
        ax.set_title(f"{m}: arm − {_label(ref)}, paired", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in top[len(metrics):] + low[len(metrics):]:
        ax.axis("off")
    pct = f"{100 * summ['level']:g} %"
    fig.suptitle(f"{Path(record['data']).name}: {len(record['split']['heldout'])} held-out "
                 f"items, K = {len(seeds)} seeds (unit: the training run); grey: runs; colour: "
                 f"mean ± {pct} CI over seeds; black: {pct} hierarchical bootstrap",
                 fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def csv_text(record: dict[str, Any]) -> str:
    """One row per run and held-out image, and the run's mean (``image`` = ``mean``); the last
    column names the unit of replication (the training run, one per arm and seed)."""
    buf = io.StringIO()
    metrics = record["metrics"]
    w = csv.writer(buf)
    w.writerow(["arm", "seed", "image", "convention", *metrics, "train_seconds",
                "eval_seconds", "unit_of_replication"])
    for r in record["runs"]:
        for row in [*r["images"], {"image": "mean", **r["metrics"]}]:
            w.writerow([r["arm"], r["seed"], row["image"], record["convention"],
                        *(f"{row[m]:.10g}" for m in metrics),
                        f"{r['train_seconds']:.1f}", f"{r['eval_seconds']:.1f}",
                        "training run (seed)"])
    return buf.getvalue()


# --------------------------------------------------------------------------- provenance


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes (read in 1 MiB blocks).

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as fh:
    ...     _ = fh.write(b"abc")
    >>> file_sha256(fh.name)[:16]
    'ba7816bf8f01cfea'
    >>> os.unlink(fh.name)
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10,
                               cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_results(path: str | Path, record: dict[str, Any], started: float,
                  inputs: Iterable[str | Path] = (), command: str | None = None
                  ) -> dict[str, Any]:
    """Write a results file: ``record`` plus its wall time (``wall_seconds``, since ``started``,
    a ``time.perf_counter()`` reading) and :func:`provenance` of ``inputs`` and ``command``
    (default: this Python process's command line), as JSON, atomically. Returns what was
    written (what every benchmark script that files a result ends with).

    >>> import tempfile, time
    >>> with tempfile.TemporaryDirectory() as d:
    ...     rec = write_results(Path(d) / "r.json", {"kind": "table"}, time.perf_counter(),
    ...                         command="python make_r.py")
    ...     on_disk = json.loads((Path(d) / "r.json").read_text())
    >>> on_disk == rec, rec["command"], rec["wall_seconds"] >= 0
    (True, 'python make_r.py', True)
    """
    import shlex
    import time

    full = {**record, "wall_seconds": time.perf_counter() - started,
            **provenance(inputs, command or shlex.join(["python", *sys.argv]))}
    atomic_write_bytes(path, (json.dumps(full, indent=1) + "\n").encode("utf-8"))
    return full


def provenance(inputs: Iterable[str | Path], command: str | None = None) -> dict[str, Any]:
    """What a results file records besides its numbers: the git commit (``+dirty`` with
    uncommitted changes), the command line, every input file's name and SHA-256, and the
    hardware (CPU, cores, torch threads, Python/torch versions).

    >>> sorted(provenance([], "hyperleaf ablate ..."))
    ['command', 'commit', 'hardware', 'inputs']
    """
    import torch

    files = sorted({str(Path(p)) for p in inputs})
    return {
        "commit": _git_commit(),
        "command": command if command is not None else " ".join(sys.argv),
        "inputs": [{"name": f, "sha256": file_sha256(f)} for f in files],
        "hardware": {"machine": platform.machine(), "processor": platform.processor() or None,
                     "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "python": platform.python_version(), "torch": torch.__version__,
                     "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                     else None},
    }


# --------------------------------------------------------------------------- docs tables


def render_results_table(record: dict[str, Any]) -> str:
    """The docs table of a committed results file: a header line naming the file's commit,
    command and label, then :func:`markdown_report`. Deterministic in the file's content
    (what the docs-table test re-renders and compares)."""
    label = record.get("label", "")
    head = [f"Results file: commit {record.get('commit')}; command `{record.get('command')}`"
            + (f"; **{label}**" if label else "") + ".", ""]
    return "\n".join(head) + markdown_report(record)


def load_results(path: str | Path) -> dict[str, Any]:
    """A committed results file (JSON), checked for its format tag."""
    rec = json.loads(Path(path).read_text())
    if rec.get("results_format") != RESULTS_FORMAT:
        raise ValueError(f"{path}: not a {RESULTS_FORMAT} file")
    return rec
