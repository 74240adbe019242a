"""Lesion-centred training crops of the segment task (``lesion_fraction``): the crops contain
foreground as often as the rule says, are reproducible from the generator, and the option is
checked and read by the task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hyperleaf.data.segmentation import SegmentationCrops, SegmentationFolder


def _folder(tmp_path, side=64, lesion=(40, 44, 10, 13)):
    r = np.random.default_rng(0)
    for n in ("a", "b"):
        for m in ("flair", "t1"):
            p = tmp_path / m / f"{n}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(r.integers(0, 256, (side, side)).astype(np.uint8)).save(p)
        lab = np.zeros((side, side), np.uint8)
        y0, y1, x0, x1 = lesion
        lab[y0:y1, x0:x1] = 1  # 12 lesion pixels of 4096: 0.3 %
        p = tmp_path / "label" / f"{n}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(lab).save(p)
    return SegmentationFolder(tmp_path, num_classes=2)


def _share_with_lesion(ds, n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    return np.mean([bool((ds.get(i % 2, g)["mask"] > 0).any()) for i in range(n)])


def test_lesion_centred_share(tmp_path):
    folder = _folder(tmp_path)
    crop = 16
    uniform = SegmentationCrops(folder, [0, 1], crop, [[0], [1]])
    centred = SegmentationCrops(folder, [0, 1], crop, [[0], [1]], lesion_fraction=0.5)
    always = SegmentationCrops(folder, [0, 1], crop, [[0], [1]], lesion_fraction=1.0)
    # uniform: a 16-crop meets the 4x3 lesion for (16+4-1)(16+3-1) = 342 of 49^2 = 2401 starts
    p_uniform = (crop + 4 - 1) * (crop + 3 - 1) / (64 - crop + 1) ** 2
    assert _share_with_lesion(uniform) == pytest.approx(p_uniform, abs=0.05)
    # centred (± crop/4 = 4 around a lesion voxel): the lesion voxel always stays in the crop
    assert _share_with_lesion(always) == 1.0
    assert _share_with_lesion(centred) == pytest.approx(0.5 + 0.5 * p_uniform, abs=0.07)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = centred.get(0, g1), centred.get(0, g2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(v.shape[-2:] == (crop, crop) for v in always.get(1, g1).values())


def test_lesion_fraction_is_checked(tmp_path):
    folder = _folder(tmp_path)
    with pytest.raises(ValueError, match="lesion_fraction"):
        SegmentationCrops(folder, [0], 16, [[0], [1]], lesion_fraction=1.5)
    from hyperleaf.train import TrainConfig
    from hyperleaf.train.config import ConfigError

    with pytest.raises(ConfigError, match="lesion_fraction"):
        TrainConfig(task="segment", lesion_fraction=-0.1).validate()
    with pytest.raises(ConfigError, match="lesion_fraction"):
        TrainConfig(task="fuse", lesion_fraction=0.5).validate()  # a segment-only key


def test_task_datasets_use_the_option(tmp_path):
    from hyperleaf.tasks import get_task
    from hyperleaf.train import TrainConfig

    _folder(tmp_path / "d")
    cfg = TrainConfig(task="segment", model="leaf-unet", data=str(tmp_path / "d"),
                      lesion_fraction=0.75, crop=32, val_fraction=0.5)
    train_set, _ = get_task("segment").datasets(cfg)
    assert train_set.lesion_fraction == 0.75
