"""The paper's ablation at GPU scale: LEAF with curvature c = 0.5 against its c -> 0 limit
(the paper's c = 0 arm) and against LEAF without H2FR, with the plain backbone as reference,
K seeds, under the statistics of docs/training.md ("Statistics").

LEAF's figure compares c = 0.5, c = 0 and "without H2FR" (mIoU 52.8 / 49.68 / 52.21). Here
the fusion task runs that design (arms ``ship,leaf,euclidean,hdgfb-only``; the segment task's
networks are the authors' and have no c -> 0 switch) with the SHIP authors' recipe
(``ship-authors``: their loss, lr 1e-4, multistep at 15k and 25k steps, 128x128 crops with
rot90, 16 features) for ``--steps`` (default 30 000, past the last milestone) at batch
``--batch-size`` (default 8), curvature 0.5, on one GPU:

    python benchmarks/paper_ablation.py --data /work/shared/data/msrs --out runs/paper-abl \\
        --seeds 5
    python benchmarks/paper_ablation.py --estimate --data /work/shared/data/msrs   # any machine

Without CUDA the run is skipped (exit 0, one line saying so). ``--estimate`` (no GPU needed)
measures a few training steps of each arm on this machine's CPU at the GPU configuration,
counts the FLOPs of one step (``torch.utils.flop_counter.FlopCounterMode``) and prints the
expected GPU wall time of the whole design at a stated sustained throughput (``--gpu-tflops``,
default 10 TFLOP/s: ~15 % of an H100's FP32 peak, an assumption for these small convolutions,
not a measurement) next to the CPU time the same FLOPs took here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import torch

from hyperleaf.atomic import atomic_write_text
from hyperleaf.experiments.report import RESULTS_FORMAT, provenance

ARMS = ("ship", "leaf", "euclidean", "hdgfb-only")


def _config(args) -> dict:
    return {"recipe": "ship-authors", "steps": args.steps, "batch_size": args.batch_size,
            "curvature": 0.5, "eval_every": args.steps, "save_every": max(1, args.steps // 10),
            "log_every": 100, "val_crop": 128, "device": "cuda" if not args.estimate else "cpu"}


def estimate(args) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    from hyperleaf.experiments import ARMS as ARM_KEYS
    from hyperleaf.train import TrainConfig
    from hyperleaf.train.build import build_objective

    t_start = time.perf_counter()
    load = os.getloadavg()
    rows = []
    total_flops = 0.0
    for arm in ARMS:
        cfg = TrainConfig.from_dict({**_config(args), **ARM_KEYS[arm], "shared_init": True},
                                    source="estimate").validate()
        torch.manual_seed(0)
        obj = build_objective(cfg).train()
        vis = torch.rand(args.batch_size, 1, 128, 128)
        ir = torch.rand(args.batch_size, 1, 128, 128)

        def step(obj=obj, vis=vis, ir=ir):
            total, _parts, _ = obj(vis, ir)
            total.backward()

        with FlopCounterMode(display=False) as fc:
            step()
        flops = float(fc.get_total_flops())
        times = []
        for _ in range(args.cpu_steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        cpu_step = sorted(times)[len(times) // 2]
        run_flops = flops * args.steps
        total_flops += run_flops * args.seeds
        rows.append([arm, round(flops / 1e9, 1), round(cpu_step, 2),
                     round(run_flops / (args.gpu_tflops * 1e12) / 60, 1),
                     round(cpu_step * args.steps / 3600, 1)])
        print(f"{arm}: {flops / 1e9:.2f} GFLOP per step (batch {args.batch_size}, 128x128); "
              f"CPU here {cpu_step:.2f} s per step (median of {args.cpu_steps}, "
              f"{flops / cpu_step / 1e9:.1f} GFLOP/s); one run of {args.steps} steps: "
              f"{run_flops / 1e12:.1f} TFLOP = {run_flops / (args.gpu_tflops * 1e12) / 60:.0f} "
              f"min at {args.gpu_tflops:g} TFLOP/s, {cpu_step * args.steps / 3600:.1f} h on "
              "this CPU")
    hours = total_flops / (args.gpu_tflops * 1e12) / 3600
    print(f"whole design ({len(ARMS)} arms x {args.seeds} seeds, training only): "
          f"{total_flops / 1e15:.1f} PFLOP, about {hours:.1f} h on one GPU at "
          f"{args.gpu_tflops:g} TFLOP/s sustained (an assumption; held-out evaluation extra)")
    rows.append([f"**whole design** ({len(ARMS)} arms x {args.seeds} seeds)",
                 round(total_flops / 1e15, 1), "", f"**{hours:.1f} h**", ""])
    if args.out_estimate:
        record = {
            "results_format": RESULTS_FORMAT, "kind": "table",
            "caption": (f"The paper's ablation at GPU scale (`ship-authors` recipe, "
                        f"{args.steps} steps, batch {args.batch_size} of 128x128): FLOPs of "
                        "one training step (FlopCounterMode), CPU seconds per step measured "
                        f"here (median of {args.cpu_steps}, one thread, load average "
                        f"{load[0]:.1f}: noisy), and the expected minutes per run at "
                        f"{args.gpu_tflops:g} TFLOP/s sustained on one GPU (an assumed "
                        "throughput, not a measurement); last row: PFLOP and hours of the "
                        "whole design."),
            "columns": ["arm", "GFLOP / step", "CPU s / step", "GPU min / run (assumed rate)",
                        "CPU h / run"],
            "rows": rows, "config": _config(args), "load_average": load,
            "wall_seconds": time.perf_counter() - t_start, "gpu_tflops_assumed": args.gpu_tflops,
            **provenance([], shlex.join(["python", *sys.argv])),
        }
        atomic_write_text(args.out_estimate, json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.out_estimate}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="runs/paper-ablation")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--estimate", action="store_true", help="CPU timing + FLOPs, no GPU run")
    ap.add_argument("--cpu-steps", type=int, default=3)
    ap.add_argument("--gpu-tflops", type=float, default=10.0)
    ap.add_argument("--out-estimate", default=None,
                    help="with --estimate: write the table as a results file (JSON)")
    args = ap.parse_args(argv)
    if args.estimate:
        return estimate(args)
    if not torch.cuda.is_available():
        print("paper_ablation: skipped: no CUDA device (use --estimate for the expected time)")
        return 0
    from hyperleaf.experiments import AblationSpec, markdown_report, run_ablation

    spec = AblationSpec(data=args.data, out=args.out, seeds=tuple(range(args.seeds)),
                        arms=ARMS, config=_config(args), heldout_fraction=0.25,
                        command=" ".join(["python", *sys.argv]))
    print(markdown_report(run_ablation(spec)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
