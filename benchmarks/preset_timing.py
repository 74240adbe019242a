"""Expected wall time of an ablation preset, measured: each arm of ``--preset`` trained for a
few steps at two lengths on the preset's data (one process, one thread, as a worker runs), so
that the per-step time is the difference and the fixed cost (start, validation, held-out
evaluation) the rest. The preset's wall time is then

    runs x (fixed + steps x per_step) / workers      (per arm, summed over its K seeds)

assuming ``workers`` processes on as many free cores. Writes ``results/preset_timing.json``
(a results file; docs/training.md renders its table). The machine's load at the time is
recorded: on a shared machine the measured times are upper bounds.

    nice python benchmarks/preset_timing.py --preset fuse-hour --data /work/shared/data/tno \\
        --runs /tmp/ptime --short 5 --long 25 --out results/preset_timing.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from hyperleaf.atomic import atomic_write_text
from hyperleaf.experiments import PRESETS, AblationSpec
from hyperleaf.experiments.report import RESULTS_FORMAT, provenance
from hyperleaf.experiments.runner import _fuse_plan, run_one


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="fuse-hour")
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--short", type=int, default=5)
    ap.add_argument("--long", type=int, default=25)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="results/preset_timing.json")
    args = ap.parse_args(argv)
    preset = PRESETS[args.preset]
    t0 = time.perf_counter()
    load = os.getloadavg()
    rows, per_arm, total = [], {}, 0.0
    for arm in preset.arms:
        secs = {}
        for steps in (args.short, args.long):
            out = Path(args.runs) / f"{arm}-{steps}"
            spec = AblationSpec(data=args.data, out=str(out), seeds=(0, 1), arms=(arm, "ship")
                                if arm != "ship" else ("ship", "leaf"),
                                config={**preset.config, "steps": steps},
                                heldout=preset.heldout, task=preset.task).validate()
            configs, _split, _inputs, heldout, prepare = _fuse_plan(spec, out)
            prepare()
            rec = run_one({"arm": arm, "seed": 0, "task": preset.task,
                           "config": configs[arm, 0], "heldout": heldout,
                           "metrics": list(spec.metrics), "convention": "standard"})
            secs[steps] = (rec["train_seconds"], rec["eval_seconds"])
        per_step = (secs[args.long][0] - secs[args.short][0]) / (args.long - args.short)
        fixed = secs[args.short][0] - args.short * per_step + secs[args.long][1]
        run_s = fixed + preset.config["steps"] * per_step
        per_arm[arm] = {"per_step_s": per_step, "fixed_s": fixed, "run_s": run_s,
                        "measured": {str(k): v for k, v in secs.items()}}
        total += preset.seeds * run_s
        rows.append([arm, round(per_step, 3), round(fixed, 1), round(run_s, 1)])
        print(arm, per_arm[arm], file=sys.stderr, flush=True)
    wall = total / args.workers
    rows.append([f"preset {args.preset}: {len(preset.arms)} arms x {preset.seeds} seeds, "
                 f"{args.workers} workers", "", "", f"{wall / 60:.0f} min"])
    record = {
        "results_format": RESULTS_FORMAT, "kind": "table",
        "caption": (f"Preset `{args.preset}` ({preset.config}), one run per arm measured at "
                    f"{args.short} and {args.long} steps, one thread, on this 2-core machine "
                    f"shared with other jobs (load average {load[0]:.1f} at the start): "
                    "seconds per training step, fixed seconds per run (start, validation, "
                    f"held-out evaluation of {preset.heldout} images) and the expected seconds "
                    f"per run at {preset.config['steps']} steps; last row: the expected wall "
                    "time of the whole preset."),
        "columns": ["arm", "s / step", "fixed s / run", "s / run"],
        "rows": rows, "arms": per_arm, "config": preset.config, "preset": args.preset,
        "load_average": load, "expected_wall_seconds": wall,
        "wall_seconds": time.perf_counter() - t0,
        **provenance([], shlex.join(["python", *sys.argv])),
    }
    from hyperleaf.io import find_pairs_in

    record["inputs"] = provenance([f for p in find_pairs_in(args.data) for f in (p.ir, p.vis)],
                                  "")["inputs"]
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}: expected {wall / 60:.0f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
