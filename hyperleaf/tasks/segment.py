"""``task="segment"``: LEAFSegNet trained with cross-entropy + H2FR on the synthetic
two-modality segmentation set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hyperleaf.distributed import gather_levels
from hyperleaf.models.registry import create_model
from hyperleaf.tasks.base import Task, register_task
from hyperleaf.tasks.common import val_batches

__all__ = ["SegmentTask", "SegmentObjective", "build_segment_objective", "evaluate_segment"]


class SegmentObjective(nn.Module):
    """``forward(vis, ir, mask) -> (total, parts, logits)``; H2FR on the union batch of all
    ranks while training (as for fusion)."""

    def __init__(self, net: nn.Module, h2fr_weight: float = 0.1, leaf: bool = True):
        super().__init__()
        self.net, self.h2fr_weight, self.leaf = net, float(h2fr_weight), bool(leaf)
        self.head = net.head if leaf else None

    def forward(self, vis: Tensor, ir: Tensor, mask: Tensor):
        logits, points = self.net(vis, ir, return_points=True)
        ce = F.cross_entropy(logits, mask)
        parts = {"seg": ce.detach()}
        total = ce
        if self.leaf:
            if self.training:
                points = gather_levels(points)
            h = self.net.h2fr_loss(points)
            parts["h2fr"] = h.detach()
            total = total + self.h2fr_weight * h
        return total, parts, logits


def build_segment_objective(cfg: Any) -> SegmentObjective:
    """LEAFSegNet of width ``seg_width`` (levels w, 2w, 4w) and its objective."""
    w = cfg.seg_width
    net = create_model("leafseg", num_classes=cfg.num_classes, widths=(w, 2 * w, 4 * w),
                       ball_dim=cfg.ball_dim, c=cfg.curvature, learn_c=cfg.learn_curvature,
                       clip_r=cfg.clip_r, h2fr_mode=cfg.h2fr_mode, h2fr_core=cfg.h2fr_core,
                       hdgfb_mode=cfg.hdgfb_mode, hdgfb_hidden=cfg.hdgfb_hidden)
    return SegmentObjective(net, cfg.h2fr_weight, leaf=cfg.leaf)


@torch.no_grad()
def evaluate_segment(objective: SegmentObjective, val_set, device: torch.device,
                     num_classes: int, samples_dir: Path | None = None) -> dict[str, float]:
    """Validation cross-entropy, mIoU and pixel accuracy; predicted label maps (scaled to
    [0, 1]) written to ``samples_dir`` if given."""
    from hyperleaf import io as hio
    from hyperleaf.train.losses import confusion_matrix, miou  # until metrics.segmentation

    objective.eval()
    k = num_classes
    conf = torch.zeros(k, k, dtype=torch.int64)
    loss_sum, n = 0.0, 0
    for names, batch in val_batches(val_set):
        vis, ir, mask = (batch[x].to(device) for x in ("vis", "ir", "mask"))
        total, parts, logits = objective(vis, ir, mask)
        loss_sum += float(parts["seg"]) * vis.shape[0]
        pred = logits.argmax(1)
        conf += confusion_matrix(pred.cpu(), mask.cpu(), k)
        n += vis.shape[0]
        if samples_dir is not None:
            samples_dir.mkdir(parents=True, exist_ok=True)
            for name, p in zip(names, pred, strict=False):
                hio.write_png(samples_dir / f"{name}.png", (p.float() / (k - 1)).cpu().numpy())
    acc = float(conf.diag().sum()) / max(1, int(conf.sum()))
    return {"loss": loss_sum / n, "miou": miou(conf), "pixel_acc": acc}


@register_task("segment")
class SegmentTask(Task):
    """Two-modality segmentation (see the module docstring). Batches hold ``vis``, ``ir`` and
    the label map ``mask``."""

    inputs = ("vis", "ir", "mask")

    def check_config(self, cfg: Any) -> None:
        if cfg.data is not None:
            raise ValueError("data: the segment task trains on the embedded synthetic "
                             "segmentation set only")

    def datasets(self, cfg: Any) -> tuple[Any, Any]:
        from hyperleaf.data import SyntheticSegmentation

        return (SyntheticSegmentation(cfg.train_size, cfg.crop, "train", cfg.data_seed),
                SyntheticSegmentation(cfg.val_size, cfg.val_crop, "val", cfg.data_seed))

    def build_objective(self, cfg: Any) -> SegmentObjective:
        return build_segment_objective(cfg)

    def evaluate(self, cfg: Any, objective: nn.Module, val_set: Any, device: torch.device,
                 samples_dir: Path | None = None) -> dict[str, float]:
        return evaluate_segment(objective, val_set, device, cfg.num_classes, samples_dir)
