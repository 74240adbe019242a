"""The null control of the geometry diagnostics: the ordering and spreads on inputs without
image content, recomputed independently, logged beside the real ones, printed by
``hyperleaf plot``."""

from __future__ import annotations

import re

import pytest
import torch

from hyperleaf.nn.heads import ordering
from hyperleaf.tasks.diagnostics import NULL_INPUTS, null_control, null_inputs
from hyperleaf.tasks.fuse import build_fusion_objective, evaluate_fusion
from hyperleaf.train import TrainConfig


def test_null_inputs():
    g = torch.Generator().manual_seed(0)
    v, i = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    nv, ni = null_inputs(v, i, "noise", g)
    assert nv.shape == v.shape and not torch.equal(nv, ni) and 0 <= float(nv.min())
    assert float(nv.max()) < 1
    assert all(torch.equal(t, torch.full_like(v, 0.5)) for t in null_inputs(v, i, "constant", g))
    sv, si = null_inputs(v, i, "swapped", g)
    assert torch.equal(sv, i) and torch.equal(si, v)
    with pytest.raises(ValueError, match="kind"):
        null_inputs(v, i, "zeros", g)


def _objective(seed=0):
    torch.manual_seed(seed)
    return build_fusion_objective(TrainConfig(n_feat=4, ball_dim=4, hdgfb_hidden=8).validate())


def test_null_control_recomputed_independently():
    obj = _objective().eval()
    g = torch.Generator().manual_seed(7)
    val = [{"vis": torch.rand(1, 24, 24, generator=g), "ir": torch.rand(1, 24, 24, generator=g)}
           for _ in range(5)]
    got = null_control(obj, val, "cpu", seed=3)
    assert set(got) == {f"null_{k}_{m}" for k in NULL_INPUTS
                        for m in ("order_level", "order_core", "order_all", "spread_fused",
                                  "spread_vis", "spread_ir")}
    vis = torch.stack([v["vis"] for v in val])
    ir = torch.stack([v["ir"] for v in val])
    gen = torch.Generator().manual_seed(3)  # the same noise draws, in the same order
    with torch.no_grad():
        for kind in NULL_INPUTS:
            if kind == "noise":
                nv, ni = torch.rand(vis.shape, generator=gen), torch.rand(ir.shape, generator=gen)
            elif kind == "constant":
                nv, ni = torch.full_like(vis, 0.5), torch.full_like(ir, 0.5)
            else:
                nv, ni = ir, vis
            _, levels = obj.run(nv, ni)
            ok = ordering(levels, obj.head.core(), obj.head.curvature)
            for k in ("level", "core", "all"):
                assert got[f"null_{kind}_order_{k}"] == pytest.approx(float(ok[k].double().mean()))
    # a constant image is one input repeated: every sample at one point, one decision for all
    for s in ("fused", "vis", "ir"):
        assert got[f"null_constant_spread_{s}"] == pytest.approx(0.0, abs=1e-6)
    assert got["null_constant_order_all"] in (0.0, 1.0)
    # noise inputs differ per sample: a spread above zero
    assert got["null_noise_spread_fused"] > 0


def test_validation_record_and_plot_carry_the_null_control(tmp_path, capsys):
    from hyperleaf.cli import main
    from hyperleaf.train import train

    obj = _objective()
    val = [{"vis": torch.rand(1, 24, 24), "ir": torch.rand(1, 24, 24)} for _ in range(3)]
    rec = evaluate_fusion(obj, val, torch.device("cpu"))
    assert rec["null_swapped_order_all"] == null_control(obj, val, "cpu")["null_swapped_order_all"]
    assert "order_all" in rec  # the real value beside it
    cfg = TrainConfig.from_dict({"steps": 2, "batch_size": 2, "crop": 16, "val_crop": 24,
                                 "val_size": 3, "train_size": 4, "n_feat": 4, "hdgfb_hidden": 8,
                                 "ball_dim": 4, "out": str(tmp_path / "r")})
    result = train(cfg, progress=False)
    assert "null_noise_order_all" in result.val_last  # the end-of-run summary's rows
    assert main(["plot", str(tmp_path / "r"), "--out", str(tmp_path / "p.png")]) == 0
    printed = capsys.readouterr().out
    line = next(ln for ln in printed.splitlines() if ln.startswith("null control"))
    for kind in NULL_INPUTS:
        assert re.search(rf"null_{kind}_order_all \d+\.\d%", line), line


def test_plot_refuses_runs_without_a_disk(tmp_path, capsys):
    from hyperleaf.cli import main
    from hyperleaf.train import train

    base = {"steps": 1, "batch_size": 2, "crop": 16, "val_crop": 24, "val_size": 2,
            "train_size": 4, "n_feat": 4, "hdgfb_hidden": 8, "ball_dim": 4}
    for name, keys, words in (("e", {"euclidean": True, "learn_curvature": False},
                               "Euclidean-limit run"),
                              ("h", {"h2fr": False}, "with H2FR's head")):
        cfg = TrainConfig.from_dict({**base, **keys, "out": str(tmp_path / name)})
        rec = train(cfg, progress=False).val_last
        if name == "e":  # the Euclidean run still logs its ordering and null control
            assert "null_noise_order_all" in rec and "order_all" in rec
        assert main(["plot", str(tmp_path / name), "--out", str(tmp_path / "p.png")]) == 2
        assert words in capsys.readouterr().err
