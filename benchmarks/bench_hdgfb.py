"""Forward+backward time and saved-for-backward bytes of HDGFB vs the LEAF seed and the floor.

For each (B, C, H, W) and hidden 512 this runs, interleaved round-robin so that machine noise
hits every candidate alike:

* ``floor``: the work any implementation must do: the same three 1x1 projections and the
  feed-forward (``ff(cat([p0 + p1 + p2, fused]))``, nn.Conv2d/GELU/nn.Conv2d), nothing else;
* ``gemm``: the same floor written as plain GEMMs on rows (``F.linear`` after one transposing
  copy per map, output transposed back), to show how much of a ratio comes from the GEMMs;
* ``seed``: ``hyperleaf.paper.HyperbolicAttentionFusion`` (the seed's code), same weights;
* ``paper`` / ``geodesic``: ``hyperleaf.HDGFB`` (fused path) with the converted weights.

Times are medians of ``--reps`` repetitions after warm-up; saved bytes are the distinct storages
handed to ``torch.autograd.graph.saved_tensors_hooks`` (inputs included, each counted once).
Before timing, paper mode is checked equal to the seed (float32 output, relative max error).

    python benchmarks/bench_hdgfb.py                  # the table, ~1-2 min with 2 threads
    python benchmarks/bench_hdgfb.py --write-readme   # also update benchmarks/README.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hyperleaf.compat.hdgfb import hdgfb_from_reference  # noqa: E402
from hyperleaf.nn import HDGFB  # noqa: E402
from hyperleaf.paper import HyperbolicAttentionFusion  # noqa: E402

SHAPES = [(2, 64, 64, 64), (2, 64, 128, 128), (1, 256, 32, 32), (4, 32, 64, 64)]
HIDDEN = 512
README = Path(__file__).with_name("README.md")
SECTION = "## HDGFB"


def saved_bytes(fn) -> int:
    """Distinct storage bytes saved for backward while ``fn()`` builds its graph."""
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def make_candidates(shape):
    B, C, H, W = shape
    seed = HyperbolicAttentionFusion(C, 0.2, HIDDEN)
    sd = hdgfb_from_reference(seed.state_dict())
    paper = HDGFB(C, c=0.2, hidden=HIDDEN, mode="paper")
    paper.load_state_dict(sd)
    geo = HDGFB(C, c=0.2, hidden=HIDDEN, mode="geodesic")
    geo.load_state_dict(sd)

    def floor(f, a, b):
        p = seed.to_hyperbolic1(f) + seed.to_hyperbolic2(a) + seed.to_hyperbolic3(b)
        return seed.ff(torch.cat([p, f], dim=1))

    def rows(x):
        return x.movedim(1, -1).reshape(-1, C)

    def lin(layer, x):
        return F.linear(x, layer.weight.flatten(1), layer.bias)

    def gemm(f, a, b):
        fr = rows(f)
        p = (lin(seed.to_hyperbolic1[0], fr) + lin(seed.to_hyperbolic2[0], rows(a))
             + lin(seed.to_hyperbolic3[0], rows(b)))
        y = lin(seed.ff[2], F.gelu(lin(seed.ff[0], torch.cat([p, fr], dim=1))))
        return y.view(B, H, W, C).permute(0, 3, 1, 2).contiguous()

    return {"floor": floor, "gemm": gemm, "seed": seed, "paper": paper, "geodesic": geo}


def run_shape(shape, reps: int):
    torch.manual_seed(0)
    cands = make_candidates(shape)
    xs = [torch.randn(shape, requires_grad=True) for _ in range(3)]
    with torch.no_grad():
        ref, got = cands["seed"](*xs), cands["paper"](*xs)
        err = float((got - ref).abs().max() / ref.abs().max())
    gout = torch.randn(shape)

    def step(fn):
        for x in xs:
            x.grad = None
        t0 = time.perf_counter()
        fn(*xs).backward(gout)
        return time.perf_counter() - t0

    names = list(cands)
    for n in names:  # warm-up (allocator, oneDNN primitive caches)
        step(cands[n])
    times = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            times[n].append(step(cands[n]))
    med = {n: statistics.median(v) for n, v in times.items()}
    mem = {n: saved_bytes(lambda n=n: cands[n](*xs)) for n in names}
    return med, mem, err


def table(rows) -> str:
    head = ("| B, C, H, W | floor ms | gemm ms | seed ms | paper ms | geodesic ms | seed/floor | "
            "paper/floor | geo/floor | paper/gemm | seed/paper | seed/geo | "
            "saved MiB floor/seed/paper/geo | paper/seed bytes | geo/seed bytes | "
            "paper vs seed err |")
    sep = "|" + "|".join(["---"] * 16) + "|"
    lines = [head, sep]
    mib = 2.0 ** 20
    for shape, med, mem, err in rows:
        f, gm, s, p, g = (med[k] for k in ("floor", "gemm", "seed", "paper", "geodesic"))
        lines.append(
            f"| {', '.join(map(str, shape))} | {f * 1e3:.0f} | {gm * 1e3:.0f} | {s * 1e3:.0f} | "
            f"{p * 1e3:.0f} | {g * 1e3:.0f} | {s / f:.2f} | {p / f:.2f} | {g / f:.2f} | "
            f"{p / gm:.2f} | {s / p:.2f} | {s / g:.2f} | "
            f"{mem['floor'] / mib:.0f} / {mem['seed'] / mib:.0f} / {mem['paper'] / mib:.0f} / "
            f"{mem['geodesic'] / mib:.0f} | {mem['paper'] / mem['seed']:.2f} | "
            f"{mem['geodesic'] / mem['seed']:.2f} | {err:.1e} |")
    return "\n".join(lines)


def goals(rows) -> str:
    """One line per mode: each goal of issue 3, its measured range over the shapes, met or not."""
    def verdict(vals, ok):
        bad = sum(not ok(v) for v in vals)
        return "met" if bad == 0 else f"missed at {bad} of {len(vals)} shapes"

    def rng(vals):
        return f"{min(vals):.2f}-{max(vals):.2f}x"

    out = []
    for key in ("paper", "geodesic"):
        vs_floor = [med[key] / med["floor"] for _, med, _, _ in rows]
        vs_seed = [med["seed"] / med[key] for _, med, _, _ in rows]
        by = [mem[key] / mem["seed"] for _, _, mem, _ in rows]
        out.append(
            f"- {key}: time / floor {rng(vs_floor)} (goal <= 1.15x: "
            f"{verdict(vs_floor, lambda v: v <= 1.15)}); faster than the seed {rng(vs_seed)} "
            f"(goal >= 1.25x: {verdict(vs_seed, lambda v: v >= 1.25)}); saved bytes / seed "
            f"{rng(by)} (goal <= 0.5x: {verdict(by, lambda v: v <= 0.5)})")
    return "\n".join(out)


def write_readme(text: str) -> None:
    """Replace (or append) the ``## HDGFB`` section of benchmarks/README.md, atomically."""
    old = README.read_text(encoding="utf-8") if README.exists() else (
        "# Benchmarks\n\nMeasured numbers of the scripts in this folder.\n")
    start = old.find(SECTION + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + ("" if nxt < 0 else old[nxt:])
    fd, tmp = tempfile.mkstemp(dir=README.parent, prefix=".README.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(new if new.endswith("\n") else new + "\n")
    os.replace(tmp, README)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per candidate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default=None, help="e.g. '2,64,64,64;1,256,32,32'")
    ap.add_argument("--write-readme", action="store_true", help="update benchmarks/README.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = SHAPES if not args.shapes else [
        tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";")]
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    rows = []
    for shape in shapes:
        med, mem, err = run_shape(shape, args.reps)
        rows.append((shape, med, mem, err))
        print(f"done {shape} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    load1 = os.getloadavg()[0]
    tab = table(rows) + "\n\n" + goals(rows)
    print(tab)
    print(f"load average (1 min) before/after: {load0:.2f} / {load1:.2f}", file=sys.stderr)
    if args.write_readme:
        text = (f"{SECTION}\n\n`python benchmarks/bench_hdgfb.py` — forward+backward on CPU "
                f"({args.threads} threads, torch {torch.__version__}, "
                f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
                f"average {load0:.1f} before / {load1:.1f} after), hidden {HIDDEN}, float32, "
                f"medians of {args.reps} interleaved repetitions. "
                "`floor`: the same 1x1 projections and feed-forward alone, as the seed's "
                "`nn.Conv2d` modules; `gemm`: that floor as plain `F.linear` GEMMs on rows (one "
                "transposing copy per map); `seed`: the LEAF seed's `HyperbolicAttentionFusion`; "
                "`paper`/`geodesic`: `hyperleaf.HDGFB` with the same weights. Saved bytes: "
                "distinct storages seen by `saved_tensors_hooks` (inputs included). Goals "
                "(issue 3): <= 1.15x floor, >= 1.25x faster than the seed, <= 0.5x the seed's "
                "saved bytes.\n\n" + tab + "\n")
        write_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
