"""Rebuild the trained module from a configuration (and a run folder)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from hyperleaf.compat.ship import ship_from_official
from hyperleaf.tasks import get_task
from hyperleaf.tasks.fuse import build_fusion_network
from hyperleaf.train.config import TrainConfig, load_run_config

__all__ = ["FULL_LEAF", "build_network", "build_objective", "copy_shared_init", "load_fusion_net",
           "load_run", "load_run_files", "load_tensors", "read_safetensors", "run_files"]

#: The keys of the full LEAF network whose initial tensors ``shared_init`` copies into an arm.
FULL_LEAF = {"leaf": True, "hdgfb": True, "h2fr": True, "euclidean": False}


def build_network(cfg: TrainConfig):
    """``(net, features, channels)`` for the fusion task (kept for old callers; the objective
    now reads ``net.forward_levels`` and ``net.level_channels`` itself).

    ``features(net, vis, ir) -> (fused, stages)`` with ``stages[l] = (fused, vis, ir)`` maps,
    and ``channels[l]`` their channel count (both None without LEAF).
    """
    net = build_fusion_network(cfg)
    if not (cfg.leaf and cfg.h2fr):
        return net, None, None
    return net, type(net).forward_levels, list(net.level_channels)


def build_objective(cfg: TrainConfig) -> nn.Module:
    """The module :class:`~hyperleaf.train.trainer.Trainer` optimises for ``cfg.task``."""
    return get_task(cfg.task).build_objective(cfg)


def copy_shared_init(objective: nn.Module, cfg: TrainConfig) -> list[str]:
    """``shared_init``: overwrite ``objective``'s initial tensors with those of the full LEAF
    network (:data:`FULL_LEAF` over ``cfg``) drawn from ``torch.manual_seed(cfg.seed)``.

    Every state-dict entry the two have in common (same name and shape) is copied, so all the
    arms of an ablation built from one seed share every common tensor bit for bit, whichever
    modules each arm leaves out and wherever the task's constructor draws them. The global
    random state is left as it was (``torch.random.fork_rng``). Returns the copied names.

    Example::

        >>> from hyperleaf.train import TrainConfig
        >>> cfg = TrainConfig(leaf=True, h2fr=False, n_feat=4, seed=1).validate()
        >>> obj = build_objective(cfg)
        >>> names = copy_shared_init(obj, cfg)
        >>> len(names) == len(obj.state_dict())
        True
    """
    full = cfg.replace(**FULL_LEAF)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        ref = build_objective(full).state_dict()
    own = objective.state_dict()
    common = [k for k in own if k in ref and ref[k].shape == own[k].shape]
    with torch.no_grad():
        for k in common:
            own[k].copy_(ref[k])
    return common


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """Deprecated: ``(objective, cfg)`` of a finished run (``config.yaml`` +
    ``model.safetensors``); a run loads with :func:`hyperleaf.runs.load_run` (``load_run(run,
    objective=True)``: ``.objective``, ``.config``; the network alone, no loss: ``.model``).
    """
    warnings.warn("hyperleaf.train.load_run is deprecated; use hyperleaf.runs.load_run(run, "
                  "objective=True) (.objective, .config), or without objective for the network "
                  "alone (.model)", DeprecationWarning, stacklevel=2)
    d = Path(run_dir)
    for name in ("config.yaml", "model.safetensors"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"run folder {d}: {name} not found (is it a finished "
                                    "hyperleaf train run?)")
    return load_run_files(d / "config.yaml", d / "model.safetensors", device)


def load_run_files(config: str | Path, weights: str | Path, device: str = "cpu"
                   ) -> tuple[nn.Module, TrainConfig]:
    """``(objective, cfg)``: the objective ``config`` (a run's ``config.yaml``) describes, with
    the tensors of ``weights`` (a ``.safetensors`` file) loaded strictly, in eval mode.

    Raises ``ValueError`` naming the file when the config is invalid, the weights file cannot
    be read, or its tensors do not match the network (missing, unexpected, wrong shape).
    """
    cfg = load_run_config(config)
    obj = build_objective(cfg)
    load_tensors(obj, read_safetensors(weights), weights, config)
    return obj.to(device).eval(), cfg


def read_safetensors(weights: str | Path) -> dict[str, Tensor]:
    """Every tensor of a ``.safetensors`` file (on the CPU); ``ValueError`` naming the file
    when it cannot be read."""
    try:
        return load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{weights}: not a readable safetensors file ({exc})") from None


def load_tensors(module: nn.Module, state: Mapping[str, Tensor], weights: str | Path,
                 config: str | Path) -> None:
    """Load ``state`` (read from ``weights``) into ``module`` strictly: every tensor used,
    every one of the module's present with its shape; ``ValueError`` naming both files.

    Tensors the module shares under several names (LEAFUNet registers the authors' aliases,
    e.g. ``decoder`` = ``model1.decoder``) were saved once, under one of the names: every name
    of a tensor takes the stored value of whichever of its names the file has. Names are
    grouped by the memory they view (safetensors' own ``load_model`` picked other names for
    LEAFUNet's aliased BatchNorm counters than its ``save_model`` kept, and refused the file).
    """
    own = module.state_dict()
    for k, v in state.items():
        if k in own and tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{weights}: tensor {k} has shape {tuple(v.shape)}, the network "
                             f"{config} describes expects {tuple(own[k].shape)}")
    aliases: dict[object, list[str]] = {}
    for name, t in module.state_dict(keep_vars=True).items():
        key = ((t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride())) if t.data_ptr()
               else id(t))
        aliases.setdefault(key, []).append(name)
    full, missing = {}, []
    for names in aliases.values():
        stored = next((n for n in names if n in state), None)
        if stored is None:
            missing.append(names[0])
            continue
        full.update({n: state[stored] for n in names})
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not match the network {config} describes: {len(missing)} "
            f"missing tensor(s) {sorted(missing)[:3]}, {len(unexpected)} unexpected "
            f"{sorted(unexpected)[:3]}")
    module.load_state_dict(full, strict=True)


def run_files(path: str | Path) -> tuple[Path, Path]:
    """``(config.yaml, model.safetensors)`` of a run folder or of a run's weights file (its
    ``config.yaml`` beside it); ``FileNotFoundError`` saying what is missing."""
    p = Path(path)
    if p.is_dir():
        config, weights = p / "config.yaml", p / "model.safetensors"
        if not config.is_file():
            raise FileNotFoundError(f"{p} is a folder without config.yaml: expected a hyperleaf "
                                    "train run folder (config.yaml + model.safetensors)")
        if not weights.is_file():
            raise FileNotFoundError(f"run folder {p}: model.safetensors not found (an "
                                    "unfinished run? it is written when training ends)")
        return config, weights
    config = p.parent / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{p}: no config.yaml beside it to rebuild the network "
                                "(expected a hyperleaf train run's model.safetensors)")
    return config, p


def load_fusion_net(weights: str | Path, device: str = "cpu") -> nn.Module:
    """Deprecated: use ``hyperleaf.runs.load_run(weights, device, task="fuse").model``.

    The fusion network ``weights`` names, in eval mode on ``device``; call it as
    ``net(vis, ir)`` with ``(B, 1, H, W)`` tensors in ``[0, 1]``.

    ``weights`` is one of:

    * a ``hyperleaf train`` run folder (``config.yaml`` + ``model.safetensors``): the network
      its config describes (SHIP, with its HDGFB blocks for a LEAF run) with the trained tensors;
    * a run's ``.safetensors`` file: the same, with the ``config.yaml`` beside it;
    * any other file: the SHIP authors' checkpoint (``.pth``), loaded by
      :func:`hyperleaf.compat.ship.ship_from_official` (plain released SHIP).

    Raises ``FileNotFoundError`` / ``ValueError`` naming the path and what was expected.

    Example::

        >>> net = load_fusion_net("runs/demo")                       # doctest: +SKIP
        >>> fused = net(vis, ir)                                       # doctest: +SKIP
    """
    warnings.warn("hyperleaf.train.build.load_fusion_net is deprecated; use "
                  "hyperleaf.runs.load_run(weights, device, task='fuse').model",
                  DeprecationWarning, stacklevel=2)
    p = Path(weights)
    if p.is_file() and p.suffix != ".safetensors":
        return ship_from_official(p).to(device).eval()
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder (expected the SHIP authors' "
                                ".pth, a hyperleaf train run folder, or its model.safetensors)")
    config, tensors = run_files(p)
    task = load_run_config(config).task
    if task != "fuse":
        raise ValueError(f"{config}: a {task!r} run; image fusion needs a fusion run "
                         "(task: fuse)")
    objective, _ = load_run_files(config, tensors, device)
    return objective.net
