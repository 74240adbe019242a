"""``hyperleaf evaluate``: fusion metrics of fused images against their sources.

    hyperleaf evaluate --fused OUT --ir IR_DIR --vis VIS_DIR
    hyperleaf evaluate --fused OUT --data TNO_DIR --markdown table.md

Each pair found in IR/VIS (or ``--data``, same rules as ``hyperleaf fuse``) needs a fused image
named after the pair (``OUT/<name>.png``, as ``hyperleaf fuse`` writes). Prints a per-image
table with the mean, and writes it as CSV and JSON (default ``OUT/metrics.csv`` and
``OUT/metrics.json``; ``--markdown`` also writes a Markdown table), each atomically. Colour
fused/visible images are evaluated on their luminance Y.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="fusion metrics (EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, PSNR)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fused", required=True, help="folder of fused images (<name>.png)")
    p.add_argument("--ir", help="infrared image folder")
    p.add_argument("--vis", help="visible image folder")
    p.add_argument("--data", help="dataset folder: ir/ + vi/, or IRk/VISk files")
    p.add_argument("--csv", help="CSV output (default FUSED/metrics.csv)")
    p.add_argument("--json", help="JSON output (default FUSED/metrics.json)")
    p.add_argument("--markdown", help="also write a Markdown table here")
    p.add_argument("--metrics", default=None,
                   help="comma-separated subset, e.g. EN,SD,Qabf (default: all)")
    p.set_defaults(func=run)


def _fused_file(folder: Path, name: str) -> Path:
    from hyperleaf.io import IMAGE_EXTENSIONS, ImageError

    for ext in IMAGE_EXTENSIONS:
        for cand in (folder / f"{name}{ext}", folder / f"{name}{ext.upper()}"):
            if cand.is_file():
                return cand
    raise ImageError(f"no fused image for pair {name!r}: expected {folder / (name + '.png')}")


def evaluate_folder(fused_dir, pairs, metrics) -> list[dict]:
    """Rows ``{"image": name, metric: value, ...}`` for each pair (fused read from disk)."""
    from hyperleaf import metrics as M
    from hyperleaf.io import ImageError, read_gray

    rows = []
    for pair in pairs:
        f = _fused_file(Path(fused_dir), pair.name)
        fused, ir, vis = read_gray(f), read_gray(pair.ir), read_gray(pair.vis)
        for p, arr in ((pair.ir, ir), (pair.vis, vis)):
            if arr.shape != fused.shape:
                raise ImageError(f"size mismatch: fused {f} is {fused.shape[0]}x{fused.shape[1]}"
                                 f" but {p} is {arr.shape[0]}x{arr.shape[1]}")
        rows.append({"image": pair.name, **M.evaluate(fused, ir, vis, metrics)})
    return rows


def mean_row(rows: list[dict], metrics) -> dict:
    return {"image": "mean", **{m: sum(r[m] for r in rows) / len(rows) for m in metrics}}


def markdown_table(rows: list[dict], metrics) -> str:
    """A Markdown table of ``rows`` plus their mean (4 significant decimals)."""
    lines = ["| image | " + " | ".join(metrics) + " |",
             "|---|" + "---:|" * len(metrics)]
    for r in [*rows, mean_row(rows, metrics)]:
        name = f"**{r['image']}**" if r["image"] == "mean" else r["image"]
        lines.append(f"| {name} | " + " | ".join(f"{r[m]:.4f}" for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from hyperleaf import metrics as M
    from hyperleaf.atomic import atomic_write_text
    from hyperleaf.io import ImageError, select_pairs

    try:
        names = tuple(M.METRICS) if not args.metrics else tuple(
            s.strip() for s in args.metrics.split(",") if s.strip())
        unknown = [m for m in names if m not in M.METRICS]
        if unknown:
            raise ValueError(f"--metrics: unknown {unknown}; known: {', '.join(M.METRICS)}")
        names = tuple(m for m in M.METRICS if m in names)
        fused_dir = Path(args.fused)
        if not fused_dir.is_dir():
            raise ImageError(f"--fused: not a folder: {fused_dir}")
        pairs = select_pairs(ir=args.ir, vis=args.vis, data=args.data)
        rows = evaluate_folder(fused_dir, pairs, names)
    except (ImageError, ValueError, FileNotFoundError) as exc:
        print(f"hyperleaf evaluate: error: {exc}", file=sys.stderr)
        return 2

    _print_table(rows, names)
    mean = mean_row(rows, names)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["image", *names])
    w.writeheader()
    for r in [*rows, mean]:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    csv_path = Path(args.csv) if args.csv else fused_dir / "metrics.csv"
    json_path = Path(args.json) if args.json else fused_dir / "metrics.json"
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(json_path, json.dumps({"metrics": list(names), "images": rows,
                                         "mean": {m: mean[m] for m in names}}, indent=2) + "\n")
    written = [csv_path, json_path]
    if args.markdown:
        atomic_write_text(Path(args.markdown), markdown_table(rows, names))
        written.append(Path(args.markdown))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _print_table(rows: list[dict], names) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fusion metrics ({len(rows)} images)")
    table.add_column("image")
    for m in names:
        table.add_column(m, justify="right")
    for r in rows:
        table.add_row(r["image"], *(f"{r[m]:.4f}" for m in names))
    mean = mean_row(rows, names)
    table.add_row("mean", *(f"{mean[m]:.4f}" for m in names), style="bold")
    Console(width=max(120, 12 * (len(names) + 1))).print(table)
