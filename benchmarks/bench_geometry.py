"""Forward+backward speed of hyperleaf.geometry against plain-torch closed forms and geoopt.

On a (2, 64, 128, 128) float32 feature map (manifold axis 1), CPU, 2 threads. Run:

    python benchmarks/bench_geometry.py [--reps 7] [--write-readme]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, write_section  # noqa: E402

from hyperleaf import geometry as G  # noqa: E402

C = 0.5


def plain(name: str):
    """The closed forms as anyone would write them in plain torch (same clamps)."""
    sc = C**0.5

    def expmap0(x):
        n = x.norm(dim=1, keepdim=True).clamp_min(1e-15)
        return torch.tanh((sc * n).clamp_max(15)) * x / (sc * n)

    def logmap0(x):
        n = x.norm(dim=1, keepdim=True).clamp_min(1e-15)
        return torch.atanh((sc * n).clamp_max(1 - 1e-7)) * x / (sc * n)

    def dist0(x):
        return 2 / sc * torch.atanh((sc * x.norm(dim=1)).clamp_max(1 - 1e-7))

    def mobius_add(x, y):
        x2, y2 = x.pow(2).sum(1, keepdim=True), y.pow(2).sum(1, keepdim=True)
        xy = (x * y).sum(1, keepdim=True)
        num = (1 + 2 * C * xy + C * y2) * x + (1 - C * x2) * y
        return num / (1 + 2 * C * xy + C**2 * x2 * y2).clamp_min(1e-15)

    def dist(x, y):
        return 2 / sc * torch.atanh((sc * mobius_add(-x, y).norm(dim=1)).clamp_max(1 - 1e-7))

    return locals()[name]


OPS = {
    "expmap0": (1, lambda x: G.expmap0(x, C), lambda x: G.reference.expmap0(x, C)),
    "logmap0": (1, lambda x: G.logmap0(x, C), lambda x: G.reference.logmap0(x, C)),
    "dist0": (1, lambda x: G.dist0(x, C), lambda x: G.reference.dist0(x, C)),
    "mobius_add": (2, lambda x, y: G.mobius_add(x, y, C),
                   lambda x, y: G.reference.mobius_add(x, y, C)),
    "dist": (2, lambda x, y: G.dist(x, y, C), lambda x, y: G.reference.dist(x, y, C)),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--shape", type=int, nargs="+", default=[2, 64, 128, 128])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    shape = tuple(args.shape)
    base = [torch.randn(shape, generator=g) * 0.3 for _ in range(2)]

    rows = []
    for name, (arity, ours, geo) in OPS.items():
        inputs = [b.clone().requires_grad_(True) for b in base[:arity]]

        def step(fn, inputs=inputs):
            def run():
                out = fn(*inputs)
                out.sum().backward()
                for t in inputs:
                    t.grad = None
            return run

        with torch.no_grad():
            err = (ours(*inputs) - geo(*inputs)).abs().max().item()
        t = interleaved_medians({"hyperleaf": step(ours), "plain": step(plain(name)),
                                 "geoopt": step(geo)}, reps=args.reps)
        rows.append((name, t["hyperleaf"] * 1e3, t["plain"] * 1e3, t["geoopt"] * 1e3,
                     t["plain"] / t["hyperleaf"], t["geoopt"] / t["hyperleaf"], err))

    head = ("| op | hyperleaf ms | plain torch ms | geoopt ms | plain / hyperleaf "
            "| geoopt / hyperleaf | max abs diff to geoopt |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:.1f} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.2f}x | "
                     f"{r[5]:.2f}x | {r[6]:.1e} |")
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        body = (f"`python benchmarks/bench_geometry.py --write-readme`: forward+backward on a "
                f"{shape} float32 map, manifold axis 1, c = {C}, CPU, {args.threads} threads, "
                f"median of {args.reps} interleaved repetitions, torch {torch.__version__}, "
                f"{platform.machine()}. A ratio above 1 means hyperleaf is faster.\n\n" + table)
        write_section("Geometry", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
