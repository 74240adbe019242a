"""Geometry diagnostics of LEAF's ball points (saturation, spread, core distances), logged and
plotted."""

from __future__ import annotations

import json

import pytest
import torch

import hyperleaf
from hyperleaf.nn import to_ball
from hyperleaf.tasks.diagnostics import geometry_diagnostics, saturation_mask
from hyperleaf.train import TrainConfig, train


def test_diagnostics_on_points_of_known_geometry():
    # Tangent vectors +-a e1 (a = 0.25, 0.5) and one clipped 3 e2 per group: with the core at
    # the origin and c = 1, d(0, exp0(v)) = 2 artanh(tanh(|v|)) = 2 |v| (clipped: 2 clip_r).
    c, clip = 1.0, 2.0
    e1, e2 = torch.eye(2, dtype=torch.float64)
    v = torch.stack([torch.stack([a * e1, -a * e1, 3.0 * e2]) for a in (0.25, 0.5)], 1)  # N,L,D
    v = torch.stack([v, 2 * v, v])  # (S=3, N=3, L=2, D=2); stream 1's 2 a e1 stay below clip
    pts = to_ball(v.reshape(-1, 2), c=c, clip_r=clip).reshape(v.shape)
    sat = saturation_mask(pts, c, clip)
    assert sat[:, 2].all() and not sat[:, :2].any()
    d = geometry_diagnostics(pts, torch.zeros(2, dtype=torch.float64), c, clip)
    assert d["saturated"] == pytest.approx(1 / 3)
    # Centroid of the tangent vectors: (0, 2)/3 in tangent space -> its exp0. Check against
    # distances computed directly.
    for s, name in enumerate(("fused", "vis", "ir")):
        for lv in range(2):
            x = pts[s, :, lv]
            m = hyperleaf.expmap0(hyperleaf.logmap0(x, c=c, dim=-1).mean(0), c=c, dim=-1)
            want = float(hyperleaf.dist(x, m.expand_as(x), c=c, dim=-1).mean())
            g = d["groups"][f"{name}{lv + 1}"]
            assert g["spread"] == pytest.approx(want, rel=1e-12)
            assert g["saturated"] == pytest.approx(1 / 3)
            a = (0.25, 0.5)[lv] * (2 if s == 1 else 1)
            assert g["core_dist"] == pytest.approx((2 * a + 2 * a + 2 * clip) / 3, rel=1e-9)
    # A group of identical points has zero spread.
    same = pts[:, :1].expand(3, 4, 2, 2)
    assert geometry_diagnostics(same, torch.zeros(2), c, clip)["spread_vis"] == \
        pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="points: expected"):
        geometry_diagnostics(pts[0], torch.zeros(2), c, clip)
    with pytest.raises(ValueError, match="clip_r"):
        saturation_mask(pts, c, 0.0)


def test_run_logs_geometry_and_plot_reports_it(tmp_path):
    cfg = TrainConfig.from_dict({"steps": 2, "batch_size": 2, "crop": 16, "val_crop": 24,
                                 "val_size": 3, "train_size": 8, "n_feat": 4,
                                 "hdgfb_hidden": 8, "ball_dim": 4, "w_ssim": 0.0,
                                 "out": str(tmp_path / "r")})
    r = train(cfg, progress=False)
    recs = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    val = [x for x in recs if x["kind"] == "val"][-1]
    assert set(val["geometry"]) == {f"{s}{k}" for s in ("fused", "vis", "ir") for k in (1, 2, 3)}
    assert set(val["geometry"]["ir2"]) == {"saturated", "spread", "core_dist"}
    for key in ("saturated", "spread_fused", "spread_vis", "spread_ir", "core_dist_fused"):
        assert key in r.val_last and key in r.val_first  # the end-of-run table rows
    leaf = [x for x in recs if x["kind"] == "leaf"][-1]
    assert leaf["saturated"] == pytest.approx(val["saturated"])
    assert leaf["spread_ir"] == pytest.approx(val["spread_ir"], rel=1e-9)
