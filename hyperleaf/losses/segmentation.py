r"""Segmentation losses of the LEAF authors' recipe (spec §7.2), as functions and a module.

For logits ``z`` ``(B, K, *spatial)`` and integer targets ``y`` ``(B, *spatial)`` in ``[0, K)``:

* :func:`dice_loss` (smp ``DiceLoss(mode="multiclass")``): ``p = softmax(z)``, ``t = onehot(y)``;
  per class, sums over the batch and all positions together,
  ``I_k = (Σp_k + Σt_k - Σ|p_k - t_k|)/2`` (= ``Σ p_k t_k``),
  ``score_k = I_k / max(I_k + ½(Σp_k - I_k) + ½(Σt_k - I_k), eps)``; the loss is the mean over
  all ``K`` classes of ``1 - score_k``, a class absent from the targets counting 0.
* :func:`focal_loss` (smp ``FocalLoss(mode="multiclass", alpha=0.25, gamma=2)``): a per-class
  *sigmoid* focal loss ``(1 - p_t)^γ · BCE(z_k, t_k) · (α t + (1 - α)(1 - t))``, averaged over
  positions, then combined over classes by a **sum** (smp 0.5, the authors') or a mean (smp 0.6,
  ``class_reduction="mean"``).
* :class:`LeafSegmentationLoss`: ``ce·CE + fd·(dice·Dice + focal·Focal) + h2fr·H2FR``, the
  authors' weights by default: ``CE + 0.5·(Dice + 1.2·Focal) + 0.5·H2FR``.

Example::

    >>> z, y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    >>> total, parts = LeafSegmentationLoss()(z, y, torch.tensor(7.7))
    >>> sorted(parts)
    ['ce', 'dice', 'focal', 'h2fr']
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["dice_loss", "focal_loss", "LeafSegmentationLoss", "check_segmentation_target"]


def check_segmentation_target(logits: Tensor, target: Tensor) -> None:
    """Raise ValueError unless ``logits`` is ``(B, K, *spatial)`` floating and ``target`` is an
    integer ``(B, *spatial)`` tensor with values in ``[0, K)``."""
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.dim() < 2:
        raise ValueError("logits must be a floating (B, K, *spatial) tensor")
    if not isinstance(target, Tensor) or target.is_floating_point() or target.is_complex():
        raise ValueError("target must be an integer (B, *spatial) tensor of class indices")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"target shape {tuple(target.shape)} must be logits' shape without the "
                         f"class dimension, {tuple(logits.shape[:1] + logits.shape[2:])}")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= logits.shape[1]):
        raise ValueError(f"target values must lie in [0, {logits.shape[1]}), got "
                         f"[{int(target.min())}, {int(target.max())}]")


def _onehot(target: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    # (B, *spatial) -> (B, K, *spatial)
    return F.one_hot(target.long(), k).movedim(-1, 1).to(dtype)


def dice_loss(logits: Tensor, target: Tensor, *, eps: float = 1e-7) -> Tensor:
    """Multiclass soft Dice loss from logits, as smp's ``DiceLoss(mode="multiclass")`` (module
    docstring). Returns a 0-d tensor."""
    check_segmentation_target(logits, target)
    k = logits.shape[1]
    p = logits.log_softmax(dim=1).exp()
    t = _onehot(target, k, p.dtype)
    dims = (0, *range(2, logits.dim()))
    sp, st = p.sum(dims), t.sum(dims)
    inter = (sp + st - (p - t).abs().sum(dims)) / 2
    score = inter / (inter + 0.5 * (sp - inter) + 0.5 * (st - inter)).clamp_min(eps)
    loss = (1.0 - score) * (st > 0).to(score.dtype)
    return loss.mean()


def focal_loss(logits: Tensor, target: Tensor, *, alpha: float | None = 0.25,
               gamma: float = 2.0, class_reduction: str = "sum") -> Tensor:
    """Per-class sigmoid focal loss of smp's ``FocalLoss(mode="multiclass")`` (module
    docstring); ``class_reduction`` ``"sum"`` (smp 0.5, the authors') or ``"mean"`` (smp 0.6)."""
    check_segmentation_target(logits, target)
    if class_reduction not in ("sum", "mean"):
        raise ValueError(f"class_reduction must be 'sum' or 'mean', got {class_reduction!r}")
    total = logits.new_zeros(())
    k = logits.shape[1]
    for cls in range(k):
        z = logits[:, cls]
        t = (target == cls).to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
        f = (1.0 - torch.exp(-bce)).pow(gamma) * bce
        if alpha is not None:
            f = f * (alpha * t + (1 - alpha) * (1 - t))
        total = total + f.mean()
    return total / k if class_reduction == "mean" else total


def _weight(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite float >= 0, got {value!r}")
    return float(value)


class LeafSegmentationLoss(nn.Module):
    """``ce·CE + focal_dice·(dice·Dice + focal·Focal) + h2fr·H2FR`` (the authors' recipe by
    default: ``1, 0.5, 1.0, 1.2, 0.5``). ``forward(logits, target, h2fr=None)`` ->
    ``(total, parts)`` with ``parts`` the detached terms (``h2fr`` only when given)."""

    #: The task this loss trains (the loss registry lists losses by task).
    task = "segment"

    @classmethod
    def from_config(cls, cfg: Any) -> LeafSegmentationLoss:
        """The loss a configuration describes (``w_ce``, ``w_dice``, ``w_focal``,
        ``h2fr_weight``, ``focal_reduction``); Dice + Focal only with ``seg_loss:
        leaf-authors`` (``w_focal_dice``), plain CE + H2FR otherwise."""
        authors = cfg.seg_loss == "leaf-authors"
        return cls(ce=cfg.w_ce, focal_dice=cfg.w_focal_dice if authors else 0.0,
                   dice=cfg.w_dice, focal=cfg.w_focal, h2fr=cfg.h2fr_weight,
                   focal_class_reduction=cfg.focal_reduction)

    def __init__(self, ce: float = 1.0, focal_dice: float = 0.5, dice: float = 1.0,
                 focal: float = 1.2, h2fr: float = 0.5, *, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, focal_class_reduction: str = "sum"):
        super().__init__()
        self.ce_weight = _weight(ce, "ce")
        self.focal_dice_weight = _weight(focal_dice, "focal_dice")
        self.dice_weight = _weight(dice, "dice")
        self.focal_weight = _weight(focal, "focal")
        self.h2fr_weight = _weight(h2fr, "h2fr")
        if focal_class_reduction not in ("sum", "mean"):
            raise ValueError("focal_class_reduction must be 'sum' or 'mean', got "
                             f"{focal_class_reduction!r}")
        self.focal_alpha, self.focal_gamma = focal_alpha, float(focal_gamma)
        self.focal_class_reduction = focal_class_reduction

    def forward(self, logits: Tensor, target: Tensor, h2fr: Tensor | None = None):
        check_segmentation_target(logits, target)
        ce = F.cross_entropy(logits, target.long())
        dice = dice_loss(logits, target)
        focal = focal_loss(logits, target, alpha=self.focal_alpha, gamma=self.focal_gamma,
                           class_reduction=self.focal_class_reduction)
        # The authors' order of operations: 1·CE + 0.5·(1.0·Dice + 1.2·Focal) + 0.5·geom.
        total = (self.ce_weight * ce
                 + self.focal_dice_weight * (self.dice_weight * dice + self.focal_weight * focal))
        parts = {"ce": ce.detach(), "dice": dice.detach(), "focal": focal.detach()}
        if h2fr is not None:
            total = total + self.h2fr_weight * h2fr
            parts["h2fr"] = h2fr.detach()
        return total, parts
