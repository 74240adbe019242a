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
training items are random ``crop``-sided crops, validation items the centre ``val_crop`` crop
(2-D) or ``crop`` (3-D: the paper-mode 3-D network has a fixed volume).

Loss (``cfg.seg_loss``): ``"ce"`` (CE + ``h2fr_weight`` H2FR) or ``"leaf-authors"``
(:class:`hyperleaf.losses.LeafSegmentationLoss` with ``w_ce``, ``w_focal_dice``, ``w_dice``,
``w_focal``, ``h2fr_weight``, ``focal_reduction``; the recipe ``leaf-authors``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hyperleaf import io as hio
from hyperleaf.data import SyntheticSegmentation
from hyperleaf.distributed import gather_levels
from hyperleaf.metrics.segmentation import confusion_matrix, miou
from hyperleaf.models.registry import create_model
from hyperleaf.tasks.base import Task, register_task
from hyperleaf.tasks.common import val_batches

__all__ = ["SegmentTask", "SegmentObjective", "LeafUNetObjective", "build_segment_objective",
           "evaluate_segment", "SEG_MODELS"]

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
            if self.training:
                points = gather_levels(points)
            h = self.net.h2fr_loss(points)
            parts["h2fr"] = h.detach()
            total = total + self.h2fr_weight * h
        return total, parts, logits


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


def _model(cfg: Any) -> str:
    # default: leafseg on the synthetic set unless the authors' loss asks for their network
    if cfg.model:
        return cfg.model
    return "leafseg" if cfg.data is None and cfg.seg_loss == "ce" else "leaf-unet"


def build_segment_objective(cfg: Any) -> nn.Module:
    """The objective of ``cfg``'s segmentation network (module docstring); ``leafseg``:
    LEAFSegNet of width ``seg_width`` (levels w, 2w, 4w)."""
    model = _model(cfg)
    if model != "leafseg":
        from hyperleaf.losses import LeafSegmentationLoss

        ch = cfg.in_channels or 1
        leaf = bool(cfg.leaf)
        common = dict(num_classes=cfg.num_classes, in_channels=(ch, ch), c=cfg.curvature,
                      feature_dim=cfg.feature_dim, mode=cfg.leaf_mode,
                      hdgfb=bool(cfg.hdgfb and leaf), hdgfb_hidden=cfg.hdgfb_hidden,
                      mlp_dim=cfg.mlp_dim)
        if model == "leaf-unet":
            net = create_model("leaf-unet", encoder=cfg.encoder, **common)
        else:
            volume = (cfg.crop,) * 3 if cfg.leaf_mode == "paper" else None
            net = create_model("leaf-unet3d", widths=tuple(cfg.widths3d), volume=volume,
                               **common)
        authors = cfg.seg_loss == "leaf-authors"
        loss = LeafSegmentationLoss(ce=cfg.w_ce, focal_dice=cfg.w_focal_dice if authors else 0.0,
                                    dice=cfg.w_dice, focal=cfg.w_focal, h2fr=cfg.h2fr_weight,
                                    focal_class_reduction=cfg.focal_reduction)
        return LeafUNetObjective(net, loss, leaf=leaf)
    w = cfg.seg_width
    net = create_model("leafseg", num_classes=cfg.num_classes, widths=(w, 2 * w, 4 * w),
                       ball_dim=cfg.ball_dim, c=cfg.curvature, learn_c=cfg.learn_curvature,
                       clip_r=cfg.clip_r, h2fr_mode=cfg.h2fr_mode, h2fr_core=cfg.h2fr_core,
                       hdgfb_mode=cfg.hdgfb_mode, hdgfb_hidden=cfg.hdgfb_hidden,
                       head_norm=cfg.leaf_norm, head_radius=cfg.leaf_radius)
    return SegmentObjective(net, cfg.h2fr_weight, leaf=cfg.leaf)


@torch.no_grad()
def evaluate_segment(objective: SegmentObjective, val_set, device: torch.device,
                     num_classes: int, samples_dir: Path | None = None) -> dict[str, float]:
    """Validation cross-entropy, mIoU and pixel accuracy; predicted label maps (scaled to
    [0, 1]) written to ``samples_dir`` if given."""
    objective.eval()
    k = num_classes
    conf = torch.zeros(k, k, dtype=torch.int64)
    loss_sum, n = 0.0, 0
    for names, batch in val_batches(val_set):
        vis, ir, mask = (batch[x].to(device) for x in ("vis", "ir", "mask"))
        total, parts, logits = objective(vis, ir, mask)
        loss_sum += float(parts["seg"]) * vis.shape[0]
        pred = logits.argmax(1)
        conf += confusion_matrix(pred.cpu(), mask.cpu(), k)
        n += vis.shape[0]
        if samples_dir is not None and pred.dim() == 3:  # 2-D label maps only
            samples_dir.mkdir(parents=True, exist_ok=True)
            for name, p in zip(names, pred, strict=False):
                hio.write_png(samples_dir / f"{name}.png", (p.float() / (k - 1)).cpu().numpy())
    acc = float(conf.diag().sum()) / max(1, int(conf.sum()))
    out = {"loss": loss_sum / n, "miou": miou(conf), "pixel_acc": acc}
    # Dice per class over the whole validation set, 2 TP / (2 TP + FP + FN) (NaN: class absent
    # from both prediction and labels)
    tp = conf.diag().double()
    den = conf.sum(0).double() + conf.sum(1).double()
    for cls in range(k):
        out[f"dice_{cls}"] = float(2 * tp[cls] / den[cls]) if den[cls] > 0 else math.nan
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


def _folder_datasets(cfg: Any) -> tuple[Any, Any]:
    """Open ``cfg.data``, resolve ``cfg.model`` and ``cfg.in_channels`` from it (saved in the
    run's config.yaml) and split it (module docstring)."""
    from hyperleaf.data.segmentation import (
        SegmentationCrops,
        SegmentationDataError,
        SegmentationFolder,
        default_groups,
    )

    folder = SegmentationFolder(cfg.data, num_classes=cfg.num_classes)
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
                         f"{len(mods)} of {cfg.data} ({', '.join(folder.modalities)})")
    chans = [sum(mods[i].shape[0] for i in g) for g in groups]
    if chans[0] != chans[1]:
        raise ValueError(f"modality_groups: the two inputs must have equal channels (LEAF "
                         f"fuses them channel by channel at level 0), got {chans} from {groups}")
    if cfg.in_channels and cfg.in_channels != chans[0]:
        raise ValueError(f"in_channels: {cfg.in_channels} but the data give {chans[0]}")
    _check_sizes(cfg, model)
    cfg.model, cfg.in_channels = model, chans[0]
    n = len(folder)
    if n < 2:
        raise SegmentationDataError(f"{cfg.data}: needs at least 2 items (train + validation), "
                                    f"found {n}")
    n_val = min(n - 1, max(1, round(cfg.val_fraction * n)))
    val_crop = cfg.crop if volumes else cfg.val_crop
    return (SegmentationCrops(folder, range(n - n_val), cfg.crop, groups),
            SegmentationCrops(folder, range(n - n_val, n), val_crop, groups))


@register_task("segment")
class SegmentTask(Task):
    """Two-modality segmentation (see the module docstring). Batches hold ``vis``, ``ir`` and
    the label map ``mask``."""

    inputs = ("vis", "ir", "mask")

    def check_config(self, cfg: Any) -> None:
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
        if cfg.model is not None or cfg.data is None:  # else the data decide (2-D or 3-D)
            _check_sizes(cfg, model)

    def datasets(self, cfg: Any) -> tuple[Any, Any]:
        if cfg.data is None:
            cfg.model = _model(cfg)
            cfg.in_channels = cfg.in_channels or 1
            return (SyntheticSegmentation(cfg.train_size, cfg.crop, "train", cfg.data_seed),
                    SyntheticSegmentation(cfg.val_size, cfg.val_crop, "val", cfg.data_seed))
        return _folder_datasets(cfg)

    def build_objective(self, cfg: Any) -> SegmentObjective:
        return build_segment_objective(cfg)

    def evaluate(self, cfg: Any, objective: nn.Module, val_set: Any, device: torch.device,
                 samples_dir: Path | None = None) -> dict[str, float]:
        return evaluate_segment(objective, val_set, device, cfg.num_classes, samples_dir)
