"""The tables of docs/pansharpening.md: the classical baselines and SHIP with and without LEAF
(several seeds) on held-out Landsat 7 scenes, plus the WV3 patch and the GeoTIFF pair.

Protocol: Landsat 7 scenes 1-8 train, 9-10 test (split by scene). The training runs are
``hyperleaf train --task pansharpen`` commands (printed, run two at a time, each
OMP_NUM_THREADS=1 under ``nice``); the tables use the functions of
``hyperleaf evaluate --task pansharpen`` (``evaluate_methods``), with the SHIP rows as the mean
and the 95 % Student-t interval over the seeds.

* reduced resolution: scenes 9-10 reduced by Wald's protocol (generic gains), each whole
  reduced scene one image (400x400 PAN grid), Q/Q2n block 32, no cut;
* full resolution: the top-left ``--fr-size`` PAN crops of scenes 9-10 and of the GeoTIFF pair
  (baselines only there: a Landsat-trained SHIP takes 6 bands at ratio 2, the pair has 4 at 4);
* the one WV3 patch of wv3_rr100.h5: baselines only (it is one patch repeated 100 times).

Usage::

    python benchmarks/pansharpen_results.py SHARED_DIR OUT_DIR [--steps 400 --seeds 0,1,2]
        [--phase train|tables|all]

``--phase train`` skips runs whose folder already holds a model; ``tables`` only evaluates.
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
    """Folders of symbolic links: scenes 1-8 (train) and 9-10 (test)."""
    src = shared / "data/pansharpening/landsat7"
    folders = []
    for name, scenes in (("landsat7_train", range(1, 9)), ("landsat7_test", (9, 10))):
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
    out = []
    for seed in a.seeds:  # interleaved: an interrupted set still has both variants
        for leaf in (False, True):
            name = f"ship{'_leaf' if leaf else ''}_s{seed}"
            cmd = ["hyperleaf", "train", "--task", "pansharpen", "--data",
                   str(a.out / "data/landsat7_train"), "--sensor", "landsat7",
                   "--crop", str(a.patch), "--batch-size", str(a.batch_size), "--steps",
                   str(a.steps), "--lr", str(a.lr), "--n-feat", str(a.n_feat), "--seed",
                   str(seed), "--threads", "1", "--out", str(a.out / "runs" / name)]
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
    from hyperleaf.train.pansharpen import markdown_tables

    plain = {n: r for n, r in rows.items() if not isinstance(next(iter(r.values())), str)}
    text = markdown_tables(plain) if plain else ""
    strs = {n: r for n, r in rows.items() if isinstance(next(iter(r.values())), str)}
    for name, row in strs.items():
        text += f"| {name} | " + " | ".join(row.values()) + " |\n"
    return text


def tables_phase(a) -> None:
    from hyperleaf.data import PanCollection
    from hyperleaf.pansharpen import METHODS
    from hyperleaf.train.pansharpen import evaluate_methods, load_pansharpen, patches

    data = a.shared / "data/pansharpening"
    test = PanCollection(a.out / "data/landsat7_test")
    base = {m: m for m in METHODS}
    models = {n: load_pansharpen(a.out / "runs" / n)[0] for n, _ in _runs(a)
              if (a.out / "runs" / n / "model.safetensors").is_file()}
    groups = {f"SHIP{' + LEAF' if leaf else ''} ({len(g)} seeds)": g for leaf, g in
              ((False, [n for n in models if "leaf" not in n]),
               (True, [n for n in models if "leaf" in n])) if g}
    fs, r = a.fr_size, test.ratio
    rr = patches(test, "LANDSAT7", 10 ** 6)  # each reduced scene whole
    fr = []
    for i in range(len(test)):
        s = {k: v.double() for k, v in test[i].items()}
        fr.append({"pan": s["pan"][:, :fs, :fs], "lms": s["lms"][:, :fs, :fs],
                   "ms": s["ms"][:, :fs // r, :fs // r]})
    report, raw = [], {}
    for title, samples, full in (("Landsat 7 RR", rr, False), ("Landsat 7 FR", fr, True)):
        t0 = time.perf_counter()
        table = evaluate_methods({**base, **models}, samples, r, "LANDSAT7", full=full)
        raw[title] = table
        rows = {n: table[n] for n in base}
        rows.update(_aggregate(table, groups))
        report.append(f"### {title}\n\n" + _markdown(rows))
        print(f"{title}: {time.perf_counter() - t0:.0f} s", flush=True)
    pair = PanCollection(data / "osman")
    s = {k: v.double() for k, v in pair[0].items()}
    fs4 = fs - fs % pair.ratio
    crop = [{"pan": s["pan"][:, :fs4, :fs4], "lms": s["lms"][:, :fs4, :fs4],
             "ms": s["ms"][:, :fs4 // pair.ratio, :fs4 // pair.ratio]}]
    raw["GeoTIFF FR"] = evaluate_methods(base, crop, pair.ratio, None, full=True)
    report.append("### GeoTIFF pair FR (baselines)\n\n" + _markdown(raw["GeoTIFF FR"]))
    wv3 = PanCollection(data / "wv3_rr100.h5", dtype=torch.float64)
    raw["WV3 RR"] = evaluate_methods(base, [wv3[0]], wv3.ratio, "WV3")
    report.append("### WV3 patch RR (ONE patch; baselines)\n\n" + _markdown(raw["WV3 RR"]))
    (a.out / "tables.md").write_text("\n".join(report))
    (a.out / "tables.json").write_text(json.dumps(raw, indent=2))
    print("\n".join(report))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shared", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--phase", choices=("train", "tables", "all"), default="all")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n-feat", type=int, default=8)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="training processes at once")
    ap.add_argument("--fr-size", type=int, default=384,
                    help="PAN side of the full-resolution test crops")
    a = ap.parse_args()
    a.seeds = [int(s) for s in a.seeds.split(",")]
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    _split(a.shared, a.out)
    if a.phase in ("train", "all"):
        train_phase(a)
    if a.phase in ("tables", "all"):
        tables_phase(a)


if __name__ == "__main__":
    main()
