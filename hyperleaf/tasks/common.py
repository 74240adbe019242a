"""Helpers shared by tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from hyperleaf.distributed import gather_levels
from hyperleaf.nn.heads import LeafHead

__all__ = ["add_h2fr", "FUSE_KEYS", "FUSE_SEGMENT_KEYS", "PANSHARPEN_KEYS", "SEGMENT_KEYS",
           "leaf_head", "ship_leaf_kwargs", "uses_head", "val_batches"]

# Engine configuration keys some tasks own (``Task.own_keys``): every other task refuses them
# (``Task.foreign_keys``, derived from the registry), instead of silently ignoring them.
#: Read only by the fuse task (its losses and SHIP's width; rot90 of its training crops).
FUSE_KEYS = ("loss", "w_mask", "w_intensity", "w_gradient", "w_ssim", "n_feat", "rot90")
#: Read by the fuse and segment tasks (recipes, initial weights, the network's name, the
#: embedded synthetic sets).
FUSE_SEGMENT_KEYS = ("recipe", "init", "model", "train_size", "val_size", "data_seed")
#: Read only by the segment task (its losses and networks).
SEGMENT_KEYS = ("seg_loss", "w_ce", "w_focal_dice", "w_dice", "w_focal", "focal_reduction",
                "num_classes", "seg_width", "in_channels", "encoder", "feature_dim", "mlp_dim",
                "leaf_mode", "widths3d", "modality_groups", "lesion_fraction")
#: Read only by the pansharpen task.
PANSHARPEN_KEYS = ("sensor", "normalise", "train_index", "val_index", "ms_bands", "ratio",
                   "pan_statistics")


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
