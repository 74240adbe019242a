"""The leaf plot: stage features of validation samples on the Poincaré disk.

Each fused and unimodal stage feature ``x`` (a point of the D-dimensional ball) is drawn on the
2-D Poincaré disk of the same curvature at geodesic distance ``d(x, core)`` from the centre, the
exact distance to the fused core in D dimensions, so the picture shows truthfully how near each
feature sits to the core. Only the angle is a projection: the direction of ``x`` seen from the
core (``log_0((-core) ⊕ x)``, the core moved to the origin by a Möbius translation, an isometry)
projected on the first two principal axes of all those directions. H2FR asks for a laminar
"leaf": deeper fused stages nearer the core than shallower ones, and every fused feature nearer
the core than the unimodal features of its stage.

Beside the disk, one small panel per stream and stage shows that group's samples in its own scale
around their centroid (:func:`group_coordinates`), so a per-sample spread far below the disk's
scale (SHIP's pooled infrared features barely vary between images) is still seen; saturated
points are ringed in red in both views.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from hyperleaf import geometry
from hyperleaf.atomic import atomic_write_bytes
from hyperleaf.nn.heads import ordering
from hyperleaf.tasks.common import val_batches
from hyperleaf.tasks.diagnostics import (
    NULL_INPUTS,
    STREAMS,
    geometry_diagnostics,
    null_control,
    saturation_mask,
)

#: Geodesic distance below which a group's samples are drawn as one point (float64 rounding
#: of equal float32 vectors gives ~1e-17, the smallest real spreads measured ~1e-6).
_COINCIDENT = 1e-9

__all__ = ["collect_points", "disk_coordinates", "group_coordinates", "leaf_figure", "plot_leaf",
           "plot_run_objective"]


@torch.no_grad()
def collect_points(objective, val_set, device) -> dict[str, object]:
    """Ball points of ``val_set``: ``points`` (S, N, L, D) for streams (fused, vis, ir), the core
    ``(D,)`` and the curvature, plus the per-sample ordering booleans."""
    objective.eval()
    head = objective.head
    if head is None:
        raise ValueError("the leaf plot needs a LEAF model (this run was trained with leaf: false)")
    chunks, oks = [], {"level": [], "core": [], "all": []}
    for _, batch in val_batches(val_set):
        _, levels = objective.run(batch["vis"].to(device), batch["ir"].to(device))
        chunks.append(torch.stack([torch.stack(lv, 1) for lv in levels]).double().cpu())
        for k, v in ordering(levels, head.core(), head.curvature).items():
            oks[k].append(v.cpu())
    return {"points": torch.cat(chunks, 1), "core": head.core().detach().double().cpu(),
            "c": float(head.curvature), "ok": {k: torch.cat(v) for k, v in oks.items()},
            "clip_r": head.clip_r}


def disk_coordinates(points: torch.Tensor, core: torch.Tensor, c: float) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """``(xy, dist)``: 2-D Poincaré-disk coordinates (radius ``1/sqrt(c)``) of ``points``
    (``(..., D)``) and their geodesic distance to ``core``; ``|xy|`` is at hyperbolic distance
    ``dist`` from the disk's centre."""
    d = geometry.dist(points, core, c=c, dim=-1)
    moved = geometry.mobius_add((-core).expand_as(points), points, c=c, dim=-1)
    v = geometry.logmap0(moved, c=c, dim=-1).reshape(-1, points.shape[-1])
    v = v - v.mean(0, keepdim=True)
    # Principal axes of the directions (unit vectors, so large distances do not dominate).
    u = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    _, _, vh = torch.linalg.svd(u, full_matrices=False)
    ang2 = u @ vh[:2].T
    theta = torch.atan2(ang2[:, 1], ang2[:, 0]).reshape(points.shape[:-1])
    sc = c ** 0.5
    rho = torch.tanh(sc * d / 2) / sc  # Poincaré-disk radius at hyperbolic distance d
    xy = torch.stack([rho * torch.cos(theta), rho * torch.sin(theta)], -1)
    return xy.numpy(), d.numpy()


def group_coordinates(points: torch.Tensor, c: float) -> tuple[np.ndarray, np.ndarray]:
    """``(xy, dist)``: each group's samples in the group's own chart, centred on its centroid.

    ``points`` ``(S, N, L, D)``; a group is one stream ``s`` and stage ``l`` (its ``N`` samples).
    Its centroid ``m`` is the tangent-space centroid at the origin, ``exp_0(mean_i log_0 x_i)``,
    the one :func:`hyperleaf.tasks.diagnostics.geometry_diagnostics` measures the spread from.
    Sample ``i`` is drawn at its *true* geodesic distance ``dist[s, i, l] = d(x_i, m)`` from the
    chart's centre; only the angle is a projection: the direction ``log_0((-m) ⊕ x_i)`` (``m``
    moved to the origin, an isometry) on the group's first two principal axes. So the mean of
    ``|xy|`` over a group's samples is exactly that group's spread, and a group whose samples
    differ shows them apart at any scale.

    Returns ``xy`` ``(S, N, L, 2)`` and ``dist`` ``(S, N, L)`` (float64 numpy arrays).

    Example (two samples at tangent ``±0.1 e_1``: centroid 0, each at distance 0.2 when c = 1)::

        >>> v = torch.zeros(1, 2, 1, 3, dtype=torch.float64)
        >>> v[0, 0, 0, 0], v[0, 1, 0, 0] = 0.1, -0.1
        >>> xy, d = group_coordinates(geometry.expmap0(v, c=1.0, dim=-1), c=1.0)
        >>> [round(float(x), 6) for x in d.ravel()], round(float(abs(xy[0, 0, 0, 0])), 6)
        ([0.2, 0.2], 0.2)
    """
    if points.dim() != 4:
        raise ValueError(f"points: expected (S, N, L, D), got shape {tuple(points.shape)}")
    x = points.double()
    s_count, n, n_levels, dim = x.shape
    centroid = geometry.expmap0(geometry.logmap0(x, c=c, dim=-1).mean(1, keepdim=True),
                                 c=c, dim=-1).expand_as(x)
    d = geometry.dist(x, centroid, c=c, dim=-1)  # (S, N, L)
    v = geometry.logmap0(geometry.mobius_add(-centroid, x, c=c, dim=-1), c=c, dim=-1)
    # Per group: principal axes of the directions (unit vectors, as in disk_coordinates).
    u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    u = u.permute(0, 2, 1, 3).reshape(s_count * n_levels, n, dim)  # (groups, N, D)
    _, _, vh = torch.linalg.svd(u, full_matrices=False)
    axes = vh[:, :2] if vh.shape[1] >= 2 else torch.cat([vh, torch.zeros_like(vh)], 1)
    proj = u @ axes.transpose(1, 2)  # (groups, N, 2)
    theta = torch.atan2(proj[..., 1], proj[..., 0]).reshape(s_count, n_levels, n)
    theta = theta.permute(0, 2, 1)
    xy = torch.stack([d * torch.cos(theta), d * torch.sin(theta)], -1)
    return xy.numpy(), d.numpy()


def leaf_figure(data: dict[str, object], title: str = ""):
    """``(figure, summary)``: the leaf plot of ``collect_points`` output as a matplotlib figure.

    Left, the whole disk: every stage vector at its true geodesic distance to the fused core
    (:func:`disk_coordinates`), colours for stages, markers for streams, grey "veins" joining a
    sample's fused stages. Right, one small panel per group (stream x stage) in that group's own
    scale (:func:`group_coordinates`): its samples around their centroid (``+``) at their true
    distance from it, a dashed circle of radius equal to the group's spread (the mean of those
    distances), and tick labels in geodesic distance, so the per-sample spread is visible even
    where it is far below the disk's scale. Saturated points (at the clipping radius) are ringed
    in red in both views. The title gives the ordering fractions, the saturated fraction and each
    stream's spread; every panel's title its group's spread and saturated fraction.

    ``summary``: the ordering fractions (``order_level``, ``order_core``, ``order_all``) and the
    geometry summaries of :func:`hyperleaf.tasks.diagnostics.geometry_diagnostics`
    (``saturated``, ``spread_*``, ``core_dist_*``), floats.

    Artists carry ``gid``s so the figure can be checked: the samples of group ``g`` (``fused1``,
    ..., ``ir3``) in its panel ``"samples:g"`` (the panel's label is ``g``) and on the disk
    ``"disk:g"``, its saturated rings ``"saturated:g"`` (only where the group has saturated
    points), the rings of the whole disk ``"saturated"``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    pts, core, c = data["points"], data["core"], data["c"]
    xy, _ = disk_coordinates(pts, core, c)  # (S, N, L, 2)
    gxy, gdist = group_coordinates(pts, c)  # (S, N, L, 2), (S, N, L)
    s_count, n, n_levels, _ = xy.shape
    frac = {f"order_{k}": float(v.float().mean()) for k, v in data["ok"].items()}
    clip_r = data.get("clip_r")
    geo = geometry_diagnostics(pts, core, c, clip_r)
    groups = geo.pop("groups")
    sat = (saturation_mask(pts, c, clip_r) if clip_r is not None
           else torch.zeros(pts.shape[:-1], dtype=torch.bool)).numpy()
    fig = plt.figure(figsize=(6.6 + 2.3 * n_levels, 7.4), dpi=110)
    outer = fig.add_gridspec(1, 2, width_ratios=[6.6, 2.3 * n_levels], wspace=0.08)
    ax = fig.add_subplot(outer[0])
    radius = 1 / c ** 0.5
    ax.add_patch(plt.Circle((0, 0), radius, fill=False, color="0.3", lw=1.0))
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.9, n_levels))
    markers = ["o", "^", "s", "D", "v"]
    names = ["fused", "visible", "infrared"] + [f"modality {i}" for i in range(3, s_count)]
    keys = list(STREAMS) + [f"modality{i}" for i in range(3, s_count)]

    def samples(a, pxy, s, lv, **kw):
        return a.scatter(pxy[:, 0], pxy[:, 1], s=34 if s == 0 else 26,
                         marker=markers[s % len(markers)], color=colours[lv],
                         edgecolors="k" if s == 0 else "none", linewidths=0.5, zorder=3,
                         alpha=0.95 if s == 0 else 0.75, **kw)

    for i in range(n):  # thin "veins": a sample's fused features from shallow to deep
        ax.plot(xy[0, i, :, 0], xy[0, i, :, 1], color="0.75", lw=0.6, zorder=1)
    for s in range(s_count):
        for lv in range(n_levels):
            samples(ax, xy[s, :, lv], s, lv, label=f"{names[s]}, stage {lv + 1}",
                    gid=f"disk:{keys[s]}{lv + 1}")
    ring = {"s": 90, "facecolors": "none", "edgecolors": "red", "linewidths": 1.0, "zorder": 5}
    if sat.any():
        ax.scatter(xy[..., 0][sat], xy[..., 1][sat], gid="saturated",
                   label="saturated (at the clip radius)", **ring)
    ax.scatter([0], [0], marker="*", s=160, color="crimson", zorder=4, label="fused core")
    ax.set_xlim(-1.05 * radius, 1.05 * radius)
    ax.set_ylim(-1.05 * radius, 1.05 * radius)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("the disk: true geodesic distance to the fused core", fontsize=8)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=4,
              framealpha=0.8)

    # One panel per group in its own scale: the per-sample spread, however small.
    inner = outer[1].subgridspec(s_count, n_levels, hspace=0.45, wspace=0.5)
    panels = []
    for s in range(s_count):
        for lv in range(n_levels):
            key = f"{keys[s]}{lv + 1}"
            g = groups[key]
            a = fig.add_subplot(inner[s, lv], label=key)
            pxy, far = gxy[s, :, lv], float(gdist[s, :, lv].max())
            apart = far > _COINCIDENT
            half = 1.3 * far if apart else 1.0
            a.add_patch(plt.Circle((0, 0), g["spread"], fill=False, color=colours[lv],
                                   lw=0.9, ls="--", zorder=2))
            a.scatter([0], [0], marker="+", s=40, color="0.35", zorder=2)
            samples(a, pxy, s, lv, gid=f"samples:{key}")
            if sat[s, :, lv].any():
                a.scatter(pxy[sat[s, :, lv], 0], pxy[sat[s, :, lv], 1], gid=f"saturated:{key}",
                          **ring)
            a.set_xlim(-half, half)
            a.set_ylim(-half, half)
            a.set_aspect("equal")
            a.locator_params(nbins=3)
            for axis in (a.xaxis, a.yaxis):  # no offset text: it would cover the title
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
            a.tick_params(labelsize=5, length=2, pad=1)
            panels.append(a)
            a.set_title(f"{names[s]} {lv + 1}: spread {g['spread']:.3g}"
                        + (f", sat. {g['saturated']:.0%}" if g["saturated"] > 0 else "")
                        + ("" if apart else "\n(all samples at one point)"),
                        fontsize=6.5, color="red" if g["saturated"] > 0 else "black", pad=3)
    box = [p.get_position() for p in panels]
    fig.text((min(b.x0 for b in box) + max(b.x1 for b in box)) / 2,
             min(b.y0 for b in box) - 0.06,
             "each group in its own scale (geodesic distance): the samples around their "
             "centroid (+);\ndashed circle: the group's spread (their mean distance to it)",
             ha="center", va="top", fontsize=7)
    fig.suptitle((title + "\n" if title else "")
                 + f"c = {c:.3f}; ordered as H2FR asks: {frac['order_all']:.0%} of {n} samples "
                 f"(stages {frac['order_level']:.0%}, fused core {frac['order_core']:.0%})\n"
                 f"saturated {geo['saturated']:.0%}; spread (mean dist. to centroid) fused "
                 f"{geo['spread_fused']:.3f}, visible {geo['spread_vis']:.3f}, infrared "
                 f"{geo['spread_ir']:.3f}",
                 fontsize=9)
    return fig, {**frac, **geo}


def plot_leaf(data: dict[str, object], path: str | Path, title: str = "") -> dict[str, float]:
    """Draw ``collect_points`` output to ``path`` (PNG, written atomically); returns the
    ordering fractions and the geometry summaries (``saturated``, ``spread_*``,
    ``core_dist_*``; :func:`hyperleaf.tasks.diagnostics.geometry_diagnostics`).

    The figure is :func:`leaf_figure`'s: the whole disk, and every group's samples in its own
    scale; saturated points are ringed in red; the title gives the ordering fractions, the
    saturated fraction and each stream's spread (mean geodesic distance of the samples to their
    centroid, averaged over the stages).
    """
    import matplotlib.pyplot as plt

    fig, summary = leaf_figure(data, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return summary


def plot_run_objective(cfg, objective, val_set, device, path: str | Path) -> dict[str, float]:
    """Collect the validation points of a LEAF fusion model and draw ``path``; the title also
    gives the null control (:func:`hyperleaf.tasks.diagnostics.null_control`: the ordering on
    uniform noise, a constant image and the modalities swapped), and the returned summary its
    ``null_*`` values."""
    data = collect_points(objective, val_set, device)
    null = null_control(objective, val_set, device)
    line = ", ".join(f"{kind} {null[f'null_{kind}_order_all']:.0%}" for kind in NULL_INPUTS)
    title = (f"hyperleaf leaf plot ({len(val_set)} validation samples); null control, ordered "
             f"on inputs with no image content: {line}")
    return {**plot_leaf(data, path, title=title), **null}
