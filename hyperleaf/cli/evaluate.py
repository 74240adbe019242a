"""``hyperleaf evaluate``: the scores of a task's results, each task by its own evaluation.

    hyperleaf evaluate --fused OUT --ir IR_DIR --vis VIS_DIR
    hyperleaf evaluate --fused OUT --data TNO_DIR --markdown table.md
    hyperleaf evaluate --fused OUT --data TNO_DIR --convention mmif --metrics all --workers 4
    hyperleaf evaluate --task segment --weights RUN --data DIR --out scores.json
    hyperleaf evaluate --task pansharpen --data test.h5 --weights runs/ps --csv ps.csv

``--task`` (default fuse) picks the registered task whose evaluation runs
(``Task.evaluate_command``); every task is dispatched the same way: a flag its evaluation does
not read is refused by name, the ones it needs are named when missing, every output path
(``--csv``, ``--json``, ``--markdown``; segment's ``--out`` is its JSON) is checked and the run
``--weights`` loaded (``hyperleaf.runs.load_run``) before any scoring, and each output is
written atomically.

fuse: each pair found in IR/VIS (or ``--data``, same rules as ``hyperleaf fuse``) needs a fused
image named after the pair (``OUT/<name>.png``, as ``hyperleaf fuse`` writes). 8-bit grey images
are measured on their exact integer levels; colour fused/visible images on their luminance Y
(``--convention vifb``: per RGB channel, as VIFB's MATLAB code). Prints a per-image table with
the mean (arrows: higher or lower is better), and writes it as CSV and JSON (default
``OUT/metrics.csv`` and ``OUT/metrics.json``; ``--markdown`` also writes a Markdown table),
each naming the convention. JSON holds no Infinity or NaN: a non-finite value (PSNR of a fused
image equal to both sources) is written as null. docs/metrics.md defines every metric and both
conventions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hyperleaf.cli.flags import flag_message


def __getattr__(name: str):
    # The former CLI-level helpers, now in hyperleaf.metrics.folder and the fuse task's module;
    # imported on first use so that building the argument parser stays free of NumPy/SciPy.
    if name in ("evaluate_folder", "mean_row"):
        from hyperleaf.metrics import folder

        return getattr(folder, name)
    if name == "markdown_table":
        import warnings

        from hyperleaf.tasks import fuse

        warnings.warn("hyperleaf.cli.evaluate.markdown_table is deprecated; import it from "
                      "hyperleaf.tasks.fuse", DeprecationWarning, stacklevel=2)
        return fuse.markdown_table
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
    p.add_argument("--csv", help="CSV output (fuse: default FUSED/metrics.csv; other tasks: "
                                  "written when given)")
    p.add_argument("--json", help="JSON output (fuse: default FUSED/metrics.json; other tasks: "
                                   "written when given)")
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
    p.add_argument("--out", help="--task segment: write the scores here as JSON (atomically; "
                                  "the same as --json)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Every task the same way: the options given that ``--task``'s evaluation does not read
    are refused by name, the ones it needs checked, every output path checked, the run
    ``--weights`` loaded (:func:`hyperleaf.runs.load_run`), then the task's
    ``evaluate_command`` scores; its report is printed and written (``--csv``, ``--json``,
    ``--markdown``), each atomically."""
    if args.threads < 0:
        return _error(f"--threads: expected >= 0, got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from hyperleaf.atomic import LocationError, atomic_write_text, check_output_file
    from hyperleaf.tasks import get_task, list_tasks

    options = {k: v for k, v in vars(args).items() if k not in _COMMAND}
    try:
        if args.task not in list_tasks():
            raise ValueError(f"--task: unknown task {args.task!r} (known: "
                             f"{', '.join(list_tasks())})")
        task = get_task(args.task)
        extra = _unused(args, set(task.evaluate_options))
        if extra:
            raise ValueError(f"{', '.join(extra)}: does not apply to --task {args.task}")
        for key in task.evaluate_requires:
            if not options.get(key):
                raise ValueError(f"{_flag(key)}: required with --task {args.task}")
        outputs = task.evaluate_outputs(options)
        for kind, path in outputs.items():  # named by the option that gave it (segment's out)
            given = [k for k in (kind, *task.evaluate_options) if options.get(k) and
                     isinstance(options[k], str) and Path(options[k]) == Path(path)]
            check_output_file(path, key=given[0] if given else kind)
        import torch

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        loaded = _load(options["weights"], device, args.task) if options.get("weights") else None
        report = task.evaluate_command(options, loaded, device)
    except (LocationError, ValueError, FileNotFoundError, NotImplementedError,
            ImportError) as exc:
        return _error(flag_message(exc))
    except OSError as exc:  # permissions, a full disk: the OS's words and the file
        return _error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else exc)
    if report.table is not None:
        _print_table(*report.table)
    if report.text is not None:
        print(report.text)
    for kind, path in outputs.items():
        atomic_write_text(path, report.render(kind))
    if outputs:
        print("wrote " + ", ".join(str(p) for p in outputs.values()))
    return 0


def _error(message: object) -> int:
    text = str(message).splitlines()[0] if str(message) else "error"
    print(f"hyperleaf evaluate: error: {text}", file=sys.stderr)
    return 2


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _load(weights: str, device, task: str):
    """The run ``--weights`` names (:func:`hyperleaf.runs.load_run`, a run of ``task``), its
    errors naming ``--weights``."""
    from hyperleaf.runs import load_run

    try:
        return load_run(weights, device, task=task)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"--weights: {exc}") from None
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ValueError(f"--weights: {msg}") from None


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A report's table, its last row (the mean) bold."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column(header[0])
    for h in header[1:]:
        table.add_column(h, justify="right")
    for i, r in enumerate(rows):
        table.add_row(*r, style="bold" if i == len(rows) - 1 else None)
    Console(width=max(120, 12 * len(header))).print(table)


def evaluate_registered(args) -> int:
    """Former entry of the registered tasks' evaluation: every task now goes through
    :func:`run`."""
    return run(args)


#: Argument names that are the command's own, not an evaluation's options.
_COMMAND = {"task", "threads", "func", "command"}

#: Defaults of the options an evaluation may not read (given otherwise: refused).
_DEFAULTS = {"convention": "standard", "workers": 1, "patch": 64}


def _unused(args, used: set[str]) -> list[str]:
    """The flags given on the command line that the chosen evaluation does not read."""
    skip = {"task", "threads", "func", "command", *used}
    return ["--" + k.replace("_", "-") for k, v in sorted(vars(args).items())
            if k not in skip and v not in (None, False) and v != _DEFAULTS.get(k)]
