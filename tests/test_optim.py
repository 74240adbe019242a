"""hyperleaf.optim.ForeachRiemannianAdam against geoopt.optim.RiemannianAdam, step by step, on
the training objective's parameters (SHIP + HDGFB + LeafHead with its learned core on the
ball): the same parameters and optimizer state to rounding (the foreach update fuses geoopt's
operations: lerp, addcmul, addcdiv), float32 and float64."""

from __future__ import annotations

import copy

import pytest
import torch

from hyperleaf.geometry import geoopt
from hyperleaf.optim import ForeachRiemannianAdam
from hyperleaf.tasks.fuse import build_fusion_objective
from hyperleaf.train.config import TrainConfig

#: relative tolerance per dtype: a few ulps (float32 2^-23 ~ 1.2e-7, float64 2^-52 ~ 2.2e-16)
TOL = {torch.float32: 2e-6, torch.float64: 1e-14}
STEP_TOL = {torch.float32: 1e-4, torch.float64: 1e-13}


def _objective(dtype):
    torch.manual_seed(0)
    return build_fusion_objective(TrainConfig(n_feat=4, hdgfb_hidden=8, ball_dim=4)).to(dtype)


@pytest.mark.parametrize("dtype,weight_decay,amsgrad", [
    (torch.float32, 0.0, False), (torch.float64, 1e-2, False), (torch.float32, 1e-3, True)])
def test_equals_geoopt_step_by_step(dtype, weight_decay, amsgrad):
    ref = _objective(dtype)
    ours = copy.deepcopy(ref)
    assert any(isinstance(p, geoopt.ManifoldParameter) and
               not isinstance(p.manifold, geoopt.Euclidean) for p in ref.parameters())
    kw = {"lr": 5e-2, "weight_decay": weight_decay, "amsgrad": amsgrad}
    opt_ref = geoopt.optim.RiemannianAdam(ref.parameters(), **kw)
    opt = ForeachRiemannianAdam(ours.parameters(), **kw)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        vis = torch.rand(2, 1, 8, 8, generator=g, dtype=dtype)
        ir = torch.rand(2, 1, 8, 8, generator=g, dtype=dtype)
        # the same gradients into both (the reference's), so that the comparison measures the
        # optimizers and not Adam's sign-like response to rounding-level gradient changes
        opt_ref.zero_grad()
        ref(vis, ir)[0].backward()
        for a, b in zip(ref.parameters(), ours.parameters(), strict=True):
            b.grad = None if a.grad is None else a.grad.clone()
        opt_ref.step()
        opt.step()
        for (name, a), b in zip(ref.named_parameters(), ours.parameters(), strict=True):
            # to a few ulps of the parameter and 1e-4 (float64: 1e-13) of the step size lr:
            # where sqrt(v) is near eps an update divides a near-cancelled moment by ~eps, so
            # one rounding of the moment moves that step by a fraction of lr (measured in
            # float32: 1.3e-7 = 2.5e-6 lr alone, 5.4e-7 = 1.1e-5 lr inside the whole suite,
            # whose other tests leave torch's thread count and kernels in another state)
            torch.testing.assert_close(b, a, rtol=TOL[dtype], atol=STEP_TOL[dtype] * 5e-2,
                                       msg=lambda m, name=name: f"{name}: {m}")
    sa, sb = opt_ref.state_dict(), opt.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for k, st in sa["state"].items():
        assert st["step"] == sb["state"][k]["step"]
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if name in st:
                # a few ulps of the moment's scale (entries that cancel near 0 have no digits)
                scale = float(st[name].abs().max())
                torch.testing.assert_close(sb["state"][k][name], st[name], rtol=TOL[dtype],
                                           atol=TOL[dtype] * scale,
                                           msg=lambda m, k=k, name=name: f"{k} {name}: {m}")
    # a geoopt state dict loads into the foreach optimizer (checkpoints stay compatible)
    opt.load_state_dict(sa)


def test_parameters_without_gradient_are_left_alone():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = ForeachRiemannianAdam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    assert not torch.equal(a, torch.ones(3)) and torch.equal(b, torch.ones(2))
    assert b not in opt.state
