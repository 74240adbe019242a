"""The tables of docs/pansharpening.md: baselines and SHIP (with and without LEAF) on Landsat 7
(Wald-reduced, scenes 1-8 train, 9-10 test; full resolution on 9-10) and the WV3 patch.

Usage: python benchmarks/pansharpen_results.py SHARED_DIR OUT_DIR [--steps N] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    from hyperleaf.data import PanCollection
    from hyperleaf.pansharpen import METHODS
    from hyperleaf.train.pansharpen import (
        evaluate_methods,
        load_pansharpen,
        markdown_tables,
        patches,
        train_pansharpen,
    )

    ap = argparse.ArgumentParser()
    ap.add_argument("shared")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-feat", type=int, default=4)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--fr-size", type=int, default=384, help="PAN side of the full-resolution "
                    "test crops")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(a.shared) / "data/pansharpening"
    report = []

    ls = PanCollection(data / "landsat7")
    test_idx = [8, 9]
    test_rr = patches(ls, "LANDSAT7", a.patch, test_idx)
    r, fs = ls.ratio, a.fr_size
    test_fr = []
    for i in test_idx:
        s = {k: v.double() for k, v in ls[i].items()}
        test_fr.append({"pan": s["pan"][:, :fs, :fs], "lms": s["lms"][:, :fs, :fs],
                        "ms": s["ms"][:, :fs // r, :fs // r]})
    methods: dict = {m: m for m in METHODS}
    runs = {}
    for leaf in (False, True):
        for seed in [int(s) for s in a.seeds.split(",")]:
            name = f"SHIP{'+LEAF' if leaf else ''} seed {seed}"
            t = time.perf_counter()
            res = train_pansharpen(ls, out / name.replace(" ", "_").replace("+", "_"),
                                   steps=a.steps, batch_size=a.batch_size, lr=1e-3, seed=seed,
                                   leaf=leaf, n_feat=a.n_feat, patch=a.patch, sensor="LANDSAT7",
                                   train_samples=list(range(8)), log=None)
            runs[name] = {"seconds": round(time.perf_counter() - t, 1),
                          "final_l1": res["final_l1"]}
            methods[name] = load_pansharpen(res["out"])[0]
            print(name, runs[name], flush=True)
    rr = evaluate_methods(methods, test_rr, ls.ratio, "LANDSAT7")
    report.append("### Landsat 7, reduced resolution (Wald), test scenes 9-10 "
                  f"({len(test_rr)} patches of {a.patch}x{a.patch}, block {a.patch} for Q/Q2n)\n\n" + markdown_tables(rr))
    fr = evaluate_methods(methods, test_fr, ls.ratio, "LANDSAT7", full=True)
    report.append(f"### Landsat 7, full resolution, test scenes 9-10 ({fs}x{fs} PAN crops)\n\n"
                  + markdown_tables(fr))
    wv3 = PanCollection(data / "wv3_rr100.h5", dtype=torch.float64)
    one = [{k: v.double() for k, v in wv3[0].items()}]
    report.append("### WorldView-3, the one patch of wv3_rr100.h5 (baselines only)\n\n"
                  + markdown_tables(evaluate_methods({m: m for m in METHODS}, one, 4, "WV3")))
    (out / "tables.md").write_text("\n".join(report))
    (out / "runs.json").write_text(json.dumps(runs, indent=2))
    print("\n".join(report))
    print(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
