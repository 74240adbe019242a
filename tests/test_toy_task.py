"""A task is one module: a toy task registered from this file alone (its configuration keys,
data, objective, network and evaluation) runs ``train`` -> ``--resume`` -> ``load_run`` ->
``evaluate`` through the command line, with no other file of hyperleaf changed (issue 21).

The toy problem: learn ``y = 2 x`` per pixel with a 1x1 convolution of ``toy_width`` hidden
channels, on noise images whose amplitude is the toy's own data key ``toy_amplitude``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml

from hyperleaf.cli import main
from hyperleaf.runs import load_run
from hyperleaf.tasks import Task, get_task, list_tasks
from hyperleaf.tasks.base import register_task, task_key, unregister_task
from hyperleaf.train import ConfigError, TrainConfig


class ToySet(torch.utils.data.Dataset):
    def __init__(self, n: int, side: int, amplitude: float, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.x = amplitude * torch.rand(n, 1, side, side, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": 2 * self.x[i]}


class ToyNet(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 1), nn.Conv2d(width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ToyObjective(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        out = self.net(x)
        mse = ((out - y) ** 2).mean()
        return mse, {"mse": mse.detach()}, out


def _mse(net: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((net(x) - 2 * x) ** 2).mean())


class ToyTask(Task):
    inputs = ("x", "y")
    predict_inputs = ("x",)
    config_keys = {
        "toy_width": task_key("model", 3, "toy: hidden channels of the 1x1 network"),
        "toy_amplitude": task_key("data", 0.5, "toy: amplitude of the noise images"),
        "toy_note": task_key("task", None, "toy: a free text (null: none)"),
    }

    def check_config(self, cfg: Any) -> None:
        if cfg.toy_amplitude <= 0:
            raise ValueError(f"toy_amplitude: must be > 0, got {cfg.toy_amplitude}")

    def datasets(self, cfg: Any):
        return (ToySet(64, cfg.crop, cfg.toy_amplitude, cfg.data_seed),
                ToySet(4, cfg.val_crop, cfg.toy_amplitude, cfg.data_seed + 1))

    def build_network(self, cfg: Any) -> nn.Module:
        return ToyNet(cfg.toy_width)

    def build_objective(self, cfg: Any) -> nn.Module:
        return ToyObjective(self.build_network(cfg))

    def evaluate(self, cfg, objective, val_set, device, samples_dir=None) -> dict[str, float]:
        objective.eval()
        return {"mse": float(np.mean([_mse(objective.net, val_set[i]["x"][None].to(device))
                                      for i in range(len(val_set))]))}

    def evaluate_run(self, cfg, net, data, device) -> dict[str, Any]:
        x = torch.from_numpy(np.load(data)).float().to(device)
        return {"scores": {"mse": _mse(net, x)}, "higher_is_better": {"mse": False}}


@pytest.fixture(autouse=True, scope="module")
def toy_registered():
    """The toy task exists while this file's tests run, and only then."""
    register_task("toy")(ToyTask)
    yield
    unregister_task("toy")
    assert "toy" not in list_tasks()


TOY = ["--task", "toy", "--crop", "16", "--batch-size", "4", "--no-progress"]


def test_the_toy_task_is_registered_with_its_keys():
    assert "toy" in list_tasks() and get_task("toy").config_keys["toy_width"].type == "int"
    cfg = TrainConfig.from_dict({"task": "toy", "toy_width": 5})
    assert cfg.toy_width == 5 and cfg.toy_amplitude == 0.5 and cfg.toy_note is None
    assert cfg.to_grouped()["model"]["toy_width"] == 5
    assert TrainConfig.from_dict(cfg.to_grouped()) == cfg
    # the toy's keys are refused by the other tasks, by name; a wrong type too
    with pytest.raises(ConfigError, match="^toy_width: does not apply to the fuse task"):
        TrainConfig.from_dict({"toy_width": 5})
    with pytest.raises(ConfigError, match="^toy_width: must be of type int"):
        TrainConfig.from_dict({"task": "toy", "toy_width": "wide"})
    with pytest.raises(ConfigError, match="^toy_amplitude: must be > 0"):
        TrainConfig.from_dict({"task": "toy", "toy_amplitude": -1.0})


def test_train_resume_load_run_evaluate_through_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TOY, "--steps", "4", "--save-every", "2", "--eval-every", "2",
                 "--toy-width", "5", "--toy-amplitude", "0.8", "--out", str(run)]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["task"]["name"] == "toy"
    assert saved["model"]["toy_width"] == 5 and saved["data"]["toy_amplitude"] == 0.8
    # --resume continues the run to more steps with the toy's keys as saved
    assert main(["train", *TOY, "--steps", "8", "--save-every", "2", "--eval-every", "4",
                 "--out", str(run), "--resume"]) == 0
    records = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records if r.get("kind") == "train") == 8
    # the resumed run keeps its configuration (a toy key changed on --resume is refused)
    assert main(["train", *TOY, "--steps", "9", "--toy-width", "6", "--out", str(run),
                 "--resume"]) == 2
    assert "toy_width differ" in capsys.readouterr().err
    loaded = load_run(run)
    assert loaded.task.name == "toy" and loaded.config.toy_width == 5
    assert isinstance(loaded.model, ToyNet) and not loaded.model.training
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(loaded.predict(x=x), loaded.model(x).detach())
    data = tmp_path / "x.npy"
    np.save(data, 0.8 * np.random.default_rng(0).random((3, 1, 8, 8)))
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--task", "toy", "--weights", str(run), "--data", str(data),
                 "--json", str(out)]) == 0
    assert "mse ↓" in capsys.readouterr().out
    scores = json.loads(out.read_text())
    expected = _mse(loaded.model, torch.from_numpy(np.load(data)).float())
    assert scores["task"] == "toy" and scores["scores"]["mse"] == pytest.approx(expected)


def test_the_toy_flags_and_defaults_are_in_its_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--task", "toy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--toy-width TOY_WIDTH toy: hidden channels of the 1x1 network (default for " \
           "--task toy: 3)" in text
    assert "--toy-note" in text and "--toy-amplitude" in text
    # a fuse run's help has no toy flag; a toy flag given to fuse is refused by name
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--toy-width" not in capsys.readouterr().out


def test_evaluate_refuses_what_it_would_ignore(tmp_path, capsys):
    assert main(["evaluate", "--task", "toy", "--weights", str(tmp_path), "--data", "x.npy",
                 "--convention", "mmif"]) == 2
    assert "--convention: does not apply to --task toy" in capsys.readouterr().err
    assert main(["evaluate", "--task", "toy", "--data", "x.npy"]) == 2
    assert "--weights: required" in capsys.readouterr().err
    assert main(["evaluate", "--task", "toy", "--weights", str(tmp_path), "--data", "x.npy",
                 "--json", str(tmp_path)]) == 2
    assert "--json" in capsys.readouterr().err and not (Path(tmp_path) / "x.npy").exists()
    assert main(["evaluate", "--task", "nosuch", "--weights", "w", "--data", "d"]) == 2
    assert "unknown task 'nosuch'" in capsys.readouterr().err
