"""CPU training runs of LEAFUNet (2-D) and LEAFUNet3D on the open MS brain MRI
(shared/data/open_ms), with and without H2FR / HDGFB; lesion Dice on the held-out patient.

Not a benchmark of speed: a small real-data experiment for docs/segmentation.md.

* data: the four sequences (FLAIR, T1, T2, T1post) and the lesion masks of two patients; x1 =
  FLAIR + T1, x2 = T2 + T1post (2 channels each). Split by subject: ``--train p07 --test p19`` or
  the reverse (two folds). 2-D: ``slices/`` read as the generic layout; 3-D: ``volumes/``
  (``pNN_FLAIR.nii.gz`` ... ``pNN_GT.nii.gz``) read as it is, the flat layout of
  ``SegmentationFolder`` (each volume scaled to [0, 1] by its maximum).
* sampling: lesions are ~0.5 % of the voxels, so a crop is centred on a random lesion voxel
  (uniform over the training subject's lesion voxels, shifted by up to a quarter crop) with
  probability ``--lesion-frac`` (0.5), otherwise it is a uniform random crop whose centre voxel
  is inside the brain (non-zero FLAIR).
* training: the authors' loss CE + 0.5(Dice + 1.2 Focal) + h2fr_weight H2FR (focal summed over
  classes), AdamW (wd 0.01), gradient clipping 1.0, cosine decay per step from ``--lr`` to lr/10,
  ``--seed`` (default 0). Variants: ``full`` (HDGFB, H2FR weight 0.5), ``no-h2fr`` (weight 0), ``no-hdgfb`` (every
  HDGFB replaced by the identity, H2FR 0.5), ``no-leaf`` (neither).
* networks: 2-D ``LEAFUNet(2, encoder="resnet18", in_channels=(2, 2), feature_dim=128,
  hdgfb_hidden=128, mlp_dim=512)`` in the authors' ``mode="paper"``; 3-D ``LEAFUNet3D(2,
  in_channels=(2, 2), widths=(8, 16, 32), volume=crop^3, feature_dim=64, hdgfb_hidden=64,
  heads=2, mlp_dim=128, mode="corrected")`` (in paper mode H2FR is a constant, spec Q11).
* evaluation: eval mode, the held-out subject tiled into non-overlapping crop-sized tiles (the
  training context; zero padding to a multiple of the crop, i.e. background), every 2-D slice
  of the ``slices/`` set or the whole 3-D volume (tiles with no brain voxel are predicted
  background without the network, a brain mask); Dice and IoU of the lesion class over all
  held-out pixels/voxels, mIoU and OA (hyperleaf.metrics.segmentation).

    .venv-seg/bin/python benchmarks/leafunet_openms.py --data ../shared/data/open_ms \\
        --dim 2 --variant full --train p19 --test p07 --steps 250 --out runs/ms2d_full.json

Needs the seg extra (``make venv-seg``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hyperleaf.atomic import atomic_write_text
from hyperleaf.data.segmentation import SegmentationFolder, group_modalities
from hyperleaf.losses import LeafSegmentationLoss
from hyperleaf.metrics.segmentation import SegmentationMetrics

VARIANTS = {
    "full": dict(hdgfb=True, h2fr=0.5),
    "no-h2fr": dict(hdgfb=True, h2fr=0.0),
    "no-hdgfb": dict(hdgfb=False, h2fr=0.5),
    "no-leaf": dict(hdgfb=False, h2fr=0.0),
}
MODALITIES = ["flair", "t1", "t2", "t1post"]
GROUPS = [[0, 1], [2, 3]]


def load_subject(ds: SegmentationFolder, patient: str):
    """Stack the items of one patient: ``(N, 4, *spatial)`` float, ``(N, *spatial)`` int64."""
    xs, ys = [], []
    for i, name in enumerate(ds.names):
        if name.split("_")[0] == patient:
            mods, lab = ds[i]
            xs.append(torch.cat(mods, 0))
            ys.append(lab)
    if not xs:
        raise SystemExit(f"error: no items of patient {patient} in {ds.root}")
    return torch.stack(xs), torch.stack(ys)


def sample_crops(x, y, n, size, lesion_frac, rng, lesion, brain):
    """``n`` crops of edge ``size`` (module docstring's sampling) from ``x`` ``(N, C, *S)``;
    ``lesion``, ``brain``: the ``(P, 1 + dims)`` positions (item index first) to centre on."""
    spatial = x.shape[2:]
    out_x, out_y = [], []
    for _ in range(n):
        pool = lesion if (len(lesion) and rng.random() < lesion_frac) else brain
        centre = pool[rng.randrange(len(pool))].tolist()
        i, pos = centre[0], centre[1:]
        jitter = size // 4 if pool is lesion else 0
        starts = [min(max(p - size // 2 + rng.randint(-jitter, jitter), 0), s - size)
                  for p, s in zip(pos, spatial)]
        sl = tuple(slice(a, a + size) for a in starts)
        out_x.append(x[(i, slice(None), *sl)])
        out_y.append(y[(i, *sl)])
    return torch.stack(out_x), torch.stack(out_y)


def tiles(x, y, size):
    """Pad ``x`` ``(N, C, *S)`` / ``y`` with zeros to multiples of ``size`` and cut them into
    non-overlapping tiles: ``(T, C, size, ...)``, ``(T, size, ...)``."""
    spatial = x.shape[2:]
    pad = [(-s) % size for s in spatial]
    flat = [v for p in reversed(pad) for v in (0, p)]
    xp, yp = F.pad(x, flat), F.pad(y, flat)
    for d in range(len(spatial)):
        xp = xp.unfold(2 + d, size, size)
        yp = yp.unfold(1 + d, size, size)
    dims = len(spatial)
    # (N, C, n1.., size..) -> (N * n1.., C, size..)
    xp = xp.permute(0, *range(2, 2 + dims), 1, *range(2 + dims, 2 + 2 * dims))
    xp = xp.reshape(-1, x.shape[1], *([size] * dims))
    yp = yp.reshape(-1, *([size] * dims))
    return xp, yp


def build(dim: int, variant: dict, crop: int):
    if dim == 2:
        from hyperleaf.models import LEAFUNet

        return LEAFUNet(2, encoder="resnet18", in_channels=(2, 2), feature_dim=128,
                        hdgfb=variant["hdgfb"], hdgfb_hidden=128, mlp_dim=512)
    from hyperleaf.models import LEAFUNet3D

    return LEAFUNet3D(2, in_channels=(2, 2), widths=(8, 16, 32), volume=(crop,) * 3,
                      feature_dim=64, hdgfb=variant["hdgfb"], hdgfb_hidden=64, heads=2,
                      mlp_dim=128, mode="corrected")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="the open_ms folder (slices/, volumes/)")
    ap.add_argument("--dim", type=int, choices=(2, 3), default=2)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="full")
    ap.add_argument("--train", default="p19")
    ap.add_argument("--test", default="p07")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=None, help="default 8 (2-D), 2 (3-D)")
    ap.add_argument("--crop", type=int, default=None, help="default 64 (2-D), 32 (3-D)")
    ap.add_argument("--lesion-frac", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    batch = args.batch or (8 if args.dim == 2 else 2)
    crop = args.crop or (64 if args.dim == 2 else 32)
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    v = VARIANTS[args.variant]
    root = Path(args.data)

    t_load = time.time()
    # 3-D: the flat layout (pNN_FLAIR.nii.gz, ..., pNN_GT.nii.gz); modality names up to case
    ds = SegmentationFolder(root / ("slices" if args.dim == 2 else "volumes"),
                            modalities=MODALITIES, num_classes=2, check="names")
    xtr, ytr = load_subject(ds, args.train)
    xte, yte = load_subject(ds, args.test)
    t_load = time.time() - t_load

    net = build(args.dim, v, crop)
    loss_fn = LeafSegmentationLoss(h2fr=v["h2fr"])
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps,
                                                       eta_min=args.lr / 10)
    rng = random.Random(args.seed)
    lesion, brain = (ytr > 0).nonzero(), (xtr[:, 0] > 0).nonzero()
    t0 = time.time()
    log = []
    net.train()
    for step in range(args.steps):
        xb, yb = sample_crops(xtr, ytr, batch, crop, args.lesion_frac, rng, lesion, brain)
        x1, x2 = group_modalities(list(xb.split(1, dim=1)), GROUPS, channel_dim=1)
        logits, h2fr = net(x1, x2)
        total, parts = loss_fn(logits, yb, h2fr)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if not math.isfinite(total.item()):
            print(json.dumps({"step": step, "error": "non-finite loss"}))
            return 1
        if step % 25 == 0 or step == args.steps - 1:
            rec = {"step": step, "loss": round(total.item(), 5),
                   **{k: round(p.item(), 5) for k, p in parts.items()},
                   "s": round(time.time() - t0, 1)}
            log.append(rec)
            print(json.dumps(rec), flush=True)
    train_s = time.time() - t0

    t1 = time.time()
    net.eval()
    metrics = SegmentationMetrics(2)
    tx, ty = tiles(xte, yte, crop)
    # Tiles without a brain voxel (all four sequences 0) are background by the brain mask: they
    # count as predicted 0 (their labels are 0) and are not run through the network.
    inside = tx.flatten(1).amax(1) > 0
    outside_labels = ty[~inside]
    if outside_labels.numel():
        metrics.update(torch.zeros_like(outside_labels), outside_labels)
    tx, ty = tx[inside], ty[inside]
    eval_batch = 16 if args.dim == 2 else 4
    with torch.no_grad():
        for i in range(0, len(tx), eval_batch):
            xb = tx[i:i + eval_batch]
            x1, x2 = group_modalities(list(xb.split(1, dim=1)), GROUPS, channel_dim=1)
            metrics.update(net(x1, x2)[0].argmax(1), ty[i:i + eval_batch])
    r = metrics.compute()
    eval_s = time.time() - t1
    result = {"dim": args.dim, "variant": args.variant, "train": args.train, "test": args.test,
              "steps": args.steps, "lr": args.lr, "batch": batch, "crop": crop,
              "lesion_frac": args.lesion_frac, "seed": args.seed,
              "params": sum(p.numel() for p in net.parameters()),
              "train_lesion_voxels": int((ytr > 0).sum()),
              "test_lesion_voxels": int((yte > 0).sum()),
              "eval_tiles": int(inside.sum()), "skipped_tiles": int((~inside).sum()),
              "lesion_dice": r["dice"][1], "lesion_iou": r["iou"][1], "miou": r["miou"],
              "oa": r["oa"], "load_seconds": round(t_load, 1),
              "train_seconds": round(train_s, 1), "eval_seconds": round(eval_s, 1),
              "log": log, "command": " ".join(sys.argv)}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: val for k, val in result.items() if k != "log"}))
    return 0 if math.isfinite(result["lesion_dice"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
