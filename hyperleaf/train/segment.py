"""``--task segment``: LEAFSegNet trained with cross-entropy + H2FR on the synthetic
two-modality segmentation set."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hyperleaf.train.config import TrainConfig
from hyperleaf.train.distributed import gather_levels

__all__ = ["SegmentObjective", "build_segment_objective"]


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


def build_segment_objective(cfg: TrainConfig) -> SegmentObjective:
    from hyperleaf.models.leafseg import LEAFSegNet

    w = cfg.seg_width
    net = LEAFSegNet(num_classes=cfg.num_classes, widths=(w, 2 * w, 4 * w),
                     ball_dim=cfg.ball_dim, c=cfg.curvature, learn_c=cfg.learn_curvature,
                     clip_r=cfg.clip_r, h2fr_mode=cfg.h2fr_mode, h2fr_core=cfg.h2fr_core,
                     hdgfb_mode=cfg.hdgfb_mode, hdgfb_hidden=cfg.hdgfb_hidden)
    return SegmentObjective(net, cfg.h2fr_weight, leaf=cfg.leaf)
