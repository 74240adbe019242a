"""Helpers shared by tasks."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from hyperleaf.distributed import gather_levels
from hyperleaf.nn.hdgfb import HDGFB
from hyperleaf.nn.heads import LeafHead
from hyperleaf.tasks.base import TaskKey, task_key

__all__ = ["HDGFB_SEED_CURVATURE", "add_h2fr", "check_leaf", "leaf_head", "leaf_keys",
           "ship_keys", "ship_leaf_kwargs", "synthetic_keys", "uses_head", "val_batches"]

#: HDGFB's own default curvature (the seed's), read from its signature so that it is said once.
HDGFB_SEED_CURVATURE = inspect.signature(HDGFB.__init__).parameters["c"].default

# Configuration keys several tasks declare (``Task.config_keys``), each written once here; a task
# takes them with its own defaults where they differ (pansharpen's H2FR weight).


def _positive(v: float) -> bool:
    return v > 0


def leaf_keys(**defaults: Any) -> dict[str, TaskKey]:
    """The keys of LEAF's two parts, for a task built on them: the H2FR loss and head (section
    ``task``: weight, mode, core, alpha, beta; ``model``: the head's ball) and the HDGFB blocks
    (``model``). ``defaults`` replaces some keys' defaults for the declaring task.

    >>> keys = leaf_keys(h2fr_weight=0.1)
    >>> keys["h2fr_weight"].default, keys["curvature"].default, keys["hdgfb_curvature"].default
    (0.1, 0.5, 0.2)
    """
    d = {"h2fr_weight": 0.5, "h2fr_mode": "geodesic", "h2fr_core": "learned", "h2fr_alpha": 1.0,
         "h2fr_beta": 1.0, "leaf": True, "h2fr": True, "hdgfb": True, "euclidean": False,
         "curvature": 0.5, "learn_curvature": True, "hdgfb_curvature": HDGFB_SEED_CURVATURE,
         "ball_dim": 16, "clip_r": 2.0, "leaf_norm": "layer", "leaf_radius": 1.5,
         "hdgfb_mode": "geodesic", "hdgfb_hidden": 32}
    unknown = sorted(set(defaults) - set(d))
    if unknown:
        raise ValueError(f"defaults: no LEAF keys {unknown} (known: {', '.join(d)})")
    d.update(defaults)
    positive = (_positive, "be finite and > 0")
    return {
        "h2fr_weight": task_key("task", d["h2fr_weight"], "weight of the H2FR loss", minimum=0),
        "h2fr_mode": task_key("task", d["h2fr_mode"], "H2FR distances: `geodesic` or `paper`",
                              choices=("paper", "geodesic")),
        "h2fr_core": task_key("task", d["h2fr_core"], "H2FR core: `learned` or `origin` "
                                                      "(`origin` with `paper`)",
                              choices=("origin", "learned")),
        "h2fr_alpha": task_key("task", d["h2fr_alpha"], "H2FR alpha (>= 0)", minimum=0),
        "h2fr_beta": task_key("task", d["h2fr_beta"], "H2FR beta (>= 0)", minimum=0),
        "leaf": task_key("model", d["leaf"], "false: the plain backbone, no HDGFB and no H2FR "
                                             "(the ablation)"),
        "h2fr": task_key("model", d["h2fr"], "false with `leaf`: no LEAF head, no H2FR loss "
                                             "(`hdgfb-only`)"),
        "hdgfb": task_key("model", d["hdgfb"], "false: no HDGFB blocks, H2FR still on the "
                                               "stages (`h2fr-only`); the LEAF authors' networks "
                                               "replace every HDGFB by the identity"),
        "euclidean": task_key("model", d["euclidean"], "LEAF's c -> 0 limit: every ball map and "
                                                       "distance Euclidean"),
        "curvature": task_key("model", d["curvature"], "the H2FR head's (LeafHead's) initial "
                                                       "ball curvature c > 0; leaf-unet(3d): the "
                                                       "network's one curvature (head and HDGFB "
                                                       "blocks, the authors' constant)",
                              check=positive),
        "learn_curvature": task_key("model", d["learn_curvature"], "learn the H2FR head's "
                                                                   "curvature"),
        "hdgfb_curvature": task_key("model", d["hdgfb_curvature"], "the HDGFB blocks' fixed "
                                    "curvature c > 0 (SHIP + LEAF, leafseg; the seed's 0.2); not "
                                    "the head's `curvature`", check=positive),
        "ball_dim": task_key("model", d["ball_dim"], "LeafHead ball dimension", minimum=1),
        "clip_r": task_key("model", d["clip_r"], "LeafHead tangent clip radius", check=positive),
        "leaf_norm": task_key("model", d["leaf_norm"], "LeafHead normalisation: `layer` "
                                                       "(radial_layer_norm) or `none`",
                              choices=("layer", "none")),
        "leaf_radius": task_key("model", d["leaf_radius"], "leaf_norm `layer`: initial tangent "
                                                           "norm, in (0, clip_r)"),
        "hdgfb_mode": task_key("model", d["hdgfb_mode"], "HDGFB: `geodesic` or `paper`",
                               choices=("paper", "geodesic")),
        "hdgfb_hidden": task_key("model", d["hdgfb_hidden"], "HDGFB hidden width", minimum=1),
    }


def check_leaf(cfg: Any) -> None:
    """The checks between LEAF's keys (:func:`leaf_keys`) a task's ``check_config`` runs:
    ``ValueError`` naming the key."""
    if cfg.h2fr_mode != "geodesic" and cfg.h2fr_core != "origin":
        raise ValueError(f"h2fr_core: must be 'origin' with h2fr_mode 'paper' (the seed's loss "
                         f"has no learned core), got {cfg.h2fr_core!r}")
    if cfg.euclidean and not (cfg.h2fr_mode == cfg.hdgfb_mode == "geodesic"
                              and not cfg.learn_curvature):
        raise ValueError("euclidean: is the c -> 0 limit of geodesic LEAF: needs h2fr_mode and "
                         "hdgfb_mode 'geodesic' and learn_curvature false, got True")
    if cfg.leaf_norm == "layer" and not (math.isfinite(cfg.leaf_radius)
                                         and 0 < cfg.leaf_radius < cfg.clip_r):
        raise ValueError(f"leaf_radius: must be in (0, clip_r={cfg.clip_r:g}) with leaf_norm "
                         f"'layer', got {cfg.leaf_radius!r}")


def ship_keys() -> dict[str, TaskKey]:
    """The keys of the SHIP backbone a task trains (its width).

    >>> ship_keys()["n_feat"].default
    8
    """
    return {"n_feat": task_key("model", 8, "SHIP feature channels", minimum=1)}


def synthetic_keys() -> dict[str, TaskKey]:
    """The keys of a task's embedded synthetic set (used when ``data`` is null)."""
    return {"train_size": task_key("data", 4096, "synthetic set: training samples", minimum=1),
            "val_size": task_key("data", 8, "synthetic set: validation samples", minimum=1)}


def add_h2fr(total: torch.Tensor, parts: dict[str, torch.Tensor], levels: Any,
             h2fr: Callable[[Any], torch.Tensor], weight: float, training: bool
             ) -> torch.Tensor:
    """The "task loss + weight x H2FR" step every LEAF objective ends with, written once:
    while ``training``, H2FR ranks the union batch of every rank (``gather_levels``); its value
    goes to ``parts["h2fr"]`` (detached) and ``total + weight * H2FR`` is returned.

    >>> parts = {}
    >>> add_h2fr(torch.tensor(1.0), parts, None, lambda _: torch.tensor(2.0), 0.5, False)
    tensor(2.)
    >>> parts
    {'h2fr': tensor(2.)}
    """
    if training:
        levels = gather_levels(levels)
    h = h2fr(levels)
    parts["h2fr"] = h.detach()
    return total + weight * h


def val_batches(val_set, chunk: int = 8) -> Iterator[tuple[list[str], dict[str, torch.Tensor]]]:
    """Yield ``(names, batch)`` over the validation set, stacking samples of equal size.

    Names come from the dataset's ``pairs`` (real data) or are ``val_000``, ``val_001``, ...

    Example:

        >>> items = [{"x": torch.zeros(1, 4, 4)}] * 3 + [{"x": torch.zeros(1, 6, 6)}]
        >>> [(names, tuple(b["x"].shape)) for names, b in val_batches(items, chunk=2)]
        ... # doctest: +NORMALIZE_WHITESPACE
        [(['val_000', 'val_001'], (2, 1, 4, 4)), (['val_002'], (1, 1, 4, 4)),
         (['val_003'], (1, 1, 6, 6))]
    """
    names, items = [], []
    first = next(iter(val_set[0])) if len(val_set) else None
    for i in range(len(val_set)):
        it = val_set[i]
        name = getattr(val_set, "pairs", None)
        name = name[i].name if name is not None else f"val_{i:03d}"
        if items and (it[first].shape != items[0][first].shape or len(items) == chunk):
            yield names, {k: torch.stack([x[k] for x in items]) for k in items[0]}
            names, items = [], []
        names.append(name)
        items.append(it)
    if items:
        yield names, {k: torch.stack([x[k] for x in items]) for k in items[0]}


def ship_leaf_kwargs(cfg: Any) -> dict[str, Any]:
    """``create_model("ship", ...)`` keywords of the LEAF extension as configured: an HDGFB
    per stage (``hdgfb_mode``, ``hdgfb_hidden``, curvature ``hdgfb_curvature``; ``euclidean``:
    its c -> 0 limit) with ``leaf`` and ``hdgfb``, nothing without."""
    if not (cfg.leaf and cfg.hdgfb):
        return {}
    kwargs = {"mode": cfg.hdgfb_mode, "hidden": cfg.hdgfb_hidden, "c": cfg.hdgfb_curvature}
    if cfg.euclidean:
        kwargs["euclidean"] = True
    return {"hdgfb": True, "hdgfb_kwargs": kwargs}


def uses_head(cfg: Any) -> bool:
    """Whether the configuration has LEAF's head and H2FR loss: ``leaf`` and ``h2fr``."""
    return bool(cfg.leaf and cfg.h2fr)


def leaf_head(cfg: Any, level_channels: Sequence[int]) -> LeafHead:
    """The configured :class:`~hyperleaf.nn.heads.LeafHead` (ball, compressor and H2FR) over
    stages of ``level_channels`` channels."""
    return LeafHead(level_channels, dim=cfg.ball_dim, c=cfg.curvature,
                    learn_c=cfg.learn_curvature, clip_r=cfg.clip_r, mode=cfg.h2fr_mode,
                    core=cfg.h2fr_core, alpha=cfg.h2fr_alpha, beta=cfg.h2fr_beta,
                    norm=cfg.leaf_norm, radius=cfg.leaf_radius, euclidean=cfg.euclidean)
