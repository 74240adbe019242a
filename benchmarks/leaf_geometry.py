"""LEAF head geometry under different defaults: saturation, spread, ordering, validation loss.

Runs ``hyperleaf train`` (one thread per process, two processes at a time, ``nice``) for each
configuration below, once for 1 step (the state "after the first step") and once for ``--steps``
(default 100, what ``make demo`` runs), and prints the Markdown table of ``docs/training.md``
("A non-degenerate geometry") from the final validation records of ``log.jsonl``
(:mod:`hyperleaf.tasks.diagnostics`):

* saturated at the end: fraction of all stage vectors at the clipping radius (and which groups);
* min spread ratio: over the 9 groups (stage x fused/visible/infrared), the smallest ratio of the
  per-sample spread at the end to its value after step 1 (and which group);
* ``order_all`` after step 1 -> at the end;
* the validation fusion loss at the end, and the end spreads (fused / visible / infrared, means
  over the stages).

Usage::

    python benchmarks/leaf_geometry.py --runs /tmp/leafgeo            # all rows
    python benchmarks/leaf_geometry.py --runs /tmp/leafgeo --only tno  # rows whose label has "tno"
    python benchmarks/leaf_geometry.py --runs /tmp/leafgeo --results results/leaf_geometry.json

``--results FILE`` also writes the table as a results file (``kind: table``; each run's final
validation record in ``values``; commit, command, configuration, inputs with SHA-256 (the TNO
pairs of the TNO rows), hardware, wall time), which docs/training.md renders (``python -m
hyperleaf.experiments.render``).

Runs already complete in ``--runs`` are reused (delete the folder to rerun). ``leaf.png`` of each
run is in ``RUNS/<row>_s<steps>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from hyperleaf.atomic import atomic_write_text
from hyperleaf.experiments.report import RESULTS_FORMAT, provenance
from hyperleaf.io import find_pairs_in

REPO = Path(__file__).resolve().parents[1]
TNO = os.environ.get("HYPERLEAF_TNO", "/work/shared/data/tno")

PAPER = {"h2fr_mode": "paper", "h2fr_core": "origin"}
OLD_HEAD = {"leaf_norm": "none"}

#: (row label, data set: "synthetic" or "tno", description, config keys changed from defaults)
ROWS: list[tuple[str, str, str, dict]] = [
    ("syn_default", "synthetic", "none (defaults)", {}),
    ("syn_old", "synthetic", "`leaf_norm: none` (the earlier head)", OLD_HEAD),
    ("syn_old_clip8", "synthetic", "`leaf_norm: none, clip_r: 8`", {**OLD_HEAD, "clip_r": 8.0}),
    ("syn_r1", "synthetic", "`leaf_radius: 1.0`", {"leaf_radius": 1.0}),
    ("syn_r1_c1", "synthetic", "`leaf_radius: 1.0, curvature: 1.0`",
     {"leaf_radius": 1.0, "curvature": 1.0}),
    ("syn_paper", "synthetic", "`h2fr_mode: paper, h2fr_core: origin`", PAPER),
    ("syn_paper_old", "synthetic", "paper, `leaf_norm: none`", {**PAPER, **OLD_HEAD}),
    ("tno_default", "tno", "none (defaults)", {}),
    ("tno_old", "tno", "`leaf_norm: none` (the earlier head)", OLD_HEAD),
    ("tno_paper", "tno", "`h2fr_mode: paper, h2fr_core: origin`", PAPER),
    ("tno_paper_old", "tno", "paper, `leaf_norm: none`", {**PAPER, **OLD_HEAD}),
]


def run(runs: Path, label: str, data: str, keys: dict, steps: int) -> Path:
    """Train one configuration for ``steps`` steps into ``runs/<label>_s<steps>``."""
    out = runs / f"{label}_s{steps}"
    if (out / "model.safetensors").is_file():
        return out
    runs.mkdir(parents=True, exist_ok=True)
    cfg = dict(keys, steps=steps, threads=1, seed=0)
    if data == "tno":
        cfg["data"] = TNO
    cfg_file = runs / f"{label}_s{steps}.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = ["nice", "-n", "10", "timeout", "1800", sys.executable, "-m", "hyperleaf", "train",
           "--config", str(cfg_file), "--out", str(out), "--device", "cpu"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{label} ({steps} steps) failed:\n{r.stderr[-3000:]}")
    return out


def last_val(run_dir: Path) -> dict:
    with open(run_dir / "log.jsonl", encoding="utf-8") as f:
        recs = [json.loads(line) for line in f if line.strip()]
    return [r for r in recs if r.get("kind") == "val"][-1]


def row_cells(data: str, desc: str, first: dict, end: dict) -> list[str]:
    """The table's cells of one row (see the module docstring)."""
    ratios = {g: end["geometry"][g]["spread"] / max(first["geometry"][g]["spread"], 1e-300)
              for g in first["geometry"]}
    worst = min(ratios, key=ratios.get)
    sat = sorted(g for g, v in end["geometry"].items() if v["saturated"] > 0)
    sat_txt = f"{100 * end['saturated']:.0f} %" + (f" ({', '.join(sat)})" if sat else "")
    return [data, desc, sat_txt, f"{ratios[worst]:.2f} (`{worst}`)",
            f"{100 * first['order_all']:.0f} -> {100 * end['order_all']:.0f} %",
            f"{end['loss']:.3f}",
            f"{end['spread_fused']:.3f} / {end['spread_vis']:.3f} / {end['spread_ir']:.3f}"]


def row_text(data: str, desc: str, first: dict, end: dict) -> str:
    """One Markdown row of :func:`row_cells`."""
    return "| " + " | ".join(row_cells(data, desc, first, end)) + " |"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder for the run folders")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--only", default="", help="run only rows whose label contains this")
    ap.add_argument("--jobs", type=int, default=2, help="processes at a time")
    ap.add_argument("--results", type=Path, default=None,
                    help="also write the table as this results file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = [r for r in ROWS if args.only in r[0]]
    jobs = [(label, data, keys, s) for label, data, _, keys in rows for s in (1, args.steps)]
    with ThreadPoolExecutor(args.jobs) as ex:
        list(ex.map(lambda j: run(args.runs, *j), jobs))
    columns = ["data", "change from the defaults", "saturated at end",
               "min over groups of spread end / after step 1",
               f"order_all step 1 -> {args.steps}", "val fusion loss",
               "spread fused / visible / infrared at end"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---:|---:|---|---:|---|")
    cells, values = [], {}
    for label, data, desc, _ in rows:
        first = last_val(args.runs / f"{label}_s1")
        end = last_val(args.runs / f"{label}_s{args.steps}")
        cells.append(row_cells("TNO" if data == "tno" else data, desc, first, end))
        values[label] = {"step_1": first, f"step_{args.steps}": end}
        print(row_text("TNO" if data == "tno" else data, desc, first, end))
    if args.results is not None:
        tno = [f for p in find_pairs_in(TNO) for f in (p.ir, p.vis)] \
            if any(data == "tno" for _, data, _, _ in rows) else []
        record = {
            "results_format": RESULTS_FORMAT, "kind": "table",
            "caption": (f"`hyperleaf train`, seed 0, one run per row and length (1 step and "
                        f"{args.steps} steps), one thread per process; final validation "
                        "records (synthetic: the 8 embedded validation samples; TNO: the "
                        "trainer's held-out pairs). One seed per row: a description of the "
                        "head's geometry, not a comparison."),
            "columns": columns, "rows": cells, "values": values,
            "config": {"steps": args.steps, "seed": 0, "threads": 1, "tno": TNO,
                       "rows": {label: {"data": data, "keys": keys}
                                for label, data, _, keys in rows}},
            "wall_seconds": time.perf_counter() - t0,
            **provenance(tno, shlex.join(["python", *sys.argv])),
        }
        atomic_write_text(args.results, json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
