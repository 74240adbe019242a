"""What the embedded default reaches: ``hyperleaf train`` with and without LEAF, as a results file.

Runs ``hyperleaf train --steps STEPS --seed SEED --out RUNS/leaf`` and the same with
``--no-leaf`` (the default configuration: synthetic data, its 8 embedded validation samples),
one after the other under ``nice``, and writes ``results/default_reach.json`` (``kind: table``:
the first and final validation records of each run and the first/last logged training loss; commit,
command, configuration, inputs (none: the data is synthetic), hardware, wall time), which
docs/training.md ("What the embedded default reaches") renders. One seed: a description of what
the demo does, not a comparison (``hyperleaf ablate`` is the comparison). Under a minute per run
on 2 cores::

    python benchmarks/default_reach.py --runs /tmp/default_reach

Run folders already complete in ``--runs`` are reused (delete the folder to rerun).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from hyperleaf.experiments.report import RESULTS_FORMAT, write_results

#: (column, extra ``hyperleaf train`` arguments)
RUNS = [("SHIP + LEAF", "leaf", []), ("SHIP (--no-leaf)", "noleaf", ["--no-leaf"])]

#: (row label, key of the validation record, format); n/a where a run has no such key
VAL_ROWS = [
    ("fusion loss (intensity + gradient + 0.5 SSIM), lower is better", "loss", ".4f"),
    ("intensity loss mean abs(F - max(I_ir, I_vis))", "intensity", ".4f"),
    ("gradient loss (Sobel)", "gradient", ".4f"),
    ("SSIM(F, I_ir), higher is better", "ssim_ir", ".4f"),
    ("SSIM(F, I_vis), higher is better", "ssim_vis", ".4f"),
    ("stage vectors saturated (at the clipping radius)", "saturated", ".0%"),
]

#: (row label, key) shown as "value at step 0 -> value at the last step"
ORDER_ROWS = [
    ("fraction of samples ordered as H2FR asks, step 0 -> last", "order_all"),
    ("the same on uniform noise (null control), step 0 -> last", "null_noise_order_all"),
]


def _records(run: Path) -> list[dict]:
    with open(run / "log.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def train_run(runs: Path, name: str, extra: list[str], steps: int, seed: int) -> Path:
    """``hyperleaf train`` into ``runs/name`` (reused when it finished ``steps`` steps)."""
    out = runs / name
    if (out / "model.safetensors").is_file() and any(
            r.get("kind") == "val" and r.get("step") == steps for r in _records(out)):
        return out
    cmd = ["nice", "-n", "10", sys.executable, "-m", "hyperleaf", "train", "--steps",
           str(steps), "--seed", str(seed), "--out", str(out), "--device", "cpu",
           "--no-progress", *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="scratch folder of the two runs")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/default_reach.json"))
    args = ap.parse_args(argv)
    if args.steps < 1:
        raise SystemExit(f"--steps: expected >= 1, got {args.steps}")
    t0 = time.perf_counter()
    vals, firsts, trains = {}, {}, {}
    for label, name, extra in RUNS:
        recs = _records(train_run(args.runs, name, extra, args.steps, args.seed))
        val = [r for r in recs if r.get("kind") == "val"]
        if not val or val[-1].get("step") != args.steps:
            raise RuntimeError(f"{name}: no validation record at step {args.steps}")
        vals[label] = {k: v for k, v in val[-1].items() if isinstance(v, (int, float))}
        firsts[label] = {k: v for k, v in val[0].items() if isinstance(v, (int, float))}
        losses = [r["loss"] for r in recs if r.get("kind") == "train"]
        trains[label] = (losses[0], losses[-1])
    labels = [label for label, _, _ in RUNS]
    rows = [[text, *(format(vals[c][key], fmt) if key in vals[c] else "n/a" for c in labels)]
            for text, key, fmt in VAL_ROWS]
    rows += [[text, *(f"{firsts[c][key]:.0%} -> {vals[c][key]:.0%}" if key in vals[c]
                      else "n/a" for c in labels)] for text, key in ORDER_ROWS]
    rows.append(["training loss, first -> last logged",
                 *(f"{trains[c][0]:.3f} -> {trains[c][1]:.3f}" for c in labels)])
    record = {
        "results_format": RESULTS_FORMAT, "kind": "table",
        "caption": (f"`hyperleaf train` defaults (synthetic data, validation on its 8 embedded "
                    f"samples), {args.steps} steps, seed {args.seed}, one run per column: "
                    "validation record at the last step, and the training loss of the first "
                    "and last logged window."),
        "columns": [f"validation metric (step {args.steps}, seed {args.seed})", *labels],
        "rows": rows, "values": {"val_first": firsts, "val_last": vals,
                                            "train_loss_first_last": trains},
        "config": {"steps": args.steps, "seed": args.seed,
                   "commands": {c: shlex.join(["hyperleaf", "train", "--steps",
                                               str(args.steps), "--seed", str(args.seed),
                                               *extra]) for c, _, extra in RUNS}},
    }
    write_results(args.out, record, t0)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
