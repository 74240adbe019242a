"""``hyperleaf evaluate``: fusion metrics of fused images against their sources.

    hyperleaf evaluate --fused OUT --ir IR_DIR --vis VIS_DIR
    hyperleaf evaluate --fused OUT --data TNO_DIR --markdown table.md
    hyperleaf evaluate --fused OUT --data TNO_DIR --convention mmif --metrics all --workers 4
    hyperleaf evaluate --task segment --weights RUN --data DIR --out scores.json

Each pair found in IR/VIS (or ``--data``, same rules as ``hyperleaf fuse``) needs a fused image
named after the pair (``OUT/<name>.png``, as ``hyperleaf fuse`` writes). 8-bit grey images are
measured on their exact integer levels; colour fused/visible images on their luminance Y
(``--convention vifb``: per RGB channel, as VIFB's MATLAB code).
Prints a per-image table with the mean (arrows: higher or lower is better), and writes it as
CSV and JSON (default ``OUT/metrics.csv`` and ``OUT/metrics.json``; ``--markdown`` also writes
a Markdown table), each atomically and each naming the convention. JSON holds no Infinity or
NaN: a non-finite value (PSNR of a fused image equal to both sources) is written as null. docs/metrics.md defines
every metric and both conventions.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from hyperleaf.cli.flags import flag_message


def __getattr__(name: str):
    # The former CLI-level helpers, now in hyperleaf.metrics.folder; imported on first use so
    # that building the argument parser stays free of NumPy/SciPy.
    if name in ("evaluate_folder", "mean_row"):
        from hyperleaf.metrics import folder

        return getattr(folder, name)
    raise AttributeError(name)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="fusion metrics (EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, PSNR, ...)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=("fuse", "pansharpen", "segment"), default="fuse",
                   help="fuse: infrared-visible metrics of --fused; pansharpen: reduced- and "
                        "full-resolution tables of the baselines (and --weights) on --data; "
                        "segment: mIoU, OA, per-class IoU/Dice and the LEAF authors' mIoU of "
                        "the segmentation run --weights on the folder --data "
                        "(default: %(default)s)")
    p.add_argument("--fused", help="folder of fused images (<name>.png); required for fuse")
    p.add_argument("--ir", help="infrared image folder")
    p.add_argument("--vis", help="visible image folder")
    p.add_argument("--data", help="dataset folder: ir/ + vi/, or IRk/VISk files")
    p.add_argument("--csv", help="CSV output (default FUSED/metrics.csv)")
    p.add_argument("--json", help="JSON output (default FUSED/metrics.json)")
    p.add_argument("--markdown", help="also write a Markdown table here")
    p.add_argument("--metrics", default=None,
                   help="comma-separated names, case-insensitive, e.g. en,sd,Qabf; 'all' for "
                        "every metric (default: the ten standard ones plus CC, SCC, EI, Nabf, "
                        "MS-SSIM, Q_CB, Q_CV, CE; FMI only when named)")
    p.add_argument("--convention", choices=("standard", "mmif", "vifb"), default="standard",
                   help="standard: published definitions; mmif: the MMIF-CDDFuse Evaluator's "
                        "numbers (MI in nats, its SSIM, PSNR peak max(F), its Qabf); vifb: "
                        "VIFB's MATLAB code, its 13 metrics per RGB channel "
                        "(default: %(default)s)")
    p.add_argument("--workers", type=int, default=1,
                   help="pairs computed in parallel processes (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--weights", help="--task pansharpen: a pan-sharpening run folder to add; "
                                      "--task segment: the segmentation run folder")
    p.add_argument("--methods", help="--task pansharpen: comma-separated baselines (default all)")
    p.add_argument("--sensor", help="--task pansharpen: sensor of the MTF gains")
    p.add_argument("--patch", type=int, default=64,
                   help="--task pansharpen: PAN-grid tile of the reduced-resolution table "
                        "(default: %(default)s)")
    p.add_argument("--out", help="--task segment: write the scores here as JSON (atomically)")
    p.set_defaults(func=run)


def markdown_table(rows: list[dict], metrics, convention: str = "standard") -> str:
    """A Markdown table of ``rows`` plus their mean (4 decimals), arrows giving direction."""
    from hyperleaf.metrics.folder import mean_row
    from hyperleaf.metrics.registry import get

    heads = [f"{m} {get(m).direction}" for m in metrics]
    lines = [f"Convention: {convention}", "",
             "| image | " + " | ".join(heads) + " |",
             "|---|" + "---:|" * len(metrics)]
    for r in [*rows, mean_row(rows, metrics)]:
        name = f"**{r['image']}**" if r["image"] == "mean" else r["image"]
        lines.append(f"| {name} | " + " | ".join(f"{r[m]:.4f}" for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def _selection(text: str | None, convention: str = "standard") -> tuple[str, ...]:
    from hyperleaf.metrics.registry import resolve
    from hyperleaf.metrics.vifb import select

    pick = select if convention == "vifb" else resolve
    if text is None:
        return pick(None)
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ValueError("--metrics: give at least one name (or all)")
    try:
        return pick(names)
    except ValueError as exc:
        raise ValueError(f"--{exc}") from None


def run(args) -> int:
    if args.task == "segment":
        from hyperleaf.cli.segment import evaluate_run as evaluate_segment_run

        return evaluate_segment_run(args)
    if args.task == "pansharpen":
        from hyperleaf.cli.pansharpen import evaluate_run

        return evaluate_run(args)
    if not args.fused:
        print("hyperleaf evaluate: error: --fused: required (folder of fused images)",
              file=sys.stderr)
        return 2
    from tqdm import tqdm

    from hyperleaf.atomic import atomic_write_text
    from hyperleaf.io import ImageError, select_pairs
    from hyperleaf.metrics.folder import evaluate_folder, mean_row, quiet_third_party
    from hyperleaf.metrics.leaderboard import json_safe
    from hyperleaf.metrics.registry import get

    quiet_third_party()
    try:
        names = _selection(args.metrics, args.convention)
        if args.workers < 1:
            raise ValueError(f"--workers: expected an integer >= 1, got {args.workers}")
        fused_dir = Path(args.fused)
        if not fused_dir.is_dir():
            raise ImageError(f"--fused: not a folder: {fused_dir}")
        pairs = select_pairs(ir=args.ir, vis=args.vis, data=args.data)
        with tqdm(total=len(pairs), desc="evaluating", unit="pair", file=sys.stderr,
                  disable=args.no_progress) as bar:
            rows = evaluate_folder(fused_dir, pairs, names, args.convention, args.workers,
                                   progress=lambda: bar.update(1))
    except (ImageError, ValueError, FileNotFoundError) as exc:
        print(f"hyperleaf evaluate: error: {flag_message(exc)}", file=sys.stderr)
        return 2

    _print_table(rows, names, args.convention)
    mean = mean_row(rows, names)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["image", "convention", *names])
    w.writeheader()
    for r in [*rows, mean]:
        w.writerow({"convention": args.convention,
                    **{k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()}})
    csv_path = Path(args.csv) if args.csv else fused_dir / "metrics.csv"
    json_path = Path(args.json) if args.json else fused_dir / "metrics.json"
    atomic_write_text(csv_path, buf.getvalue())
    record = {"convention": args.convention, "metrics": list(names),
              "higher_is_better": {m: get(m).higher_is_better for m in names},
              "images": rows, "mean": {m: mean[m] for m in names}}
    atomic_write_text(json_path, json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n")
    written = [csv_path, json_path]
    if args.markdown:
        atomic_write_text(Path(args.markdown), markdown_table(rows, names, args.convention))
        written.append(Path(args.markdown))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _print_table(rows: list[dict], names, convention: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from hyperleaf.metrics.folder import mean_row
    from hyperleaf.metrics.registry import get

    table = Table(title=f"fusion metrics ({len(rows)} images, {convention} convention; "
                        "↑ higher is better, ↓ lower is better)")
    table.add_column("image")
    for m in names:
        table.add_column(f"{m} {get(m).direction}", justify="right")
    for r in rows:
        table.add_row(r["image"], *(f"{r[m]:.4f}" for m in names))
    mean = mean_row(rows, names)
    table.add_row("mean", *(f"{mean[m]:.4f}" for m in names), style="bold")
    Console(width=max(120, 12 * (len(names) + 1))).print(table)
