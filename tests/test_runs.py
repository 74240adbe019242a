"""hyperleaf.runs.load_run: one way to load a model for every task (issue 21).

For each task a tiny run is trained through the engine, loaded with ``load_run`` (network
only, no loss) and its ``predict`` compared with the full trained objective
(``load_run(..., objective=True)``), bit for bit: the same tensors, the same forward.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hyperleaf.compat.ship import ship_from_official
from hyperleaf.models import SHIP
from hyperleaf.runs import Run, load_run
from hyperleaf.tasks.fuse import FusionObjective
from hyperleaf.tasks.segment import network_logits
from hyperleaf.train import TrainConfig, train
from tests.test_train import tiny

h5py = pytest.importorskip("h5py", reason="h5py (the 'pan' extra) writes the test file")


def load_objective(out):
    """``(objective, config)`` of a run: the trained module, network and loss."""
    run = load_run(out, objective=True)
    assert run.objective.net is run.model and not run.objective.training
    return run.objective, run.config


def _no_loss_modules(model: torch.nn.Module) -> None:
    names = {type(m).__name__ for m in model.modules()}
    assert not names & {"FusionLoss", "ShipAuthorsLoss", "LeafSegmentationLoss"}, names


def test_fuse_run_loads_the_network_alone_and_predicts_as_the_objective(tmp_path):
    out = tmp_path / "fuse"
    train(tiny(out, steps=2), progress=False)
    run = load_run(out)
    assert isinstance(run, Run) and run.task.name == "fuse"
    assert isinstance(run.model, SHIP) and not run.model.training
    _no_loss_modules(run.model)
    obj, _ = load_objective(out)
    assert isinstance(obj, FusionObjective)
    g = torch.Generator().manual_seed(0)
    vis, ir = torch.rand(1, 1, 24, 20, generator=g), torch.rand(1, 1, 24, 20, generator=g)
    with torch.no_grad():
        expected = obj.net(vis, ir)
    assert torch.equal(run.predict(vis=vis, ir=ir), expected)
    # the weights file alone (config.yaml beside it) loads the same
    again = load_run(out / "model.safetensors")
    assert torch.equal(again.predict(vis=vis, ir=ir), expected)
    with pytest.raises(ValueError, match="predicts from vis, ir; missing \\['ir'\\]"):
        run.predict(vis=vis)
    with pytest.raises(ValueError, match="a 'fuse' run, not a 'segment' run"):
        load_run(out, task="segment")


def test_segment_run_predicts_logits_of_whole_items(tmp_path):
    out = tmp_path / "seg"
    train(tiny(out, task="segment", steps=2, seg_width=4), progress=False)
    run = load_run(out)
    assert run.task.name == "segment" and run.task.predict_inputs == ("vis", "ir")
    _no_loss_modules(run.model)
    obj, cfg = load_objective(out)
    vis, ir = torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24)
    with torch.no_grad():
        expected = network_logits(obj.net, vis, ir)
    logits = run.predict(vis=vis, ir=ir)
    assert logits.shape == (2, cfg.num_classes, 24, 24)
    assert torch.equal(logits, expected)


def test_pansharpen_run_predicts_the_sharpened_ms(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.uniform(200, 1800, (5, 4, 32, 32))
    ms = gt[:, :, 2::4, 2::4]
    data = tmp_path / "tiny.h5"
    with h5py.File(data, "w") as f:
        for k, v in {"gt": gt, "lms": np.repeat(np.repeat(ms, 4, -1), 4, -2), "ms": ms,
                     "pan": gt.mean(1, keepdims=True)}.items():
            f[k] = v
    out = tmp_path / "pan"
    cfg = TrainConfig.from_dict({"task": "pansharpen", "data": str(data), "out": str(out),
                                 "steps": 2, "batch_size": 2, "crop": 16, "val_crop": 32,
                                 "n_feat": 4, "ball_dim": 4, "eval_every": 100,
                                 "train_index": "0-3", "val_index": "4"})
    train(cfg, progress=False)
    run = load_run(out)
    assert run.task.name == "pansharpen" and run.task.predict_inputs == ("pan", "lms")
    _no_loss_modules(run.model)
    obj, _ = load_objective(out)
    pan, lms = torch.rand(1, 1, 32, 32), torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        expected = obj.net(pan, lms)
    assert torch.equal(run.predict(pan=pan, lms=lms), expected)


def test_the_ship_authors_checkpoint_loads_as_a_fuse_run(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "w.pth"
    torch.save({"params": SHIP(n_feat=4).state_dict()}, path)
    run = load_run(path)
    assert run.task.name == "fuse" and run.config.leaf is False and run.config.n_feat == 4
    vis, ir = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        expected = ship_from_official(path)(vis, ir)
    assert torch.equal(run.predict(vis=vis, ir=ir), expected)


@pytest.mark.parametrize("what, message", [
    ("missing", "no such file or folder"),
    ("folder", "without config.yaml"),
    ("unfinished", "model.safetensors not found"),
])
def test_what_is_not_a_run_is_refused_by_name(tmp_path, what, message):
    p = tmp_path / what
    if what != "missing":
        p.mkdir()
    if what == "unfinished":
        (p / "config.yaml").write_text("task: fuse\n")
    with pytest.raises(FileNotFoundError, match=message):
        load_run(p)


def test_a_run_with_foreign_tensors_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "fuse"
    train(tiny(out, steps=1), progress=False)
    state = load_file(str(out / "model.safetensors"))
    state["net.extra"] = torch.zeros(1)
    save_file(state, str(out / "model.safetensors"))
    with pytest.raises(ValueError, match="1 unexpected"):
        load_run(Path(out))


def _pansharpen_data(path: Path) -> Path:
    rng = np.random.default_rng(0)
    gt = rng.uniform(200, 1800, (5, 4, 32, 32))
    ms = gt[:, :, 2::4, 2::4]
    with h5py.File(path, "w") as f:
        for k, v in {"gt": gt, "lms": np.repeat(np.repeat(ms, 4, -1), 4, -2), "ms": ms,
                     "pan": gt.mean(1, keepdims=True)}.items():
            f[k] = v
    return path


@pytest.mark.parametrize("task", ["fuse", "segment", "pansharpen"])
def test_loading_and_predicting_builds_no_loss(tmp_path, monkeypatch, task):
    """Inference builds no loss (issue 21): with every loss class, every objective class (the
    network + loss wrappers) and, for fuse and pansharpen, LEAF's H2FR head (the loss's part
    there) made to raise when built, ``load_run`` + ``predict`` still work; the objective
    (``objective=True``) does build them."""
    from hyperleaf.losses import FusionLoss, LeafSegmentationLoss, ShipAuthorsLoss
    from hyperleaf.nn.h2fr import H2FRLoss
    from hyperleaf.nn.heads import LeafHead
    from hyperleaf.tasks.pansharpen import PansharpenObjective
    from hyperleaf.tasks.segment import LeafUNetObjective, SegmentObjective

    out = tmp_path / task
    if task == "pansharpen":
        cfg = TrainConfig.from_dict({"task": "pansharpen", "out": str(out), "steps": 1,
                                     "data": str(_pansharpen_data(tmp_path / "tiny.h5")),
                                     "batch_size": 2, "crop": 16, "val_crop": 32, "n_feat": 4,
                                     "ball_dim": 4, "eval_every": 100, "train_index": "0-3",
                                     "val_index": "4"})
        inputs = {"pan": torch.rand(1, 1, 32, 32), "lms": torch.rand(1, 4, 32, 32)}
    else:
        cfg = tiny(out, task=task, steps=1, **({"seg_width": 4} if task == "segment" else {}))
        inputs = {"vis": torch.rand(1, 1, 24, 24), "ir": torch.rand(1, 1, 24, 24)}
    assert cfg.leaf and cfg.h2fr  # the head is there to be left out
    train(cfg, progress=False)
    with torch.no_grad():
        expected = load_run(out).predict(**inputs)

    built = []

    def refuse(self, *args, **kwargs):
        built.append(type(self).__name__)
        raise AssertionError(f"inference built {type(self).__name__}")

    losses = [FusionLoss, ShipAuthorsLoss, LeafSegmentationLoss, FusionObjective,
              PansharpenObjective, SegmentObjective, LeafUNetObjective]
    if task != "segment":  # LEAFSegNet's head is part of its network; SHIP's is the loss's
        losses += [LeafHead, H2FRLoss]
    for cls in losses:
        monkeypatch.setattr(cls, "__init__", refuse)
    run = load_run(out)
    assert torch.equal(run.predict(**inputs), expected) and built == []
    with pytest.raises(AssertionError, match="inference built"):
        load_run(out, objective=True)  # the check can fail: the objective builds a loss


def test_the_former_loaders_warn_and_load_the_same(tmp_path):
    """``hyperleaf.train.load_run`` and ``load_fusion_net`` (old paths) still load, with a
    DeprecationWarning naming ``hyperleaf.runs.load_run``."""
    from hyperleaf.train import build

    out = tmp_path / "fuse"
    train(tiny(out, steps=1), progress=False)
    run = load_run(out, objective=True)
    with pytest.warns(DeprecationWarning, match="hyperleaf.runs.load_run"):
        objective, cfg = build.load_run(out)
    with pytest.warns(DeprecationWarning, match="hyperleaf.runs.load_run"):
        net = build.load_fusion_net(out)
    assert cfg == run.config
    for module in (objective, net):
        state = module.state_dict()
        assert state.keys() == (run.objective if module is objective else run.model
                                ).state_dict().keys()
    for k, v in run.model.state_dict().items():
        assert torch.equal(net.state_dict()[k], v) and torch.equal(objective.net.state_dict()[k], v)


def test_what_has_no_objective_says_so_and_a_foreign_unfinished_run_is_named(tmp_path):
    torch.manual_seed(0)
    pth = tmp_path / "w.pth"
    torch.save({"params": SHIP(n_feat=4).state_dict()}, pth)
    with pytest.raises(ValueError, match="no trained objective"):
        load_run(pth, objective=True)
    unfinished = tmp_path / "seg"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("task: segment\n")
    with pytest.raises(ValueError, match="a 'segment' run, not a 'fuse' run"):
        load_run(unfinished, task="fuse")  # named as another task's run before its weights
    with pytest.raises(FileNotFoundError, match="model.safetensors not found"):
        load_run(unfinished, task="segment")
