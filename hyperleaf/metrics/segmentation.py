r"""Segmentation metrics: mIoU, overall accuracy (OA), per-class IoU and Dice (via torchmetrics'
confusion matrix), and — labelled as theirs — the LEAF authors' validation mIoU / mPA.

Standard (:class:`SegmentationMetrics`, accumulated over a whole split): from the confusion
matrix ``M`` (rows = truth, columns = prediction), per class ``IoU_k = TP/(TP + FP + FN)``,
``Dice_k = 2TP/(2TP + FP + FN)``; ``mIoU`` / ``mDice`` = their mean over the classes present in
the truth or the prediction (a class with ``TP + FP + FN = 0`` is NaN and left out);
``OA = trace(M)/sum(M)``.

The authors' (:class:`AuthorsMIoU`, spec §7.5): per *batch*, ``IoU_k`` as above, the mean over
the classes whose IoU is **> 0** (zero-IoU classes, also present ones that were missed entirely,
are left out), then the batch-size-weighted mean over batches; ``mPA`` likewise from the
per-class recall. It is higher than the standard mIoU whenever a class is missed, so numbers
from it are not comparable with standard mIoU.

Example::

    >>> m = SegmentationMetrics(num_classes=3)
    >>> m.update(torch.tensor([[0, 1], [2, 2]]), torch.tensor([[0, 1], [1, 2]]))
    >>> r = m.compute()
    >>> round(r["miou"], 4), r["oa"]
    (0.6667, 0.75)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["SegmentationMetrics", "AuthorsMIoU", "scores_from_confusion", "confusion_matrix", "miou"]


def _check(pred: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError("pred and target must be tensors")
    if pred.is_floating_point():  # logits / scores (B, K, *spatial)
        if pred.dim() < 2 or pred.shape[1] != num_classes:
            raise ValueError(f"floating pred must be (B, {num_classes}, *spatial) scores, got "
                             f"{tuple(pred.shape)}")
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(f"{name} values must lie in [0, {num_classes}), got "
                             f"[{int(t.min())}, {int(t.max())}]")
    return pred.long(), target.long()


def scores_from_confusion(conf: Tensor) -> dict:
    """Scores from a ``(K, K)`` confusion matrix (rows truth, columns prediction)."""
    conf = conf.to(torch.float64)
    tp = conf.diagonal()
    fp = conf.sum(0) - tp
    fn = conf.sum(1) - tp
    denom = tp + fp + fn
    nan = torch.full_like(tp, math.nan)
    iou = torch.where(denom > 0, tp / denom.clamp_min(1), nan)
    dice = torch.where(denom > 0, 2 * tp / (2 * tp + fp + fn).clamp_min(1), nan)
    total = conf.sum()
    return {
        "miou": float(iou.nanmean()) if bool((denom > 0).any()) else math.nan,
        "mdice": float(dice.nanmean()) if bool((denom > 0).any()) else math.nan,
        "oa": float(tp.sum() / total) if total > 0 else math.nan,
        "iou": iou.tolist(),
        "dice": dice.tolist(),
    }


class SegmentationMetrics:
    """Accumulates a torchmetrics ``MulticlassConfusionMatrix`` over batches; ``compute()`` ->
    ``{"miou", "mdice", "oa", "iou": [K], "dice": [K]}`` (NaN for classes never seen), from
    this process's updates only (no implicit sum over torch.distributed ranks).
    ``update(pred, target)``: integer labels ``(B, *spatial)`` or scores ``(B, K, *spatial)``."""

    def __init__(self, num_classes: int):
        # lazy: importing torchmetrics takes ~2.7 s here; the module's functions do not need it
        from torchmetrics.classification import MulticlassConfusionMatrix

        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        # sync_on_compute off: under torch.distributed, torchmetrics would otherwise sum the
        # matrices of all ranks inside compute() (a collective that ranks not evaluating, or
        # evaluating the same items, must not be drawn into); the scores are of this process's
        # updates
        self._conf = MulticlassConfusionMatrix(num_classes=num_classes, validate_args=False,
                                               sync_on_compute=False)

    def update(self, pred: Tensor, target: Tensor) -> None:
        pred, target = _check(pred, target, self.num_classes)
        self._conf.update(pred.reshape(-1).cpu(), target.reshape(-1).cpu())

    def compute(self) -> dict:
        return scores_from_confusion(self._conf.compute())

    def reset(self) -> None:
        self._conf.reset()


class AuthorsMIoU:
    """The LEAF authors' validation mIoU and mPA (spec §7.5; **not** the standard mIoU): per
    batch, the mean IoU (recall) over the classes whose IoU (recall) is > 0, then averaged over
    batches weighted by batch size. ``compute()`` -> ``{"authors_miou", "authors_mpa"}``."""

    def __init__(self, num_classes: int):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self._miou_sum = self._mpa_sum = 0.0
        self._n = 0

    def update(self, pred: Tensor, target: Tensor, batch_size: int | None = None) -> None:
        """One batch: ``(B, *spatial)`` labels or ``(B, K, *spatial)`` scores. A batch of items
        of different sizes may come flattened and concatenated, with ``batch_size`` items."""
        pred, target = _check(pred, target, self.num_classes)
        ious, pas = [], []
        for k in range(self.num_classes):
            p, t = pred == k, target == k
            tp = int((p & t).sum())
            fp = int((p & ~t).sum())
            fn = int((~p & t).sum())
            iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
            pa = tp / (tp + fn) if tp + fn else 0.0
            if iou > 0:
                ious.append(iou)
            if pa > 0:
                pas.append(pa)
        b = int(pred.shape[0]) if batch_size is None else int(batch_size)
        if b < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self._miou_sum += b * (sum(ious) / len(ious) if ious else 0.0)
        self._mpa_sum += b * (sum(pas) / len(pas) if pas else 0.0)
        self._n += b

    def compute(self) -> dict:
        if not self._n:
            return {"authors_miou": math.nan, "authors_mpa": math.nan}
        return {"authors_miou": self._miou_sum / self._n, "authors_mpa": self._mpa_sum / self._n}


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``(K, K)`` int64 counts, rows = target class, columns = predicted class.

    Example:

        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def miou(conf: Tensor) -> float:
    """Mean intersection-over-union over the classes present in target or prediction.

    Example (class 0: 1 / 2, class 1: 1 / 2):

        >>> miou(torch.tensor([[1, 1], [0, 1]]))
        0.5
    """
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    if not present.any():
        raise ValueError("miou: the confusion matrix is empty")
    return float((inter[present] / union[present]).mean())
