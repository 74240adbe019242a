"""Time hyperleaf's SHIP against the direct transcription of the spec (CPU inference).

Both networks get the same weights (the authors' checkpoint with ``--weights``, otherwise one
random set) and the same input; they are timed alternately, so machine load affects both
alike, and the medians are compared. Also reports the largest output difference, and with
``--memory`` the peak resident memory of fusing a 768x576 pair (fresh subprocess each).

    .venv/bin/python benchmarks/bench_ship.py --weights ../shared/checkpoints/ship_irvis_official.pth
    .venv/bin/python benchmarks/bench_ship.py --reps 7 --memory --write-readme

``--write-readme`` replaces the ``## SHIP`` section of ``benchmarks/README.md`` (atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from ship_transcription import ShipTranscription  # noqa: E402

from hyperleaf.models import SHIP  # noqa: E402

README = HERE / "README.md"
SECTION = "## SHIP"


def _weights(path: str | None) -> dict:
    if path:
        from hyperleaf.compat.ship import load_official_state_dict

        return load_official_state_dict(path)
    torch.manual_seed(0)
    return SHIP().state_dict()


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench(args) -> dict:
    torch.set_num_threads(args.threads)
    sd = _weights(args.weights)
    base = ShipTranscription()
    base.load_state_dict(sd, strict=True)
    fast = SHIP(fast=True)
    fast.load_state_dict(sd, strict=True)
    exact = SHIP(fast=False)
    exact.load_state_dict(sd, strict=True)
    nets = {"transcription": base.eval(), "hyperleaf fast": fast.eval(),
            "hyperleaf exact": exact.eval()}
    g = torch.Generator().manual_seed(1)
    h, w = args.size
    vis = torch.rand(1, 1, h, w, generator=g)
    ir = torch.rand(1, 1, h, w, generator=g)
    times: dict[str, list[float]] = {k: [] for k in nets}
    outs = {}
    with torch.inference_mode():
        for name, net in nets.items():  # warm-up, and the outputs to compare
            outs[name] = net(vis, ir)
        for _ in range(args.reps):
            for name, net in nets.items():
                times[name].append(_time(lambda net=net: net(vis, ir)))
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = outs["transcription"]
    diff = {k: float((o - ref).abs().max()) for k, o in outs.items()}
    return {"median": med, "times": times, "diff": diff}


def peak_memory_mb(size: tuple[int, int], fast: bool, threads: int) -> float:
    """Peak RSS (MB) of a fresh process that builds SHIP and fuses one random pair."""
    root, (h, w) = str(HERE.parent), size
    code = (
        f"import resource, torch, sys; sys.path.insert(0, {root!r})\n"
        "from hyperleaf.models import SHIP\n"
        f"torch.set_num_threads({threads})\n"
        f"net = SHIP(fast={fast!r}).eval()\n"
        f"x = torch.rand(1, 1, {h}, {w})\n"
        "with torch.inference_mode(): net(x, x)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def table(res: dict, args, mem: dict | None) -> str:
    med = res["median"]
    base = med["transcription"]
    h, w = args.size
    lines = [
        f"SHIP inference, {h}x{w}, CPU, {args.threads} threads, torch {torch.__version__}, "
        f"{platform.machine()}; median of {args.reps} alternating runs; weights: "
        f"{'authors checkpoint' if args.weights else 'random (seed 0)'}.",
        "",
        "| network | median (s) | speed-up vs transcription | max abs diff vs transcription |",
        "|---|---:|---:|---:|",
    ]
    for name, t in med.items():
        lines.append(f"| {name} | {t:.3f} | {base / t:.2f}x | {res['diff'][name]:.2e} |")
    if mem:
        lines += ["", "| peak resident memory, fusing 768x576 (fresh process) | MB |",
                  "|---|---:|"]
        for name, mb in mem.items():
            lines.append(f"| {name} | {mb:.0f} |")
    return "\n".join(lines) + "\n"


def write_readme(body: str) -> None:
    text = README.read_text() if README.exists() else (
        "# Benchmarks\n\nTimings of hyperleaf's hot paths; each section is written by its "
        "script.\n")
    section = f"{SECTION}\n\nWritten by `benchmarks/bench_ship.py --write-readme`.\n\n{body}"
    start = text.find(f"\n{SECTION}\n")
    if start < 0 and text.startswith(f"{SECTION}\n"):
        start = -1
        before, rest = "", text[len(SECTION) + 1:]
    elif start < 0:
        before, rest = text.rstrip("\n") + "\n\n", ""
    else:
        before, rest = text[: start + 1], text[start + 1 + len(SECTION) + 1:]
    nxt = rest.find("\n## ")
    after = rest[nxt + 1:] if nxt >= 0 else ""
    new = before + section + ("\n" + after if after else "")
    fd, tmp = tempfile.mkstemp(dir=README.parent, prefix=".README.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(new)
    os.replace(tmp, README)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="the authors' checkpoint (default: random weights)")
    ap.add_argument("--size", type=int, nargs=2, default=(450, 620), metavar=("H", "W"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="also measure peak memory, 768x576")
    ap.add_argument("--write-readme", action="store_true",
                    help="replace the '## SHIP' section of benchmarks/README.md")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps: expected at least 1")
    res = bench(args)
    mem = None
    if args.memory:
        mem = {f"hyperleaf {'fast' if f else 'exact'}": peak_memory_mb((576, 768), f,
                                                                       args.threads)
               for f in (True, False)}
    body = table(res, args, mem)
    print(body)
    if args.write_readme:
        write_readme(body)
        print(f"wrote the {SECTION} section of {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
