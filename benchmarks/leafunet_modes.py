"""Effect of ``mode="corrected"`` on LEAFUNet's outputs (spec Q1 + Q2 fixed in every HDGFB).

Both modes load the same weights; float64, eval mode, random init (no ImageNet weights) with
inputs in [0, 1], as the spec's "measured here" figures. Prints, and with ``--json`` writes, the
relative max-abs difference ``max|corrected - paper| / max|paper|`` of the logits, the H2FR
value and each level's HDGFB output. ``--results FILE`` writes them as a results file
(``kind: table``; commit, command, configuration, inputs (none: random weights and inputs from
``--seed``), hardware, wall time), which docs/segmentation.md renders (``python -m
hyperleaf.experiments.render``).

    .venv-seg/bin/python benchmarks/leafunet_modes.py --encoder resnet50 --size 256
    .venv-seg/bin/python benchmarks/leafunet_modes.py --results results/leafunet_modes.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import torch

from hyperleaf.atomic import atomic_write_text
from hyperleaf.experiments.report import RESULTS_FORMAT, provenance
from hyperleaf.models import LEAFUNet


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", default="resnet50")
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--results", default=None, help="write a results file (kind: table)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    paper = LEAFUNet(args.classes, encoder=args.encoder).double().eval()
    corrected = LEAFUNet(args.classes, encoder=args.encoder, mode="corrected").double().eval()
    corrected.load_state_dict(paper.state_dict(), strict=True)
    x1 = torch.rand(args.batch, 3, args.size, args.size, dtype=torch.float64)
    x2 = torch.rand(args.batch, 3, args.size, args.size, dtype=torch.float64)

    levels = {}

    def hook(name):
        def fn(module, inputs, output):
            levels.setdefault(name, []).append(output)
        return fn

    for net, tag in ((paper, "paper"), (corrected, "corrected")):
        for i, blk in enumerate(net.hyperbolic_fusion_blocks):
            blk.register_forward_hook(hook(f"{tag}{i}"))
    with torch.no_grad():
        lp, hp = paper(x1, x2)
        lc, hc = corrected(x1, x2)
    result = {
        "encoder": args.encoder, "input": [args.batch, 3, args.size, args.size],
        "dtype": "float64", "logits_rel": rel(lc, lp), "h2fr_paper": float(hp),
        "h2fr_corrected": float(hc), "h2fr_rel": abs(float(hc) - float(hp)) / abs(float(hp)),
        "hdgfb_rel_per_level": [rel(levels[f"corrected{i}"][0], levels[f"paper{i}"][0])
                                for i in range(len(paper.hyperbolic_fusion_blocks))],
    }
    print(json.dumps(result, indent=1))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    if args.results:
        levels_txt = ", ".join(f"{v:.1e}" for v in result["hdgfb_rel_per_level"])
        record = {
            "results_format": RESULTS_FORMAT, "kind": "table",
            "caption": (f"LEAFUNet, encoder {args.encoder}, random init (seed {args.seed}, no "
                        f"ImageNet weights), {args.classes} classes, inputs "
                        f"{args.batch}x3x{args.size}x{args.size} in [0, 1], float64, eval; "
                        "`max|corrected − paper| / max|paper|`."),
            "columns": ["output", "relative change"],
            "rows": [["logits", f"{result['logits_rel']:.1e}"],
                     ["H2FR", f"{result['h2fr_rel']:.1e} ({result['h2fr_paper']:.6f} → "
                              f"{result['h2fr_corrected']:.6f})"],
                     [f"HDGFB output, levels 0..{len(result['hdgfb_rel_per_level']) - 1}",
                      levels_txt]],
            "values": result,
            "config": {"encoder": args.encoder, "classes": args.classes, "size": args.size,
                       "batch": args.batch, "seed": args.seed},
            "wall_seconds": time.perf_counter() - t0,
            **provenance([], shlex.join(["python", *sys.argv])),
        }
        atomic_write_text(args.results, json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
