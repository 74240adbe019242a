"""Old home of the fusion losses (now :mod:`hyperleaf.losses.fusion`, re-exported) and of the
segmentation scores :func:`confusion_matrix` / :func:`miou`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hyperleaf.filters import sobel_magnitude
from hyperleaf.losses.fusion import FusionLoss

__all__ = ["sobel_magnitude", "FusionLoss", "confusion_matrix", "miou"]


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``(K, K)`` int64 counts, rows = target class, columns = predicted class."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def miou(conf: Tensor) -> float:
    """Mean intersection-over-union over the classes present in target or prediction."""
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    if not present.any():
        raise ValueError("miou: the confusion matrix is empty")
    return float((inter[present] / union[present]).mean())
