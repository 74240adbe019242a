"""The network and its training losses as one module (the unit DDP wraps).

With LEAF, :class:`hyperleaf.models.leafseg.LeafHead` turns SHIP's per-stage feature maps into
H2FR's inputs (pool, compress to ``(B, D)``, map to a ball of learnable curvature); H2FR's fused
core is a ``geoopt.ManifoldParameter`` on that ball. Both are trained by the Riemannian optimizer.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

import hyperleaf
from hyperleaf.models.leafseg import LeafHead
from hyperleaf.train.distributed import gather_levels
from hyperleaf.train.losses import FusionLoss

__all__ = ["LeafHead", "FusionObjective", "Levels", "ordering"]

#: ``(fused_levels, modality_levels...)``: lists of ``(B, D)`` ball points, shallow to deep.
Levels = tuple[list[Tensor], ...]


@torch.no_grad()
def ordering(levels: Levels, core: Tensor, c: Tensor) -> dict[str, Tensor]:
    """Per-sample booleans ``(B,)``: are the stages and modalities ordered as H2FR asks?

    * ``level``: the fused features' geodesic distance to the core strictly decreases with depth;
    * ``core``: at every stage the fused feature is strictly nearer the core than every unimodal
      feature;
    * ``all``: both.
    """
    fused = torch.stack([hyperleaf.dist(x, core, c=c, dim=-1) for x in levels[0]], 1)  # (B, L)
    level_ok = (fused[:, 1:] < fused[:, :-1]).all(1)
    core_ok = torch.ones_like(level_ok)
    for mod in levels[1:]:
        d = torch.stack([hyperleaf.dist(x, core, c=c, dim=-1) for x in mod], 1)
        core_ok &= (fused < d).all(1)
    return {"level": level_ok, "core": core_ok, "all": level_ok & core_ok}


class FusionObjective(nn.Module):
    """SHIP (optionally extended by LEAF) and its training loss.

    ``net(vis, ir)`` must return the fused image; with ``head`` given, ``features(net, vis, ir)``
    must return ``(fused, stages)`` with ``stages[l] = (fused_map, vis_map, ir_map)``.

    ``forward(vis, ir)`` returns ``(total, parts, fused)``; ``parts`` holds detached scalars
    (``fusion``, ``intensity``, ``gradient``, ``ssim``, ``h2fr``). In a process group, H2FR is
    computed on the union batch of all ranks (:func:`~hyperleaf.train.distributed.gather_batch`)
    while training.
    """

    def __init__(self, net: nn.Module, fusion_loss: FusionLoss, head: LeafHead | None = None,
                 h2fr_weight: float = 0.1, features=None):
        super().__init__()
        self.net, self.fusion_loss, self.head = net, fusion_loss, head
        self.h2fr_weight = float(h2fr_weight)
        self._features = features

    def run(self, vis: Tensor, ir: Tensor) -> tuple[Tensor, Levels | None]:
        """Fused image and (with LEAF) the ball points of every stage."""
        if self.head is None:
            return self.net(vis, ir), None
        fused, stages = self._features(self.net, vis, ir)
        return fused, self.head.embed(stages)

    def forward(self, vis: Tensor, ir: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        fused, levels = self.run(vis, ir)
        total, parts = self.fusion_loss(fused, vis, ir)
        parts["fusion"] = total.detach()
        if levels is not None:
            if self.training:
                levels = gather_levels(levels)
            h = self.head.loss(levels)
            parts["h2fr"] = h.detach()
            total = total + self.h2fr_weight * h
        return total, parts, fused
