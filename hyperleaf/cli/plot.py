"""``hyperleaf plot RUN_DIR``: draw the leaf plot of a finished ``hyperleaf train`` run."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plot", help="leaf plot of a trained LEAF run (features on the Poincaré disk)",
        description="Rebuild the model of RUN_DIR (config.yaml + model.safetensors), embed its "
                    "validation samples' stage features and draw them on the Poincaré disk at "
                    "their true geodesic distance to the fused core. Prints the fraction of "
                    "samples ordered as H2FR asks.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="folder of a finished hyperleaf train run")
    p.add_argument("--out", metavar="PNG", default=None, help="image to write "
                                                              "(default RUN_DIR/leaf.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hyperleaf.atomic import LocationError, check_writable_location
    from hyperleaf.runs import load_run
    from hyperleaf.tasks import get_task
    from hyperleaf.tasks.leafplot import plot_run_objective

    out = Path(args.out) if args.out else Path(args.run_dir) / "leaf.png"
    try:
        # Before the (slow) model rebuild: a file where a folder of --out should be.
        check_writable_location(out)
        if out.is_dir():
            raise LocationError(f"{out} is a folder; give the image's file name")
    except LocationError as exc:
        print(f"hyperleaf plot: error: --out: {exc}", file=sys.stderr)
        return 2
    try:
        if not (Path(args.run_dir) / "config.yaml").is_file():
            raise FileNotFoundError(f"run folder {args.run_dir}: config.yaml not found (is it "
                                    "a finished hyperleaf train run?)")
        loaded = load_run(args.run_dir, objective=True)
        objective, cfg = loaded.objective, loaded.config
        if cfg.task != "fuse" or not cfg.leaf or not cfg.h2fr:
            raise ValueError(f"{args.run_dir}: the leaf plot needs a LEAF fusion run with "
                             f"H2FR's head (task={cfg.task}, leaf={cfg.leaf}, h2fr={cfg.h2fr})")
        if cfg.euclidean:
            raise ValueError(f"{args.run_dir}: a Euclidean-limit run (euclidean: true) has no "
                             "Poincaré disk to draw on; its ordering and null control are in "
                             "log.jsonl")
        _, val_set = get_task(cfg.task).datasets(cfg)
        frac = plot_run_objective(cfg, objective, val_set, "cpu", out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"hyperleaf plot: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, full disk: the OS's words and the file
        where = f": {exc.filename}" if exc.filename else ""
        print(f"hyperleaf plot: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    # Fractions as percentages; spreads and core distances are geodesic distances.
    def show(items):
        return ", ".join(f"{k} {v:.1%}" if "order_" in k or k == "saturated" else f"{k} {v:.4g}"
                         for k, v in items)

    print("ordered as H2FR asks: " + show((k, v) for k, v in frac.items()
                                          if not k.startswith("null_")))
    print("null control (inputs with no image content: uniform noise, constant image, "
          "modalities swapped): " + show((k, v) for k, v in frac.items()
                                         if k.startswith("null_")))
    return 0
