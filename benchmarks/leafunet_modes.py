"""Effect of ``mode="corrected"`` on LEAFUNet's outputs (spec Q1 + Q2 fixed in every HDGFB).

Both modes load the same weights; float64, eval mode, random init (no ImageNet weights) with
inputs in [0, 1], as the spec's "measured here" figures. Prints, and with ``--json`` writes, the
relative max-abs difference ``max|corrected - paper| / max|paper|`` of the logits, the H2FR
value and each level's HDGFB output.

    .venv-seg/bin/python benchmarks/leafunet_modes.py --encoder resnet50 --size 256
"""

from __future__ import annotations

import argparse
import json

import torch

from hyperleaf.atomic import atomic_write_text
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
    args = ap.parse_args(argv)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
