"""Heads that turn a network's per-level feature maps into LEAF's inputs.

* :class:`LeafHead`: per level, pool the fused and unimodal maps, compress them to ``(B, D)`` and
  map them to a Poincaré ball of (learnable) curvature, on which :class:`hyperleaf.H2FRLoss`
  ranks the levels; it owns that loss (and its learned fused core).
* :func:`ordering`: whether embedded levels are ordered as H2FR asks (a diagnostic).

The maps come from a network's ``forward_levels`` (see
:class:`hyperleaf.models.registry.LevelFeatures`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf.geometry import ball, dist
from hyperleaf.nn.h2fr import H2FRLoss, to_ball

__all__ = ["LeafHead", "Levels", "ordering"]

#: ``(fused_levels, modality_levels...)``: lists of ``(B, D)`` ball points, shallow to deep.
Levels = tuple[list[Tensor], ...]


class LeafHead(nn.Module):
    """Per-level compressors to the ball and the H2FR loss that ranks their outputs.

    Each level's maps (fused and unimodal alike, through the same layer, so their distances are
    comparable) are average-pooled to ``(B, C_l)``, linearly compressed to ``(B, D)`` and mapped
    to the ball with :func:`hyperleaf.nn.h2fr.to_ball` (clip to ``clip_r``, ``expmap0``). The ball
    is a geoopt ``PoincareBall`` whose curvature is learnable when ``learn_c``; H2FR uses the
    same ball, and with ``core="learned"`` its fused core is a ``geoopt.ManifoldParameter`` on it.

    Args:
        channels: channels of each level (L >= 2).
        dim: ball dimension D.
        c: initial curvature magnitude.
        learn_c: train the curvature.
        clip_r: clipping radius before ``expmap0``.
        mode, core, alpha, beta: :class:`hyperleaf.H2FRLoss` options.

    Example (three levels of 8-channel maps, fused + two modalities, batch 4):

        >>> head = LeafHead([8, 8, 8], dim=5)
        >>> levels = [tuple(torch.rand(4, 8, 6, 6) for _ in range(3)) for _ in range(3)]
        >>> fused, vis, ir = head.embed(levels)
        >>> len(fused), tuple(fused[0].shape)
        (3, (4, 5))
        >>> bool(torch.isfinite(head.loss((fused, vis, ir))))
        True
    """

    def __init__(self, channels: Sequence[int], dim: int = 16, c: float = 0.5,
                 learn_c: bool = True, clip_r: float = 2.0, mode: str = "geodesic",
                 core: str = "learned", alpha: float = 1.0, beta: float = 1.0):
        super().__init__()
        channels = [int(ch) for ch in channels]
        if len(channels) < 2:
            raise ValueError(f"channels: H2FR needs at least 2 levels, got {channels}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.clip_r = int(dim), float(clip_r)
        self.ball = ball(float(c), learn_c=learn_c)
        self.compress = nn.ModuleList(nn.Linear(ch, dim) for ch in channels)
        if mode == "paper" and core != "origin":
            raise ValueError("mode='paper' (the seed's H2FR) has its core at the origin: "
                             "pass core='origin' or use mode='geodesic'")
        # H2FR shares this ball (geometry.ball returns a ball unchanged): one curvature.
        self.h2fr = H2FRLoss(alpha=alpha, beta=beta, c=self.ball, mode=mode, core=core,
                             core_dim=dim if core == "learned" else None)

    @property
    def curvature(self) -> Tensor:
        """The current curvature magnitude (a 0-d tensor in the autograd graph)."""
        return self.ball.c

    def core(self) -> Tensor:
        """The fused core ``(D,)``: H2FR's learned ManifoldParameter, or the origin."""
        core = getattr(self.h2fr, "core", None)
        if isinstance(core, Tensor):
            return core
        w = self.compress[0].weight
        return torch.zeros(self.dim, dtype=w.dtype, device=w.device)

    def embed(self, levels: Sequence[Sequence[Tensor]]) -> tuple[list[Tensor], ...]:
        """``levels[l] = (fused_map, map_1, ..., map_M)`` -> ``(fused_pts, pts_1, ..., pts_M)``,
        each a list over levels of ``(B, D)`` ball points."""
        if len(levels) != len(self.compress):
            raise ValueError(f"expected {len(self.compress)} levels, got {len(levels)}")
        out: list[list[Tensor]] = [[] for _ in range(len(levels[0]))]
        for comp, maps in zip(self.compress, levels, strict=False):
            for s, m in enumerate(maps):
                v = comp(m.flatten(2).mean(-1))
                out[s].append(to_ball(v, self.ball, clip_r=self.clip_r))
        return tuple(out)

    def loss(self, points: Sequence[Sequence[Tensor]]) -> Tensor:
        """H2FR on :meth:`embed` output."""
        return self.h2fr(points[0], *points[1:])


@torch.no_grad()
def ordering(levels: Levels, core: Tensor, c: Tensor) -> dict[str, Tensor]:
    """Per-sample booleans ``(B,)``: are the stages and modalities ordered as H2FR asks?

    * ``level``: the fused features' geodesic distance to the core strictly decreases with depth;
    * ``core``: at every stage the fused feature is strictly nearer the core than every unimodal
      feature;
    * ``all``: both.

    Example (fused points move towards the origin core with depth; unimodal ones stay far):

        >>> z = torch.zeros(1, 2)
        >>> fused = [torch.tensor([[0.5, 0.0]]), torch.tensor([[0.2, 0.0]])]
        >>> far = [torch.tensor([[0.0, 0.7]]), torch.tensor([[0.0, 0.6]])]
        >>> {k: bool(v) for k, v in ordering((fused, far), z[0], torch.tensor(1.0)).items()}
        {'level': True, 'core': True, 'all': True}
    """
    fused = torch.stack([dist(x, core, c=c, dim=-1) for x in levels[0]], 1)  # (B, L)
    level_ok = (fused[:, 1:] < fused[:, :-1]).all(1)
    core_ok = torch.ones_like(level_ok)
    for mod in levels[1:]:
        d = torch.stack([dist(x, core, c=c, dim=-1) for x in mod], 1)
        core_ok &= (fused < d).all(1)
    return {"level": level_ok, "core": core_ok, "all": level_ok & core_ok}
