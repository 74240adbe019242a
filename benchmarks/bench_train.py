"""The training step against its FLOP floor, the foreach Riemannian Adam against geoopt's, and the
mixed-precision losses of the demo (issue 25), side by side in one run.

* **Step vs floor**: the median time of ``Trainer._step`` (forward, backward, the fused finite
  check, clipping, optimizer) of the default fuse objective (SHIP + HDGFB + LeafHead) at crop
  128 / batch 8 and crop 32 / batch 4, over the floor = the step's counted FLOPs
  (``torch.utils.flop_counter``: convolutions and matrix products, forward and backward) at the
  fp32 matmul peak measured in the same run (a 1024^3 ``mm``).
* **Optimizer**: ``geoopt.optim.RiemannianAdam`` vs ``hyperleaf.optim.ForeachRiemannianAdam``
  (and ``torch.optim.Adam(foreach=True)`` for scale) stepping the network's parameters, medians
  of interleaved repetitions.
* **Precision**: the full objective's loss on the demo's first batch under bf16/fp16 autocast
  relative to fp32 (same weights), and the skipped steps of a short demo run per precision.

Usage::

    nice .venv/bin/python benchmarks/bench_train.py [--quick] [--write-readme]

writes ``results/bench_train.json`` and, with ``--write-readme``, renders the
"Training step" section of ``benchmarks/README.md`` from it (``--render`` re-renders the
section from the committed JSON without measuring).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_medians, median_time, write_section  # noqa: E402

from hyperleaf.atomic import atomic_write_text  # noqa: E402
from hyperleaf.geometry import geoopt  # noqa: E402
from hyperleaf.optim import ForeachRiemannianAdam  # noqa: E402
from hyperleaf.train.config import TrainConfig  # noqa: E402
from hyperleaf.train.trainer import BatchStream, Trainer, train  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench_train.json"
SHAPES = [(128, 8), (32, 4)]
GOALS = {"128x8": 4.0, "32x4": 8.0}


def matmul_peak(n: int = 1024, reps: int = 7) -> float:
    """Measured fp32 matmul FLOP/s (2 n^3 per product)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_time(lambda: torch.mm(a, b), reps)


def make_trainer(crop: int, batch: int, out: Path, **kw) -> tuple[Trainer, object]:
    cfg = TrainConfig(crop=crop, batch_size=batch, out=str(out), **kw)
    t = Trainer(cfg, progress=False)
    t.device = torch.device("cpu")
    t.cfg = cfg.validate()
    t._build_data()
    torch.manual_seed(0)
    t._build_model()
    t._build_optimizer()
    t.skipped = t.consecutive = 0
    stream = BatchStream(t.train_set, batch, cfg.seed)
    return t, stream


def step_vs_floor(crop: int, batch: int, peak: float, reps: int, tmp: Path) -> dict:
    t, stream = make_trainer(crop, batch, tmp / f"s{crop}")
    batches = [stream.batch(i) for i in range(1, 4)]
    model = t.objective
    t._step(model, batches[0], 1)  # lazy state
    with FlopCounterMode(display=False) as fc:
        t._step(model, batches[1], 2)
    flops = fc.get_total_flops()
    step = median_time(lambda: t._step(model, batches[2], 3), reps, warmup=1)
    floor = flops / peak
    return {"crop": crop, "batch": batch, "gflop": flops / 1e9, "step_s": step,
            "floor_s": floor, "ratio": step / floor}


def optimizer_ratio(reps: int, tmp: Path) -> dict:
    t, _ = make_trainer(32, 4, tmp / "opt")
    params = [p for p in t.objective.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=g, dtype=p.dtype) * 1e-3 for p in params]

    def runner(make):
        ps = [copy.deepcopy(p) for p in params]
        opt = make(ps)

        def step():
            for p, gr in zip(ps, grads, strict=True):
                p.grad = gr.clone()
            opt.step()
        return step

    times = interleaved_medians({
        "geoopt": runner(lambda ps: geoopt.optim.RiemannianAdam(ps, lr=1e-4)),
        "foreach": runner(lambda ps: ForeachRiemannianAdam(ps, lr=1e-4)),
        "torch_adam_foreach": runner(lambda ps: torch.optim.Adam(ps, lr=1e-4, foreach=True)),
    }, reps)
    return {"tensors": len(params), **{f"{k}_ms": v * 1e3 for k, v in times.items()},
            "speedup": times["geoopt"] / times["foreach"]}


def precision_check(steps: int, tmp: Path) -> dict:
    out: dict = {"loss_rel": {}, "skipped": {}, "last_loss": {}}
    t, stream = make_trainer(32, 4, tmp / "p")
    batch = stream.batch(1)
    losses = {}
    for prec in ("fp32", "bf16", "fp16"):
        t.cfg.precision = prec
        with torch.no_grad(), t.autocast():
            losses[prec] = float(t.task.loss(t.objective, batch)[0])
    for prec in ("bf16", "fp16"):
        out["loss_rel"][prec] = abs(losses[prec] - losses["fp32"]) / abs(losses["fp32"])
    for prec in ("fp32", "bf16", "fp16"):
        res = train(TrainConfig(steps=steps, out=str(tmp / f"run_{prec}"), precision=prec,
                                eval_every=10**6, save_every=10**6, log_every=steps),
                    progress=False)
        out["skipped"][prec] = res.skipped_nonfinite
        out["last_loss"][prec] = res.last_loss
    for prec in ("bf16", "fp16"):
        out["loss_rel"][f"{prec}_after_{steps}_steps"] = (
            abs(out["last_loss"][prec] - out["last_loss"]["fp32"]) / abs(out["last_loss"]["fp32"]))
    out["steps"] = steps
    return out


def head_compiled_vs_eager(reps: int) -> dict:
    """LeafHead + H2FR forward and backward, eager vs ``torch.compile`` (inductor), on the
    default head at crop 32 / batch 4 (three stages of 8-channel maps, fused + 2 modalities)."""
    import time

    from hyperleaf.nn.heads import LeafHead

    torch.manual_seed(0)
    head = LeafHead([8, 8, 8], dim=16)
    levels = [tuple(torch.rand(4, 8, 32, 32) for _ in range(3)) for _ in range(3)]

    def loss_of(lv):
        return head.loss(head.embed(lv))

    compiled = torch.compile(loss_of)

    def run(fn):
        def step():
            head.zero_grad()
            fn(levels).backward()
        return step

    t0 = time.perf_counter()
    run(compiled)()
    compile_s = time.perf_counter() - t0
    times = interleaved_medians({"eager": run(loss_of), "compiled": run(compiled)}, reps)
    return {"eager_ms": times["eager"] * 1e3, "compiled_ms": times["compiled"] * 1e3,
            "eager_over_compiled": times["eager"] / times["compiled"], "compile_s": compile_s}


def render(res: dict) -> str:
    lines = ["`benchmarks/bench_train.py` (CPU, 1 thread, float32; rendered from "
             "`results/bench_train.json`). Floor: the step's counted FLOPs at the measured fp32 "
             f"matmul peak ({res['peak_gflops']:.1f} GFLOP/s in this run).", "",
             "| crop / batch | GFLOP per step | step (s) | floor (s) | step / floor | goal |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in res["steps"]:
        key = f"{r['crop']}x{r['batch']}"
        lines.append(f"| {r['crop']} / {r['batch']} | {r['gflop']:.2f} | {r['step_s']:.3f} | "
                     f"{r['floor_s']:.3f} | {r['ratio']:.1f}x | <= {GOALS[key]:g}x |")
    o = res["optimizer"]
    lines += ["", f"Optimizer step on the network's {o['tensors']} parameter tensors (crop 32 "
              "config), medians of interleaved repetitions:", "",
              "| geoopt RiemannianAdam | ForeachRiemannianAdam | torch Adam (foreach) | "
              "geoopt / foreach |", "|---:|---:|---:|---:|",
              f"| {o['geoopt_ms']:.2f} ms | {o['foreach_ms']:.2f} ms | "
              f"{o['torch_adam_foreach_ms']:.2f} ms | {o['speedup']:.1f}x |"]
    h = res.get("head")
    if h:
        lines += ["", "LeafHead + H2FR forward and backward (crop 32 / batch 4 maps), eager vs "
                  f"`torch.compile` (inductor; compiling took {h['compile_s']:.0f} s): "
                  f"{h['eager_ms']:.2f} ms eager, {h['compiled_ms']:.2f} ms compiled, "
                  f"eager / compiled {h['eager_over_compiled']:.2f}x."]
    p = res.get("precision")
    if p:
        lines += ["", "Mixed precision on the demo (`hyperleaf train` defaults): the full "
                  "objective's loss relative to fp32 on the first batch, and after "
                  f"{p['steps']} training steps; steps skipped as non-finite:", "",
                  "| precision | loss vs fp32 (batch 1) | loss vs fp32 (after training) | "
                  "skipped steps |", "|---|---:|---:|---:|"]
        for prec in ("bf16", "fp16"):
            after = p["loss_rel"][f"{prec}_after_{p['steps']}_steps"]
            lines.append(f"| {prec} | {p['loss_rel'][prec]:.1e} | {after:.1e} | "
                         f"{p['skipped'][prec]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--no-precision", action="store_true", help="skip the precision runs")
    ap.add_argument("--compile-head", action="store_true",
                    help="also time LeafHead + H2FR compiled vs eager (compiling takes minutes)")
    ap.add_argument("--write-readme", action="store_true")
    ap.add_argument("--render", action="store_true",
                    help="only render the README section from results/bench_train.json")
    args = ap.parse_args(argv)
    if args.render:
        write_section("Training step", render(json.loads(RESULTS.read_text())))
        return 0
    torch.set_num_threads(1)
    reps = 3 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        peak = matmul_peak()
        res = {"peak_gflops": peak / 1e9, "steps": []}
        for c, b in SHAPES:
            res["steps"].append(step_vs_floor(c, b, peak, reps, tmp))
            print(res["steps"][-1], flush=True)
        res["optimizer"] = optimizer_ratio(reps * 4, tmp)
        print(res["optimizer"], flush=True)
        if args.compile_head:
            res["head"] = head_compiled_vs_eager(reps * 4)
            print(res["head"], flush=True)
        if not args.no_precision:
            res["precision"] = precision_check(10 if args.quick else 20, tmp)
    RESULTS.parent.mkdir(exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(res, indent=1) + "\n")
    print(render(res))
    if args.write_readme:
        write_section("Training step", render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
