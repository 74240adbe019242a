"""Expected wall time of an ablation preset, measured side by side: one training step of each
arm (forward, backward, RiemannianAdam step on a batch of the preset's crops of the preset's
data), interleaved round-robin so that the machine's load hits every arm alike, median of
``--reps``; and the held-out evaluation of one image (fuse it whole, the preset's metrics),
median of 3. The preset's expected wall time is then

    sum over arms of  K x (steps x step_s + heldout x eval_s)  / workers

(start-up and the two centre-crop validations of each run are left out: a few seconds). Run
on a shared machine these are upper bounds; the load average is recorded. Writes
``results/preset_timing.json`` (docs/training.md renders its table).

    nice python benchmarks/preset_timing.py --preset fuse-hour --data /work/shared/data/tno \\
        --out results/preset_timing.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import geoopt
import torch

from hyperleaf.experiments import ARMS, PRESETS
from hyperleaf.experiments.report import RESULTS_FORMAT, write_results
from hyperleaf.io import find_pairs_in, read_gray, read_gray_levels
from hyperleaf.metrics import evaluate
from hyperleaf.train import TrainConfig
from hyperleaf.train.build import build_objective

sys.path.insert(0, os.path.dirname(__file__))
from common import interleaved_medians  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="fuse-hour")
    ap.add_argument("--data", required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="results/preset_timing.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as each worker process trains
    preset = PRESETS[args.preset]
    t0 = time.perf_counter()
    load = os.getloadavg()
    pairs = find_pairs_in(args.data)
    crop, batch = preset.config["crop"], preset.config["batch_size"]
    vis = torch.stack([torch.from_numpy(read_gray(p.vis)[:crop, :crop].copy())[None]
                       for p in pairs[:batch]]).float()
    ir = torch.stack([torch.from_numpy(read_gray(p.ir)[:crop, :crop].copy())[None]
                      for p in pairs[:batch]]).float()
    steps = {}
    for arm in preset.arms:
        cfg = TrainConfig.from_dict({**preset.config, **ARMS[arm]}, source="timing").validate()
        torch.manual_seed(0)
        obj = build_objective(cfg).train()
        opt = geoopt.optim.RiemannianAdam([p for p in obj.parameters() if p.requires_grad],
                                          lr=1e-4)

        def step(obj=obj, opt=opt):
            opt.zero_grad()
            total, _parts, _ = obj(vis, ir)
            total.backward()
            opt.step()

        steps[arm] = step
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step_s = interleaved_medians(steps, args.reps)
    held = pairs[:preset.heldout]
    net = build_objective(TrainConfig.from_dict(preset.config).validate()).net.eval()

    def eval_one(p=held[0]):
        v = torch.from_numpy(read_gray(p.vis).copy())[None, None].float()
        i = torch.from_numpy(read_gray(p.ir).copy())[None, None].float()
        with torch.inference_mode():
            fused = net(v, i)[0, 0].clamp(0, 1).numpy()
        evaluate(fused, ir=read_gray_levels(p.ir),
                 vis=read_gray_levels(p.vis))

    times = []
    for _ in range(3):
        t = time.perf_counter()
        eval_one()
        times.append(time.perf_counter() - t)
    eval_s = statistics.median(times)
    n_steps = preset.config["steps"]
    rows, total = [], 0.0
    for arm in preset.arms:
        run_s = n_steps * step_s[arm] + preset.heldout * eval_s
        total += preset.seeds * run_s
        rows.append([arm, round(step_s[arm], 3), round(preset.heldout * eval_s, 1),
                     round(run_s, 1)])
    wall = total / args.workers
    rows.append([f"**preset {args.preset}**: {len(preset.arms)} arms x {preset.seeds} seeds = "
                 f"{len(preset.arms) * preset.seeds} runs, {args.workers} workers", "", "",
                 f"**{wall / 60:.0f} min**"])
    record = {
        "results_format": RESULTS_FORMAT, "kind": "table",
        "caption": (f"Preset `{args.preset}`: seconds per training step of each arm (batch "
                    f"{batch} of {crop}x{crop} TNO crops, one thread, median of {args.reps} "
                    f"interleaved steps), seconds of the held-out evaluation ({preset.heldout} "
                    f"whole TNO images, median of 3 for one), and seconds per run at "
                    f"{n_steps} steps. Measured on this 2-core machine shared with other jobs "
                    f"(load average {load[0]:.1f} at the start): upper bounds."),
        "columns": ["arm", "s / step", "held-out evaluation s", "s / run"],
        "rows": rows, "step_seconds": step_s, "eval_seconds_per_image": eval_s,
        "config": preset.config, "preset": args.preset, "load_average": load,
        "expected_wall_seconds": wall,
    }
    write_results(args.out, record, t0, [f for p in pairs for f in (p.ir, p.vis)])
    print(f"wrote {args.out}: expected {wall / 60:.0f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
