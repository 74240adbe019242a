"""The model and task registries and the per-level feature interface."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from hyperleaf.models import SHIP, LEAFSegNet, LevelFeatures
from hyperleaf.models.registry import create_model, get_model, list_models, register_model
from hyperleaf.tasks import Task, get_task, list_tasks, register_task
from hyperleaf.tasks import base as task_base
from hyperleaf.train import TrainConfig


def test_builtin_models_by_name():
    assert {"ship", "leafseg"} <= set(list_models())
    assert get_model("ship") is SHIP and get_model("leafseg") is LEAFSegNet
    net = create_model("ship", n_feat=4)
    assert isinstance(net, SHIP) and net.n_feat == 4
    with pytest.raises(ValueError, match="unknown name 'nope'.*ship"):
        create_model("nope")


def test_register_model_and_duplicates(monkeypatch):
    from hyperleaf.models import registry

    monkeypatch.setattr(registry.MODELS, "_entries", registry.MODELS.loaded())

    @register_model("tiny-test")
    class Tiny(nn.Linear):
        def __init__(self, n: int = 2):
            super().__init__(n, n)

    assert isinstance(create_model("tiny-test", n=3), Tiny) and "tiny-test" in list_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny-test")(nn.Identity)
    with pytest.raises(ValueError, match="name"):
        register_model("")


@pytest.mark.parametrize("name", ["ship", "leafseg"])
def test_forward_levels_matches_forward(name):
    torch.manual_seed(0)
    if name == "ship":
        net = create_model("ship", n_feat=4, hdgfb=True, hdgfb_kwargs={"hidden": 8}).eval()
    else:
        net = create_model("leafseg", num_classes=3, widths=(4, 8)).eval()
    assert isinstance(net, LevelFeatures)
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        out, levels = net.forward_levels(a, b)
        ref = net(a, b)
    # Same computation: equal bit for bit.
    assert torch.equal(out, ref)
    assert len(levels) == len(net.level_channels)
    for maps, ch in zip(levels, net.level_channels, strict=True):
        assert len(maps) == 3  # fused, then one map per input modality
        assert all(m.shape[:2] == (2, ch) for m in maps)


def test_ship_levels_are_its_features():
    torch.manual_seed(1)
    net = SHIP(n_feat=4, hdgfb=True, hdgfb_kwargs={"hidden": 8}).eval()
    vis, ir = torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        _, feats = net(vis, ir, return_features=True)
        _, levels = net.forward_levels(vis, ir)
    for k, (f, v, i) in enumerate(levels):
        assert torch.equal(f, feats.fused[k]) and torch.equal(v, feats.vis[k])
        assert torch.equal(i, feats.ir[k])


def test_builtin_tasks_and_unknown():
    assert {"fuse", "segment"} <= set(list_tasks())
    assert get_task("fuse").inputs == ("vis", "ir")
    assert get_task("segment").inputs == ("vis", "ir", "mask")
    with pytest.raises(ValueError, match="unknown name 'nope'.*fuse"):
        get_task("nope")
    with pytest.raises(ValueError, match="task: must be one of"):
        TrainConfig(task="nope").validate()


def test_task_checks_its_config():
    # The segment task validates its own part (the engine's config knows no model names).
    with pytest.raises(ValueError, match="^model: leafseg trains on the embedded synthetic"):
        TrainConfig(task="segment", model="leafseg", data="somewhere").validate()
    with pytest.raises(ValueError, match="^model: the segment task builds"):
        TrainConfig(task="segment", model="no-such-net").validate()


def test_register_task(monkeypatch):
    monkeypatch.setattr(task_base.TASKS, "_entries", task_base.TASKS.loaded())

    @register_task("echo-test")
    class Echo(Task):
        inputs = ("x",)

    t = get_task("echo-test")
    assert isinstance(t, Echo) and t.name == "echo-test" and "echo-test" in list_tasks()
    model = lambda x: (x.sum(), {"s": x.sum().detach()}, x)  # noqa: E731
    total, parts = t.loss(model, {"x": torch.ones(3), "unused": torch.zeros(1)})
    assert float(total) == 3.0 and set(parts) == {"s"}
    assert t.artifacts(None, None, None, "cpu", None) == {}
    with pytest.raises(TypeError, match="Task subclass"):
        register_task("bad")(int)
    with pytest.raises(ValueError, match="already registered"):
        register_task("echo-test")(type("Other", (Task,), {}))


def test_fusion_objective_needs_levels():
    from hyperleaf.losses import FusionLoss
    from hyperleaf.nn.heads import LeafHead
    from hyperleaf.tasks.fuse import FusionObjective

    with pytest.raises(TypeError, match="forward_levels"):
        FusionObjective(nn.Identity(), FusionLoss(), LeafHead([4, 4]))


def test_one_registry_class_serves_tasks_and_models():
    from hyperleaf.models import registry as model_registry
    from hyperleaf.registry import Registry

    assert isinstance(task_base.TASKS, Registry) and isinstance(model_registry.MODELS, Registry)
    reg = Registry("widget", {"builtin-one": "hyperleaf.nonexistent_module"})
    assert reg.names() == ["builtin-one"] and "builtin-one" in reg
    reg.register("w")(len)
    assert reg.get("w") is len and reg.names() == ["builtin-one", "w"]
    reg.add("w", len)  # the same entry again: allowed
    with pytest.raises(ValueError, match="widget 'w' is already registered"):
        reg.add("w", max)
    with pytest.raises(ValueError, match="widget: unknown name 'x' \\(known: builtin-one, w\\)"):
        reg.get("x")
    reg.remove("w")
    with pytest.raises(KeyError, match="no widget registered as 'w'"):
        reg.remove("w")


def test_the_loss_registry_builds_what_the_configuration_names():
    from hyperleaf.losses import LOSSES, FusionLoss, ShipAuthorsLoss, get_loss, list_losses
    from hyperleaf.registry import Registry
    from hyperleaf.tasks.fuse import build_fusion_objective

    assert isinstance(LOSSES, Registry)
    assert list_losses("fuse") == ["hyperleaf", "ship-authors"]
    assert list_losses("segment") == ["leaf-authors"]
    cfg = TrainConfig(loss="ship-authors", w_mask=2.0, w_intensity=3.0, w_gradient=4.0,
                      n_feat=4, hdgfb_hidden=8, ball_dim=4).validate()
    loss = build_fusion_objective(cfg).fusion_loss
    assert isinstance(loss, ShipAuthorsLoss) and get_loss("ship-authors") is ShipAuthorsLoss
    assert (loss.w_mask, loss.w_max, loss.w_grad) == (2.0, 3.0, 4.0)
    plain = build_fusion_objective(cfg.replace(loss="hyperleaf", w_ssim=0.25)).fusion_loss
    assert isinstance(plain, FusionLoss)
    with pytest.raises(ValueError, match="^loss: must be 'hyperleaf' or 'ship-authors'"):
        TrainConfig(loss="leaf-authors").validate()
