"""Speed and agreement of hyperleaf.metrics against a plain NumPy/SciPy transcription.

On TNO pairs (``--data``, default ``$HYPERLEAF_SHARED/data/tno`` or ``../shared/data/tno``)
with fused images from ``--fused`` (``<k>.png``, e.g. written by ``hyperleaf fuse``) or, by
default, the rounded average of the two sources. For every pair, the ten original metrics
from :func:`hyperleaf.metrics.evaluate` (``uint8`` inputs) and from
``metrics_transcription.evaluate`` (float64) must agree to 1e-10 relative; the timing is the
median over interleaved repetitions of all ten metrics on ``--time-pairs`` pairs. ``--conventions``
also prints the means of every metric in both conventions. ``--results FILE`` only computes
those means and writes them as a results file (``kind: table``: the metrics whose means differ
between the conventions, every mean in ``values``; commit, command, inputs with SHA-256,
hardware, wall time), which docs/metrics.md renders (``python -m hyperleaf.experiments.render``).
Run:

    python benchmarks/bench_metrics.py [--fused DIR] [--reps 5] [--conventions] [--write-readme]
    python benchmarks/bench_metrics.py --fused OUT --results results/metric_conventions_tno.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metrics_transcription as baseline  # noqa: E402
from common import interleaved_medians, write_section  # noqa: E402

from hyperleaf import metrics as M  # noqa: E402
from hyperleaf.atomic import atomic_write_text  # noqa: E402
from hyperleaf.experiments.report import RESULTS_FORMAT, provenance  # noqa: E402
from hyperleaf.metrics import registry  # noqa: E402

TOLERANCE = 1e-10


def _default_data() -> Path:
    shared = os.environ.get("HYPERLEAF_SHARED")
    root = Path(shared) if shared else Path(__file__).resolve().parents[1].parent / "shared"
    return root / "data" / "tno"


def load_pairs(data: Path, fused: Path | None) -> list[tuple[str, tuple[np.ndarray, ...]]]:
    keys = sorted((p.stem[2:] for p in data.glob("IR*.png")), key=lambda k: int(k))
    if not keys:
        raise SystemExit(f"no IRk.png files in {data} (give --data)")
    pairs = []
    for k in keys:
        ir = np.asarray(Image.open(data / f"IR{k}.png").convert("L"))
        vis = np.asarray(Image.open(data / f"VIS{k}.png").convert("L"))
        if fused is None:
            f = np.rint((ir.astype(np.float64) + vis) / 2).astype(np.uint8)
        else:
            f = np.asarray(Image.open(fused / f"{k}.png").convert("L"))
        pairs.append((k, (f, ir, vis)))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=_default_data())
    ap.add_argument("--fused", type=Path, default=None)
    ap.add_argument("--fused-label", default=None,
                    help="how the README names the fused images (default: the folder name)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--time-pairs", default="1,8,3,6",
                    help="pairs timed (sizes 270x360, 280x280, 510x505, 576x768)")
    ap.add_argument("--conventions", action="store_true")
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--results", type=Path, default=None,
                    help="only write the conventions' means to this results file")
    args = ap.parse_args()
    t_start = time.perf_counter()
    pairs = load_pairs(args.data, args.fused)
    if args.results is not None:
        if args.fused is None:
            raise SystemExit("--results: give --fused (the fused images the means are of)")
        rec = conventions_record(pairs, args, time.perf_counter() - t_start)
        atomic_write_text(args.results, json.dumps(rec, indent=1) + "\n")
        print(f"wrote {args.results}")
        return
    fused_from = (args.fused_label or f"`{args.fused.name}/`") if args.fused else \
        "the rounded average of the sources"

    # Agreement on every pair, metric by metric.
    worst = dict.fromkeys(M.METRICS, 0.0)
    for _, (f, a, b) in pairs:
        ours = M.evaluate(f, ir=a, vis=b)
        ref = baseline.evaluate(*(x.astype(np.float64) for x in (f, a, b)))
        for m in M.METRICS:
            worst[m] = max(worst[m], abs(ours[m] - ref[m]) / abs(ref[m]))
    print(f"agreement over {len(pairs)} pairs (max relative difference):")
    for m, d in worst.items():
        print(f"  {m:5s} {d:.1e}")
    assert max(worst.values()) <= TOLERANCE, worst

    # Speed: all ten metrics on the timed pairs, interleaved medians.
    chosen = [p for k, p in pairs if k in args.time_pairs.split(",")]
    as_float = [tuple(x.astype(np.float64) for x in p) for p in chosen]
    load0 = os.getloadavg()[0]
    t = interleaved_medians({
        "hyperleaf": lambda: [M.evaluate(f, ir=a, vis=b) for f, a, b in chosen],
        "transcription": lambda: [baseline.evaluate(*p) for p in as_float],
    }, reps=args.reps)
    load1 = os.getloadavg()[0]
    ratio = t["transcription"] / t["hyperleaf"]
    print(f"ten metrics on {len(chosen)} pairs: hyperleaf {t['hyperleaf']:.3f} s, "
          f"transcription {t['transcription']:.3f} s, ratio {ratio:.2f}x")

    # Where the time goes, per metric (one pair of each timed size, medians).
    per = {}
    f, a, b = chosen[0]
    ff, fa, fb = as_float[0]
    for m in M.METRICS:
        fn = getattr(baseline, m.lower())
        bargs = (ff,) if not registry.get(m).sources else (ff, fa, fb)
        tm = interleaved_medians({
            "h": lambda m=m: M.evaluate(f, ir=a, vis=b, metrics=(m,)),
            "t": lambda fn=fn, bargs=bargs: fn(*bargs)}, reps=args.reps)
        per[m] = (tm["h"] * 1e3, tm["t"] * 1e3)
        print(f"  {m:5s} hyperleaf {per[m][0]:7.1f} ms  transcription {per[m][1]:7.1f} ms")

    rows = ["| metric | hyperleaf ms | transcription ms | ratio | max rel. diff (all pairs) |",
            "|---|---:|---:|---:|---:|"]
    for m in M.METRICS:
        h, tr = per[m]
        rows.append(f"| {m} | {h:.1f} | {tr:.1f} | {tr / h:.1f}x | {worst[m]:.1e} |")
    body = (
        f"`python benchmarks/bench_metrics.py --write-readme`: the ten original fusion metrics "
        f"of `hyperleaf.metrics.evaluate` (uint8 inputs, float64, whole-image separable "
        f"filters, intermediate results shared) against `benchmarks/metrics_transcription.py` "
        f"(each metric on its own, 2-D `scipy.signal.convolve2d` windows), on TNO with fused "
        f"images from {fused_from}. All ten on pairs {args.time_pairs}: hyperleaf "
        f"{t['hyperleaf']:.3f} s, transcription {t['transcription']:.3f} s: **{ratio:.1f}x** "
        f"(goal >= 3x), medians of {args.reps} interleaved repetitions, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load0:.1f} before / "
        f"{load1:.1f} after. Agreement: max relative difference over all {len(pairs)} pairs "
        f"{max(worst.values()):.1e} (goal <= 1e-10). Per metric, pair "
        f"{args.time_pairs.split(',')[0]}:\n\n" + "\n".join(rows) + "\n")
    if args.conventions:
        body += "\n" + conventions_table(pairs) + "\n"
    if args.write_readme:
        write_section("Fusion metrics", body)
        print("wrote the Fusion metrics section of benchmarks/README.md")


def conventions_means(pairs, conventions=("standard", "mmif")) -> tuple[dict, dict]:
    """Sums over the pairs of every metric in each of ``conventions``, and the seconds each
    metric took (all conventions): ``({convention: {metric: sum}}, {metric: seconds})``."""
    names = registry.resolve("all")
    sums = {c: dict.fromkeys(names, 0.0) for c in conventions}
    secs = dict.fromkeys(names, 0.0)
    for _, (f, a, b) in pairs:
        for c in conventions:
            for m in names:
                t0 = time.perf_counter()
                sums[c][m] += M.evaluate(f, ir=a, vis=b, metrics=(m,), convention=c)[m]
                secs[m] += time.perf_counter() - t0
    return sums, secs


def conventions_record(pairs, args, seconds_before: float) -> dict:
    """The results file of ``--results``: means over the pairs in the ``standard`` and
    ``mmif`` conventions; rows for the metrics whose two means differ."""
    t0 = time.perf_counter()
    sums, _ = conventions_means(pairs)
    n = len(pairs)
    means = {c: {m: v / n for m, v in sums[c].items()} for c in ("standard", "mmif")}
    rows = [[m, registry.get(m).direction, f"{means['standard'][m]:.6f}",
             f"{means['mmif'][m]:.6f}"]
            for m in means["standard"] if means["standard"][m] != means["mmif"][m]]
    same = [m for m in means["standard"] if means["standard"][m] == means["mmif"][m]]
    files = [args.fused / f"{k}.png" for k, _ in pairs]
    files += [args.data / f"{s}{k}.png" for k, _ in pairs for s in ("IR", "VIS")]
    return {
        "results_format": RESULTS_FORMAT, "kind": "table",
        "caption": (f"Means over the {n} pairs of `--data` fused into `--fused` (8-bit PNGs, "
                    "SHA-256 in the file), in the two conventions: the metrics whose "
                    f"means differ. The other {len(same)} ({', '.join(same)}) have equal means "
                    "in both (all means in the file's `values`)."),
        "columns": ["metric", "direction", "standard", "mmif"],
        "rows": rows, "values": means,
        "config": {"metrics": list(means["standard"]), "conventions": ["standard", "mmif"],
                   "pairs": [k for k, _ in pairs]},
        "wall_seconds": seconds_before + time.perf_counter() - t0,
        **provenance(files, shlex.join(["python", *sys.argv])),
    }


def conventions_table(pairs) -> str:
    """Means over the pairs of every metric in both conventions, and the time each takes."""
    names = registry.resolve("all")
    sums, secs = conventions_means(pairs)
    n = len(pairs)
    lines = [f"Means over {n} pairs, both conventions (`--conventions`):", "",
             "| metric | direction | standard | mmif | s per pair (both) |",
             "|---|---|---:|---:|---:|"]
    for m in names:
        d = registry.get(m).direction
        lines.append(f"| {m} | {d} | {sums['standard'][m] / n:.6f} | {sums['mmif'][m] / n:.6f}"
                     f" | {secs[m] / n:.3f} |")
        print(f"  {m:12s} {d} standard {sums['standard'][m] / n:.4f}  mmif "
              f"{sums['mmif'][m] / n:.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
