"""Startup time of the command line: whole processes, as a user runs them.

Times (wall clock, each a fresh ``python`` process, round-robin so that machine noise hits all
candidates alike, median of ``--reps``):

* ``python -c pass``: the interpreter alone (the floor);
* ``python -m hyperleaf --help`` and ``python -m hyperleaf fuse --help``;
* ``python -c "import ..."`` of everything the commands use (torch, geoopt, the models,
  training, metrics, matplotlib through the leaf plot): what ``--help`` cost when the CLI
  imported it all up front.

The ratio help / full import is the number to read; seconds depend on the machine's load. Run:

    python benchmarks/bench_cli.py [--reps 7] [--write-readme]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The same modules as before their moves (hyperleaf.train.leafplot is now hyperleaf.tasks.leafplot,
# hyperleaf.check hyperleaf.verify.check); the old paths are deprecated aliases.
FULL_IMPORT = ("import hyperleaf.cli, hyperleaf.geometry, hyperleaf.nn, hyperleaf.models, "
               "hyperleaf.compat.ship, hyperleaf.train, hyperleaf.tasks.leafplot, "
               "hyperleaf.metrics, hyperleaf.verify.check, hyperleaf.io")

CANDIDATES = {
    "python -c pass": ["-c", "pass"],
    "hyperleaf --help": ["-m", "hyperleaf", "--help"],
    "hyperleaf fuse --help": ["-m", "hyperleaf", "fuse", "--help"],
    "import everything the commands use": ["-c", FULL_IMPORT],
}


def _run(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def measure(reps: int) -> dict[str, float]:
    """Median seconds per candidate; one warm-up round first (fills the OS file cache)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    for args in CANDIDATES.values():
        _run(args, env)
    times: dict[str, list[float]] = {k: [] for k in CANDIDATES}
    for _ in range(reps):
        for name, args in CANDIDATES.items():
            times[name].append(_run(args, env))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7, help="repetitions per candidate")
    ap.add_argument("--write-readme", action="store_true",
                    help="write the table into benchmarks/README.md")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    med = measure(args.reps)
    load1 = os.getloadavg()[0]
    full = med["import everything the commands use"]
    rows = ["| process | median (s) | / full import |", "|---|---:|---:|"]
    for name, t in med.items():
        rows.append(f"| `{name}` | {t:.3f} | {t / full:.3f} |")
    body = (f"`python benchmarks/bench_cli.py --write-readme`: whole-process wall time, each "
            f"run a fresh interpreter, {args.reps} round-robin repetitions (medians), "
            f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores, "
            f"load average {load0:.1f} before / {load1:.1f} after. The full import is "
            f"`{FULL_IMPORT}`: what `hyperleaf --help` paid before the command line imported "
            "lazily.\n\n" + "\n".join(rows) + "\n")
    print(body)
    if args.write_readme:
        write_section("Command-line startup", body)


if __name__ == "__main__":
    main()
