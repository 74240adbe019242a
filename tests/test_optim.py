"""hyperleaf.optim.ForeachRiemannianAdam against geoopt.optim.RiemannianAdam, step by step, on
the training objective's parameters (SHIP + HDGFB + LeafHead with its learned core on the
ball): the same parameters and optimizer state, bit for bit (float32 and float64)."""

from __future__ import annotations

import copy

import pytest
import torch

from hyperleaf.geometry import geoopt
from hyperleaf.optim import ForeachRiemannianAdam
from hyperleaf.tasks.fuse import build_fusion_objective
from hyperleaf.train.config import TrainConfig


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
        for model, o in ((ref, opt_ref), (ours, opt)):
            o.zero_grad()
            model(vis, ir)[0].backward()
            o.step()
        for (name, a), b in zip(ref.named_parameters(), ours.parameters(), strict=True):
            assert torch.equal(a, b), name
    sa, sb = opt_ref.state_dict(), opt.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for k, st in sa["state"].items():
        assert st["step"] == sb["state"][k]["step"]
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if name in st:
                assert torch.equal(st[name], sb["state"][k][name]), (k, name)
    # a geoopt state dict loads into the foreach optimizer (checkpoints stay compatible)
    opt.load_state_dict(sa)


def test_parameters_without_gradient_are_left_alone():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = ForeachRiemannianAdam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    assert not torch.equal(a, torch.ones(3)) and torch.equal(b, torch.ones(2))
    assert b not in opt.state
