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
    p.add_argument("--task", default="fuse",
                   help="fuse: infrared-visible metrics of --fused; pansharpen: reduced- and "
                        "full-resolution tables of the baselines (and --weights) on --data; "
                        "segment: mIoU, OA, per-class IoU/Dice and the LEAF authors' mIoU of "
                        "the segmentation run --weights on the folder --data; any other "
                        "registered task: its own scores of the run --weights on --data "
                        "(default: %(default)s)")
    p.add_argument("--fused", help="folder of fused images (<name>.png); required for fuse. "
                                    "--task pansharpen: external results to score (.mat, .tif, "
                                    ".h5, .npy): a file when --data is one scene, else a folder "
                                    "whose files are matched to the scenes by name")
    p.add_argument("--ir", help="infrared image folder")
    p.add_argument("--vis", help="visible image folder")
    p.add_argument("--data", help="dataset folder: ir/ + vi/, or IRk/VISk files")
    p.add_argument("--csv", help="CSV output (default FUSED/metrics.csv)")
    p.add_argument("--json", help="JSON output (default FUSED/metrics.json; --task pansharpen "
                                   "--fused: written only when given)")
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
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads per process (default 1, as train and fuse: torch's "
                        "own choice was several times slower on a loaded machine); 0 for "
                        "torch's own choice")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--weights", help="--task pansharpen: a pan-sharpening run folder to add; "
                                      "--task segment: the segmentation run folder")
    p.add_argument("--methods", help="--task pansharpen: comma-separated baselines (default all)")
    p.add_argument("--sensor", help="--task pansharpen: sensor of the MTF gains")
    p.add_argument("--scale", type=float, default=None,
                   help="--task pansharpen: the data's largest digital number (default: from "
                        "the file: scale, max_value or bit depth L, else inferred)")
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
    if args.threads < 0:
        print(f"hyperleaf evaluate: error: --threads: expected >= 0, got {args.threads}",
              file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.task not in ("fuse", "segment", "pansharpen"):
        return evaluate_registered(args)
    # every flag given is used or refused by name (issue 21: nothing silently ignored)
    extra = _unused(args, _USED[args.task])
    if extra:
        print(f"hyperleaf evaluate: error: {', '.join(extra)}: does not apply to --task "
              f"{args.task}", file=sys.stderr)
        return 2
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


def evaluate_registered(args) -> int:
    """``--task T`` of a task registered outside the three built-in evaluations: the run
    ``--weights`` loaded by :func:`hyperleaf.runs.load_run`, scored on ``--data`` by the task's
    own ``evaluate_run``; ``--json``/``--csv``/``--markdown`` written (paths checked first)."""
    from hyperleaf.atomic import LocationError, atomic_write_text, check_output_file
    from hyperleaf.tasks import get_task, list_tasks

    name = f"hyperleaf evaluate --task {args.task}"
    try:
        if args.task not in list_tasks():
            raise ValueError(f"--task: unknown task {args.task!r} (known: "
                             f"{', '.join(list_tasks())})")
        used = {"weights", "data", "json", "csv", "markdown", "no_progress", "task", "func",
                "command", "threads"}
        extra = [k for k, v in vars(args).items()
                 if k not in used and v not in (None, False) and v != _DEFAULTS.get(k)]
        if extra:
            raise ValueError(", ".join("--" + k.replace("_", "-") for k in sorted(extra))
                             + f": does not apply to --task {args.task}")
        for flag in ("weights", "data"):
            if not getattr(args, flag):
                raise ValueError(f"--{flag}: required with --task {args.task}")
        for flag in ("json", "csv", "markdown"):
            if getattr(args, flag):
                check_output_file(getattr(args, flag), key=f"--{flag}")
        import torch

        from hyperleaf.runs import load_run

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        run = load_run(args.weights, device, task=args.task)
        report = get_task(args.task).evaluate_run(run.config, run.model, args.data, device)
    except (LocationError, ValueError, FileNotFoundError, NotImplementedError) as exc:
        print(f"{name}: error: {flag_message(exc)}", file=sys.stderr)
        return 2
    scores, higher = report["scores"], report["higher_is_better"]
    arrows = {k: "↑" if higher[k] else "↓" for k in scores}
    for k, v in scores.items():
        print(f"{k} {arrows[k]}: {v:.6g}")
    written = []
    record = {"task": args.task, "weights": str(args.weights), "data": str(args.data),
              **report}
    if args.json:
        atomic_write_text(args.json, json.dumps(record, indent=2, allow_nan=False) + "\n")
        written.append(args.json)
    if args.csv:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["score", "value", "higher_is_better"])
        for k, v in scores.items():
            w.writerow([k, f"{v:.10g}", higher[k]])
        atomic_write_text(args.csv, buf.getvalue())
        written.append(args.csv)
    if args.markdown:
        lines = ["| score | value |", "|---|---:|",
                 *(f"| {k} {arrows[k]} | {v:.4f} |" for k, v in scores.items())]
        atomic_write_text(args.markdown, "\n".join(lines) + "\n")
        written.append(args.markdown)
    if written:
        print("wrote " + ", ".join(str(p) for p in written))
    return 0


#: Defaults of the options an evaluation may not read (given otherwise: refused).
_DEFAULTS = {"convention": "standard", "workers": 1, "patch": 64}

#: The options each built-in evaluation reads (besides --task and --threads).
_USED = {
    "fuse": {"fused", "ir", "vis", "data", "csv", "json", "markdown", "metrics", "convention",
             "workers", "no_progress"},
    "segment": {"weights", "data", "out"},
    "pansharpen": {"data", "weights", "methods", "sensor", "patch", "scale", "fused", "json",
                   "markdown", "no_progress"},
}


def _unused(args, used: set[str]) -> list[str]:
    """The flags given on the command line that the chosen evaluation does not read."""
    skip = {"task", "threads", "func", "command", *used}
    return ["--" + k.replace("_", "-") for k, v in sorted(vars(args).items())
            if k not in skip and v not in (None, False) and v != _DEFAULTS.get(k)]
