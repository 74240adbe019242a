r"""Pan-sharpening runs: training through the engine, loading, inference, evaluation tables.

The task itself (data, network, loss, validation) is :mod:`hyperleaf.tasks.pansharpen`,
trained by the same engine as every task (``hyperleaf train --task pansharpen``:
checkpoints, ``--resume``, ``log.jsonl``, the non-finite guard, DDP). This module keeps the
pan-sharpening entry points:

* :func:`train_pansharpen` -- the older keyword interface, now a thin wrapper that builds a
  :class:`~hyperleaf.train.TrainConfig` and calls :func:`hyperleaf.train.train`;
* :func:`load_pansharpen` / :func:`sharpen` -- run a trained model (run folders of the engine,
  ``config.yaml``; and those of the earlier separate loop, ``config.json``);
* :func:`evaluate_methods` / :func:`markdown_tables` -- the reduced- and full-resolution tables
  for baselines and models;
* :func:`score_fused` -- the same tables for external results (files of another method).

``patches``, ``split_indices``, ``band_statistics`` and ``Standardised`` are re-exported from
the task module.

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
from torch import Tensor, nn

from hyperleaf.metrics import pansharpening as pm
from hyperleaf.models.registry import create_model
from hyperleaf.pansharpen import fuse
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
            "final_l1": l1[-1] if l1 else float("nan"), "config": cfg.to_dict()}


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


def evaluate_methods(methods: dict[str, Any], samples: list[dict[str, Tensor]], ratio: int,
                     sensor: Any = None, full: bool = False, block: int = 32, cut: int = 0,
                     convention: str = "toolbox", scale: float | None = None
                     ) -> dict[str, dict[str, float]]:
    """Mean indices per method over ``samples`` (float64 (C, H, W) dicts).

    ``methods[name]`` is a baseline name of :data:`hyperleaf.pansharpen.METHODS` or a model
    (``net(pan, lms)``). ``full=False``: reduced-resolution indices against ``gt``;
    ``full=True``: full-resolution indices from ``pan`` and ``ms``. ``convention`` and
    ``scale`` (the digital number of 1.0 in the samples) as in
    :mod:`hyperleaf.metrics.pansharpening`.
    """
    table: dict[str, dict[str, float]] = {}
    for name, m in methods.items():
        rows = []
        for s in samples:
            if isinstance(m, str):
                f = fuse(m, s["pan"], s["lms"], s["ms"], ratio, sensor)
            else:
                f = sharpen(m, s["pan"], s["lms"])
            if full:
                rows.append(pm.full_resolution(f, s["ms"], s["pan"], ratio, sensor, block,
                                               convention=convention, scale=scale))
            else:
                rows.append(pm.reduced_resolution(s["gt"], f, ratio, min(block, f.shape[-1]),
                                                  cut, convention=convention, scale=scale))
        table[name] = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return table


def score_fused(ds: Any, files: Sequence[str | Path], sensor: Any = None, block: int = 32,
                convention: str = "toolbox", fused_scale: float | None = None
                ) -> dict[str, Any]:
    """Indices of external fused images, one file per sample of ``ds`` (a
    :class:`~hyperleaf.data.PanCollection`), in the order of ``ds.names``.

    Reduced resolution (samples with ``gt``; the fused image at ``gt``'s size): SAM, ERGAS,
    Q2n, Q, SCC against ``gt`` (Q block ``min(block, side)``, no cut, no clipping). Full
    resolution (every sample whose side is a multiple of ``block``): D_lambda, D_s, QNR,
    D_lambda_K, HQNR from the sample's ``ms``, ``pan`` and ``lms``. Both under ``convention``
    with the data's digital-number scale ``ds.dn_scale`` (Q2n's rounding). Fused files are
    read by :meth:`~hyperleaf.data.PanCollection.read_fused` (``fused_scale``: their divisor;
    default: the data's scale for digital numbers, 1 for images in [0, 1]).

    Returns ``{"convention", "dn_scale", "reduced_resolution": {"scenes": [...], "mean": {...}}
    | None, "full_resolution": ... | None, "skipped": [...]}``; each scene row holds
    ``scene``, ``file`` and the indices.

    >>> from hyperleaf.data import PanCollection                     # doctest: +SKIP
    >>> ds = PanCollection("Pleiades_test.mat", scale=1023)          # doctest: +SKIP
    >>> score_fused(ds, ["my_method.mat"])["reduced_resolution"]["mean"]["Q2n"]  # doctest: +SKIP
    0.93...
    """
    if len(files) != len(ds):
        raise ValueError(f"files: expected one fused file per scene ({len(ds)}), got "
                         f"{len(files)}")
    rr_rows: list[dict[str, Any]] = []
    fr_rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    conv = convention
    for i, (name, path) in enumerate(zip(ds.names, files, strict=True)):
        s = {k: v.double() for k, v in ds[i].items()}
        f = ds.read_fused(path, i, fused_scale)
        base = {"scene": name, "file": str(path)}
        if "gt" in s:
            side = min(f.shape[-2:])
            rr_rows.append({**base, **pm.reduced_resolution(
                s["gt"], f, ds.ratio, min(block, side), 0, convention=conv,
                scale=ds.dn_scale)})
        h, w = f.shape[-2:]
        if h % block or w % block:
            skipped.append(f"{name}: full resolution needs sides that are multiples of {block} "
                           f"(got {h}x{w})")
        else:
            fr_rows.append({**base, **pm.full_resolution(
                f, s["ms"], s["pan"], ds.ratio, sensor, block, convention=conv,
                scale=ds.dn_scale, lms=s["lms"])})

    def table(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any] | None:
        if not rows:
            return None
        return {"scenes": rows, "mean": {k: sum(r[k] for r in rows) / len(rows) for k in keys}}

    return {"convention": conv, "dn_scale": ds.dn_scale,
            "reduced_resolution": table(rr_rows, pm.REDUCED_RESOLUTION),
            "full_resolution": table(fr_rows, pm.FULL_RESOLUTION), "skipped": skipped}


def markdown_tables(table: dict[str, dict[str, float]]) -> str:
    """One Markdown table (methods as rows; arrows: lower/higher is better)."""
    better = {"SAM": "↓", "ERGAS": "↓", "Q2n": "↑", "Q": "↑", "SCC": "↑", "D_lambda": "↓",
              "D_s": "↓", "QNR": "↑", "D_lambda_K": "↓", "HQNR": "↑"}
    keys = list(next(iter(table.values())))
    lines = ["| method | " + " | ".join(f"{k} {better.get(k, '')}".strip() for k in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"
