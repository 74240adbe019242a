"""The leaf plot: stage features of validation samples on the Poincaré disk.

Each fused and unimodal stage feature ``x`` (a point of the D-dimensional ball) is drawn on the
2-D Poincaré disk of the same curvature at geodesic distance ``d(x, core)`` from the centre, the
exact distance to the fused core in D dimensions, so the picture shows truthfully how near each
feature sits to the core. Only the angle is a projection: the direction of ``x`` seen from the
core (``log_0((-core) ⊕ x)``, the core moved to the origin by a Möbius translation, an isometry)
projected on the first two principal axes of all those directions. H2FR asks for a laminar
"leaf": deeper fused stages nearer the core than shallower ones, and every fused feature nearer
the core than the unimodal features of its stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import hyperleaf
from hyperleaf.atomic import atomic_write_bytes
from hyperleaf.nn.heads import ordering
from hyperleaf.tasks.common import val_batches
from hyperleaf.tasks.diagnostics import geometry_diagnostics, saturation_mask

__all__ = ["collect_points", "disk_coordinates", "plot_leaf", "plot_run_objective"]


@torch.no_grad()
def collect_points(objective, val_set, device) -> dict[str, object]:
    """Ball points of ``val_set``: ``points`` (S, N, L, D) for streams (fused, vis, ir), the core
    ``(D,)`` and the curvature, plus the per-sample ordering booleans."""
    objective.eval()
    head = objective.head
    if head is None:
        raise ValueError("the leaf plot needs a LEAF model (this run used --no-leaf)")
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
    d = hyperleaf.dist(points, core, c=c, dim=-1)
    moved = hyperleaf.mobius_add((-core).expand_as(points), points, c=c, dim=-1)
    v = hyperleaf.logmap0(moved, c=c, dim=-1).reshape(-1, points.shape[-1])
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


def plot_leaf(data: dict[str, object], path: str | Path, title: str = "") -> dict[str, float]:
    """Draw ``collect_points`` output to ``path`` (PNG, written atomically); returns the
    ordering fractions and the geometry summaries (``saturated``, ``spread_*``,
    ``core_dist_*``; :func:`hyperleaf.tasks.diagnostics.geometry_diagnostics`).

    Saturated points (at the clipping radius) are ringed in red; the title gives the ordering
    fractions, the saturated fraction and each stream's spread (mean geodesic distance of the
    samples to their centroid, averaged over the stages).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts, core, c = data["points"], data["core"], data["c"]
    xy, _ = disk_coordinates(pts, core, c)  # (S, N, L, 2)
    s_count, n, n_levels, _ = xy.shape
    frac = {f"order_{k}": float(v.float().mean()) for k, v in data["ok"].items()}
    clip_r = data.get("clip_r")
    geo = geometry_diagnostics(pts, core, c, clip_r)
    geo.pop("groups")
    sat = (saturation_mask(pts, c, clip_r) if clip_r is not None
           else torch.zeros(pts.shape[:-1], dtype=torch.bool)).numpy()
    fig, ax = plt.subplots(figsize=(6.4, 6.4), dpi=110)
    radius = 1 / c ** 0.5
    ax.add_patch(plt.Circle((0, 0), radius, fill=False, color="0.3", lw=1.0))
    colours = plt.get_cmap("viridis")(np.linspace(0.1, 0.9, n_levels))
    markers = ["o", "^", "s", "D", "v"]
    names = ["fused", "visible", "infrared"] + [f"modality {i}" for i in range(3, s_count)]
    for i in range(n):  # thin "veins": a sample's fused features from shallow to deep
        ax.plot(xy[0, i, :, 0], xy[0, i, :, 1], color="0.75", lw=0.6, zorder=1)
    for s in range(s_count):
        for lv in range(n_levels):
            ax.scatter(xy[s, :, lv, 0], xy[s, :, lv, 1], s=34 if s == 0 else 22,
                       marker=markers[s % len(markers)], color=colours[lv],
                       edgecolors="k" if s == 0 else "none", linewidths=0.5, zorder=3,
                       alpha=0.95 if s == 0 else 0.7,
                       label=f"{names[s]}, stage {lv + 1}")
    if sat.any():
        ax.scatter(xy[..., 0][sat], xy[..., 1][sat], s=70, facecolors="none",
                   edgecolors="red", linewidths=0.8, zorder=5,
                   label="saturated (at the clip radius)")
    ax.scatter([0], [0], marker="*", s=160, color="crimson", zorder=4, label="fused core")
    ax.set_xlim(-1.05 * radius, 1.05 * radius)
    ax.set_ylim(-1.05 * radius, 1.05 * radius)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.8)
    ax.set_title((title + "\n" if title else "")
                 + f"c = {c:.3f}; ordered as H2FR asks: {frac['order_all']:.0%} of {n} samples "
                 f"(stages {frac['order_level']:.0%}, fused core {frac['order_core']:.0%})\n"
                 f"saturated {geo['saturated']:.0%}; spread (mean dist. to centroid) fused "
                 f"{geo['spread_fused']:.3f}, visible {geo['spread_vis']:.3f}, infrared "
                 f"{geo['spread_ir']:.3f}",
                 fontsize=8)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return {**frac, **geo}


def plot_run_objective(cfg, objective, val_set, device, path: str | Path) -> dict[str, float]:
    """Collect the validation points of a LEAF fusion model and draw ``path``."""
    data = collect_points(objective, val_set, device)
    return plot_leaf(data, path, title=f"hyperleaf leaf plot ({len(val_set)} validation samples)")
