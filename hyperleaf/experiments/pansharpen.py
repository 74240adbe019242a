r"""Pan-sharpening's keyword training interface: :func:`train_pansharpen`.

The task itself (data, network, loss, validation) is :mod:`hyperleaf.tasks.pansharpen`,
trained by the engine like every task (``hyperleaf train --task pansharpen``); a trained run
loads with :func:`hyperleaf.runs.load_run`, and the baselines' tables are
:mod:`hyperleaf.pansharpen.evaluation`. This is the older keyword interface of the scripts in
``benchmarks/`` (formerly ``hyperleaf.train.pansharpen.train_pansharpen``), a thin wrapper that
builds a :class:`~hyperleaf.train.TrainConfig` and calls :func:`hyperleaf.train.train`.

Example::

    >>> from hyperleaf.experiments.pansharpen import train_pansharpen  # doctest: +SKIP
    >>> train_pansharpen("wv3_rr100.h5", "runs/ps", steps=200)          # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hyperleaf.train.config import TrainConfig, load_run_config
from hyperleaf.train.trainer import train

__all__ = ["train_pansharpen"]


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
