"""Does the H2FR ordering say anything about the images? The real ordering against the null
control, for a handful of LEAF head designs (docs/training.md, "Null control").

Each design trains ``hyperleaf train`` on TNO (``--data``; the trainer's own split, its last
``val_fraction`` pairs validate) for ``--steps`` steps with each of ``--seeds``, and reads the
final validation record: the fraction of held-out samples ordered as H2FR asks
(``order_all``), the same fraction on the three null inputs (uniform noise, a constant image,
the modalities swapped; :func:`hyperleaf.tasks.diagnostics.null_control`) and the validation
fusion loss. It writes ``results/null_control.json`` (a results file: commit, command,
configuration, inputs with SHA-256, hardware, wall time), whose table docs/training.md renders
(``python -m hyperleaf.experiments.render``).

    nice python benchmarks/null_control.py --data /work/shared/data/tno --runs /tmp/nullc \\
        --steps 100 --seeds 0,1 --out results/null_control.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from hyperleaf.experiments.report import RESULTS_FORMAT, write_results
from hyperleaf.io import find_pairs_in
from hyperleaf.train import TrainConfig, train

#: (label, TrainConfig keys changed from the defaults)
DESIGNS: list[tuple[str, dict]] = [
    ("`leaf_norm: layer` (default)", {}),
    ("`leaf_norm: none` (clip only)", {"leaf_norm": "none"}),
    ("layer, `h2fr_core: origin`", {"h2fr_core": "origin"}),
    ("layer, `leaf_radius: 1.0, curvature: 1.0`", {"leaf_radius": 1.0, "curvature": 1.0}),
]

BASE = {"steps": 100, "crop": 32, "batch_size": 4, "val_crop": 64, "val_fraction": 0.25}


def _finished(out: Path, steps: int) -> dict | None:
    """The final validation record of a finished run in ``out`` (reused), else None."""
    log = out / "log.jsonl"
    if not (out / "model.safetensors").is_file() or not log.is_file():
        return None
    vals = [json.loads(line) for line in log.read_text().splitlines() if '"kind": "val"' in line]
    return vals[-1] if vals and vals[-1].get("step") == steps else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", required=True, help="scratch folder of the run folders")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", default="results/null_control.json")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    rows, per_run = [], []
    for label, keys in DESIGNS:
        vals = []
        for seed in seeds:
            out = Path(args.runs) / f"{len(rows)}-seed{seed}"
            cfg = TrainConfig.from_dict({**BASE, "steps": args.steps, "eval_every": args.steps,
                                         "save_every": args.steps, **keys, "seed": seed,
                                         "data": args.data, "out": str(out)}, source="bench")
            r = _finished(out, args.steps) or train(cfg, progress=False).val_last
            v = {k: float(r[k]) for k in ("order_all", "null_noise_order_all",
                                          "null_constant_order_all", "null_swapped_order_all",
                                          "loss")}
            vals.append(v)
            per_run.append({"design": label, "seed": seed, **v})
            print(label, seed, v, file=sys.stderr, flush=True)

        def mean(k, vals=vals):
            return statistics.fmean(v[k] for v in vals)

        rows.append([label, f"{mean('order_all'):.0%}", f"{mean('null_noise_order_all'):.0%}",
                     f"{mean('null_constant_order_all'):.0%}",
                     f"{mean('null_swapped_order_all'):.0%}", round(mean("loss"), 4)])
    pairs = find_pairs_in(args.data)
    record = {
        "results_format": RESULTS_FORMAT, "kind": "table",
        "caption": (f"TNO, {args.steps} steps from scratch, seeds {args.seeds} (means over "
                    "seeds; each run's fraction is over the trainer's held-out pairs, "
                    f"val_fraction {BASE['val_fraction']}). Unit of replication: the training "
                    "run (seed). Ordering = fraction of held-out samples ordered as H2FR asks "
                    "(`order_all`); the null columns are the same fraction on inputs with no "
                    "image content."),
        "columns": ["head", "ordering, real", "null: noise", "null: constant",
                    "null: swapped", "val fusion loss"],
        "rows": rows, "runs": per_run, "config": {**BASE, "steps": args.steps},
        "designs": {label: keys for label, keys in DESIGNS}, "seeds": seeds,
    }
    write_results(args.out, record, t0, [f for p in pairs for f in (p.ir, p.vis)])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
