"""``task="segment"``: multimodal segmentation.

Networks (``cfg.model``, from :mod:`hyperleaf.models.registry`):

* ``leafseg`` (default without ``data`` and with ``seg_loss="ce"``): hyperleaf's small LEAFSegNet, cross-entropy + H2FR with
  the Riemannian parts (learned core, learnable curvature), on the embedded synthetic set;
* ``leaf-unet`` (default for 2-D folders): the LEAF authors' ``DualInputHyperbolicUNet``
  (:class:`hyperleaf.models.LEAFUNet`, encoder ``cfg.encoder``), needs the seg extra;
* ``leaf-unet3d`` (default for NIfTI volumes): :class:`hyperleaf.models.LEAFUNet3D`.

Data: the embedded synthetic set, or ``cfg.data`` opened by
:class:`hyperleaf.data.segmentation.SegmentationFolder` (MSRS, WHU-OPT-SAR or the generic
``modality_a/ modality_b/ ... label/`` layout, 2-D images or NIfTI volumes): the last
``round(val_fraction * N)`` items (at least 1, in sorted name order) validate, the others train;
modality groups ``cfg.modality_groups`` (default: first half | second half) form the two inputs;
``num_classes`` 0 takes the data's (:func:`open_segment_data`); training items are random
``crop``-sided crops (``lesion_fraction`` of them centred on a foreground voxel, ± crop/4:
:class:`~hyperleaf.data.segmentation.SegmentationCrops`); validation items are whole, predicted tile by tile (:func:`tile_logits`,
tiles of ``val_crop`` for 2-D, ``crop`` for 3-D: the paper-mode 3-D network has a fixed
volume), as ``hyperleaf evaluate --task segment`` does (:func:`segment_scores`).

Loss (``cfg.seg_loss``): ``"ce"`` (CE + ``h2fr_weight`` H2FR) or ``"leaf-authors"``
(:class:`hyperleaf.losses.LeafSegmentationLoss` with ``w_ce``, ``w_focal_dice``, ``w_dice``,
``w_focal``, ``h2fr_weight``, ``focal_reduction``; the recipe ``leaf-authors``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hyperleaf import io as hio
from hyperleaf.data import SyntheticSegmentation
from hyperleaf.data.segmentation import (
    SegmentationCrops,
    SegmentationDataError,
    SegmentationFolder,
    SegmentationItems,
    default_groups,
)
from hyperleaf.losses import get_loss
from hyperleaf.models.registry import create_model
from hyperleaf.tasks.base import Task, register_task, task_key
from hyperleaf.tasks.common import (
    HDGFB_SEED_CURVATURE,
    add_h2fr,
    check_leaf,
    leaf_keys,
    synthetic_keys,
    val_batches,
)
from hyperleaf.tasks.evaluation import EvaluationReport, given_outputs

__all__ = ["SegmentTask", "SegmentObjective", "LeafUNetObjective", "build_segment_objective",
           "evaluate_segment", "segment_scores", "tile_logits", "eval_tile", "open_segment_data",
           "SEG_MODELS", "AUTHORS_VAL_BATCH", "AUTHORS_NOTE", "segment_report",
           "format_segment_report", "segment_report_rows"]

#: The segmentation networks this task builds.
SEG_MODELS = ("leafseg", "leaf-unet", "leaf-unet3d")


class SegmentObjective(nn.Module):
    """``forward(vis, ir, mask) -> (total, parts, logits)``; H2FR on the union batch of all
    ranks while training (as for fusion)."""

    def __init__(self, net: nn.Module, h2fr_weight: float = 0.1, leaf: bool = True):
        super().__init__()
        self.net, self.h2fr_weight, self.leaf = net, float(h2fr_weight), bool(leaf)
        self.head = net.head if leaf else None

    def forward(self, vis: Tensor, ir: Tensor, mask: Tensor):
        logits, points = self.net(vis, ir, return_points=True)
        ce = F.cross_entropy(logits, mask)
        parts = {"seg": ce.detach()}
        total = ce
        if self.leaf:
            total = add_h2fr(total, parts, points, self.net.h2fr_loss, self.h2fr_weight,
                             self.training)
        return total, parts, logits

    def logits(self, vis: Tensor, ir: Tensor) -> Tensor:
        """The network's logits alone (evaluation)."""
        return self.net(vis, ir)


class LeafUNetObjective(nn.Module):
    """``forward(x1, x2, mask) -> (total, parts, logits)`` for LEAFUNet / LEAFUNet3D (whose
    forward returns ``(logits, h2fr)``) with a :class:`~hyperleaf.losses.LeafSegmentationLoss`;
    ``leaf=False`` leaves H2FR out of the loss (the network still reports it). ``parts["seg"]``
    is the cross-entropy (the validation loss of every segmentation model)."""

    def __init__(self, net: nn.Module, loss: nn.Module, leaf: bool = True):
        super().__init__()
        self.net, self.loss, self.leaf = net, loss, bool(leaf)
        self.head = None  # no learned curvature: the authors' c is a constant

    def forward(self, x1: Tensor, x2: Tensor, mask: Tensor):
        logits, h2fr = self.net(x1, x2)
        total, parts = self.loss(logits, mask, h2fr if self.leaf else None)
        parts = {"seg": parts["ce"], **parts}
        if not self.leaf:
            parts["h2fr"] = h2fr.detach()
        return total, parts, logits

    def logits(self, x1: Tensor, x2: Tensor) -> Tensor:
        """The network's logits alone (evaluation)."""
        return self.net(x1, x2)[0]


def _widths_ok(v: list) -> bool:
    return len(v) >= 1 and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                               for w in v)


def _groups_ok(v: list) -> bool:
    return len(v) == 2 and all(isinstance(g, list) and g and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in g) for g in v)


def _model(cfg: Any) -> str:
    # default: leafseg on the synthetic set unless the authors' loss asks for their network
    if cfg.model:
        return cfg.model
    return "leafseg" if cfg.data is None and cfg.seg_loss == "ce" else "leaf-unet"


def build_segment_objective(cfg: Any) -> nn.Module:
    """The objective of ``cfg``'s segmentation network (module docstring): the network of
    :func:`build_segment_network` and its loss."""
    net = build_segment_network(cfg)
    if _model(cfg) != "leafseg":
        loss = get_loss("leaf-authors").from_config(cfg)  # CE + H2FR unless seg_loss says so
        return LeafUNetObjective(net, loss, leaf=bool(cfg.leaf and cfg.h2fr))
    return SegmentObjective(net, cfg.h2fr_weight, leaf=bool(cfg.leaf and cfg.h2fr))


def build_segment_network(cfg: Any) -> nn.Module:
    """The segmentation network ``cfg`` describes, no loss (``num_classes`` 0 on the synthetic
    set resolves to its 4): ``leafseg`` (LEAFSegNet of width ``seg_width``, levels w, 2w, 4w,
    its LEAF head inside), ``leaf-unet`` or ``leaf-unet3d``."""
    model = _model(cfg)
    k = cfg.num_classes
    if not k:
        if cfg.data is not None:
            raise ValueError("num_classes: 0 means 'from the data'; open them first "
                             "(Task.open_data) or give the number")
        k = SyntheticSegmentation.num_classes
    if model != "leafseg":
        ch = cfg.in_channels or 1
        common = dict(num_classes=k, in_channels=(ch, ch), c=cfg.curvature,
                      feature_dim=cfg.feature_dim, mode=cfg.leaf_mode,
                      hdgfb=bool(cfg.hdgfb and cfg.leaf), hdgfb_hidden=cfg.hdgfb_hidden,
                      mlp_dim=cfg.mlp_dim)
        if model == "leaf-unet":
            return create_model("leaf-unet", encoder=cfg.encoder, **common)
        volume = (cfg.crop,) * 3 if cfg.leaf_mode == "paper" else None
        return create_model("leaf-unet3d", widths=tuple(cfg.widths3d), volume=volume, **common)
    w = cfg.seg_width
    return create_model("leafseg", num_classes=k, widths=(w, 2 * w, 4 * w),
                        ball_dim=cfg.ball_dim, c=cfg.curvature, learn_c=cfg.learn_curvature,
                        clip_r=cfg.clip_r, h2fr_mode=cfg.h2fr_mode, h2fr_core=cfg.h2fr_core,
                        hdgfb_mode=cfg.hdgfb_mode, hdgfb_hidden=cfg.hdgfb_hidden,
                        hdgfb_c=cfg.hdgfb_curvature, head_norm=cfg.leaf_norm,
                        head_radius=cfg.leaf_radius)


def network_logits(net: nn.Module, vis: Tensor, ir: Tensor) -> Tensor:
    """The logits of a segmentation network alone (LEAFUNet returns ``(logits, h2fr)``)."""
    out = net(vis, ir)
    return out[0] if isinstance(out, tuple) else out


def tile_logits(forward: Callable[[Tensor, Tensor], Tensor], x1: Tensor, x2: Tensor,
                tile: int | None, chunk: int = 8) -> Tensor:
    """Logits of whole items from a network that sees ``tile``-sided tiles.

    ``x1``, ``x2``: ``(B, C, *S)`` (2 or 3 spatial dims). The items are zero-padded at the end
    of each spatial dimension to a multiple of ``tile`` (zeros: background, as training crops
    are padded), cut into non-overlapping tiles, run through ``forward(t1, t2) -> (N, K, *T)``
    ``chunk`` tiles at a time, stitched and cut back to ``S``: ``(B, K, *S)``. ``tile=None``
    runs the whole items at once.

    >>> f = lambda a, b: torch.cat([a, b], 1)     # "logits" = the inputs: tiling is invisible
    >>> x = torch.rand(2, 1, 5, 7)
    >>> torch.equal(tile_logits(f, x, 2 * x, tile=4, chunk=3), torch.cat([x, 2 * x], 1))
    True
    """
    if tile is None:
        return forward(x1, x2)
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    spatial = tuple(x1.shape[2:])
    counts = [math.ceil(s / tile) for s in spatial]
    padded = [n * tile for n in counts]
    p1, p2 = (_pad_end(x, padded) for x in (x1, x2))
    corners = [tuple(i * tile for i in idx) for idx in itertools.product(*map(range, counts))]
    b = x1.shape[0]
    per_forward = max(1, chunk // max(1, b))  # tile positions per forward (b tiles each)
    out = None
    for c0 in range(0, len(corners), per_forward):
        group = corners[c0:c0 + per_forward]
        cut = [tuple(slice(a, a + tile) for a in corner) for corner in group]
        t1 = torch.cat([p1[(slice(None), slice(None), *sl)] for sl in cut])
        t2 = torch.cat([p2[(slice(None), slice(None), *sl)] for sl in cut])
        logits = forward(t1, t2)
        if out is None:
            out = logits.new_zeros((x1.shape[0], logits.shape[1], *padded))
        for j, sl in enumerate(cut):
            out[(slice(None), slice(None), *sl)] = logits[j * b:(j + 1) * b]
    return out[(slice(None), slice(None), *(slice(0, s) for s in spatial))]


def _pad_end(x: Tensor, size: list[int]) -> Tensor:
    pad = [max(0, s - d) for s, d in zip(size, x.shape[2:])]
    return F.pad(x, [v for p in reversed(pad) for v in (0, p)]) if any(pad) else x


def eval_tile(cfg: Any, volumes: bool) -> int | None:
    """The tile side evaluation cuts real items into (training's validation and ``hyperleaf
    evaluate``): ``val_crop`` for 2-D items, ``crop`` for volumes (the paper-mode 3-D network
    has a fixed volume, and whole volumes do not fit in memory)."""
    return cfg.crop if volumes else cfg.val_crop


#: Items per batch of the authors' validation mIoU (their validation loader's batch, spec §7.4).
AUTHORS_VAL_BATCH = 20


@torch.no_grad()
def segment_scores(objective: nn.Module, items, device: torch.device, num_classes: int,
                   tile: int | None = None, chunk: int = 8, samples_dir: Path | None = None,
                   authors_batch: int = AUTHORS_VAL_BATCH) -> dict[str, Any]:
    """Scores of ``objective`` (eval mode) on every item of ``items`` (a dataset of
    ``{"vis", "ir", "mask"}`` whole items), each predicted by :func:`tile_logits`.

    Returns ``loss`` (cross-entropy per pixel, averaged over items), the standard scores of
    :class:`~hyperleaf.metrics.segmentation.SegmentationMetrics` over all pixels of all items
    (``miou``, ``mdice``, ``oa``, per-class ``iou`` and ``dice`` lists, NaN for a class absent
    from labels and predictions) and, labelled as theirs, ``authors_miou`` / ``authors_mpa``
    (:class:`~hyperleaf.metrics.segmentation.AuthorsMIoU` over consecutive batches of
    ``authors_batch`` items). Predicted 2-D label maps go to ``samples_dir`` if given.
    """
    from hyperleaf.metrics.segmentation import AuthorsMIoU, SegmentationMetrics

    objective.eval()
    # an objective (training's validation) or the network alone (hyperleaf.runs.load_run)
    logits_of = (objective.logits if hasattr(objective, "logits")
                 else lambda a, b: network_logits(objective, a, b))
    k = num_classes
    standard, authors = SegmentationMetrics(k), AuthorsMIoU(k)
    loss_sum, n = 0.0, 0
    pending: list[tuple[Tensor, Tensor]] = []

    def flush() -> None:
        if pending:
            authors.update(torch.cat([p.reshape(-1) for p, _ in pending]),
                           torch.cat([t.reshape(-1) for _, t in pending]),
                           batch_size=len(pending))
            pending.clear()

    for names, batch in val_batches(items):
        vis, ir, mask = (batch[x].to(device) for x in ("vis", "ir", "mask"))
        logits = tile_logits(logits_of, vis, ir, tile, chunk)
        loss_sum += float(F.cross_entropy(logits, mask)) * vis.shape[0]
        pred = logits.argmax(1)
        standard.update(pred, mask)
        for p, t in zip(pred.cpu(), mask.cpu(), strict=True):
            pending.append((p, t))
            if len(pending) == authors_batch:
                flush()
        n += vis.shape[0]
        if samples_dir is not None and pred.dim() == 3:  # 2-D label maps only
            samples_dir.mkdir(parents=True, exist_ok=True)
            for name, p in zip(names, pred, strict=False):
                hio.write_png(samples_dir / f"{name}.png", (p.float() / (k - 1)).cpu().numpy())
    flush()
    if not n:
        raise ValueError("items: nothing to evaluate")
    return {"loss": loss_sum / n, **standard.compute(), **authors.compute(), "items": n}


def evaluate_segment(objective: nn.Module, val_set, device: torch.device, num_classes: int,
                     samples_dir: Path | None = None, tile: int | None = None,
                     chunk: int = 8) -> dict[str, float]:
    """Training's validation record from :func:`segment_scores`: ``loss`` (CE), ``miou``,
    ``mdice``, ``pixel_acc`` (OA), ``dice_k`` and ``iou_k`` per class (NaN: class absent from
    predictions and labels) and the authors' ``authors_miou`` (theirs, not comparable)."""
    r = segment_scores(objective, val_set, device, num_classes, tile, chunk, samples_dir)
    out = {"loss": r["loss"], "miou": r["miou"], "mdice": r["mdice"], "pixel_acc": r["oa"],
           "authors_miou": r["authors_miou"]}
    for cls in range(num_classes):
        out[f"dice_{cls}"] = r["dice"][cls]
        out[f"iou_{cls}"] = r["iou"][cls]
    return out


def _check_sizes(cfg: Any, model: str) -> None:
    """Crop sizes and widths the network ``model`` can take (ValueError naming the key)."""
    if model == "leaf-unet":
        for key in ("crop", "val_crop"):
            if getattr(cfg, key) % 32:
                raise ValueError(f"{key}: leaf-unet needs a multiple of 32, got "
                                 f"{getattr(cfg, key)}")
    if model == "leaf-unet3d":
        step = 2 ** (len(cfg.widths3d) - 1)
        if cfg.crop % step:
            raise ValueError(f"crop: leaf-unet3d with {len(cfg.widths3d)} widths needs a "
                             f"multiple of {step}, got {cfg.crop}")
        if cfg.widths3d[-1] % 8:
            raise ValueError(f"widths3d: the deepest width must be divisible by the deep "
                             f"fusion's 8 heads, got {cfg.widths3d[-1]}")


def open_segment_data(cfg: Any, data: str | Path | None = None
                      ) -> tuple[Any, list, bool, dict[str, Any]]:
    """Open ``data`` (default ``cfg.data``) with
    :class:`~hyperleaf.data.segmentation.SegmentationFolder` for ``cfg``'s network:
    ``(folder, modality groups, volumes?, resolved)``.

    ``resolved`` is what the data decide (``cfg`` is not changed; a run saves it in its
    config.yaml): ``model`` (2-D -> ``leaf-unet``, volumes -> ``leaf-unet3d``), ``in_channels``
    and ``num_classes`` (0: the layout's count, or inferred from the labels). Labels outside
    ``[0, num_classes)``, a 2-D/3-D mismatch with the network, modality groups the data do not
    have or of unequal channels raise ``ValueError`` (data errors name the file).
    """
    folder = SegmentationFolder(data if data is not None else cfg.data,
                                num_classes=cfg.num_classes or None)
    mods, label = folder[0]
    volumes = label.dim() == 3
    model = cfg.model or ("leaf-unet3d" if volumes else "leaf-unet")
    if volumes != (model == "leaf-unet3d"):
        raise SegmentationDataError(
            f"{folder.items[0][1]}: {'3-D volumes' if volumes else '2-D images'} but model "
            f"{model!r} is {'3-D' if model == 'leaf-unet3d' else '2-D'}")
    groups = cfg.modality_groups or default_groups(len(mods))
    if any(i >= len(mods) for g in groups for i in g):
        raise ValueError(f"modality_groups: {groups} names a modality beyond the "
                         f"{len(mods)} of {folder.root} ({', '.join(folder.modalities)})")
    chans = [sum(mods[i].shape[0] for i in g) for g in groups]
    if chans[0] != chans[1]:
        raise ValueError(f"modality_groups: the two inputs must have equal channels (LEAF "
                         f"fuses them channel by channel at level 0), got {chans} from {groups}")
    if cfg.in_channels and cfg.in_channels != chans[0]:
        raise ValueError(f"in_channels: {cfg.in_channels} but the data give {chans[0]}")
    _check_sizes(cfg, model)
    resolved = {"model": model, "in_channels": chans[0], "num_classes": folder.num_classes}
    return folder, groups, volumes, resolved


def _folder_datasets(cfg: Any) -> tuple[Any, Any]:
    """Open ``cfg.data`` (:func:`open_segment_data`) and split it (module docstring)."""
    folder, groups, _, resolved = open_segment_data(cfg)
    n = len(folder)
    if n < 2:
        raise SegmentationDataError(f"{cfg.data}: needs at least 2 items (train + validation), "
                                    f"found {n}")
    n_val = min(n - 1, max(1, round(cfg.val_fraction * n)))
    train = SegmentationCrops(folder, range(n - n_val), cfg.crop, groups,
                              lesion_fraction=cfg.lesion_fraction)
    train.resolved = resolved  # the network's classes and channels (Task.open_data applies)
    return train, SegmentationItems(folder, range(n - n_val, n), groups)


#: How the JSON report labels the LEAF authors' validation metric (``{b}``: their batch size).
AUTHORS_NOTE = ("the LEAF authors' validation metric, not the standard mIoU: per batch of {b} "
                "items, the mean IoU over the classes with IoU > 0 (missed classes left out), "
                "then the batch-size-weighted mean; never below the per-batch standard mIoU, "
                "not comparable with it")


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def segment_report(cfg: Any, net: nn.Module, data: str | Path, device: torch.device,
                   run: str | Path = "") -> dict[str, Any]:
    """The scores of the trained segmentation network ``net`` (its run's configuration
    ``cfg``; ``run``: where it came from, for the report) on the data folder ``data``, as a
    JSON-ready dict: mIoU, mDice, OA, per-class IoU and Dice (one confusion matrix over all
    pixels of all items; ``None`` for a class absent from labels and predictions), the
    cross-entropy, and the LEAF authors' validation mIoU / mPA, labelled as theirs.

    ``data`` is any layout :class:`~hyperleaf.data.segmentation.SegmentationFolder` reads, with
    the run's modality groups, input channels and classes; every item is predicted whole,
    tile by tile as validation does (:func:`eval_tile`). Raises ``ValueError`` /
    ``FileNotFoundError`` naming ``data``, ``weights`` or the file at fault.
    """
    from hyperleaf.data.segmentation import SegmentationItems

    if cfg.data is None and cfg.model == "leafseg":
        raise ValueError(f"weights: {run} trained leafseg on the embedded synthetic set; only "
                         "leaf-unet / leaf-unet3d runs evaluate on data folders")
    if not Path(data).is_dir():
        raise FileNotFoundError(f"data: no such folder: {data}")
    folder, groups, volumes, _ = open_segment_data(cfg, data)
    tile = eval_tile(cfg, volumes)
    items = SegmentationItems(folder, range(len(folder)), groups, cache_bytes=0)
    r = segment_scores(net, items, device, cfg.num_classes, tile=tile, chunk=cfg.batch_size)
    return {
        "run": str(run), "data": str(folder.root), "layout": folder.layout,
        "modalities": list(folder.modalities), "modality_groups": groups,
        "items": r["items"], "num_classes": cfg.num_classes, "model": cfg.model,
        "tile": tile, "device": str(device),
        "miou": _num(r["miou"]), "mdice": _num(r["mdice"]), "oa": _num(r["oa"]),
        "iou": [_num(v) for v in r["iou"]], "dice": [_num(v) for v in r["dice"]],
        "cross_entropy": _num(r["loss"]),
        "authors": {"miou": _num(r["authors_miou"]), "mpa": _num(r["authors_mpa"]),
                    "batch": AUTHORS_VAL_BATCH,
                    "note": AUTHORS_NOTE.format(b=AUTHORS_VAL_BATCH)},
    }


def format_segment_report(rep: dict[str, Any]) -> str:
    """The printed form of :func:`segment_report`'s dict."""
    def f(x):
        return "  n/a " if x is None else f"{x:.4f}"

    lines = [f"segmentation scores of {rep['run']} on {rep['data']} (layout {rep['layout']}, "
             f"{rep['items']} items, {rep['num_classes']} classes, tiles of {rep['tile']})",
             f"mIoU   {f(rep['miou'])}",
             f"mDice  {f(rep['mdice'])}",
             f"OA     {f(rep['oa'])}",
             "class   IoU     Dice"]
    for k, (iou, dice) in enumerate(zip(rep["iou"], rep["dice"], strict=True)):
        lines.append(f"{k:>5}  {f(iou)}  {f(dice)}")
    a = rep["authors"]
    lines.append(f"authors' mIoU (theirs) {f(a['miou'])}   authors' mPA (theirs) {f(a['mpa'])}")
    lines.append(f"  ({a['note']}; n/a: class absent from labels and predictions)")
    return "\n".join(lines)


#: The scores of :func:`segment_report` in its CSV and Markdown forms: key, label, higher is
#: better.
_REPORT_SCORES = (("miou", "mIoU", True), ("mdice", "mDice", True), ("oa", "OA", True),
                  ("cross_entropy", "cross-entropy", False))


def segment_report_rows(rep: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`segment_report`'s scores as rows ``{"score", "class", "value",
    "higher_is_better"}``: the summary scores, per-class IoU and Dice, the authors' two.

    >>> rep = {"miou": 0.5, "mdice": 0.6, "oa": 0.9, "cross_entropy": 0.3, "iou": [0.4, None],
    ...        "dice": [0.5, None], "authors": {"miou": 0.55, "mpa": 0.7}}
    >>> [(r["score"], r["class"], r["value"]) for r in segment_report_rows(rep)][3:6]
    [('cross_entropy', '', 0.3), ('iou', 0, 0.4), ('iou', 1, None)]
    """
    rows = [{"score": k, "class": "", "value": rep[k], "higher_is_better": h}
            for k, _, h in _REPORT_SCORES]
    for key in ("iou", "dice"):
        rows += [{"score": key, "class": c, "value": v, "higher_is_better": True}
                 for c, v in enumerate(rep[key])]
    rows += [{"score": f"authors_{k}", "class": "", "value": rep["authors"][k],
              "higher_is_better": True} for k in ("miou", "mpa")]
    return rows


def _segment_markdown(rep: dict[str, Any]) -> str:
    def f(x):
        return "n/a" if x is None else f"{x:.4f}"

    lines = [f"Segmentation scores of {rep['run']} on {rep['data']} ({rep['items']} items, "
             f"{rep['num_classes']} classes)", "", "| score | value |", "|---|---:|"]
    lines += [f"| {label} {'↑' if h else '↓'} | {f(rep[k])} |" for k, label, h in _REPORT_SCORES]
    lines += ["", "| class | IoU ↑ | Dice ↑ |", "|---:|---:|---:|"]
    lines += [f"| {c} | {f(i)} | {f(d)} |" for c, (i, d) in
              enumerate(zip(rep["iou"], rep["dice"], strict=True))]
    a = rep["authors"]
    lines += ["", f"The LEAF authors' mIoU {f(a['miou'])}, mPA {f(a['mpa'])} ({a['note']})."]
    return "\n".join(lines) + "\n"


@register_task("segment")
class SegmentTask(Task):
    """Two-modality segmentation (see the module docstring). Batches hold ``vis``, ``ir`` and
    the label map ``mask``."""

    inputs = ("vis", "ir", "mask")
    predict_inputs = ("vis", "ir")
    config_keys = {
        "seg_loss": task_key("task", "ce", "`ce` (CE + h2fr_weight H2FR) or `leaf-authors` "
                                           "(w_ce CE + w_focal_dice (w_dice Dice + w_focal "
                                           "Focal) + h2fr_weight H2FR)",
                             choices=("ce", "leaf-authors")),
        "w_ce": task_key("task", 1.0, "`leaf-authors` loss: weight of CE", minimum=0),
        "w_focal_dice": task_key("task", 0.5, "`leaf-authors` loss: weight of Dice + Focal",
                                 minimum=0),
        "w_dice": task_key("task", 1.0, "`leaf-authors` loss: weight of Dice", minimum=0),
        "w_focal": task_key("task", 1.2, "`leaf-authors` loss: weight of Focal", minimum=0),
        "focal_reduction": task_key("task", "sum", "focal loss over classes: `sum` (smp 0.5) or "
                                                   "`mean`", choices=("sum", "mean")),
        **leaf_keys(),
        "num_classes": task_key("model", 0, "classes; 0: from the data (layout / labels; "
                                            "synthetic set 4)",
                                check=(lambda v: v == 0 or v >= 2, "be >= 2 (0: from the data)")),
        "seg_width": task_key("model", 16, "leafseg: base width", minimum=1),
        "in_channels": task_key("model", 0, "channels of each of the two network inputs; 0: from "
                                            "the data (saved in the run's config.yaml)",
                                minimum=0),
        "encoder": task_key("model", "resnet50", "leaf-unet: a segmentation-models-pytorch "
                                                 "encoder"),
        "feature_dim": task_key("model", 512, "leaf-unet(3d): width of the compressed global "
                                              "vectors", minimum=1),
        "mlp_dim": task_key("model", 2048, "leaf-unet(3d): deep attention fusion MLP width",
                            minimum=1),
        "leaf_mode": task_key("model", "paper", "leaf-unet(3d): `paper` (the authors') or "
                                                "`corrected`", choices=("paper", "corrected")),
        "widths3d": task_key("model", [16, 32, 64, 128], "leaf-unet3d: widths per level",
                             check=(_widths_ok, "be a list of ints >= 1")),
        **synthetic_keys(),
        "lesion_fraction": task_key("data", 0.0, "share of training crops centred on a label > 0 "
                                                 "voxel", minimum=0, maximum=1),
        "modality_groups": task_key("data", None, "modality folders forming the two inputs, e.g. "
                                                  "[[0, 1], [2, 3]]; null: first half, second half",
                                    type="list | None",
                                    check=(_groups_ok, "be null or two non-empty lists of "
                                                       "modality indices")),
    }
    key_docs = {"data": "MSRS (vi/ ir/ Segmentation_labels/), WHU-OPT-SAR (optical256/ sar256/ "
                        "label256/) or modality folders + label/ (2-D images or NIfTI volumes)",
                "model": "leafseg (synthetic set), leaf-unet (the LEAF authors' 2-D network) or "
                         "leaf-unet3d"}
    # The LEAF authors' segmentation recipe (shared/specs/leaf_authors_net.md §7; see
    # docs/segmentation.md): their network, loss CE + 0.5 (Dice + 1.2 Focal) + 0.5 H2FR with the
    # focal loss summed over classes, AdamW (lr 1e-4, weight decay 0.01), cosine per epoch to
    # 1e-5, gradient clip 1.0, 256x256 inputs. It names the task: `recipe: leaf-authors` alone
    # trains segmentation.
    recipes = {
        "leaf-authors": {
            "task": "segment", "encoder": "resnet50", "curvature": 0.1,
            "feature_dim": 512, "hdgfb_hidden": 512, "mlp_dim": 2048, "leaf_mode": "paper",
            "seg_loss": "leaf-authors", "w_ce": 1.0, "w_focal_dice": 0.5, "w_dice": 1.0,
            "w_focal": 1.2, "h2fr_weight": 0.5, "focal_reduction": "sum", "optimizer": "adamw",
            "lr": 1e-4, "weight_decay": 0.01, "lr_schedule": "cosine", "lr_min": 1e-5,
            "lr_per_epoch": True, "warmup": 0, "grad_clip": 1.0, "crop": 256, "val_crop": 256,
        },
    }
    score_labels = {
        "loss": ("validation loss (cross-entropy)", False),
        "miou": ("mIoU", True), "mdice": ("mean Dice", True), "pixel_acc": ("overall accuracy", True),
        "authors_miou": ("mIoU, the LEAF authors' way", True),
        "dice_*": ("Dice of class {star}", True), "iou_*": ("IoU of class {star}", True),
    }
    config_needs = ("model", "data", "crop", "val_crop")

    def check_config(self, cfg: Any) -> None:
        check_leaf(cfg)
        if cfg.euclidean:
            raise ValueError("euclidean: the segment task's networks have no c -> 0 switch "
                             "(their hyperbolic code is the authors'); use the fuse or "
                             "pansharpen task for the Euclidean arm")
        model = _model(cfg)
        if model not in SEG_MODELS:
            raise ValueError(f"model: the segment task builds {', '.join(SEG_MODELS)}, got "
                             f"{model!r}")
        if model == "leafseg" and cfg.data is not None:
            raise ValueError("model: leafseg trains on the embedded synthetic set only; use "
                             "leaf-unet (2-D) or leaf-unet3d (NIfTI volumes) with data")
        if model == "leafseg" and cfg.seg_loss != "ce":
            raise ValueError("seg_loss: leafseg trains with 'ce' (CE + H2FR); 'leaf-authors' "
                             "needs model leaf-unet or leaf-unet3d")
        if model != "leafseg" and cfg.hdgfb_curvature != HDGFB_SEED_CURVATURE:
            raise ValueError(f"hdgfb_curvature: {model} has one curvature for its head and its "
                             f"HDGFB blocks (the authors' constant): set `curvature`, not "
                             f"hdgfb_curvature ({cfg.hdgfb_curvature!r})")
        if cfg.model is not None or cfg.data is None:  # else the data decide (2-D or 3-D)
            _check_sizes(cfg, model)


    def datasets(self, cfg: Any) -> tuple[Any, Any]:
        if cfg.data is None:
            k = SyntheticSegmentation.num_classes
            if cfg.num_classes and cfg.num_classes != k:
                raise ValueError(f"num_classes: the embedded synthetic set has {k} classes, "
                                 f"got {cfg.num_classes}")
            train = SyntheticSegmentation(cfg.train_size, cfg.crop, "train", cfg.data_seed)
            train.resolved = {"model": _model(cfg), "in_channels": cfg.in_channels or 1,
                              "num_classes": k}
            return train, SyntheticSegmentation(cfg.val_size, cfg.val_crop, "val",
                                                 cfg.data_seed)
        return _folder_datasets(cfg)

    def build_objective(self, cfg: Any) -> SegmentObjective:
        return build_segment_objective(cfg)

    def build_network(self, cfg: Any) -> nn.Module:
        return build_segment_network(cfg)

    def predict(self, cfg: Any, net: nn.Module, **inputs: Tensor) -> Tensor:
        """Logits ``(B, K, *S)`` of whole items ``vis``, ``ir`` ``(B, C, *S)``, cut into the
        tiles validation uses for real data (:func:`eval_tile`)."""
        vis, ir = self.ordered_inputs(inputs)
        tile = None if cfg.data is None else eval_tile(cfg, _model(cfg) == "leaf-unet3d")
        return tile_logits(lambda a, b: network_logits(net, a, b), vis, ir, tile,
                           chunk=cfg.batch_size)

    #: ``hyperleaf evaluate --task segment --weights RUN --data DIR`` (``out``: the JSON
    #: report, as ``json``).
    evaluate_options = ("weights", "data", "out", "csv", "json", "markdown")
    evaluate_requires = ("weights", "data")

    def evaluate_outputs(self, options: Mapping[str, Any]) -> dict[str, Path]:
        """The outputs given; ``out`` is the JSON report (the former name of ``json``)."""
        outputs = given_outputs(options)
        if options.get("out"):
            if "json" in outputs and outputs["json"] != Path(options["out"]):
                raise ValueError("out, json: both name the JSON report; give one")
            outputs["json"] = Path(options["out"])
        return outputs

    def evaluate_command(self, options: Mapping[str, Any], run: Any,
                         device: torch.device) -> EvaluationReport:
        """:func:`segment_report` of ``run`` on ``options["data"]``."""
        if run is None:
            raise ValueError("weights: the segment task evaluates a trained run")
        rep = segment_report(run.config, run.model, options["data"], device,
                             options["weights"])
        return EvaluationReport(record=rep, rows=segment_report_rows(rep),
                                markdown=_segment_markdown(rep),
                                text=format_segment_report(rep))

    def evaluate(self, cfg: Any, objective: nn.Module, val_set: Any, device: torch.device,
                 samples_dir: Path | None = None) -> dict[str, float]:
        tile = None if cfg.data is None else eval_tile(cfg, cfg.model == "leaf-unet3d")
        return evaluate_segment(objective, val_set, device, cfg.num_classes, samples_dir,
                                tile=tile, chunk=cfg.batch_size)
