"""``hyperleaf ablate``: does LEAF help? K seeds x {SHIP, SHIP+LEAF} on held-out real pairs.

    hyperleaf ablate --data ../shared/data/tno --seeds 3 --steps 300 --crop 64 --workers 2 \\
        --out runs/ablation-tno
    hyperleaf ablate --data ../shared/data/msrs --recipe ship-authors \\
        --init ../shared/checkpoints/ship_irvis_official.pth --steps 100 --crop 64 \\
        --seeds 3 --workers 2 --out runs/ablation-msrs
    hyperleaf ablate --data DIR --arms ship,leaf,leaf-paper --seeds 0,1,2,3 --out OUT

Every arm (ship: plain SHIP; leaf: SHIP+LEAF with the configuration's H2FR, geodesic by
default; leaf-paper: SHIP+LEAF with the seed's paper-mode H2FR) is trained with every seed on
the same training pairs, with the same budget. The held-out pairs (ranked by the SHA-256 of
their names; --heldout or --heldout-fraction of them) are fused whole by each trained network
and measured with hyperleaf.metrics. Printed: per metric and arm the mean over seeds with its
95 % confidence interval (Student t, K-1 dof), and per seed the paired difference of each arm
to SHIP with its own interval, t, p and a verdict. Written into OUT: ablation.json,
ablation.csv, ablation.md, ablation.png and runs/ARM-seedK/ (each a hyperleaf train run).
Flags not listed here: put TrainConfig keys in a YAML file given with --config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hyperleaf.cli.flags import flag_message

#: Flags that become TrainConfig keys shared by every run: (flag, key, type, help).
_TRAIN_FLAGS = [
    ("--steps", "steps", int, "optimizer steps per run (default: TrainConfig's, 100)"),
    ("--batch-size", "batch_size", int, "batch per step (default 4)"),
    ("--crop", "crop", int, "training crop side (default 32; the ship-authors recipe 128)"),
    ("--lr", "lr", float, "peak learning rate (default 2e-3; the ship-authors recipe 1e-4)"),
    ("--recipe", "recipe", str, "named training defaults, e.g. ship-authors (default none)"),
    ("--init", "init", str, "initial weights of every run: the SHIP authors' .pth or a run "
                            "folder (fine-tuning; default none)"),
]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate", help="K seeds x {SHIP, SHIP+LEAF}: held-out metrics with confidence "
                       "intervals", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder of real pairs (ir/ + vi/, or IRk/VISk)")
    p.add_argument("--out", required=True, help="output folder (must not hold an ablation)")
    p.add_argument("--seeds", default="3",
                   help="K (seeds 0..K-1) or a comma-separated list of seeds; K >= 2")
    p.add_argument("--arms", default="ship,leaf",
                   help="comma-separated arms: ship, leaf, leaf-paper; the first is the "
                        "reference of the paired differences")
    p.add_argument("--workers", type=int, default=1,
                   help="runs trained in parallel processes")
    p.add_argument("--heldout", type=int, default=None,
                   help="number of held-out pairs (default: --heldout-fraction of them)")
    p.add_argument("--heldout-fraction", type=float, default=0.25,
                   help="held-out share of the pairs, rounded, at least 1")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names (default: EN,SD,SF,MI,SCD,VIF,Qabf,SSIM)")
    p.add_argument("--convention", choices=("standard", "mmif"), default="standard",
                   help="metric convention (docs/metrics.md)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level")
    p.add_argument("--config", help="YAML file of TrainConfig keys shared by every run")
    for flag, key, typ, text in _TRAIN_FLAGS:
        p.add_argument(flag, dest=key, type=typ, default=None, help=text)
    p.set_defaults(func=run)


def _seeds(text: str) -> tuple[int, ...]:
    parts = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = [int(t) for t in parts]
    except ValueError:
        raise ValueError(f"--seeds: expected K or a comma-separated list of integers, got "
                         f"{text!r}") from None
    if len(values) == 1 and "," not in text:
        if values[0] < 2:
            raise ValueError(f"--seeds: need K >= 2 seeds for a confidence interval, got "
                             f"{values[0]}")
        return tuple(range(values[0]))
    return tuple(values)


def run(args) -> int:
    def fail(msg: str) -> int:
        print(f"hyperleaf ablate: error: {msg}", file=sys.stderr)
        return 2

    try:
        seeds = _seeds(args.seeds)
    except ValueError as exc:
        return fail(str(exc))
    if not Path(args.data).is_dir():
        return fail(f"--data: not a folder: {args.data}")

    from hyperleaf.train.ablation import DEFAULT_METRICS, AblationError, AblationSpec, run_ablation
    from hyperleaf.train.config import ConfigError, flatten_config, load_yaml

    try:
        config = flatten_config(load_yaml(args.config), args.config) if args.config else {}
    except ConfigError as exc:
        return fail(flag_message(exc))
    for _flag, key, _typ, _text in _TRAIN_FLAGS:
        value = getattr(args, key)
        if value is not None:
            config[key] = value
    metrics = (tuple(m.strip() for m in args.metrics.split(",") if m.strip())
               if args.metrics else DEFAULT_METRICS)
    spec = AblationSpec(
        data=args.data, out=args.out, seeds=seeds,
        arms=tuple(a.strip() for a in args.arms.split(",") if a.strip()), config=config,
        heldout=args.heldout, heldout_fraction=args.heldout_fraction, metrics=metrics,
        convention=args.convention, workers=args.workers, level=args.level)
    try:
        record = run_ablation(spec)
    except AblationError as exc:
        return fail(flag_message(exc))
    from hyperleaf.train.ablation import markdown_report

    print(markdown_report(record), end="")
    out = Path(args.out)
    print(f"wrote {out / 'ablation.json'}, {out / 'ablation.csv'}, {out / 'ablation.md'}, "
          f"{out / 'ablation.png'}")
    return 0
