"""The authors' segmentation loss (spec §7.2) and the segmentation metrics (§7.5 + standard)."""

from __future__ import annotations

import math

import pytest
import torch

from hyperleaf.losses import LeafSegmentationLoss, dice_loss, focal_loss
from hyperleaf.metrics.segmentation import AuthorsMIoU, SegmentationMetrics
from tests import leaf_transcription as T


def _batch(seed=0, K=4, B=2, H=5, W=6):
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(B, K, H, W, generator=g, dtype=torch.float64),
            torch.randint(0, K, (B, H, W), generator=g))


def test_recipe_loss_equals_the_transcription():
    z, y = _batch()
    h = torch.tensor(7.25, dtype=torch.float64)
    total, parts = LeafSegmentationLoss()(z, y, h)
    ref = T.training_loss(z, y, h)
    assert abs(float(total) - float(ref)) <= 1e-12 * abs(float(ref))
    assert set(parts) == {"ce", "dice", "focal", "h2fr"}


def test_dice_by_hand_and_absent_classes_count_zero():
    # two pixels, K = 2, both of class 0; class 1 is absent and contributes 0 to the mean
    z = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]], dtype=torch.float64)  # (1, 2, 1, 2)
    y = torch.tensor([[[0, 0]]])
    p0 = torch.tensor([math.exp(2) / (math.exp(2) + 1), 0.5], dtype=torch.float64)
    inter, sp, st = p0.sum(), p0.sum(), 2.0
    score = inter / (0.5 * sp + 0.5 * st)
    assert abs(float(dice_loss(z, y)) - float((1 - score) / 2)) <= 1e-15


def test_focal_sum_is_k_times_mean_and_by_hand():
    z, y = _batch(1, K=3)
    assert torch.allclose(focal_loss(z, y), 3 * focal_loss(z, y, class_reduction="mean"),
                          rtol=1e-14)
    # one pixel, one class channel: f = (1 - e^-l)^2 l (0.25 t + 0.75 (1 - t))
    z1 = torch.tensor([[[[0.3]], [[-1.0]]]], dtype=torch.float64)
    y1 = torch.tensor([[[0]]])
    want = 0.0
    for zk, t in ((0.3, 1.0), (-1.0, 0.0)):
        bce = math.log1p(math.exp(-zk)) if t else math.log1p(math.exp(zk))
        want += (1 - math.exp(-bce)) ** 2 * bce * (0.25 * t + 0.75 * (1 - t))
    assert abs(float(focal_loss(z1, y1)) - want) <= 1e-15


def test_losses_match_smp_when_installed():
    try:
        from segmentation_models_pytorch.losses import DiceLoss, FocalLoss
    except Exception as exc:
        pytest.skip(f"segmentation-models-pytorch not importable ({type(exc).__name__})")
    import segmentation_models_pytorch as smp

    z, y = _batch(2)
    assert abs(float(dice_loss(z, y)) - float(DiceLoss("multiclass")(z, y))) <= 1e-12
    smp_focal = float(FocalLoss("multiclass", alpha=0.25, gamma=2)(z, y))
    major, minor = (int(v) for v in smp.__version__.split(".")[:2])
    mine = focal_loss(z, y, class_reduction="mean" if (major, minor) >= (0, 6) else "sum")
    assert abs(float(mine) - smp_focal) <= 1e-12 * smp_focal


def test_loss_rejects_bad_targets():
    z, y = _batch()
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        LeafSegmentationLoss()(z, y + 4)
    with pytest.raises(ValueError, match="shape"):
        dice_loss(z, y[:, :2])
    with pytest.raises(ValueError, match="h2fr"):
        LeafSegmentationLoss(h2fr=-1)


def test_standard_metrics_by_hand():
    m = SegmentationMetrics(num_classes=3)
    pred = torch.tensor([[0, 0, 1, 1]])
    target = torch.tensor([[0, 1, 1, 1]])
    m.update(pred, target)
    r = m.compute()
    # class 0: TP 1, FP 1 -> IoU 1/2, Dice 2/3; class 1: TP 2, FN 1 -> 2/3, 4/5; class 2 unseen
    assert r["iou"][:2] == pytest.approx([0.5, 2 / 3], abs=1e-15)
    assert r["dice"][:2] == pytest.approx([2 / 3, 0.8], abs=1e-15)
    assert math.isnan(r["iou"][2])
    assert r["miou"] == pytest.approx((0.5 + 2 / 3) / 2, abs=1e-15)
    assert r["oa"] == 0.75
    logits = torch.nn.functional.one_hot(pred, 3).permute(0, 2, 1).double()
    m2 = SegmentationMetrics(3)
    m2.update(logits, target)
    assert m2.compute()["miou"] == r["miou"]


def test_authors_miou_leaves_out_zero_iou_classes_and_averages_per_batch():
    a = AuthorsMIoU(num_classes=3)
    # batch 1 (B = 1): class 2 present but never predicted -> IoU 0, left out by the authors
    a.update(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[0, 0, 1, 2]]))
    b1 = (1 + 0.5) / 2  # class 0: 1, class 1: 1/2
    # batch 2 (B = 2): all correct, classes 0 and 1 -> 1
    a.update(torch.tensor([[0, 1], [0, 1]]), torch.tensor([[0, 1], [0, 1]]))
    assert a.compute()["authors_miou"] == pytest.approx((1 * b1 + 2 * 1.0) / 3, abs=1e-15)
    std = SegmentationMetrics(3)
    std.update(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[0, 0, 1, 2]]))
    assert std.compute()["miou"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-15)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        a.update(torch.tensor([[3]]), torch.tensor([[0]]))
