"""``hyperleaf check``: the numerical-consistency suite (see :mod:`hyperleaf.verify.check`)."""

from __future__ import annotations

import argparse
import sys
import time

DEFAULT_DOC = "docs/paper-vs-geometry.md"
# The choices of hyperleaf.verify.check, repeated here so that building the parser (every `hyperleaf
# ... --help`) does not import torch; tests/test_cli_startup.py checks that they agree.
DTYPE_NAMES = ("bfloat16", "float32", "float64")
CURVATURES = (0.1, 0.2, 0.5, 1.0, 2.0)
REGIMES = ("tiny", "interior", "near boundary", "beyond")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="numerical-consistency suite: geometry vs closed forms and geoopt, paper vs NumPy",
        description="Compare hyperleaf.geometry with the Poincaré ball's closed forms (50-digit "
        "mpmath) and geoopt, hyperleaf.paper with an independent NumPy transcription, and the "
        "paper's formulas with true geometry. Exit status 1 on any unexpected failure.",
    )
    p.add_argument("--dtype", action="append", choices=DTYPE_NAMES,
                   help="dtypes to check (repeatable; default: all)")
    p.add_argument("--c", action="append", type=float, dest="curvatures",
                   help=f"curvatures (repeatable; default: {', '.join(map(str, CURVATURES))})")
    p.add_argument("--regime", action="append", choices=REGIMES,
                   help="norm regimes (repeatable; default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--full", action="store_true",
                   help="print every row (default: the worst case per op, comparison and dtype)")
    p.add_argument("--json", metavar="PATH", help="write every row as JSON")
    p.add_argument("--markdown", metavar="PATH", nargs="?", const=DEFAULT_DOC,
                   help=f"write the generated tables into PATH between its markers "
                   f"(default {DEFAULT_DOC})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from hyperleaf.atomic import LocationError, atomic_write_text, check_output_file
    from hyperleaf.verify import check

    for name, values in (("--c", args.curvatures),):
        for v in values or ():
            if not (v > 0 and v == v and v != float("inf")):
                print(f"hyperleaf check: error: {name} must be finite and > 0, got {v}",
                      file=sys.stderr)
                return 2
    # Output paths are checked before the suite runs, not after it (nothing half-done).
    for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path:
            try:
                check_output_file(path, key=flag)
            except LocationError as exc:
                print(f"hyperleaf check: error: {exc}", file=sys.stderr)
                return 2
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    report = check.run_checks(
        dtypes=args.dtype or tuple(check.DTYPES),
        curvatures=args.curvatures or check.CURVATURES,
        regimes=args.regime or check.REGIMES,
        seed=args.seed,
    )
    rows = report.rows if args.full else check.summarize(report.rows)
    print(check.format_table(rows))
    n_fail = len(report.failures)
    n_exp = sum(r.verdict == "expected" for r in report.rows)
    n_ok = sum(r.verdict == "ok" for r in report.rows)
    print(f"\n{len(report.rows)} comparisons: {n_ok} ok, {n_exp} expected divergences "
          f"(sizes above), {n_fail} unexpected failures  [{time.perf_counter() - t0:.1f} s]")
    if args.json:
        atomic_write_text(args.json, report.to_json())
        print(f"rows written to {args.json}")
    if args.markdown:
        check.splice_markdown(args.markdown, check.markdown(report))
        print(f"tables written to {args.markdown}")
    if n_fail:
        for r in report.failures[:20]:
            print(f"FAIL: {r.op} ({r.comparison}, {r.dtype}, c={r.c:g}, {r.regime}): "
                  f"rel {r.max_rel:.2e} > tol {r.tol:.1e}", file=sys.stderr)
        return 1
    return 0
