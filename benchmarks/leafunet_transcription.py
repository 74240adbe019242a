"""LEAFUNet against the independent transcription of the LEAF authors' forward, as a results file.

The measurements of ``tests/test_leafunet.py`` (which asserts them <= 1e-10), written down:
with the same randomised weights (``tests/segtools.randomize``: LN/BN weights and biases, BN
statistics and scalars off their defaults), float64, inputs in [0, 1], the relative error
``max|hyperleaf - transcription| / max|transcription|`` (``tests/segtools.rel_err``) of

* eval mode, ResNet-50, 8 classes, 2x3x64x64: the logits and H2FR;
* train mode (every dropout p = 0), ResNet-18, 3 classes, 2x3x64x64, the full training loss
  (``LeafSegmentationLoss``): the logits, H2FR, the loss, every parameter gradient (the largest
  over the parameters; the two key biases of each ``mbafusion``, whose exact gradient is 0,
  reported apart as their largest gradient over the largest gradient of all), the BatchNorm
  running buffers after the step, and whether the parameters without a gradient are the same
  set on both sides and equal to spec §4.13's.

Writes ``results/leafunet_transcription.json`` (``kind: table``; commit, command,
configuration, inputs (none: seeded random weights and inputs), hardware, wall time), which
docs/segmentation.md renders. Needs segmentation-models-pytorch (``make venv-seg``)::

    .venv-seg/bin/python benchmarks/leafunet_transcription.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hyperleaf.experiments.report import RESULTS_FORMAT, write_results  # noqa: E402
from hyperleaf.models import LEAFUNet  # noqa: E402
from tests.segtools import (  # noqa: E402
    NO_GRAD_PREFIXES,
    eval_against_transcription,
    randomize,
    rel_err,
    train_step_against_transcription,
)


def eval_errors() -> dict:
    """Eval mode, the WHU configuration (ResNet-50, 8 classes, c = 0.1)."""
    torch.manual_seed(0)
    net = randomize(LEAFUNet(num_classes=8), seed=1).double().eval()
    r = eval_against_transcription(net, seed=2)
    return {"logits": rel_err(r["logits"], r["ref_logits"]),
            "h2fr": rel_err(r["geom"], r["ref_geom"])}


def train_errors() -> dict:
    """Train mode, dropout 0, ResNet-18, 3 classes, the full training loss."""
    torch.manual_seed(0)
    net = randomize(LEAFUNet(num_classes=3, encoder="resnet18"), seed=10).double()
    r = train_step_against_transcription(net, seed=3, num_classes=3)
    params, buffers = r["params"], r["buffers"]
    logits, geom, loss = r["logits"], r["geom"], r["loss"]
    ref_logits, ref_geom, ref_loss = r["ref_logits"], r["ref_geom"], r["ref_loss"]
    scale = max(float(p.grad.abs().max()) for p in net.parameters() if p.grad is not None)
    grads, key_bias = [], []
    for k, p in net.named_parameters():
        if p.grad is None or params[k].grad is None:
            continue
        if ".key_x.bias" in k or ".key_y.bias" in k:
            key_bias.append(max(float(p.grad.abs().max()), float(params[k].grad.abs().max()))
                            / scale)
        else:
            grads.append(rel_err(p.grad, params[k].grad))
    none_net = {k for k, p in net.named_parameters() if p.grad is None}
    none_ref = {k for k in params if params[k].grad is None}
    spec = {k for k, _ in net.named_parameters() if k.startswith(NO_GRAD_PREFIXES)}
    return {
        "logits": rel_err(logits.detach(), ref_logits.detach()),
        "h2fr": rel_err(geom.detach(), ref_geom.detach()),
        "loss": rel_err(loss.detach(), ref_loss.detach()),
        "gradients_max": max(grads), "gradients_count": len(grads),
        "key_bias_gradient_over_largest": max(key_bias) if key_bias else 0.0,
        "buffers_max": max(rel_err(b.to(torch.float64), buffers[k].to(torch.float64))
                           for k, b in net.named_buffers()),
        "no_grad_same_sets": none_net == none_ref, "no_grad_equals_spec": none_net == spec,
        "no_grad_count": len(none_net),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/leafunet_transcription.json")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ev, tr = eval_errors(), train_errors()
    no_grad = ("identical sets = spec §4.13's" if tr["no_grad_same_sets"]
               and tr["no_grad_equals_spec"] else
               f"same sets: {tr['no_grad_same_sets']}, spec §4.13's: {tr['no_grad_equals_spec']}")
    rows = [
        ["eval: logits, H2FR", "ResNet-50, 8 classes, 2x3x64x64",
         f"{ev['logits']:.1e}, {ev['h2fr']:.1e}"],
        ["train, dropout 0: logits", "ResNet-18, 3 classes, 2x3x64x64", f"{tr['logits']:.1e}"],
        ["train: H2FR, full loss", "same", f"{tr['h2fr']:.1e}, {tr['loss']:.1e}"],
        [f"train: every parameter gradient of the full loss ({tr['gradients_count']}; "
         "key biases apart)", "same", f"{tr['gradients_max']:.1e}"],
        ["train: `mbafusion` key biases, largest gradient / largest of all gradients", "same",
         f"{tr['key_bias_gradient_over_largest']:.1e}"],
        ["train: BatchNorm running buffers after the step", "same", f"{tr['buffers_max']:.1e}"],
        [f"parameters with no gradient ({tr['no_grad_count']})", "same", no_grad],
    ]
    record = {
        "results_format": RESULTS_FORMAT, "kind": "table",
        "caption": ("LEAFUNet against `tests/leaf_transcription.py`, the same randomised "
                    "weights, float64, inputs in [0, 1]: max relative error "
                    "`max|hyperleaf − transcription| / max|transcription|` (tests/test_leafunet.py "
                    "asserts each <= 1e-10)."),
        "columns": ["check", "configuration", "measured max relative error"],
        "rows": rows, "values": {"eval": ev, "train": tr},
        "config": {"dtype": "float64", "eval": {"encoder": "resnet50", "classes": 8,
                                                "input": [2, 3, 64, 64], "seeds": [0, 1, 2]},
                   "train": {"encoder": "resnet18", "classes": 3, "input": [2, 3, 64, 64],
                             "seeds": [0, 10, 3], "dropout": 0.0},
                   "threads": args.threads},
    }
    write_results(args.out, record, t0)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
