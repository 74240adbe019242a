"""Helpers shared by the benchmark scripts: timing medians and the README section writer."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

README = Path(__file__).with_name("README.md")
INTRO = ("# Benchmarks\n\nEvery table below is written by the script named in its section "
         "(`--write-readme`); ratios are measured side by side in one run, medians of several "
         "repetitions. These machines are 2-core and noisy: compare ratios, not seconds.\n")


def median_time(fn: Callable[[], object], reps: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds over ``reps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_medians(fns: dict[str, Callable[[], object]], reps: int,
                        warmup: int = 1) -> dict[str, float]:
    """Median times of several candidates, run round-robin so that machine noise hits all."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def write_section(title: str, body: str, path: Path = README) -> None:
    """Replace (or append) the ``## title`` section of the benchmarks README, atomically."""
    text = path.read_text(encoding="utf-8") if path.exists() else INTRO
    head = f"## {title}\n"
    block = head + "\n" + body.strip() + "\n"
    if head in text:
        before, rest = text.split(head, 1)
        nxt = rest.find("\n## ")
        after = rest[nxt + 1:] if nxt >= 0 else ""
        text = before + block + ("\n" + after if after else "")
    else:
        text = text.rstrip() + "\n\n" + block
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".README.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
