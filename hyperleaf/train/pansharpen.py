r"""Pan-sharpening runs: training through the engine, loading, inference, evaluation tables.

The task itself (data, network, loss, validation) is :mod:`hyperleaf.tasks.pansharpen`,
trained by the same engine as every task (``hyperleaf train --task pansharpen``:
checkpoints, ``--resume``, ``log.jsonl``, the non-finite guard, DDP). This module keeps the
pan-sharpening entry points:

* :func:`train_pansharpen` -- the older keyword interface, now a thin wrapper that builds a
  :class:`~hyperleaf.train.TrainConfig` and calls :func:`hyperleaf.train.train`;
* :func:`load_pansharpen` / :func:`sharpen` -- run a trained model (run folders of the engine,
  ``config.yaml``; and those of the earlier separate loop, ``config.json``);
* old paths of what moved into the :mod:`hyperleaf.pansharpen` package:
  :func:`~hyperleaf.pansharpen.evaluation.evaluate_methods`, ``markdown_tables``,
  ``score_fused`` (score tables), ``patches``, ``split_indices``, ``band_statistics``
  (:mod:`hyperleaf.pansharpen.patches`), ``Standardised`` and ``sharpen``
  (:mod:`hyperleaf.pansharpen.network`). New code loads any run with
  :func:`hyperleaf.runs.load_run`.

Example::

    >>> from hyperleaf.train.pansharpen import train_pansharpen      # doctest: +SKIP
    >>> train_pansharpen("wv3_rr100.h5", "runs/ps", steps=200)       # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import load_model
from torch import nn

from hyperleaf.models.registry import create_model
from hyperleaf.pansharpen.evaluation import evaluate_methods, markdown_tables, score_fused
from hyperleaf.tasks.pansharpen import (
    Standardised,
    band_statistics,
    patches,
    sharpen,
    split_indices,
)
from hyperleaf.train.build import load_run_files
from hyperleaf.train.config import TrainConfig, load_run_config
from hyperleaf.train.trainer import train

__all__ = ["Standardised", "band_statistics", "evaluate_methods", "load_pansharpen",
           "markdown_tables", "patches", "score_fused", "sharpen", "split_indices",
           "train_pansharpen"]


def train_pansharpen(data: str | Path, out: str | Path, *, steps: int = 200,
                     batch_size: int = 8, lr: float = 1e-3, seed: int = 0, leaf: bool = False,
                     n_feat: int = 8, sensor: str | None = None, patch: int = 64,
                     train_samples: Sequence[int] | None = None, h2fr_weight: float = 0.1,
                     normalise: bool = True, threads: int | None = None, log=print,
                     **config: Any) -> dict[str, Any]:
    """Train ``SHIP(task="pansharpen")`` on ``data`` through the engine; returns the summary
    ``{"out", "seconds", "final_l1", "config"}``.

    Equivalent to ``hyperleaf train --task pansharpen`` with the keys named here (``patch`` is
    ``crop``; ``train_samples``: indices of ``data``'s samples to train on, the others
    validate; default: the :attr:`~hyperleaf.tasks.pansharpen.PAN_DEFAULTS` split). Further
    :class:`~hyperleaf.train.TrainConfig` keys may be passed as keyword arguments. The run
    folder ``out`` is the engine's (``config.yaml``, ``model.safetensors``, ``log.jsonl``,
    ``checkpoints/``). ``log``: print the engine's progress bar when not None.

    Raises :class:`~hyperleaf.train.ConfigError` (a ``ValueError``) naming the key of a bad
    value.
    """
    keys: dict[str, Any] = {"task": "pansharpen", "data": str(getattr(data, "path", data)),
                            "out": str(out), "steps": steps, "batch_size": batch_size, "lr": lr,
                            "seed": seed, "leaf": leaf, "n_feat": n_feat, "sensor": sensor,
                            "crop": patch, "h2fr_weight": h2fr_weight, "normalise": normalise}
    if getattr(sensor, "name", None) is not None:  # a Sensor object: its name
        keys["sensor"] = sensor.name
    if threads is not None:
        keys["threads"] = threads
    if train_samples is not None:
        keys["train_index"] = ",".join(str(int(i)) for i in train_samples)
    cfg = TrainConfig.from_dict({**keys, **config}, source="train_pansharpen")
    res = train(cfg, progress=log is not None)
    train_recs = [json.loads(line) for line in
                  (Path(out) / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    l1 = [r["l1"] for r in train_recs if r.get("kind") == "train" and "l1" in r]
    return {"out": str(res.out), "seconds": res.seconds,
            "final_l1": l1[-1] if l1 else float("nan"),
            # the run's configuration as saved: with what the data decided (bands, statistics)
            "config": load_run_config(Path(out) / "config.yaml").to_dict()}


def _build_legacy(config: dict[str, Any]) -> nn.Module:
    """The network of a run folder of the earlier separate training loop (``config.json``)."""
    kw = {"hdgfb_kwargs": {"hidden": config.get("hdgfb_hidden", 8)}} if config["leaf"] else {}
    net = create_model("ship", n_feat=config["n_feat"], task="pansharpen",
                       ms_bands=config["ms_bands"], ratio=config["ratio"], hdgfb=config["leaf"],
                       **kw)
    stats = config.get("normalisation")
    return Standardised(net, **stats) if stats else net


def load_pansharpen(run: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(network in eval mode, config)`` of a pan-sharpening run folder (or its
    ``model.safetensors``); call the network as ``net(pan, lms)``.

    Run folders of the engine (``config.yaml``: the config is its mapping, with ``ms_bands``
    and ``ratio``) and of the earlier separate loop (``config.json``) both load. Raises
    ``FileNotFoundError`` / ``ValueError`` naming the folder.
    """
    p = Path(run)
    folder = p.parent if p.suffix == ".safetensors" else p
    weights = folder / "model.safetensors"
    if (folder / "config.yaml").is_file():
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} not found (an unfinished run? it is written "
                                    "when training ends)")
        cfg = load_run_config(folder / "config.yaml")
        if cfg.task != "pansharpen":
            raise ValueError(f"{folder}: a {cfg.task!r} run, not a pan-sharpening run")
        objective, cfg = load_run_files(folder / "config.yaml", weights)
        return objective.net.eval(), cfg.to_dict()
    legacy = folder / "config.json"
    for f in (legacy, weights):
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found (a pan-sharpening run folder is "
                                    "expected: config.yaml or config.json, model.safetensors)")
    config = json.loads(legacy.read_text())
    if config.get("task") != "pansharpen":
        raise ValueError(f"{folder} is not a pan-sharpening run")
    net = _build_legacy(config)
    load_model(net, str(weights), strict=True)
    return net.eval(), config
