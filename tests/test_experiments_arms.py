"""The ablation's arms: every arm of one seed shares each common initial tensor bit for bit
(per task), the Euclidean arm is the c -> 0 limit of the hyperbolic one (geometry, HDGFB,
LeafHead + H2FR), and each arm's parameter count is what its network has."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch

from hyperleaf import geometry
from hyperleaf.experiments import ARMS, count_parameters
from hyperleaf.nn.hdgfb import HDGFB
from hyperleaf.nn.heads import LeafHead, ordering
from hyperleaf.train import TrainConfig
from hyperleaf.train.build import build_objective, copy_shared_init

# Small networks of each task (segment: the 3-D LEAF U-Net of open_ms, tiny widths).
TASK_BASE = {
    "fuse": {"n_feat": 4, "ball_dim": 4, "hdgfb_hidden": 8},
    "segment": {"model": "leaf-unet3d", "widths3d": [8, 16], "in_channels": 1,
                "num_classes": 2, "crop": 16, "val_crop": 16, "feature_dim": 16, "mlp_dim": 32,
                "hdgfb_hidden": 8, "data": "unused"},
    "pansharpen": {"data": "unused.h5", "ms_bands": 4, "ratio": 4, "normalise": False,
                   "n_feat": 4, "crop": 16, "val_crop": 16, "hdgfb_hidden": 8,
                   "hdgfb_mode": "geodesic"},
}


def _arms(task):
    return [a for a in ARMS if not (task == "segment" and a == "euclidean")]


def _initial_state(task, arm, seed, shared=True):
    cfg = TrainConfig.from_dict({**TASK_BASE[task], **ARMS[arm], "task": task, "seed": seed},
                                source="test").validate()
    torch.manual_seed(seed)  # as the trainer does before building
    obj = build_objective(cfg)
    if shared:
        copy_shared_init(obj, cfg)
    return obj, {k: v.clone() for k, v in obj.state_dict().items()}


@pytest.mark.parametrize("task", ["fuse", "segment", "pansharpen"])
def test_arms_of_one_seed_share_every_common_tensor(task):
    states = {a: _initial_state(task, a, seed=3)[1] for a in _arms(task)}
    compared = 0
    for a, b in itertools.combinations(states, 2):
        common = [k for k in states[a] if k in states[b]
                  and states[a][k].shape == states[b][k].shape]
        assert common, (a, b)
        differ = [k for k in common if not torch.equal(states[a][k], states[b][k])]
        assert not differ, f"{task}: {a} vs {b}: {differ[:5]}"
        compared += len(common)
    assert compared > 0
    # the check can fail: another seed changes the shared tensors
    other = _initial_state(task, "ship", seed=4)[1]
    assert any(not torch.equal(other[k], states["ship"][k]) for k in other)


def test_without_shared_init_the_arms_would_differ():
    """Why the ablation sets shared_init: without it, H2FR's head of the h2fr-only arm is drawn
    at another point of the random stream than in the full arm (no HDGFB before it)."""
    _, full = _initial_state("fuse", "leaf", 0, shared=False)
    _, h2fr_only = _initial_state("fuse", "h2fr-only", 0, shared=False)
    head = [k for k in h2fr_only if k.startswith("head.compress") and k in full]
    assert head and any(not torch.equal(full[k], h2fr_only[k]) for k in head)
    _, shared = _initial_state("fuse", "h2fr-only", 0)
    assert all(torch.equal(full[k], shared[k]) for k in head)


def test_shared_init_keeps_the_global_random_state():
    cfg = TrainConfig(leaf=True, h2fr=False, n_feat=4, seed=2).validate()
    torch.manual_seed(2)
    obj = build_objective(cfg)
    before = torch.random.get_rng_state()
    copy_shared_init(obj, cfg)
    assert torch.equal(before, torch.random.get_rng_state())


def test_parameter_counts_differ_by_the_modules_each_arm_has():
    objs = {a: _initial_state("fuse", a, 0)[0] for a in ARMS}
    n = {a: count_parameters(o) for a, o in objs.items()}
    trained = [(k, p) for k, p in objs["leaf"].named_parameters() if p.requires_grad]
    hdgfb = sum(p.numel() for k, p in trained if k.startswith(("net.hdgfb.", "net.hdgfb_proj.")))
    head = sum(p.numel() for k, p in trained if k.startswith("head."))
    assert hdgfb > 0 and head > 0
    assert n["leaf"] == n["ship"] + hdgfb + head
    assert n["hdgfb-only"] == n["ship"] + hdgfb
    assert n["h2fr-only"] == n["ship"] + head
    # the Euclidean arm has no learnable curvature: the leaf arm's learned ones are extra
    learned_c = sum(p.numel() for k, p in trained if "ball" in k)
    assert n["euclidean"] == n["leaf"] - learned_c


# ---------------------------------------------------------------------------- c -> 0


@pytest.mark.parametrize("name", ["expmap0", "logmap0", "dist0", "dist", "mobius_add"])
def test_geometry_limits_are_the_c_to_zero_limits(name):
    """float64: the error of each map against its *_c0 limit falls like O(c) (a factor ~100
    per two decades of c), below 3e-8 at c = 1e-8, for points of norm <= 1.5."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, dtype=torch.float64, generator=g)
    x = x / x.norm(dim=1, keepdim=True) * torch.rand(64, 1, dtype=torch.float64, generator=g) * 1.5
    y = torch.randn(64, 8, dtype=torch.float64, generator=g) * 0.2
    two = name in ("dist", "mobius_add")
    hyper = getattr(geometry, name)
    limit = getattr(geometry, f"{name}_c0")
    errs = []
    for c in (1e-2, 1e-4, 1e-6, 1e-8):
        got = hyper(x, y, c) if two else hyper(x, c)
        want = limit(x, y) if two else limit(x)
        errs.append(float((got - want).abs().max()))
    for e_big, e_small in zip(errs, errs[1:]):
        assert e_small < e_big / 50  # two decades of c: at least ~x50 (O(c) gives x100)
    # leading terms: d_0 = 2|x| (1 + c|x|^2/3 + ...): 2 c |x|^3 / 3 = 2.25e-8 at c = 1e-8,
    # |x| = 1.5 (the largest here); the other maps' terms are of the same order or smaller
    assert errs[-1] < 3e-8
    # and the limit is not the hyperbolic map at a finite curvature
    assert errs[0] > 1e-4


def test_hdgfb_euclidean_is_the_limit_of_the_geodesic_block():
    g = torch.Generator().manual_seed(1)
    fused, ir, vis = (torch.randn(2, 6, 5, 5, dtype=torch.float64, generator=g) for _ in range(3))
    errs = []
    for c in (1e-2, 1e-4, 1e-6):
        torch.manual_seed(0)
        hyp = HDGFB(6, c=c, hidden=8, mode="geodesic", impl="reference").double()
        torch.manual_seed(0)
        euc = HDGFB(6, c=c, hidden=8, mode="geodesic", euclidean=True).double()
        euc.load_state_dict(hyp.state_dict())
        a, ga = hyp(fused, ir, vis, return_gates=True)
        b, gb = euc(fused, ir, vis, return_gates=True)
        errs.append(max(float((a - b).detach().abs().max()), float((ga - gb).detach().abs().max())))
    assert errs[1] < errs[0] / 30 and errs[2] < errs[1] / 30 and errs[2] < 1e-5
    assert errs[0] > 1e-5  # c = 0.01 is still visibly hyperbolic
    with pytest.raises(ValueError, match="c -> 0 limit of mode='geodesic'"):
        HDGFB(6, mode="paper", euclidean=True)


def test_leaf_head_euclidean_is_the_limit_of_the_hyperbolic_head():
    g = torch.Generator().manual_seed(2)
    levels = [tuple(torch.rand(4, 5, 3, 3, dtype=torch.float64, generator=g) for _ in range(3))
              for _ in range(3)]
    errs = []
    for c in (1e-2, 1e-4, 1e-6):
        torch.manual_seed(0)
        hyp = LeafHead([5, 5, 5], dim=4, c=c, learn_c=False).double()
        torch.manual_seed(0)
        euc = LeafHead([5, 5, 5], dim=4, c=c, learn_c=False, euclidean=True).double()
        with torch.no_grad():
            hyp.h2fr.core.copy_(torch.tensor([0.1, -0.2, 0.05, 0.3]))
            euc.h2fr.core.copy_(hyp.h2fr.core)
        ph, pe = hyp.embed(levels), euc.embed(levels)
        errs.append(abs(float(hyp.loss(ph).detach()) - float(euc.loss(pe).detach())))
        # the orderings agree once c is small (same per-sample decisions)
        if c <= 1e-4:
            oh = ordering(ph, hyp.core(), hyp.curvature)
            oe = ordering(pe, euc.core(), euc.curvature)
            assert all(torch.equal(oh[k], oe[k]) for k in oh)
    assert errs[1] < errs[0] / 30 and errs[2] < 1e-6
    assert float(euc.curvature) == 0.0
    with pytest.raises(ValueError, match="learn_c=False"):
        LeafHead([5, 5], dim=4, euclidean=True)


def test_euclidean_config_needs_geodesic_and_fixed_curvature():
    from hyperleaf.train.config import ConfigError

    with pytest.raises(ConfigError, match="euclidean"):
        TrainConfig(euclidean=True).validate()  # learn_curvature is true by default
    with pytest.raises(ConfigError, match="euclidean"):
        TrainConfig(euclidean=True, learn_curvature=False, h2fr_mode="paper",
                    h2fr_core="origin").validate()
    TrainConfig(euclidean=True, learn_curvature=False).validate()


def test_old_module_warns_and_resolves():
    import hyperleaf.experiments as new
    import hyperleaf.train.ablation as old

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert old.run_ablation is new.run_ablation
        assert old.confidence_interval is new.confidence_interval
    assert [w.category for w in caught] == [DeprecationWarning] * 2
    assert "hyperleaf.experiments" in str(caught[0].message)
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert math.isfinite(old.t_critical(0.95, 3))
