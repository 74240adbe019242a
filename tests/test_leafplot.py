"""The leaf plot shows every group's per-sample spread (each group in its own scale) and marks
saturated points exactly where there are some (issue 14 §1)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import hyperleaf
from hyperleaf.nn import to_ball
from hyperleaf.tasks.diagnostics import geometry_diagnostics, saturation_mask
from hyperleaf.tasks.leafplot import collect_points, group_coordinates, leaf_figure, plot_leaf

GROUPS = [f"{s}{k}" for s in ("fused", "vis", "ir") for k in (1, 2, 3)]
C, CLIP = 0.5, 2.0


def _data(scales, *, n=6, dim=8, saturate=(), seed=0):
    """A ``collect_points``-like dict: group (s, l) has tangent vectors ``base + scale * noise``
    (so its spread is about proportional to ``scale``); groups in ``saturate`` get their first
    two samples pushed past the clip radius."""
    g = torch.Generator().manual_seed(seed)
    v = torch.empty(3, n, 3, dim, dtype=torch.float64)
    for s in range(3):
        for lv in range(3):
            base = 0.35 * torch.randn(dim, generator=g, dtype=torch.float64)
            v[s, :, lv] = base + scales[s][lv] * torch.randn(n, dim, generator=g,
                                                             dtype=torch.float64)
            if (s, lv) in saturate:
                v[s, :2, lv] *= 10.0
    pts = to_ball(v.reshape(-1, dim), c=C, clip_r=CLIP).reshape(v.shape)
    ok = torch.ones(n, dtype=torch.bool)
    return {"points": pts, "core": torch.zeros(dim, dtype=torch.float64), "c": C,
            "ok": {"level": ok, "core": ok, "all": ok}, "clip_r": CLIP}


def _pixels(ax, gid):
    """Display (pixel) coordinates of the artist ``gid`` of ``ax``, or None."""
    for coll in ax.collections:
        if coll.get_gid() == gid:
            return ax.transData.transform(coll.get_offsets())
    return None


def _panels(fig):
    return {ax.get_label(): ax for ax in fig.axes if ax.get_label() in GROUPS}


def _max_pair_px(px):
    return max(float(np.linalg.norm(a - b)) for a in px for b in px)


def test_group_coordinates_by_hand():
    # Tangent vectors +-a e1 and 0 (c = 1): centroid 0, distances 2 artanh(tanh a) = 2a and 0.
    a = 0.3
    v = torch.zeros(1, 3, 1, 4, dtype=torch.float64)
    v[0, 0, 0, 0], v[0, 1, 0, 0] = a, -a
    xy, d = group_coordinates(hyperleaf.expmap0(v, c=1.0, dim=-1), c=1.0)
    np.testing.assert_allclose(d[0, :, 0], [2 * a, 2 * a, 0.0], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(xy[0, :, 0], axis=-1), d[0, :, 0], atol=1e-12)
    # Opposite tangent vectors stay opposite in the chart.
    np.testing.assert_allclose(xy[0, 0, 0], -xy[0, 1, 0], atol=1e-12)
    with pytest.raises(ValueError, match="points: expected"):
        group_coordinates(torch.zeros(3, 4), c=1.0)


def test_group_coordinates_radii_are_distances_and_mean_is_the_spread():
    data = _data([[1e-4, 1e-2, 0.5]] * 3)
    pts, c = data["points"], data["c"]
    xy, d = group_coordinates(pts, c)
    # Independent: the centroid as geometry_diagnostics defines it, distances by geoopt.
    m = hyperleaf.expmap0(hyperleaf.logmap0(pts, c=c, dim=-1).mean(1, keepdim=True), c=c, dim=-1)
    want = hyperleaf.dist(pts, m.expand_as(pts), c=c, dim=-1).numpy()
    np.testing.assert_allclose(d, want, rtol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(xy, axis=-1), d, rtol=1e-10)
    geo = geometry_diagnostics(pts, data["core"], c, CLIP)["groups"]
    for s, name in enumerate(("fused", "vis", "ir")):
        for lv in range(3):
            assert np.linalg.norm(xy[s, :, lv], axis=-1).mean() == \
                pytest.approx(geo[f"{name}{lv + 1}"]["spread"], rel=1e-9)


def test_every_group_shows_its_samples_apart_even_when_tiny_on_the_disk():
    # Spreads from ~1e-5 to ~1: on the disk the small groups are one point, in their panels not.
    scales = [[0.3, 1e-3, 1e-5], [0.1, 1e-2, 1e-4], [1e-5, 3e-6, 0.2]]
    data = _data(scales)
    fig, summary = leaf_figure(data, "test")
    fig.canvas.draw()
    panels = _panels(fig)
    assert sorted(panels) == sorted(GROUPS)
    xy, _ = group_coordinates(data["points"], C)
    main = [ax for ax in fig.axes if ax.get_label() not in GROUPS][0]
    n_tiny_on_disk = 0
    for name in ("fused", "vis", "ir"):
        for lv in range(3):
            px = _pixels(panels[f"{name}{lv + 1}"], f"samples:{name}{lv + 1}")
            assert px is not None and len(px) == 6
            # Visibly apart: the two farthest samples at least a third of the panel apart.
            width = panels[f"{name}{lv + 1}"].bbox.width
            assert _max_pair_px(px) > width / 3, (name, lv)
            # Every sample its own point (no two within half a pixel), as the data differ.
            dists = [np.linalg.norm(px[i] - px[j]) for i in range(6) for j in range(i)]
            assert min(dists) > 0.5, (name, lv)
            n_tiny_on_disk += _max_pair_px(_pixels(main, f"disk:{name}{lv + 1}")) < 2.0
    assert n_tiny_on_disk >= 3  # the groups that the disk alone shows as one point
    assert summary["saturated"] == 0.0
    # Nothing saturated: no red rings anywhere.
    gids = [coll.get_gid() for ax in fig.axes for coll in ax.collections]
    assert not [g for g in gids if g and g.startswith("saturated")]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_saturated_rings_exactly_where_saturated():
    data = _data([[0.2] * 3] * 3, saturate={(1, 0), (2, 2)})
    sat = saturation_mask(data["points"], C, CLIP)
    assert sat[1, :2, 0].all() and sat[2, :2, 2].all() and int(sat.sum()) == 4
    fig, summary = leaf_figure(data)
    assert summary["saturated"] == pytest.approx(4 / sat.numel())
    panels = _panels(fig)
    for key, ax in panels.items():
        rings = _pixels(ax, f"saturated:{key}")
        if key in ("vis1", "ir3"):
            assert rings is not None and len(rings) == 2
            # The rings sit on the saturated samples.
            samples = _pixels(ax, f"samples:{key}")
            np.testing.assert_allclose(rings, samples[:2])
            assert "sat." in ax.get_title()
        else:
            assert rings is None, key
            assert "sat." not in ax.get_title()
    main = [ax for ax in fig.axes if ax.get_label() not in GROUPS][0]
    assert len(_pixels(main, "saturated")) == 4
    assert f"saturated {4 / 54:.0%}" in fig.get_suptitle()  # 4 of 3 x 6 x 3 vectors
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_collapsed_group_is_drawn_and_said(tmp_path):
    data = _data([[0.2] * 3] * 3)
    data["points"][2, :, 1] = data["points"][2, :1, 1]  # infrared stage 2: all samples equal
    path = tmp_path / "leaf.png"
    summary = plot_leaf(data, path, title="collapsed")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    geo = geometry_diagnostics(data["points"], data["core"], C, CLIP)
    assert summary["spread_ir"] == pytest.approx(geo["spread_ir"])
    fig, _ = leaf_figure(data)
    ax = _panels(fig)["ir2"]
    assert "all samples at one point" in ax.get_title()
    assert math.isfinite(ax.get_xlim()[1]) and ax.get_xlim()[1] > 0
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_leaf_plot_of_a_trained_run_separates_every_group_with_spread(tmp_path, capsys):
    from hyperleaf.cli import main
    from hyperleaf.tasks import get_task
    from hyperleaf.train import TrainConfig, train
    from tests.test_train import load_run

    cfg = TrainConfig.from_dict({"steps": 3, "batch_size": 2, "crop": 16, "val_crop": 24,
                                 "val_size": 4, "train_size": 8, "n_feat": 4,
                                 "hdgfb_hidden": 8, "ball_dim": 4, "w_ssim": 0.0,
                                 "out": str(tmp_path / "r")})
    train(cfg, progress=False)
    objective, cfg = load_run(tmp_path / "r")
    _, val_set = get_task("fuse").datasets(cfg)
    data = collect_points(objective, val_set, "cpu")
    fig, summary = leaf_figure(data)
    fig.canvas.draw()
    groups = geometry_diagnostics(data["points"], data["core"], data["c"],
                                  data["clip_r"])["groups"]
    with_spread = [k for k, g in groups.items() if g["spread"] > 1e-5]  # well above float32
    assert with_spread, groups
    panels = _panels(fig)
    for key in with_spread:
        px = _pixels(panels[key], f"samples:{key}")
        assert _max_pair_px(px) > panels[key].bbox.width / 3, key
    has_rings = any(c.get_gid() == "saturated" for ax in fig.axes for c in ax.collections)
    assert has_rings == (summary["saturated"] > 0)
    # hyperleaf plot prints fractions as percentages, spreads and distances as distances.
    assert main(["plot", str(tmp_path / "r"), "--out", str(tmp_path / "again.png")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"order_all \d+\.\d%", printed) and re.search(r"saturated \d+\.\d%", printed)
    spread = re.search(r"spread_ir ([0-9.e+-]+)(,|$)", printed, re.M)
    assert spread and float(spread.group(1)) == pytest.approx(summary["spread_ir"], rel=1e-3)
    import matplotlib.pyplot as plt

    plt.close(fig)
