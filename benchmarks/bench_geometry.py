"""Forward+backward speed of hyperleaf.geometry against plain-torch closed forms and geoopt.

On a (2, 64, 128, 128) float32 feature map (manifold axis 1), CPU, 2 threads. Inputs: tangent
vectors ``0.3 * randn`` (``c|x|^2`` ~ 2.9: off the ball) for the maps from tangent space and for
``project``, points inside the ball (their ``expmap0``) for the ball operations; the rows marked
"off ball" and "diverging" time the slower paths taken for such inputs. Run:

    python benchmarks/bench_geometry.py [--reps 7] [--baseline REV] [--write-readme]

``--baseline REV`` also times ``hyperleaf/geometry.py`` as of git revision ``REV`` (read with
``git show``, loaded as a standalone module), interleaved with the others, so that a change's
cost is a ratio measured side by side in one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import subprocess
import sys
import tempfile
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

    def project(x):
        n = x.norm(dim=1, keepdim=True).clamp_min(1e-15)
        maxnorm = (1 - 4e-3) / sc
        return torch.where(n > maxnorm, x / n * maxnorm, x)

    def clip_features(x):
        return x * (1.0 / x.norm(dim=1, keepdim=True).clamp_min(1e-15)).clamp_max(1.0)

    return locals()[name]


OPS = {
    "expmap0": (1, lambda x: G.expmap0(x, C), lambda x: G.reference.expmap0(x, C)),
    "logmap0": (1, lambda x: G.logmap0(x, C), lambda x: G.reference.logmap0(x, C)),
    "dist0": (1, lambda x: G.dist0(x, C), lambda x: G.reference.dist0(x, C)),
    "mobius_add": (2, lambda x, y: G.mobius_add(x, y, C),
                   lambda x, y: G.reference.mobius_add(x, y, C)),
    "dist": (2, lambda x, y: G.dist(x, y, C), lambda x, y: G.reference.dist(x, y, C)),
    "project": (1, lambda x: G.project(x, C), lambda x: G.reference.project(x, C)),
    "clip_features": (1, lambda x: G.clip_features(x, 1.0), None),
}


def load_baseline(rev: str):
    """``hyperleaf/geometry.py`` as of git revision ``rev``, as a standalone module."""
    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "-C", str(root), "show", f"{rev}:hyperleaf/geometry.py"],
                         capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="bench_geometry_")) / "geometry_baseline.py"
    path.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("geometry_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def baseline_op(module, name: str):
    args = {"clip_features": (1.0,)}.get(name, (C,))
    return lambda *xs: getattr(module, name)(*xs, *args)


#: (row label, op, input kind): "tangent" 0.3 * randn, "ball" its expmap0 (sqrt(c)|x| ~ 0.93),
#: "diverging" 1e20 * randn (float32 squared norms overflow: the float64 switch).
CASES = [
    ("expmap0", "expmap0", "tangent"),
    ("logmap0", "logmap0", "ball"),
    ("dist0", "dist0", "ball"),
    ("mobius_add", "mobius_add", "ball"),
    ("dist", "dist", "ball"),
    ("project", "project", "tangent"),
    ("clip_features", "clip_features", "tangent"),
    ("mobius_add, off ball", "mobius_add", "tangent"),
    ("dist, off ball", "dist", "tangent"),
    ("expmap0, diverging", "expmap0", "diverging"),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--shape", type=int, nargs="+", default=[2, 64, 128, 128])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline", metavar="REV",
                    help="also time hyperleaf/geometry.py of this git revision, side by side")
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args(argv)
    base_module = load_baseline(args.baseline) if args.baseline else None
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    shape = tuple(args.shape)
    tangent = [torch.randn(shape, generator=g) * 0.3 for _ in range(2)]
    kinds = {"tangent": tangent, "ball": [G.expmap0(t, C) for t in tangent],
             "diverging": [t * 1e20 for t in tangent]}

    rows = []
    for label, name, kind in CASES:
        arity, ours, geo = OPS[name]
        inputs = [b.clone().requires_grad_(True) for b in kinds[kind][:arity]]

        def step(fn, inputs=inputs):
            def run():
                out = fn(*inputs)
                out.sum().backward()
                for t in inputs:
                    t.grad = None
            return run

        candidates = {"hyperleaf": step(ours), "plain": step(plain(name))}
        if geo is not None:
            candidates["geoopt"] = step(geo)
        if base_module is not None:
            candidates["baseline"] = step(baseline_op(base_module, name))
        with torch.no_grad():
            err = (ours(*inputs) - geo(*inputs)).abs().max().item() if geo else None
        t = interleaved_medians(candidates, reps=args.reps)
        rows.append((label, t, err))

    def ms(t, k):
        return f"{t[k] * 1e3:.1f}" if k in t else "-"

    def ratio(t, k):
        return f"{t[k] / t['hyperleaf']:.2f}x" if k in t else "-"

    base = base_module is not None
    head = ("| op | hyperleaf ms | plain torch ms | geoopt ms | plain / hyperleaf "
            "| geoopt / hyperleaf | max abs diff to geoopt |")
    head += f" {args.baseline} ms | {args.baseline} / hyperleaf |" if base else ""
    lines = [head, "|---" * (9 if base else 7) + "|"]
    for name, t, err in rows:
        line = (f"| {name} | {ms(t, 'hyperleaf')} | {ms(t, 'plain')} | {ms(t, 'geoopt')} | "
                f"{ratio(t, 'plain')} | {ratio(t, 'geoopt')} | "
                f"{'-' if err is None else f'{err:.1e}'} |")
        if base:
            line += f" {ms(t, 'baseline')} | {ratio(t, 'baseline')} |"
        lines.append(line)
    table = "\n".join(lines)
    print(table)
    if args.write_readme:
        body = (f"`python benchmarks/bench_geometry.py --write-readme`: forward+backward on a "
                f"{shape} float32 map, manifold axis 1, c = {C}, CPU, {args.threads} threads, "
                f"median of {args.reps} interleaved repetitions, torch {torch.__version__}, "
                f"{platform.machine()}. A ratio above 1 means hyperleaf is faster"
                + (f"; `{args.baseline}`: this module as of that git revision "
                   f"(`--baseline {args.baseline}`)" if base else "") + ".\n\n" + table)
        write_section("Geometry", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
