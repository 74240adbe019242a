r"""Geometry diagnostics of LEAF's ball points: saturation, per-sample spread, core distances.

For the stage vectors ``points`` ``(S, N, L, D)`` (streams fused, visible, infrared; N samples;
L stages) that :class:`hyperleaf.models.LeafHead` puts on the ball of curvature ``c``:

* **saturated**: the fraction of vectors whose tangent vector was clipped, i.e. that sit at the
  clipping radius :math:`|x| = \tanh(\sqrt c\, r)/\sqrt c` (``r = clip_r``; detected as
  :math:`|x| \ge (1 - 10^{-5})` times that radius, float32 points being within ~1e-7 of it). At
  the clip the gradient along the norm is zero: such a vector can only turn, not move in or out.
* **spread**: the mean geodesic distance of the N samples of a group to their centroid, the
  *tangent-space centroid at the origin* :math:`m = \exp_0(\frac1N\sum_i \log_0 x_i)` (not the
  Fréchet mean; equal to it for points on one geodesic through 0, and cheap).
* **core distance**: the mean geodesic distance of a group to H2FR's fused core.

Computed in float64. ``c = 0`` (the Euclidean arm) uses the c -> 0 limits: the clip radius
``clip_r`` itself, the arithmetic mean as centroid and distances ``2|x - y|``.
"""

from __future__ import annotations

import torch
from torch import Tensor

import hyperleaf
from hyperleaf.geometry import dist_c0

__all__ = ["STREAMS", "saturation_mask", "geometry_diagnostics"]

#: Names of the streams of ``points``' first axis.
STREAMS = ("fused", "vis", "ir")
_REL_TOL = 1e-5


def saturation_mask(points: Tensor, c: float, clip_r: float) -> Tensor:
    """Booleans ``points.shape[:-1]``: is the point at the clipping radius?

    Example::

        >>> x = hyperleaf.nn.to_ball(torch.tensor([[3.0, 0.0], [0.5, 0.0]]), c=0.5, clip_r=2.0)
        >>> saturation_mask(x, c=0.5, clip_r=2.0).tolist()
        [True, False]
    """
    if c < 0 or clip_r <= 0:
        raise ValueError(f"c must be >= 0 and clip_r > 0, got c={c!r}, clip_r={clip_r!r}")
    if c == 0:  # the Euclidean limit: points are the clipped tangent vectors themselves
        r_max = torch.tensor(float(clip_r), dtype=torch.float64)
    else:
        sc = c ** 0.5
        r_max = torch.tanh(torch.tensor(sc * clip_r, dtype=torch.float64)) / sc
    return points.double().norm(dim=-1) >= (1 - _REL_TOL) * r_max


def geometry_diagnostics(points: Tensor, core: Tensor, c: float, clip_r: float | None
                         ) -> dict[str, object]:
    """Saturation, spread and core distances of ``points`` ``(S, N, L, D)``.

    Returns a dict with

    * ``"groups"``: ``{f"{stream}{stage}": {"saturated", "spread", "core_dist"}}`` (stages from
      1, streams :data:`STREAMS`), floats;
    * summaries (floats): ``saturated`` (fraction of all vectors), and per stream the mean over
      stages of the spread (``spread_fused``, ...) and of the core distance
      (``core_dist_fused``, ...).

    ``clip_r=None`` (no clipping) reports 0 saturated.

    Example::

        >>> pts = hyperleaf.expmap0(torch.randn(3, 5, 2, 4) * 0.3, c=1.0, dim=-1)
        >>> d = geometry_diagnostics(pts, torch.zeros(4), c=1.0, clip_r=2.0)
        >>> sorted(d["groups"])[:2], d["saturated"]
        (['fused1', 'fused2'], 0.0)
    """
    if points.dim() != 4:
        raise ValueError(f"points: expected (S, N, L, D), got shape {tuple(points.shape)}")
    x = points.double()
    core = core.double()
    s_count, _, n_levels, _ = x.shape
    sat = (saturation_mask(x, c, clip_r) if clip_r is not None
           else torch.zeros(x.shape[:-1], dtype=torch.bool))
    if c == 0:  # the Euclidean limit (hyperleaf.geometry.*_c0): mean and 2|x - y|
        centroid = x.mean(1, keepdim=True)
        spread = dist_c0(x, centroid.expand_as(x), dim=-1).mean(1)
        core_d = dist_c0(x, core.expand_as(x), dim=-1).mean(1)
    else:
        tangent = hyperleaf.logmap0(x, c=c, dim=-1)
        centroid = hyperleaf.expmap0(tangent.mean(1, keepdim=True), c=c, dim=-1)  # (S,1,L,D)
        spread = hyperleaf.dist(x, centroid.expand_as(x), c=c, dim=-1).mean(1)  # (S, L)
        core_d = hyperleaf.dist(x, core.expand_as(x), c=c, dim=-1).mean(1)  # (S, L)
    names = list(STREAMS) + [f"modality{i}" for i in range(3, s_count)]
    groups = {}
    for s in range(s_count):
        for lv in range(n_levels):
            groups[f"{names[s]}{lv + 1}"] = {"saturated": float(sat[s, :, lv].double().mean()),
                                             "spread": float(spread[s, lv]),
                                             "core_dist": float(core_d[s, lv])}
    out: dict[str, object] = {"groups": groups, "saturated": float(sat.double().mean())}
    for s in range(s_count):
        out[f"spread_{names[s]}"] = float(spread[s].mean())
        out[f"core_dist_{names[s]}"] = float(core_d[s].mean())
    return out
