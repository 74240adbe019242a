"""The SHIP authors' weights on the 21 TNO pairs, per image, as a results file (docs/ship.md).

Fuses every pair of ``--data`` with ``hyperleaf fuse --weights WEIGHTS --data DATA --out
FUSED`` (a subprocess: the command a user runs; ``--reuse`` keeps a FUSED folder that already
holds every pair's PNG), then measures the fused PNGs as ``hyperleaf evaluate --fused FUSED
--data DATA`` does (:func:`hyperleaf.tasks.fuse.evaluate_fused_folder`, ``standard``
convention, ``--metrics``) and writes ``results/ship_tno_official.json`` (``kind:
table``, one row per image and their mean; commit, command, configuration, inputs with
SHA-256 — the weights, the sources and the fused PNGs —, hardware, wall time). About three
minutes on 2 cores::

    nice python benchmarks/ship_tno.py --weights /work/shared/checkpoints/ship_irvis_official.pth \\
        --data /work/shared/data/tno --fused /tmp/ship_tno --threads 2

The fused PNGs are also what ``benchmarks/bench_metrics.py --fused FUSED --results ...``
measures in both metric conventions (docs/metrics.md).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from hyperleaf.experiments.report import RESULTS_FORMAT, write_results
from hyperleaf.io import find_pairs_in
from hyperleaf.tasks.fuse import evaluate_fused_folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--fused", type=Path, required=True, help="folder of the fused PNGs")
    ap.add_argument("--reuse", action="store_true",
                    help="keep FUSED when it already holds every pair's PNG")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--metrics", default="EN,SD,SF,AG,MI,SCD,VIF,Qabf,SSIM,PSNR",
                    help="as `hyperleaf evaluate --metrics` (default: the ten original ones)")
    ap.add_argument("--out", type=Path, default=Path("results/ship_tno_official.json"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    pairs = find_pairs_in(args.data)
    fused = [args.fused / f"{p.name}.png" for p in pairs]
    fuse_cmd = [sys.executable, "-m", "hyperleaf", "fuse", "--weights", str(args.weights),
                "--data", str(args.data), "--out", str(args.fused), "--threads",
                str(args.threads), "--no-progress"]
    reused = args.reuse and all(f.is_file() for f in fused)
    if not reused:
        subprocess.run(fuse_cmd, check=True)
    t_fuse = time.perf_counter() - t0
    report = evaluate_fused_folder({"fused": args.fused, "data": args.data,
                                    "no_progress": True, "metrics": args.metrics})
    names = report.record["metrics"]
    rows = [[r["image"], *(f"{r[m]:.4f}" for m in names)] for r in report.record["images"]]
    rows.append(["**mean**", *(f"{report.record['mean'][m]:.4f}" for m in names)])
    record = {
        "results_format": RESULTS_FORMAT, "kind": "table",
        "caption": (f"{len(pairs)} TNO pairs fused by the SHIP authors' weights "
                    f"(`hyperleaf fuse`, 8-bit PNGs), measured as `hyperleaf evaluate` does, "
                    f"{report.record['convention']} convention (docs/metrics.md); ↑ higher is "
                    "better, ↓ lower is better."),
        "columns": list(report.table[1]), "rows": rows,
        "values": {"images": report.record["images"], "mean": report.record["mean"]},
        "config": {"convention": report.record["convention"], "metrics": list(names),
                   "fuse_command": shlex.join(["hyperleaf", *fuse_cmd[3:]]),
                   "threads": args.threads, "reused_fused": reused},
        "fuse_seconds": t_fuse,
    }
    write_results(args.out, record, t0,
                  [args.weights, *fused, *(f for p in pairs for f in (p.ir, p.vis))])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
