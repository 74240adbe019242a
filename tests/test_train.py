"""hyperleaf train end to end (tiny SHIP + LEAF runs of a few seconds) and its parts."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geoopt
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from hyperleaf.cli import main, parse_args
from hyperleaf.losses.fusion import FusionLoss, sobel_magnitude
from hyperleaf.metrics.segmentation import confusion_matrix, miou
from hyperleaf.runs import load_run as load_run_folder
from hyperleaf.tasks import get_task
from hyperleaf.train import ConfigError, NonFiniteLossError, TrainConfig, Trainer, train
from hyperleaf.train.build import build_objective
from hyperleaf.train.checkpoint import (
    NonFiniteStateError,
    iter_tensors,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from hyperleaf.train.config import SECTION_OF

REPO = Path(__file__).resolve().parents[1]

TINY = {"steps": 8, "batch_size": 2, "crop": 16, "val_crop": 24, "val_size": 3,
        "train_size": 64, "n_feat": 4, "hdgfb_hidden": 8, "ball_dim": 4, "save_every": 4,
        "eval_every": 100, "log_every": 2, "w_ssim": 0.0}


def tiny(out, **kw) -> TrainConfig:
    """TINY for ``out``; other tasks refuse the fuse task's own keys, so the keys the task does
    not declare are left out there."""
    task = get_task(kw.get("task", "fuse"))
    base = {k: v for k, v in TINY.items() if k in SECTION_OF or k in task.config_keys}
    return TrainConfig.from_dict({**base, "out": str(out), **kw})


def load_run(path) -> tuple[torch.nn.Module, TrainConfig]:
    """``(objective, config)`` of a finished run folder, through :func:`hyperleaf.runs.load_run`
    (the one way runs load) with the trained objective rebuilt."""
    run = load_run_folder(path, objective=True)
    return run.objective, run.config


def _records(run: Path, kind: str) -> list[dict]:
    lines = (run / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


# --------------------------------------------------------------------------- parts


def test_fusion_loss_terms_match_their_definitions():
    g = torch.Generator().manual_seed(0)
    vis, ir, f = (torch.rand(2, 1, 12, 10, generator=g) for _ in range(3))
    total, parts = FusionLoss(intensity=2.0, gradient=0.5)(f, vis, ir)
    # Independent computation: explicit Sobel by shifted slices on an edge-padded numpy array.
    def grad(x):
        a = np.pad(x.numpy()[:, 0], ((0, 0), (1, 1), (1, 1)), mode="edge")
        gx = (a[:, :-2, 2:] + 2 * a[:, 1:-1, 2:] + a[:, 2:, 2:]
              - a[:, :-2, :-2] - 2 * a[:, 1:-1, :-2] - a[:, 2:, :-2])
        gy = (a[:, 2:, :-2] + 2 * a[:, 2:, 1:-1] + a[:, 2:, 2:]
              - a[:, :-2, :-2] - 2 * a[:, :-2, 1:-1] - a[:, :-2, 2:])
        return np.abs(gx) + np.abs(gy)
    l_int = np.abs(f.numpy() - np.maximum(vis.numpy(), ir.numpy())).mean()
    l_grad = np.abs(grad(f) - np.maximum(grad(vis), grad(ir))).mean()
    assert math.isclose(float(parts["intensity"]), l_int, rel_tol=1e-5)
    assert math.isclose(float(parts["gradient"]), l_grad, rel_tol=1e-5)
    assert math.isclose(float(total), 2 * l_int + 0.5 * l_grad, rel_tol=1e-5)
    assert sobel_magnitude(torch.ones(1, 1, 5, 5)).abs().max() == 0
    _, p2 = FusionLoss(ssim=1.0)(vis, vis, vis)
    assert float(p2["ssim"]) < 1e-4  # SSIM(x, x) = 1
    with pytest.raises(ValueError, match="shapes"):
        FusionLoss()(f, vis, ir[:, :, :5])
    with pytest.raises(ValueError, match="gradient weight"):
        FusionLoss(gradient=-1)


def test_miou():
    target = torch.tensor([0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0])
    conf = confusion_matrix(pred, target, 3)
    # IoU: class 0: 1/(2+2-1)=1/3, class 1: 2/(2+3-2)=2/3, class 2: 0/(1+0-0)=0
    assert math.isclose(miou(conf), (1 / 3 + 2 / 3 + 0) / 3)


def test_config_precedence_and_errors(tmp_path):
    from hyperleaf.cli.train import config_from_args

    f = tmp_path / "c.yaml"
    f.write_text("steps: 7\nlr: 0.01\nbatch-size: 3\n")
    args = parse_args(["train", "--config", str(f), "--lr", "0.5"])
    cfg, explicit = config_from_args(args)
    assert (cfg.steps, cfg.lr, cfg.batch_size) == (7, 0.5, 3)
    assert cfg.seed == TrainConfig().seed and explicit == {"lr"}
    cfg, _ = config_from_args(parse_args(["train", "--no-leaf"]))
    assert cfg.leaf is False
    f.write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'stepz'"):
        config_from_args(parse_args(["train", "--config", str(f)]))
    f.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        config_from_args(parse_args(["train", "--config", str(f)]))
    for bad, msg in [({"optimizer": "adam"}, "optimizer"), ({"steps": 0}, "steps"),
                     ({"lr": -1.0}, "lr"), ({"h2fr_mode": "paper"}, "h2fr_core"),
                     ({"device": "tpu"}, "device")]:
        with pytest.raises(ConfigError, match=msg):
            TrainConfig.from_dict(bad)


@pytest.mark.parametrize("optimizer", ["radam", "rsgd"])
def test_riemannian_optimizer_keeps_manifold_parameters_on_the_ball(optimizer):
    import hyperleaf.train.trainer as T

    torch.manual_seed(0)
    cfg = tiny("unused", optimizer=optimizer, lr=0.5 if optimizer == "radam" else 0.05)
    obj = build_objective(cfg)
    manifold = [p for p in obj.parameters() if isinstance(p, geoopt.ManifoldParameter)]
    assert manifold, "LEAF must hold ManifoldParameters (H2FR's learned core)"
    t = T.Trainer(cfg)
    t.objective = obj
    t._build_optimizer()
    # radam: hyperleaf.optim.ForeachRiemannianAdam, a geoopt RiemannianAdam (bit-equal steps)
    assert isinstance(t.optimizer, geoopt.optim.RiemannianAdam if optimizer == "radam"
                      else geoopt.optim.RiemannianSGD)
    c0 = float(obj.head.curvature.detach())
    vis, ir = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    for _ in range(15):
        t.optimizer.zero_grad()
        total, _, _ = obj(vis, ir)
        # Push the core outwards hard: a Euclidean step would leave the ball.
        (total - 50 * obj.head.core().pow(2).sum()).backward()
        t.optimizer.step()
    c = float(obj.head.curvature.detach())
    assert c != c0  # the curvature is trained too
    core = obj.head.core().detach()
    assert float(core.norm()) > 0.2
    assert float(core.norm()) < c ** -0.5  # still inside the ball of the current curvature
    for p in manifold:
        ok, why = p.manifold.check_point_on_manifold(p, explain=True)
        assert ok, why


# --------------------------------------------------------------------------- end to end


def test_train_end_to_end_outputs_loss_falls_order_rises(tmp_path):
    out = tmp_path / "run"
    res = train(tiny(out, steps=30, lr=5e-3, h2fr_weight=1.0, eval_every=15, log_every=5),
                progress=False)
    for name in ("model.safetensors", "config.yaml", "log.jsonl", "leaf.png"):
        assert (out / name).is_file(), name
    samples = sorted((out / "samples").glob("*.png"))
    assert len(samples) == 3 and Image.open(samples[0]).size == (24, 24)
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [28, 30]
    train_recs = _records(out, "train")
    assert [r["step"] for r in train_recs] == [5, 10, 15, 20, 25, 30]
    assert all({"step", "loss", "h2fr", "intensity", "curvature"} <= set(r) for r in train_recs)
    # The fusion part falls clearly; H2FR falls slowly: LeafHead's default normalisation keeps
    # every vector at its level's radius, so the ranking cannot be won by pushing to the clip.
    assert train_recs[-1]["fusion"] < 0.8 * train_recs[0]["fusion"]
    assert train_recs[-1]["h2fr"] < train_recs[0]["h2fr"]
    assert train_recs[-1]["loss"] < train_recs[0]["loss"]
    val = _records(out, "val")
    assert [r["step"] for r in val] == [0, 15, 30]
    assert val[-1]["loss"] < val[0]["loss"]
    assert val[-1]["order_all"] > val[0]["order_all"]
    leaf = _records(out, "leaf")
    assert leaf and leaf[0]["order_all"] == val[-1]["order_all"]
    assert res.last_loss == train_recs[-1]["loss"]
    # The run folder rebuilds the model: same fused output as the final validation images.
    obj, cfg = load_run(out)
    assert cfg.steps == 30
    from hyperleaf.data import SyntheticFusion

    s = SyntheticFusion(3, 24, "val", seed=0)[0]
    with torch.no_grad():
        fused = obj.net(s["vis"][None], s["ir"][None])[0, 0].clamp(0, 1)
    png = np.asarray(Image.open(out / "samples" / "val_000.png"), dtype=np.float64) / 255
    assert np.abs(png - fused.numpy()).max() <= 0.5 / 255 + 1e-6


def test_no_leaf_ablation_and_segment_task(tmp_path):
    train(tiny(tmp_path / "plain", leaf=False, steps=4), progress=False)
    obj, cfg = load_run(tmp_path / "plain")
    assert obj.head is None and not any(isinstance(p, geoopt.ManifoldParameter)
                                        for p in obj.parameters())
    assert not (tmp_path / "plain" / "leaf.png").exists()
    assert "h2fr" not in _records(tmp_path / "plain", "train")[0]
    seg = train(tiny(tmp_path / "seg", task="segment", steps=4, seg_width=4), progress=False)
    val = _records(tmp_path / "seg", "val")
    assert 0 <= val[-1]["miou"] <= 1 and "miou" in seg.val_last
    assert len(list((tmp_path / "seg" / "samples").glob("*.png"))) == 3


def test_plot_command(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny(out, steps=2), progress=False)
    (out / "leaf.png").unlink()
    assert main(["plot", str(out)]) == 0
    assert (out / "leaf.png").is_file()
    assert "ordered as H2FR asks" in capsys.readouterr().out
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "config.yaml not found" in capsys.readouterr().err


def test_disk_projection_keeps_geodesic_distance():
    from hyperleaf import dist, expmap0
    from hyperleaf.tasks.leafplot import disk_coordinates

    g = torch.Generator().manual_seed(1)
    c = 0.7
    pts = expmap0(torch.randn(3, 5, 2, 6, generator=g, dtype=torch.float64), c, dim=-1)
    core = expmap0(0.3 * torch.randn(6, generator=g, dtype=torch.float64), c, dim=-1)
    xy, d = disk_coordinates(pts, core, c)
    rho = np.linalg.norm(xy, axis=-1)
    # Distance from the 2-D disk's centre, computed with geoopt-independent closed form.
    d2 = 2 / math.sqrt(c) * np.arctanh(math.sqrt(c) * rho)
    np.testing.assert_allclose(d2, dist(pts, core, c=c, dim=-1).numpy(), rtol=1e-9)
    np.testing.assert_allclose(d, d2, rtol=1e-9)


# --------------------------------------------------------------------------- reliability


def _cli(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "hyperleaf", "train", "--no-progress", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **kw)


def kill_and_resume(conf: Path, ref: Path, cut: Path, kill_after: int, steps: int) -> int:
    """Train ``conf`` uninterrupted into ``ref``; train it into ``cut``, SIGKILL that run once
    a checkpoint at step >= ``kill_after`` exists, ``--resume`` it; assert both end with equal
    weights and equal training losses. Returns the last step checkpointed before the kill."""
    p = _cli(["--config", str(conf), "--out", str(ref)])
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()

    p = _cli(["--config", str(conf), "--out", str(cut)])
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None:
        done = [s for s, _ in list_checkpoints(cut / "checkpoints")]
        if done and done[-1] >= kill_after:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (cut / "model.safetensors").exists()
    killed_at = list_checkpoints(cut / "checkpoints")[-1][0]
    assert killed_at < steps

    p = _cli(["--config", str(conf), "--out", str(cut), "--resume"])
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()
    a, b = load_file(ref / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # The log is the uninterrupted run's, record for record (times aside).
    ra, rb = _records(ref, "train"), _records(cut, "train")
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]
    return killed_at


def test_sigkill_then_resume_is_bit_exact(tmp_path):
    conf = tmp_path / "tiny.yaml"
    conf.write_text(yaml.safe_dump({**TINY, "steps": 16, "save_every": 2, "eval_every": 5}))
    cut = tmp_path / "cut"
    kill_and_resume(conf, tmp_path / "ref", cut, kill_after=6, steps=16)
    assert [r["step"] for r in _records(cut, "val")] == [0, 5, 10, 15, 16]
    st = load_checkpoint(list_checkpoints(cut / "checkpoints")[-1][1])
    assert {"model", "optimizer", "scheduler", "rng", "data", "step"} <= set(st)
    assert any("exp_avg" in s for s in st["optimizer"]["state"].values())


def test_resume_rejects_changed_settings_and_missing_run(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny(out, steps=2), progress=False)
    with pytest.raises(ConfigError, match="lr"):
        train(tiny(out, steps=4, lr=0.1), resume=True, explicit=frozenset({"lr", "steps"}))
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny(out, steps=2), progress=False)
    # --steps may grow on resume: the run continues from its last checkpoint.
    r = train(tiny(out, steps=4), resume=True, explicit=frozenset({"steps"}), progress=False)
    assert r.steps == 4 and [x["step"] for x in _records(out, "train")] == [2, 4]


class _NaNAt(Trainer):
    def __init__(self, cfg, bad_steps):
        super().__init__(cfg)
        self.bad_steps, self.calls = set(bad_steps), 0

    def loss(self, model, batch):
        self.calls += 1
        total, parts = super().loss(model, batch)
        if self.calls in self.bad_steps:
            total = total * float("nan")
        return total, parts


def test_nonfinite_loss_skips_step_and_stops_after_several(tmp_path):
    t = _NaNAt(tiny(tmp_path / "a", steps=8, log_every=1, max_nonfinite=3), bad_steps={3, 4})
    t.run()
    recs = _records(tmp_path / "a", "train")
    assert [r["skipped_nonfinite"] for r in recs] == [0, 0, 1, 2, 2, 2, 2, 2]
    assert math.isnan(recs[2]["loss"]) and math.isfinite(recs[4]["loss"])
    for _, path in list_checkpoints(tmp_path / "a" / "checkpoints"):
        st = load_checkpoint(path)
        assert all(bool(torch.isfinite(x).all()) for _, x in iter_tensors(st["model"]))
        assert st["counters"]["skipped_nonfinite"] == 2


def test_nonfinite_stop_names_the_last_checkpoint_or_says_there_is_none(tmp_path):
    # Steps 2 and 3 fail: stop at step 3, before the first save (step 4): no checkpoint.
    t = _NaNAt(tiny(tmp_path / "a", steps=8, max_nonfinite=2), bad_steps={2, 3})
    with pytest.raises(NonFiniteLossError, match="No checkpoint was saved") as info:
        t.run()
    assert "checkpoints" not in str(info.value) and not (tmp_path / "a" / "checkpoints").exists()
    # Steps 5 and 6 fail: the checkpoint of step 4 is the last good one.
    t = _NaNAt(tiny(tmp_path / "b", steps=8, max_nonfinite=2), bad_steps={5, 6})
    with pytest.raises(NonFiniteLossError, match="The last good checkpoint is .*step_00000004.pt"):
        t.run()


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "0"])
def test_lr_must_be_finite_and_positive(tmp_path, value):
    with pytest.raises(ConfigError, match="lr: must be finite and > 0") as info:
        tiny(tmp_path / "r", lr=float(value))
    assert info.value.key == "lr"
    with pytest.raises(ConfigError, match="curvature: must be finite and > 0"):
        tiny(tmp_path / "r", curvature=float(value))
    if value != "0":
        with pytest.raises(ConfigError, match="grad_clip: must be finite and >= 0"):
            tiny(tmp_path / "r", grad_clip=float(value))

    t = _NaNAt(tiny(tmp_path / "b", steps=8, max_nonfinite=3), bad_steps={2, 3, 4, 5})
    with pytest.raises(NonFiniteLossError, match="non-finite for 3 consecutive steps"):
        t.run()


def test_checkpoint_refuses_nonfinite_tensors(tmp_path):
    with pytest.raises(NonFiniteStateError, match="model.w"):
        save_checkpoint(tmp_path, 1, {"model": {"w": torch.tensor([1.0, float("inf")])}})
    assert list(tmp_path.iterdir()) == []
    save_checkpoint(tmp_path, 1, {"model": {"w": torch.ones(2)}, "rng": torch.zeros(3,
                                                                               dtype=torch.uint8)})
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1]


def _pairs(root: Path, n: int = 3, size=(40, 40)):
    rng = np.random.default_rng(0)
    for d in ("ir", "vi"):
        (root / d).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(root / d / f"{k}.png")


@pytest.mark.parametrize("damage,needle", [
    ("missing", "1.png"), ("unreadable", "2.png"), ("mismatch", "0.png"), ("empty", "no images")])
def test_bad_data_stops_before_training(tmp_path, capsys, damage, needle):
    data = tmp_path / "data"
    _pairs(data)
    if damage == "missing":
        (data / "vi" / "1.png").unlink()
    elif damage == "unreadable":
        (data / "ir" / "2.png").write_bytes(b"garbage")
    elif damage == "mismatch":
        Image.fromarray(np.zeros((40, 39), np.uint8)).save(data / "vi" / "0.png")
    else:
        for f in (data / "ir").iterdir():
            f.unlink()
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(out), "--crop", "16",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert not (out / "checkpoints").exists()


def test_train_on_real_pair_folder(tmp_path):
    data = tmp_path / "data"
    _pairs(data, n=4)
    out = tmp_path / "run"
    train(tiny(out, data=str(data), steps=2, crop=16, val_crop=32), progress=False)
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["3.png"]


@pytest.mark.shared
def test_train_on_tno(shared_dir, tmp_path):
    out = tmp_path / "tno"
    train(tiny(out, data=str(shared_dir / "data" / "tno"), steps=2, crop=32, val_crop=64),
          progress=False)
    assert len(list((out / "samples").glob("*.png"))) == 2  # the 2 held-out pairs of 21


def test_end_of_run_table_names_scores_with_their_direction(capsys):
    """The summary says what each validation number is and which way is better (issue 21:
    `val ssim 0.77 -> 0.30` was the 1 - SSIM loss term, read as fusion getting worse)."""
    from hyperleaf.tasks import get_task
    from hyperleaf.train.summary import print_summary
    from hyperleaf.train.trainer import RunResult

    r = RunResult(Path("runs/x"), 2, 1.0, 0.5, 0, 1.0,
                  val_first={"ssim": 0.77, "ssim_ir": 0.4, "order_levels": 0.0, "spread_fused": 1.0},
                  val_last={"ssim": 0.30, "ssim_ir": 0.6, "order_levels": 1.0, "spread_fused": 2.0})
    print_summary(r, get_task("fuse"))
    out = capsys.readouterr().out
    assert "loss term: 1 - SSIM ↓" in out and "SSIM(fused, infrared) ↑" in out
    assert "H2FR ordering, levels ↑" in out and "geometry: spread of fused " in out
    assert "train loss ↓" in out
    assert get_task("fuse").describe_score("null_noise_order_all") == \
        "null control: noise_order_all"
    seg = get_task("segment")
    assert seg.describe_score("dice_1") == "Dice of class 1 ↑"
    assert get_task("pansharpen").describe_score("SAM") == "SAM ↓"
