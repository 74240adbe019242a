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

**Null control** (:func:`null_control`): the same ordering fractions and spreads measured on
inputs with no image content (:data:`NULL_INPUTS`: independent uniform noise per modality, a
constant mid-grey image, the two modalities swapped). An ordering that is as high on them as
on the real images measures the head (its radii, which stream a vector came from), not the
images: a criterion that cannot fail. The values are logged beside the real ones
(``null_noise_order_all``, ...).

Computed in float64. ``c = 0`` (the Euclidean arm) uses the c -> 0 limits: the clip radius
``clip_r`` itself, the arithmetic mean as centroid and distances ``2|x - y|``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hyperleaf import geometry
from hyperleaf.geometry import dist_c0
from hyperleaf.nn.heads import ordering
from hyperleaf.tasks.common import val_batches

__all__ = ["STREAMS", "NULL_INPUTS", "saturation_mask", "geometry_diagnostics", "null_inputs",
           "null_control"]

#: Names of the streams of ``points``' first axis.
STREAMS = ("fused", "vis", "ir")
_REL_TOL = 1e-5


def saturation_mask(points: Tensor, c: float, clip_r: float) -> Tensor:
    """Booleans ``points.shape[:-1]``: is the point at the clipping radius?

    Example::

        >>> from hyperleaf.nn import to_ball
        >>> x = to_ball(torch.tensor([[3.0, 0.0], [0.5, 0.0]]), c=0.5, clip_r=2.0)
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

        >>> pts = geometry.expmap0(torch.randn(3, 5, 2, 4) * 0.3, c=1.0, dim=-1)
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
        tangent = geometry.logmap0(x, c=c, dim=-1)
        centroid = geometry.expmap0(tangent.mean(1, keepdim=True), c=c, dim=-1)  # (S,1,L,D)
        spread = geometry.dist(x, centroid.expand_as(x), c=c, dim=-1).mean(1)  # (S, L)
        core_d = geometry.dist(x, core.expand_as(x), c=c, dim=-1).mean(1)  # (S, L)
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


#: The null inputs of :func:`null_control`, in order.
NULL_INPUTS = ("noise", "constant", "swapped")


def null_inputs(vis: Tensor, ir: Tensor, kind: str, generator: torch.Generator
                ) -> tuple[Tensor, Tensor]:
    """``(vis, ir)`` replaced by inputs without image content, of the same shapes and dtype:

    * ``noise``: independent uniform noise in [0, 1) for each modality (drawn from
      ``generator``);
    * ``constant``: both images 0.5 everywhere;
    * ``swapped``: the real images, visible and infrared exchanged.

    Example::

        >>> v, i = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
        >>> g = torch.Generator().manual_seed(0)
        >>> [tuple(float(t.mean()) for t in null_inputs(v, i, k, g)) for k in ("constant",
        ...                                                                    "swapped")]
        [(0.5, 0.5), (1.0, 0.0)]
    """
    if kind == "noise":
        return (torch.rand(vis.shape, generator=generator).to(vis),
                torch.rand(ir.shape, generator=generator).to(ir))
    if kind == "constant":
        return torch.full_like(vis, 0.5), torch.full_like(ir, 0.5)
    if kind == "swapped":
        return ir, vis
    raise ValueError(f"kind: expected one of {', '.join(NULL_INPUTS)}, got {kind!r}")


@torch.no_grad()
def null_control(objective, val_set, device: torch.device | str, seed: int = 0
                 ) -> dict[str, float]:
    """The ordering fractions and spreads of ``objective``'s LEAF head on the null inputs of
    every validation batch (:func:`null_inputs`; the noise from ``seed``).

    Returns floats ``null_{kind}_order_{level,core,all}`` (fractions of samples ordered as
    H2FR asks, :func:`hyperleaf.nn.heads.ordering`) and ``null_{kind}_spread_{stream}``
    (:func:`geometry_diagnostics`' spreads) for each kind of :data:`NULL_INPUTS`. The real
    images' values are the ``order_*`` and ``spread_*`` of the same validation record: the
    ordering means something about the images only where it exceeds these.

    Example::

        >>> from hyperleaf.tasks.fuse import build_fusion_objective
        >>> from hyperleaf.train import TrainConfig
        >>> obj = build_fusion_objective(TrainConfig(n_feat=4, ball_dim=4).validate())
        >>> val = [{"vis": torch.rand(1, 32, 32), "ir": torch.rand(1, 32, 32)}] * 3
        >>> sorted(null_control(obj, val, "cpu"))[:2]
        ['null_constant_order_all', 'null_constant_order_core']
    """
    head = objective.head
    if head is None:
        raise ValueError("objective: the null control needs a LEAF head (leaf and h2fr true)")
    was_training = objective.training
    objective.eval()
    g = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    try:
        for kind in NULL_INPUTS:
            oks: dict[str, list[Tensor]] = {"level": [], "core": [], "all": []}
            chunks = []
            for _names, batch in val_batches(val_set):
                vis, ir = null_inputs(batch["vis"], batch["ir"], kind, g)
                _, levels = objective.run(vis.to(device), ir.to(device))
                for k, v in ordering(levels, head.core(), head.curvature).items():
                    oks[k].append(v.cpu())
                chunks.append(torch.stack([torch.stack(lv, 1) for lv in levels]).cpu())
            for k, v in oks.items():
                out[f"null_{kind}_order_{k}"] = float(torch.cat(v).double().mean())
            geo = geometry_diagnostics(torch.cat(chunks, 1), head.core().detach().cpu(),
                                       float(head.curvature), head.clip_r)
            for key, value in geo.items():
                if key.startswith("spread_"):
                    out[f"null_{kind}_{key}"] = value
    finally:
        objective.train(was_training)
    return out
