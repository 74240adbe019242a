"""One way to load a trained model: :func:`load_run`.

Whatever made the weights (``hyperleaf train`` of any registered task, or the SHIP authors'
released checkpoint), :func:`load_run` returns a :class:`Run`: the task, its configuration and
the task's network in eval mode, with :meth:`Run.predict` taking the task's inputs by name.
Inference builds no loss: the network comes from the task's ``build_network``, and only its
tensors (the objective's ``net.*``) are read from ``model.safetensors``.

``hyperleaf fuse``, ``hyperleaf evaluate --weights`` and the ablation load runs through it.

Example::

    >>> run = load_run("runs/demo")                         # doctest: +SKIP
    >>> run.task.name, run.task.predict_inputs              # doctest: +SKIP
    ('fuse', ('vis', 'ir'))
    >>> fused = run.predict(vis=vis, ir=ir)                 # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf.compat.ship import ship_from_official
from hyperleaf.tasks import Task, get_task
from hyperleaf.train.build import load_tensors, read_safetensors, run_files
from hyperleaf.train.config import TrainConfig, load_run_config

__all__ = ["Run", "load_run"]

_NET = "net."  # the network's tensors inside an objective's state dict


@dataclass(frozen=True)
class Run:
    """A loaded model: ``path`` it came from, its ``task`` (registered :class:`Task`), its
    ``config`` (:class:`~hyperleaf.train.TrainConfig`) and ``model`` (the task's network, eval
    mode)."""

    path: Path
    task: Task
    config: TrainConfig
    model: nn.Module

    def predict(self, **inputs: Tensor) -> Tensor:
        """The task's output for one batch of its ``predict_inputs`` given by name (fuse:
        ``vis``, ``ir`` -> fused image; segment: ``vis``, ``ir`` -> logits of whole items;
        pansharpen: ``pan``, ``lms`` -> sharpened MS), without gradients."""
        with torch.no_grad():
            return self.task.predict(self.config, self.model, **inputs)

    def to(self, device: str | torch.device) -> Run:
        """The same run with its model on ``device``."""
        self.model.to(device)
        return self


def load_run(path: str | Path, device: str | torch.device = "cpu",
             task: str | None = None) -> Run:
    """The model ``path`` names, ready for :meth:`Run.predict`.

    ``path`` is a ``hyperleaf train`` run folder (``config.yaml`` + ``model.safetensors``, any
    task), a run's ``model.safetensors`` (its ``config.yaml`` beside it), or the SHIP authors'
    released checkpoint (a ``.pth``: task ``fuse``, plain SHIP). With ``task`` given, a run of
    another task is refused by name.

    Raises ``FileNotFoundError`` / ``ValueError`` naming the path and what was expected (an
    unfinished run, a config the code cannot build, tensors that do not match it).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder (expected a hyperleaf train run "
                                "folder, its model.safetensors, or the SHIP authors' .pth)")
    if p.is_file() and p.suffix != ".safetensors":
        net = ship_from_official(p)
        cfg = TrainConfig(task="fuse", leaf=False, n_feat=net.n_feat)
        run = Run(p, get_task("fuse"), cfg, net.to(device).eval())
    else:
        config, weights = run_files(p)
        cfg = load_run_config(config)
        if task is not None and cfg.task != task:  # before building anything
            raise ValueError(f"{config}: a {cfg.task!r} run, not a {task!r} run")
        t = get_task(cfg.task)
        net = t.build_network(cfg)
        state = read_safetensors(weights)
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
