"""GPU benchmark (issue 25): HDGFB, SHIP inference and a training step, at fp32 and bf16, eager
and ``torch.compile``-d, side by side in one run (CUDA events, medians of repetitions).

Skips cleanly (exit status 0, one line saying why) where CUDA is not available.

Usage::

    .venv/bin/python benchmarks/bench_gpu.py [--quick] [--write-readme]

writes ``results/bench_gpu.json`` and, with ``--write-readme``, the "GPU" section of
``benchmarks/README.md`` rendered from it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_section  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results" / "bench_gpu.json"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def cuda_median_ms(fn, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def autocast(dtype):
    return contextlib.nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def bench_hdgfb(reps: int) -> list[dict]:
    from hyperleaf.nn.hdgfb import HDGFB

    rows = []
    for shape in [(1, 256, 32, 32), (2, 64, 64, 64), (8, 64, 128, 128)]:
        block = HDGFB(shape[1], hidden=2 * shape[1], mode="geodesic").cuda()
        xs = [torch.randn(shape, device="cuda", requires_grad=True) for _ in range(3)]
        for prec, dt in PRECISIONS.items():
            for compiled in (False, True):
                fn = torch.compile(block) if compiled else block

                def step(fn=fn, dt=dt, xs=xs):
                    with autocast(dt):
                        out = fn(*xs)
                    out.float().sum().backward()
                rows.append({"what": "HDGFB fwd+bwd", "shape": list(shape), "precision": prec,
                             "compiled": compiled, "ms": cuda_median_ms(step, reps)})
    return rows


def bench_ship(reps: int) -> list[dict]:
    from hyperleaf.models import SHIP

    rows = []
    net = SHIP(16, hdgfb=True).cuda().eval()
    vis, ir = torch.rand(1, 1, 512, 640, device="cuda"), torch.rand(1, 1, 512, 640, device="cuda")
    for prec, dt in PRECISIONS.items():
        for compiled in (False, True):
            fn = torch.compile(net) if compiled else net

            def run(fn=fn, dt=dt):
                with torch.inference_mode(), autocast(dt):
                    fn(vis, ir)
            rows.append({"what": "SHIP inference", "shape": [1, 1, 512, 640], "precision": prec,
                         "compiled": compiled, "ms": cuda_median_ms(run, reps)})
    return rows


def bench_train_step(reps: int) -> list[dict]:
    from hyperleaf.train.config import TrainConfig
    from hyperleaf.train.trainer import BatchStream, Trainer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for prec in PRECISIONS:
            for compiled in (False, True):
                cfg = TrainConfig(crop=128, batch_size=8, out=str(Path(tmp) / prec),
                                  precision=prec, device="cuda").validate()
                t = Trainer(cfg, progress=False)
                t.device = torch.device("cuda")
                t._build_data()
                torch.manual_seed(0)
                t._build_model()
                t._build_optimizer()
                t.skipped = t.consecutive = 0
                stream = BatchStream(t.train_set, cfg.batch_size, cfg.seed)
                batch = {k: v.cuda() for k, v in stream.batch(1).items()}
                model = torch.compile(t.objective) if compiled else t.objective
                rows.append({"what": "training step", "shape": [8, 1, 128, 128],
                             "precision": prec, "compiled": compiled,
                             "ms": cuda_median_ms(
                                 lambda m=model, t=t, b=batch: t._step(m, b, 1), reps)})
    return rows


def render(res: dict) -> str:
    lines = [f"`benchmarks/bench_gpu.py` on {res['device']} (rendered from "
             "`results/bench_gpu.json`; CUDA-event medians):", "",
             "| what | shape | precision | eager (ms) | compiled (ms) | eager / compiled |",
             "|---|---|---|---:|---:|---:|"]
    keyed = {(r["what"], tuple(r["shape"]), r["precision"], r["compiled"]): r["ms"]
             for r in res["rows"]}
    for (what, shape, prec, compiled), ms in keyed.items():
        if compiled:
            continue
        cms = keyed[(what, shape, prec, True)]
        lines.append(f"| {what} | {'x'.join(map(str, shape))} | {prec} | {ms:.2f} | "
                     f"{cms:.2f} | {ms / cms:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: skipped: CUDA is not available on this machine")
        return 0
    reps = 5 if args.quick else 20
    rows = bench_hdgfb(reps) + bench_ship(reps) + bench_train_step(reps)
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    from hyperleaf.atomic import atomic_write_text

    RESULTS.parent.mkdir(exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(res, indent=1) + "\n")
    print(render(res))
    if args.write_readme:
        write_section("GPU", render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
