"""The tables of docs/pansharpening.md: the classical baselines and SHIP with and without LEAF
(several seeds) on held-out Landsat 7 scenes, plus the WV3 patch and the GeoTIFF pair.

Protocol: Landsat 7 scenes 1-8 train, 9-10 test (split by scene). The training runs are
``hyperleaf train --task pansharpen`` commands through the engine (printed, run ``--workers``
at a time, default 1, each OMP_NUM_THREADS=1 under ``nice``); the tables use the functions of
``hyperleaf evaluate --task pansharpen`` (``evaluate_methods``), with the SHIP rows as the mean
and the 95 % Student-t interval over the seeds.

* reduced resolution: scenes 9-10 reduced by Wald's protocol (generic gains), each whole
  reduced scene one image (400x400 PAN grid), Q/Q2n block 32, no cut;
* full resolution: the top-left ``--fr-size`` PAN crops of scenes 9-10 and of the GeoTIFF pair
  (baselines only there: a Landsat-trained SHIP takes 6 bands at ratio 2, the pair has 4 at 4);
* the one WV3 patch of wv3_rr100.h5: baselines only (it is one patch repeated 100 times).

Usage::

    python benchmarks/pansharpen_results.py SHARED_DIR OUT_DIR [--steps 400 --seeds 0,1,2]
        [--phase train|eval|tables|all] [--which baselines|I/N]

``--phase train`` skips runs whose folder already holds a model; ``eval`` writes one
OUT/eval/NAME.json per method (skipping those present; ``--which 0/2`` and ``1/2`` split the
SHIP runs over two processes); ``tables`` prints and writes OUT/tables.md from them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262}  # Student t quantiles 0.975 by degrees of freedom


def _split(shared: Path, out: Path) -> tuple[Path, Path]:
    """Folders of symbolic links: all ten scenes (training data: samples 0-7 train, 8-9
    validate) and scenes 9-10 (the test set of the tables)."""
    src = shared / "data/pansharpening/landsat7"
    folders = []
    for name, scenes in (("landsat7_all", range(1, 11)), ("landsat7_test", (9, 10))):
        d = out / "data" / name
        d.mkdir(parents=True, exist_ok=True)
        for k in scenes:
            for part in ("pan", "ms"):
                link = d / f"{k}_{part}.mat"
                if not link.exists():
                    link.symlink_to(src / f"{k}_{part}.mat")
        folders.append(d)
    return folders[0], folders[1]


def _runs(a) -> list[tuple[str, list[str]]]:
    """The engine's commands: scenes 1-8 (samples 0-7 of the folder) train, scenes 9-10
    (samples 8-9) validate, each whole (--val-crop 400: the reduced scene's side), so the
    final validation record is the RR row; plain SHIP's seeds first, then SHIP + LEAF's."""
    out = []
    for leaf in (False, True):
        for seed in a.seeds:
            name = f"ship{'_leaf' if leaf else ''}_s{seed}"
            cmd = ["hyperleaf", "train", "--task", "pansharpen", "--data",
                   str(a.out / "data/landsat7_all"), "--train-index", "0-7", "--val-index",
                   "8-9", "--val-crop", "400", "--sensor", "landsat7",
                   "--crop", str(a.patch), "--batch-size", str(a.batch_size), "--steps",
                   str(a.steps), "--eval-every", str(a.steps), "--lr", str(a.lr), "--n-feat",
                   str(a.n_feat), "--seed", str(seed), "--threads", "1", "--no-progress",
                   "--out", str(a.out / "runs" / name)]
            if not leaf:
                cmd.append("--no-leaf")
            out.append((name, cmd))
    return out


def train_phase(a) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    todo = [(n, c) for n, c in _runs(a) if not (a.out / "runs" / n / "model.safetensors").is_file()]
    running: list[tuple[str, subprocess.Popen, float]] = []
    times = json.loads((a.out / "wall.json").read_text()) if (a.out / "wall.json").is_file() \
        else {}
    while todo or running:
        while todo and len(running) < a.workers:
            name, cmd = todo.pop(0)
            print("$", " ".join(cmd), flush=True)
            log = open(a.out / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
            running.append((name, subprocess.Popen(["nice", "-n", "10", sys.executable, "-m",
                                                    "hyperleaf", *cmd[1:]], stdout=log,
                                                   stderr=subprocess.STDOUT, env=env),
                            time.perf_counter()))
        time.sleep(2)
        for item in list(running):
            name, proc, t0 = item
            if proc.poll() is not None:
                running.remove(item)
                times[name] = round(time.perf_counter() - t0, 1)
                print(f"{name}: exit {proc.returncode}, {times[name]} s", flush=True)
                (a.out / "wall.json").write_text(json.dumps(times, indent=2))


def _aggregate(tables: dict[str, dict[str, dict[str, float]]], groups: dict[str, list[str]]
               ) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for label, names in groups.items():
        keys = list(tables[names[0]])
        row = {}
        for k in keys:
            v = torch.tensor([tables[n][k] for n in names], dtype=torch.float64)
            if len(v) == 1:
                row[k] = f"{float(v):.4f}"
            else:
                half = T975[len(v) - 1] * float(v.std()) / math.sqrt(len(v))
                row[k] = f"{float(v.mean()):.4f} ± {half:.4f}"
        rows[label] = row
    return rows


def _markdown(rows: dict[str, dict]) -> str:
    from hyperleaf.pansharpen.evaluation import markdown_tables

    plain = {n: r for n, r in rows.items() if not isinstance(next(iter(r.values())), str)}
    text = markdown_tables(plain) if plain else ""
    strs = {n: r for n, r in rows.items() if isinstance(next(iter(r.values())), str)}
    for name, row in strs.items():
        text += f"| {name} | " + " | ".join(row.values()) + " |\n"
    return text


def _test_sets(a):
    """Landsat scenes 9-10: whole Wald-reduced scenes (RR) and --fr-size PAN crops (FR)."""
    from hyperleaf.data import PanCollection
    from hyperleaf.pansharpen.patches import patches

    test = PanCollection(a.out / "data/landsat7_test")
    fs, r = a.fr_size, test.ratio
    rr = patches(test, "LANDSAT7", 10 ** 6)  # each reduced scene whole
    fr = []
    for i in range(len(test)):
        s = {k: v.double() for k, v in test[i].items()}
        fr.append({"pan": s["pan"][:, :fs, :fs], "lms": s["lms"][:, :fs, :fs],
                   "ms": s["ms"][:, :fs // r, :fs // r]})
    return rr, fr, r


def eval_phase(a, which: str) -> None:
    """Evaluate each method (``which``: baselines, or models i/n) into OUT/eval/NAME.json."""
    from hyperleaf.data import PanCollection
    from hyperleaf.pansharpen import METHODS
    from hyperleaf.pansharpen.evaluation import evaluate_methods
    from hyperleaf.runs import load_run

    ev = a.out / "eval"
    ev.mkdir(exist_ok=True)
    rr, fr, r = _test_sets(a)
    if which == "baselines":
        todo: dict = {m: m for m in METHODS}
    else:
        i, n = (int(x) for x in which.split("/"))
        names = [name for name, _ in _runs(a)][i::n]
        todo = {name: load_run(a.out / "runs" / name, task="pansharpen").model for name in names
                if (a.out / "runs" / name / "model.safetensors").is_file()}
    for name, m in todo.items():
        if (ev / f"{name}.json").is_file():
            continue
        t0 = time.perf_counter()
        res = {"Landsat 7 RR": evaluate_methods({name: m}, rr, r, "LANDSAT7")[name],
               "Landsat 7 FR": evaluate_methods({name: m}, fr, r, "LANDSAT7", full=True)[name]}
        if which == "baselines":
            data = a.shared / "data/pansharpening"
            pair = PanCollection(data / "osman")
            s = {k: v.double() for k, v in pair[0].items()}
            f4 = a.fr_size - a.fr_size % pair.ratio
            crop = {"pan": s["pan"][:, :f4, :f4], "lms": s["lms"][:, :f4, :f4],
                    "ms": s["ms"][:, :f4 // pair.ratio, :f4 // pair.ratio]}
            res["GeoTIFF FR"] = evaluate_methods({name: m}, [crop], pair.ratio, None,
                                                 full=True)[name]
            wv3 = PanCollection(data / "wv3_rr100.h5", dtype=torch.float64)
            res["WV3 RR"] = evaluate_methods({name: m}, [wv3[0]], wv3.ratio, "WV3")[name]
        res["seconds"] = round(time.perf_counter() - t0, 1)
        (ev / f"{name}.json").write_text(json.dumps(res, indent=2))
        print(f"{name}: evaluated in {res['seconds']} s", flush=True)


def tables_phase(a) -> None:
    """The Markdown tables from OUT/eval/*.json (SHIP rows: mean ± 95 % t interval)."""
    from hyperleaf.pansharpen import METHODS

    ev = a.out / "eval"
    got = {p.stem: json.loads(p.read_text()) for p in ev.glob("*.json")}
    models = [n for n, _ in _runs(a) if n in got]
    groups = {f"SHIP{' + LEAF' if leaf else ''} ({len(g)} seeds)": g for leaf, g in
              ((False, [n for n in models if "leaf" not in n]),
               (True, [n for n in models if "leaf" in n])) if g}
    report = []
    for title in ("Landsat 7 RR", "Landsat 7 FR", "GeoTIFF FR", "WV3 RR"):
        rows = {m: got[m][title] for m in METHODS if m in got}
        if title.startswith("Landsat"):
            rows.update(_aggregate({n: got[n][title] for n in models}, groups))
        report.append(f"### {title}\n\n" + _markdown(rows))
    seeds = {n: got[n]["Landsat 7 RR"] for n in models}
    report.append("### Landsat 7 RR, each seed\n\n" + _markdown(seeds))
    (a.out / "tables.md").write_text("\n".join(report))
    print("\n".join(report))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shared", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--phase", default="all",
                    help="train, eval (--which), tables, or all (train, eval, tables)")
    ap.add_argument("--which", default="baselines",
                    help="eval: 'baselines' or 'I/N' (the I-th of N shares of the SHIP runs)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n-feat", type=int, default=8)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="training processes at once")
    ap.add_argument("--fr-size", type=int, default=384,
                    help="PAN side of the full-resolution test crops")
    a = ap.parse_args()
    a.seeds = [int(s) for s in a.seeds.split(",")]
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    _split(a.shared, a.out)
    if a.phase in ("train", "all"):
        train_phase(a)
    if a.phase == "eval":
        eval_phase(a, a.which)
    if a.phase == "all":
        eval_phase(a, "baselines")
        eval_phase(a, "0/1")
    if a.phase in ("tables", "all"):
        tables_phase(a)


if __name__ == "__main__":
    main()
