"""One way to load a trained model: :func:`load_run`.

Whatever made the weights (``hyperleaf train`` of any registered task, or the SHIP authors'
released checkpoint), :func:`load_run` returns a :class:`Run`: the task, its configuration and
the task's network in eval mode, with :meth:`Run.predict` taking the task's inputs by name.
Inference builds no loss: the network comes from the task's ``build_network``, and only its
tensors (the objective's ``net.*``) are read from ``model.safetensors``. Evaluations that score
the loss terms too (the engine's validation :meth:`hyperleaf.tasks.Task.evaluate`, the leaf
plot, the ablation's parameter counts) ask for the whole trained module with
``objective=True`` (:attr:`Run.objective`, whose ``net`` is :attr:`Run.model`).

``hyperleaf fuse``, ``hyperleaf pansharpen``, ``hyperleaf evaluate --weights``, ``hyperleaf
plot`` and the ablation load runs through it, and nothing else; run folders of the earlier
separate pan-sharpening loop (``config.json`` + ``model.safetensors``) load too.

Example::

    >>> run = load_run("runs/demo")                         # doctest: +SKIP
    >>> run.task.name, run.task.predict_inputs              # doctest: +SKIP
    ('fuse', ('vis', 'ir'))
    >>> fused = run.predict(vis=vis, ir=ir)                 # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf.compat.ship import ship_from_official
from hyperleaf.models.registry import create_model
from hyperleaf.pansharpen.network import Standardised
from hyperleaf.tasks import Task, get_task
from hyperleaf.train.build import build_objective, load_tensors, read_safetensors, run_files
from hyperleaf.train.config import TrainConfig, load_run_config

__all__ = ["Run", "load_run"]

_NET = "net."  # the network's tensors inside an objective's state dict


@dataclass(frozen=True)
class Run:
    """A loaded model: ``path`` it came from, its ``task`` (registered :class:`Task`), its
    ``config`` (:class:`~hyperleaf.train.TrainConfig`) and ``model`` (the task's network, eval
    mode); ``objective`` (network + loss, eval mode, ``objective.net is model``) only when
    :func:`load_run` was asked for it, else None."""

    path: Path
    task: Task
    config: TrainConfig
    model: nn.Module
    objective: nn.Module | None = None

    def predict(self, **inputs: Tensor) -> Tensor:
        """The task's output for one batch of its ``predict_inputs`` given by name (fuse:
        ``vis``, ``ir`` -> fused image; segment: ``vis``, ``ir`` -> logits of whole items;
        pansharpen: ``pan``, ``lms`` -> sharpened MS), without gradients."""
        with torch.no_grad():
            return self.task.predict(self.config, self.model, **inputs)

    def to(self, device: str | torch.device) -> Run:
        """The same run with its model on ``device``."""
        self.model.to(device)
        if self.objective is not None:
            self.objective.to(device)
        return self


def load_run(path: str | Path, device: str | torch.device = "cpu",
             task: str | None = None, objective: bool = False) -> Run:
    """The model ``path`` names, ready for :meth:`Run.predict`.

    ``path`` is a ``hyperleaf train`` run folder (``config.yaml`` + ``model.safetensors``, any
    task), a run's ``model.safetensors`` (its ``config.yaml`` beside it), a run folder of the
    earlier separate pan-sharpening loop (``config.json`` + ``model.safetensors``), or the SHIP
    authors' released checkpoint (a ``.pth``: task ``fuse``, plain SHIP). With ``task`` given,
    a run of another task is refused by name. With ``objective`` the trained module of a run
    folder (network and loss, as the engine trained it) is rebuilt too (:attr:`Run.objective`);
    without it no loss is built.

    Raises ``FileNotFoundError`` / ``ValueError`` naming the path and what was expected (an
    unfinished run, a config the code cannot build, tensors that do not match it).

    Example (a run folder written by ``hyperleaf train``)::

        >>> run = load_run("runs/demo", task="fuse")         # doctest: +SKIP
        >>> fused = run.predict(vis=vis, ir=ir)              # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder (expected a hyperleaf train run "
                                "folder, its model.safetensors, or the SHIP authors' .pth)")
    folder = p if p.is_dir() else p.parent
    if p.is_file() and p.suffix != ".safetensors":
        if objective:
            raise ValueError(f"{p}: the SHIP authors' checkpoint holds a network, no trained "
                             "objective (objective=True needs a hyperleaf train run)")
        net = ship_from_official(p)
        cfg = TrainConfig(task="fuse", leaf=False, n_feat=net.n_feat)
        run = Run(p, get_task("fuse"), cfg, net.to(device).eval())
    elif (folder / "config.json").is_file() and not (folder / "config.yaml").is_file():
        if objective:
            raise ValueError(f"{folder}: a run of the earlier pan-sharpening loop holds a "
                             "network, no trained objective")
        run = _legacy_pansharpen(folder, device)
    else:
        if task is not None and (folder / "config.yaml").is_file():
            found = load_run_config(folder / "config.yaml").task  # a run of another task is
            if found != task:  # refused as such, finished or not, before building anything
                raise ValueError(f"{folder / 'config.yaml'}: a {found!r} run, not a {task!r} "
                                 "run")
        config, weights = run_files(p)
        cfg = load_run_config(config)
        t = get_task(cfg.task)
        state = read_safetensors(weights)
        if objective:
            obj = build_objective(cfg)
            load_tensors(obj, state, weights, config)
            obj = obj.to(device).eval()
            run = Run(p, t, cfg, obj.net, obj)
        else:
            net = t.build_network(cfg)
            own = {k[len(_NET):]: v for k, v in state.items() if k.startswith(_NET)}
            # An objective may also register a part of its network under its own name
            # (SegmentObjective.head is net.head); safetensors stored such a tensor once, maybe
            # under that name: take it from there.
            for k in net.state_dict():
                if k not in own and k in state:
                    own[k] = state[k]
            load_tensors(net, own, weights, config)
            run = Run(p, t, cfg, net.to(device).eval())
    if task is not None and run.task.name != task:
        raise ValueError(f"{p}: a {run.task.name!r} run, not a {task!r} run")
    return run


def _legacy_pansharpen(folder: Path, device: str | torch.device) -> Run:
    """A run folder of the earlier separate pan-sharpening loop: ``config.json`` (``n_feat``,
    ``ms_bands``, ``ratio``, ``leaf``, ``hdgfb_hidden``, ``normalisation``) + the network's
    ``model.safetensors``; the network built as that loop built it."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found (a pan-sharpening run folder is "
                                "expected: config.json or config.yaml, model.safetensors)")
    try:
        config: dict[str, Any] = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder / 'config.json'}: not readable JSON ({exc})") from None
    if config.get("task") != "pansharpen":
        raise ValueError(f"{folder / 'config.json'}: not a pan-sharpening run (task "
                         f"{config.get('task')!r})")
    try:
        leaf, hidden = bool(config["leaf"]), int(config.get("hdgfb_hidden", 8))
        kw = {"hdgfb_kwargs": {"hidden": hidden}} if leaf else {}
        net: nn.Module = create_model("ship", n_feat=config["n_feat"], task="pansharpen",
                                      ms_bands=config["ms_bands"], ratio=config["ratio"],
                                      hdgfb=leaf, **kw)
    except KeyError as exc:
        raise ValueError(f"{folder / 'config.json'}: key {exc.args[0]} missing") from None
    stats = config.get("normalisation")
    if stats:
        net = Standardised(net, **stats)
    load_tensors(net, read_safetensors(weights), weights, folder / "config.json")
    cfg = TrainConfig(task="pansharpen", leaf=leaf, n_feat=int(config["n_feat"]),
                      ms_bands=int(config["ms_bands"]), ratio=int(config["ratio"]),
                      hdgfb_hidden=hidden, normalise=bool(stats), pan_statistics=stats or None)
    return Run(folder, get_task("pansharpen"), cfg, net.to(device).eval())
