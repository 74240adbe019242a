"""Short CPU training runs of LEAFUNet on the open MS brain-MRI slices (shared/data/open_ms),
with and without H2FR / HDGFB, Dice of the lesion class on the held-out patient.

Not a benchmark of speed: a small real-data experiment for docs/segmentation.md.

* data: ``slices/{flair,t1,t2,t1post,label}``; x1 = FLAIR + T1, x2 = T2 + T1post (2 channels
  each); patient p07 trains, p19 is held out (all its slices);
* training: random 96x96 crops (half of them centred on a lesion pixel, since lesions are ~0.5 %
  of the pixels), batch 4, the authors' loss CE + 0.5(Dice + 1.2 Focal) + h2fr_weight H2FR,
  AdamW (wd 0.01), gradient clipping 1.0, cosine decay to lr/10 over the run, seed 0;
* network: LEAFUNet(num_classes=2, encoder="resnet18", in_channels=(2, 2), feature_dim 128,
  HDGFB width 128, deep-fusion MLP 512) -- smaller than the authors' ResNet-50 for 2 CPU cores;
* evaluation: eval mode, the centre 192x160 crop of every held-out slice; lesion Dice over all
  held-out pixels, mIoU and OA (hyperleaf.metrics.segmentation).

    .venv-seg/bin/python benchmarks/leafunet_openms.py --data ../shared/data/open_ms/slices \\
        --variant full --steps 300 --out runs/openms_full.json

Needs the seg extra (``make venv-seg``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time

import numpy as np
import torch

from hyperleaf.atomic import atomic_write_text
from hyperleaf.data.segmentation import SegmentationFolder, group_modalities
from hyperleaf.losses import LeafSegmentationLoss
from hyperleaf.metrics.segmentation import SegmentationMetrics
from hyperleaf.models import LEAFUNet

VARIANTS = {
    "full": dict(hdgfb=True, h2fr=0.5),
    "no-h2fr": dict(hdgfb=True, h2fr=0.0),
    "no-hdgfb": dict(hdgfb=False, h2fr=0.5),
}
MODALITIES = ["flair", "t1", "t2", "t1post"]
GROUPS = [[0, 1], [2, 3]]


def load(ds: SegmentationFolder, patient: str):
    xs, ys = [], []
    for i, name in enumerate(ds.names):
        if name.startswith(patient):
            mods, lab = ds[i]
            xs.append(torch.cat(mods, 0))
            ys.append(lab)
    return torch.stack(xs), torch.stack(ys)


def crops(x, y, n, size, rng):
    B, _, H, W = x.shape
    out_x, out_y = [], []
    for k in range(n):
        i = rng.randrange(B)
        lesion = (y[i] > 0).nonzero()
        if k % 2 == 0 and len(lesion):
            cy, cx = lesion[rng.randrange(len(lesion))].tolist()
            top = min(max(cy - size // 2, 0), H - size)
            left = min(max(cx - size // 2, 0), W - size)
        else:
            top, left = rng.randrange(H - size + 1), rng.randrange(W - size + 1)
        out_x.append(x[i, :, top:top + size, left:left + size])
        out_y.append(y[i, top:top + size, left:left + size])
    return torch.stack(out_x), torch.stack(out_y)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="full")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    v = VARIANTS[args.variant]

    ds = SegmentationFolder(args.data, modalities=MODALITIES, num_classes=2, check="names")
    xtr, ytr = load(ds, "p07")
    xte, yte = load(ds, "p19")
    net = LEAFUNet(2, encoder="resnet18", in_channels=(2, 2), feature_dim=128, hdgfb=v["hdgfb"],
                   hdgfb_hidden=128, mlp_dim=512)
    loss_fn = LeafSegmentationLoss(h2fr=v["h2fr"])
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps,
                                                       eta_min=args.lr / 10)
    rng = random.Random(0)
    t0 = time.time()
    log = []
    net.train()
    for step in range(args.steps):
        xb, yb = crops(xtr, ytr, args.batch, args.crop, rng)
        x1, x2 = group_modalities(list(xb.split(1, dim=1)), GROUPS, channel_dim=1)
        logits, h2fr = net(x1, x2)
        total, parts = loss_fn(logits, yb, h2fr)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == args.steps - 1:
            rec = {"step": step, "loss": total.item(), **{k: v.item() for k, v in parts.items()},
                   "s": round(time.time() - t0, 1)}
            log.append(rec)
            print(json.dumps(rec), flush=True)
    net.eval()
    metrics = SegmentationMetrics(2)
    H, W = xte.shape[2:]
    top, left = (H - 192) // 2, (W - 160) // 2
    with torch.no_grad():
        for i in range(0, len(xte), 8):
            xb = xte[i:i + 8, :, top:top + 192, left:left + 160]
            x1, x2 = group_modalities(list(xb.split(1, dim=1)), GROUPS, channel_dim=1)
            metrics.update(net(x1, x2)[0].argmax(1), yte[i:i + 8, top:top + 192, left:left + 160])
    r = metrics.compute()
    result = {"variant": args.variant, "steps": args.steps, "lr": args.lr, "batch": args.batch,
              "crop": args.crop, "lesion_dice": r["dice"][1], "lesion_iou": r["iou"][1],
              "miou": r["miou"], "oa": r["oa"], "train_seconds": round(time.time() - t0, 1),
              "log": log, "command": " ".join(sys.argv)}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "log"}))
    return 0 if math.isfinite(result["lesion_dice"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
