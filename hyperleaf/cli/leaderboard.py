"""``hyperleaf leaderboard``: score many fusion methods on the same pairs, with statistics.

    hyperleaf leaderboard --data data/vifb --fused-root data/vifb/fused --convention vifb
    hyperleaf leaderboard --data TNO --methods SHIP=out/ship DDFuse=out/ddfuse --baseline SHIP
    hyperleaf leaderboard --data TNO --with-builtins --ship-weights ship_irvis_official.pth

--fused-root holds one sub-folder of fused images per method (<pair>.png, .jpg, ...);
--methods adds NAME=DIR folders. Every method must have every pair, of the sources' size:
missing pairs and size mismatches are named before anything is scored. Per-image scores are
cached in OUT/cache (adding a method scores only that method). Writes OUT/leaderboard.csv,
.json and .md (per method and metric: mean ± 95% interval over images, rank of the mean in
the metric's direction, mean rank) and OUT/leaderboard.png (the ranks). Statistics across
images (the units of replication): a Friedman test per metric and Wilcoxon signed-rank tests
between methods (each one against --baseline when given) with Holm's correction.
--with-builtins adds hyperleaf's classical fusers (hl-average, hl-maximum, hl-laplacian,
hl-GFF, hl-TIF), hl-SHIP with --ship-weights and hl-SHIP+LEAF with --leaf-run, fused once
into OUT/builtins (a pair is fused again only when its sources or the weights change).
"""

from __future__ import annotations

import argparse
import sys

from hyperleaf.cli.flags import flag_message


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "leaderboard", help="score many fusion methods on the same pairs, with statistics",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset folder: ir/ + vi/, or IRk/VISk files")
    p.add_argument("--fused-root", help="folder with one sub-folder of fused images per method")
    p.add_argument("--methods", nargs="+", metavar="NAME=DIR", help="methods' folders")
    p.add_argument("--convention", choices=("standard", "mmif", "vifb"), default="standard",
                   help="metric convention (vifb: VIFB's 13 metrics per RGB channel)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated names, case-insensitive, or 'all' (default: the "
                        "convention's default set)")
    p.add_argument("--workers", type=int, default=1, help="pairs scored in parallel processes")
    p.add_argument("--baseline", help="compare every method with this one")
    p.add_argument("--out", default="leaderboard", help="output folder")
    p.add_argument("--with-builtins", action="store_true",
                   help="add hyperleaf's own fusers (classical; SHIP with --ship-weights; "
                        "SHIP + LEAF with --leaf-run)")
    p.add_argument("--ship-weights", help="--with-builtins: the SHIP authors' checkpoint (.pth)")
    p.add_argument("--leaf-run", help="--with-builtins: a SHIP + LEAF training run folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _metrics(text: str | None):
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ValueError("metrics: give at least one name (or all)")
    return names


def run(args) -> int:
    from hyperleaf.io import ImageError

    prog = "hyperleaf leaderboard: error:"
    try:
        if not args.fused_root and not args.methods and not args.with_builtins:
            raise ValueError("fused_root, methods: give --fused-root, --methods or "
                             "--with-builtins")
        if (args.ship_weights or args.leaf_run) and not args.with_builtins:
            raise ValueError("ship_weights, leaf_run: only with --with-builtins")
        metrics = _metrics(args.metrics)
        from hyperleaf.cli.paths import check_output_dir

        out = check_output_dir(args.out, "--out")
        methods = list(args.methods or [])
        from hyperleaf.io import find_pairs_in
        from hyperleaf.metrics.leaderboard import find_methods

        find_pairs_in(args.data)
        given = (find_methods(args.fused_root, methods)
                 if (args.fused_root or methods) else {})
        if args.with_builtins:
            from hyperleaf.experiments.builtins import builtin_names, fuse_builtins

            clash = [n for n in builtin_names(None, args.ship_weights, args.leaf_run)
                     if n in given]
            if clash:
                raise ValueError(f"methods: {', '.join(clash)} are built-in names; rename "
                                 "those folders")
            made = fuse_builtins(args.data, out / "builtins", ship_weights=args.ship_weights,
                                 leaf_run=args.leaf_run, progress=not args.no_progress)
            methods += [f"{name}={folder}" for name, folder in made.items()]
        from hyperleaf.metrics.folder import quiet_third_party
        from hyperleaf.metrics.leaderboard import leaderboard

        quiet_third_party()
        board = leaderboard(args.data, out=out, fused_root=args.fused_root,
                            methods=methods or None, convention=args.convention,
                            metrics=metrics, workers=args.workers, baseline=args.baseline,
                            progress=not args.no_progress)
    except (ImageError, ValueError, FileNotFoundError) as exc:
        print(f"{prog} {flag_message(exc)}", file=sys.stderr)
        return 2
    print(board.markdown())
    print("wrote " + ", ".join(str(p) for p in board.files))
    return 0
