"""``hyperleaf ablate``: does LEAF help? K seeds x arms on held-out data, with statistics a
reviewer accepts.

    hyperleaf ablate --data ../shared/data/tno --preset fuse-hour --workers 2 --out runs/abl-tno
    hyperleaf ablate --data ../shared/data/msrs --arms ship,leaf,euclidean --seeds 8 \\
        --steps 150 --crop 32 --workers 2 --out runs/abl-msrs
    hyperleaf ablate --task segment --data VOLUMES --config configs/small3d.yaml --arms ship,leaf --seeds 8 \\
        --out OUT
    hyperleaf ablate --task pansharpen --data scenes.h5 --arms ship,leaf,euclidean --out OUT
    hyperleaf ablate --data ../shared/data/pansharpening/landsat7 --preset pansharpen-hour \\
        --workers 2 --out runs/abl-landsat
    hyperleaf ablate --data ../shared/data/open_ms/volumes --preset segment3d-hour \\
        --workers 2 --out runs/abl-openms

Presets (--preset, hyperleaf.experiments.PRESETS; each sized for K = 8 seeds on 2 cores,
docs/training.md "Presets"): fuse-hour (TNO or MSRS from scratch), fuse-finetune-hour (from
--init, the SHIP authors' weights), pansharpen-hour (the Landsat 7 scenes: 1-8 train, 9-10
held out), segment3d-hour (open_ms volumes: p19 trains, p07 held out; no euclidean arm).

Arms: ship (plain SHIP, the reference), leaf (SHIP+LEAF, the configuration's H2FR), leaf-paper
(the seed's paper-mode H2FR), hdgfb-only (HDGFB, no H2FR), h2fr-only (H2FR, no HDGFB) and
euclidean (LEAF's c -> 0 limit: every ball map and distance Euclidean). All arms of one seed
start from the same tensors wherever they share them, and each arm's parameter count is
printed with its scores.

The unit of replication is the training run (seed); every output says so. Printed per metric:
each arm's mean over seeds with its 95 % interval (Student t, K-1 dof); per arm, its paired
difference to the first arm (a) over seeds and (b) by a paired hierarchical bootstrap over
seeds x held-out images; the Holm-adjusted p over the table, the exact sign test, the smallest
effect of interest (--min-effect, documented defaults) and a verdict: none below K = 5 seeds
("too few seeds"), "no difference" only when both intervals lie inside ± the smallest effect,
else "too noisy to say". Written into OUT: ablation.json, ablation.csv, ablation.md,
ablation.png and runs/ARM-seedK/ (each a hyperleaf train run). Flags not listed here: put
TrainConfig keys in a YAML file given with --config. docs/training.md, "Ablation".
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from hyperleaf.cli.flags import flag_message

#: Engine configuration keys every run of the ablation shares, each with its ``hyperleaf train``
#: flag (spelling, type and meaning from the key's declaration).
_SHARED_KEYS = ("steps", "batch_size", "crop", "lr", "recipe", "init")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ablate", help="K seeds x arms: held-out scores, intervals over seeds and a "
                       "hierarchical bootstrap, Holm-corrected verdicts", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True,
                   help="fuse: folder of real pairs (ir/ + vi/, or IRk/VISk); segment: a "
                        "segmentation folder; pansharpen: PAN + MS data")
    p.add_argument("--out", required=True, help="output folder (must not hold an ablation)")
    p.add_argument("--task", default=None, choices=("fuse", "segment", "pansharpen"),
                   help="the task every run trains (default fuse, or the preset's)")
    p.add_argument("--preset", default=None,
                   help="a named experiment (hyperleaf.experiments.PRESETS: fuse-hour, "
                        "fuse-finetune-hour, pansharpen-hour, segment3d-hour): its task, "
                        "arms, seeds and budget; other flags override it (docs/training.md, "
                        "\"Presets\")")
    p.add_argument("--seeds", default=None,
                   help="K (seeds 0..K-1) or a comma-separated list of seeds; K >= 2 "
                        "(default 3, or the preset's); verdicts need K >= 5")
    p.add_argument("--arms", default=None,
                   help="comma-separated arms: ship, leaf, leaf-paper, hdgfb-only, h2fr-only, "
                        "euclidean; the first is the reference (default ship,leaf)")
    p.add_argument("--workers", type=int, default=1,
                   help="runs trained in parallel processes")
    p.add_argument("--heldout", type=int, default=None,
                   help="fuse: number of held-out pairs (default: --heldout-fraction of them)")
    p.add_argument("--heldout-fraction", type=float, default=0.25,
                   help="held-out share of the items, rounded, at least 1")
    p.add_argument("--heldout-items", default=None,
                   help="segment: comma-separated names of the items held out whole (e.g. "
                        "p07; default: the last --heldout-fraction of them in name order, or "
                        "the preset's)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names (fuse default: EN,SD,SF,MI,SCD,VIF,Qabf,"
                        "SSIM; segment: dice_1,iou_1,mdice,pixel_acc; pansharpen: Q,SAM,ERGAS,"
                        "SCC,Q2n)")
    p.add_argument("--min-effect", default=None,
                   help="smallest effects of interest, METRIC=VALUE,... (defaults: "
                        "hyperleaf.experiments.MIN_EFFECT, docs/training.md)")
    p.add_argument("--n-boot", type=int, default=10000,
                   help="hierarchical bootstrap resamples (default 10000)")
    p.add_argument("--convention", choices=("standard", "mmif"), default="standard",
                   help="metric convention (docs/metrics.md)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level")
    p.add_argument("--config", help="YAML file of TrainConfig keys shared by every run")
    from hyperleaf.train.config import engine_keys

    declared = engine_keys()
    for key in _SHARED_KEYS:
        typ, doc, _ = declared[key]
        p.add_argument("--" + key.replace("_", "-"), dest=key,
                       type={"int": int, "float": float}.get(typ, str), default=None,
                       help=f"{doc.replace('`', '')}, for every run (default: the preset's, "
                            "else the task's)")
    p.set_defaults(func=run)


def _min_effect(text: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"--min-effect: expected METRIC=VALUE,..., got {part!r}")
    return out


def run(args) -> int:
    def fail(msg: str) -> int:
        print(f"hyperleaf ablate: error: {msg}", file=sys.stderr)
        return 2

    from hyperleaf.experiments import (
        PRESETS,
        AblationError,
        AblationSpec,
        markdown_report,
        parse_seeds,
        run_ablation,
    )
    from hyperleaf.train.config import ConfigError, flatten_config, load_yaml

    preset = None
    if args.preset is not None:
        preset = PRESETS.get(args.preset)
        if preset is None:
            return fail(f"--preset: unknown preset {args.preset!r}; known: "
                        f"{', '.join(PRESETS)}")
    try:
        seeds = parse_seeds(args.seeds if args.seeds is not None
                            else str(preset.seeds if preset else 3))
        min_effect = _min_effect(args.min_effect)
    except (AblationError, ValueError) as exc:
        return fail(flag_message(exc))
    task = args.task or (preset.task if preset else "fuse")
    if task == "fuse" and not Path(args.data).is_dir():
        return fail(f"--data: not a folder: {args.data}")
    if not Path(args.data).exists():
        return fail(f"--data: not found: {args.data}")
    try:
        config = dict(preset.config) if preset else {}
        if args.config:
            config.update(flatten_config(load_yaml(args.config), args.config))
    except ConfigError as exc:
        return fail(flag_message(exc))
    for key in _SHARED_KEYS:
        value = getattr(args, key)
        if value is not None:
            config[key] = value
    metrics = (tuple(m.strip() for m in args.metrics.split(",") if m.strip())
               if args.metrics else None)
    arms = (tuple(a.strip() for a in args.arms.split(",") if a.strip()) if args.arms
            else (preset.arms if preset else ("ship", "leaf")))
    heldout = args.heldout if args.heldout is not None else (preset.heldout if preset else None)
    heldout_items = (tuple(h.strip() for h in args.heldout_items.split(",") if h.strip())
                     if args.heldout_items is not None
                     else (preset.heldout_items if preset and task == preset.task else ()))
    spec = AblationSpec(
        data=args.data, out=args.out, seeds=seeds, arms=arms, config=config, heldout=heldout,
        heldout_fraction=args.heldout_fraction, metrics=metrics, convention=args.convention,
        workers=args.workers, level=args.level, task=task, min_effect=min_effect or None,
        n_boot=args.n_boot, heldout_items=heldout_items or None, command=shlex.join(["hyperleaf", "ablate", *sys.argv[2:]])
        if len(sys.argv) > 1 and sys.argv[1] == "ablate" else None)
    try:
        record = run_ablation(spec)
    except AblationError as exc:
        return fail(flag_message(exc))
    print(markdown_report(record), end="")
    out = Path(args.out)
    print(f"wrote {out / 'ablation.json'}, {out / 'ablation.csv'}, {out / 'ablation.md'}, "
          f"{out / 'ablation.png'}")
    return 0
