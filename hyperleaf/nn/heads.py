"""Heads that turn a network's per-level feature maps into LEAF's inputs.

* :class:`LeafHead`: per level, pool the fused and unimodal maps, compress them to ``(B, D)`` and
  map them to a Poincaré ball of (learnable) curvature, on which :class:`hyperleaf.H2FRLoss`
  ranks the levels; it owns that loss (and its learned fused core).
* :func:`radial_layer_norm`: the default normalisation of the compressed vectors, which puts
  every tangent vector at a set radius inside the clip (no saturation; see ``docs/training.md``,
  "A non-degenerate geometry").
* :func:`ordering`: whether embedded levels are ordered as H2FR asks (a diagnostic).

The maps come from a network's ``forward_levels`` (see
:class:`hyperleaf.models.registry.LevelFeatures`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hyperleaf.geometry import ball, clip_features, dist, dist_c0, float32_island
from hyperleaf.nn.h2fr import H2FRLoss, to_ball

__all__ = ["LeafHead", "Levels", "ordering", "radial_layer_norm", "HEAD_NORMS"]

#: Normalisations of the compressed vectors :class:`LeafHead` accepts (``norm=``).
HEAD_NORMS = ("layer", "none")

#: ``(fused_levels, modality_levels...)``: lists of ``(B, D)`` ball points, shallow to deep.
Levels = tuple[list[Tensor], ...]


def radial_layer_norm(v: Tensor, radius: float | Tensor, eps: float = 1e-5) -> Tensor:
    r"""Layer-normalise ``(..., D)`` vectors and scale them to tangent norm ``radius``.

    :math:`u = r\,\frac{v - \bar v}{\sqrt{D(\sigma^2(v) + \epsilon)}}` (mean and biased
    variance over the last axis, no affine part), so :math:`\|u\| = r\sqrt{\sigma^2/(\sigma^2 +
    \epsilon)} \le r`, equal to ``r`` up to ``eps`` for any vector that is not nearly constant.
    The result does not depend on the scale of ``v``: a compressor cannot push a vector outward by
    growing its weights, which is how H2FR drove whole modalities to the clipping radius. With
    ``radius < clip_r`` the clip of :func:`hyperleaf.nn.h2fr.to_ball` never engages, so no vector
    is saturated; distances to a learned core then vary through the vectors' directions.

    Args:
        v: ``(..., D)`` vectors, ``D >= 2``.
        radius: the tangent norm (float or a tensor broadcastable to ``v.shape[:-1] + (1,)``).
        eps: variance floor.

    Example::

        >>> u = radial_layer_norm(torch.randn(4, 16) * 100, radius=1.5)
        >>> torch.allclose(u.norm(dim=-1), torch.full((4,), 1.5), atol=1e-4)
        True
    """
    if not isinstance(v, Tensor) or v.dim() < 1 or v.shape[-1] < 2:
        raise ValueError("v: expected a tensor (..., D) with D >= 2, got "
                         f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}")
    d = v.shape[-1]
    return F.layer_norm(v, (d,), eps=eps) * (radius / math.sqrt(d))


class LeafHead(nn.Module):
    r"""Per-level compressors to the ball and the H2FR loss that ranks their outputs.

    Each level's maps (fused and unimodal alike, through the same layer, so their distances are
    comparable) are average-pooled to ``(B, C_l)``, linearly compressed to ``(B, D)``, with
    ``norm="layer"`` (the default) normalised by :func:`radial_layer_norm` to the level's radius
    :math:`r_l = \text{clip\_r}\cdot\sigma(\theta_l)` (``radius_logit`` :math:`\theta`, one
    learned scalar per level, initialised so that :math:`r_l` = ``radius``; always inside the
    clip), and mapped to the ball with :func:`hyperleaf.nn.h2fr.to_ball` (clip to ``clip_r``,
    ``expmap0``). ``norm="none"`` is the earlier head (compress, clip), under which H2FR pushes
    the unimodal vectors to the clip (measured in ``docs/training.md``). The ball is a geoopt
    ``PoincareBall`` whose curvature is learnable when ``learn_c``; H2FR uses the same ball, and
    with ``core="learned"`` its fused core is a ``geoopt.ManifoldParameter`` on it.

    With ``norm="layer"`` every stream of a level has the same tangent norm, so paper-mode H2FR
    (Euclidean-norm scores) sees equal scores within a level: its Top-1 terms are constant and
    only the level ranking (through the radii) trains; use ``norm="none"`` for the seed's setup.

    Args:
        channels: channels of each level (L >= 2).
        dim: ball dimension D (>= 2 with ``norm="layer"``).
        c: initial curvature magnitude.
        learn_c: train the curvature.
        clip_r: clipping radius before ``expmap0``.
        mode, core, alpha, beta: :class:`hyperleaf.H2FRLoss` options.
        norm: ``"layer"`` or ``"none"`` (:data:`HEAD_NORMS`).
        radius: ``norm="layer"``: initial tangent norm of every level, in ``(0, clip_r)``;
            None: ``0.75 * clip_r`` (1.5 for the default ``clip_r`` 2).
        euclidean: the c -> 0 limit (the ablation's Euclidean arm): points are the clipped
            vectors themselves, H2FR distances :math:`2\|x - y\|`, :attr:`curvature` 0; needs
            ``learn_c=False`` and ``mode="geodesic"``.

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
                 core: str = "learned", alpha: float = 1.0, beta: float = 1.0,
                 norm: str = "layer", radius: float | None = None, euclidean: bool = False):
        super().__init__()
        channels = [int(ch) for ch in channels]
        if len(channels) < 2:
            raise ValueError(f"channels: H2FR needs at least 2 levels, got {channels}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if norm not in HEAD_NORMS:
            raise ValueError(f"norm must be one of {HEAD_NORMS}, got {norm!r}")
        self.dim, self.clip_r, self.norm = int(dim), float(clip_r), norm
        self.euclidean = bool(euclidean)
        if self.euclidean and learn_c:
            raise ValueError("euclidean=True (the c -> 0 limit) has no curvature to learn: "
                             "pass learn_c=False")
        self.ball = ball(float(c), learn_c=learn_c)
        self.compress = nn.ModuleList(nn.Linear(ch, dim) for ch in channels)
        if norm == "layer":
            if dim < 2:
                raise ValueError(f"dim must be >= 2 with norm='layer', got {dim}")
            if radius is None:
                radius = 0.75 * self.clip_r
            if (isinstance(radius, bool) or not isinstance(radius, numbers.Real)
                    or not (0 < radius < self.clip_r)):
                raise ValueError(f"radius must be a float in (0, clip_r={self.clip_r:g}) with "
                                 f"norm='layer', got {radius!r}")
            p = float(radius) / self.clip_r
            # r_l = clip_r * sigmoid(theta_l): learned, and never at the clip.
            self.radius_logit = nn.Parameter(torch.full((len(channels),), math.log(p / (1 - p))))
        if mode == "paper" and core != "origin":
            raise ValueError("mode='paper' (the seed's H2FR) has its core at the origin: "
                             "pass core='origin' or use mode='geodesic'")
        # H2FR shares this ball (geometry.ball returns a ball unchanged): one curvature.
        self.h2fr = H2FRLoss(alpha=alpha, beta=beta, c=self.ball, mode=mode, core=core,
                             core_dim=dim if core == "learned" else None,
                             euclidean=self.euclidean)

    @property
    def curvature(self) -> Tensor:
        """The current curvature magnitude (a 0-d tensor in the autograd graph); 0 for the
        Euclidean limit."""
        if self.euclidean:
            return torch.zeros((), dtype=self.ball.c.dtype)
        return self.ball.c

    @property
    def radii(self) -> Tensor | None:
        """Per-level tangent norms ``(L,)`` with ``norm="layer"`` (in the autograd graph), else
        None."""
        if self.norm != "layer":
            return None
        return self.clip_r * torch.sigmoid(self.radius_logit)

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
        return self._embed(levels)

    @float32_island
    def _embed(self, levels: Sequence[Sequence[Tensor]]) -> tuple[list[Tensor], ...]:
        # A float32 island (autocast off, half-precision maps pooled with float32
        # accumulation): the compressors, the normalisation and the ball maps are tiny next to
        # the network, and in bf16 they put the points, the loss and the curvature's gradient
        # several percent off.
        out: list[list[Tensor]] = [[] for _ in range(len(levels[0]))]
        radii = self.radii
        for lv, (comp, maps) in enumerate(zip(self.compress, levels, strict=False)):
            for s, m in enumerate(maps):
                pooled = m.flatten(2).mean(-1, dtype=torch.promote_types(m.dtype, torch.float32))
                w = comp.weight
                v = F.linear(pooled.to(torch.promote_types(pooled.dtype, w.dtype)),
                             w.to(torch.promote_types(pooled.dtype, w.dtype)),
                             comp.bias.to(torch.promote_types(pooled.dtype, w.dtype)))
                if radii is not None:
                    v = radial_layer_norm(v, radii[lv].to(v.dtype))
                if self.euclidean:  # to_ball's c -> 0 limit: clip, then exp_0 = identity
                    out[s].append(clip_features(v, self.clip_r, dim=1))
                else:
                    out[s].append(to_ball(v, self.ball, clip_r=self.clip_r))
        return tuple(out)

    def loss(self, points: Sequence[Sequence[Tensor]]) -> Tensor:
        """H2FR on :meth:`embed` output (in float32 or wider, whatever the autocast state)."""
        return self.h2fr(points[0], *points[1:])


@torch.no_grad()
def ordering(levels: Levels, core: Tensor, c: Tensor) -> dict[str, Tensor]:
    """Per-sample booleans ``(B,)``: are the stages and modalities ordered as H2FR asks?
    (``c`` 0: distances of the Euclidean limit, ``2|x - core|``.)

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
    def distance(x: Tensor) -> Tensor:  # c == 0: the Euclidean limit 2|x - core|
        return dist_c0(x, core, dim=-1) if float(c) == 0 else dist(x, core, c=c, dim=-1)

    fused = torch.stack([distance(x) for x in levels[0]], 1)  # (B, L)
    level_ok = (fused[:, 1:] < fused[:, :-1]).all(1)
    core_ok = torch.ones_like(level_ok)
    for mod in levels[1:]:
        d = torch.stack([distance(x) for x in mod], 1)
        core_ok &= (fused < d).all(1)
    return {"level": level_ok, "core": core_ok, "all": level_ok & core_ok}
