"""Segmentation folders: MSRS, WHU-OPT-SAR and generic layouts, NIfTI volumes, bad data named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hyperleaf.data.segmentation import SegmentationDataError, SegmentationFolder, group_modalities


def _img(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8), mode).save(path)


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_msrs_layout(tmp_path):
    r = _rng()
    for n in ("00001D", "00002N"):
        _img(tmp_path / "vi" / f"{n}.png", r.integers(0, 256, (8, 10, 3)))
        _img(tmp_path / "ir" / f"{n}.png", r.integers(0, 256, (8, 10)))
        _img(tmp_path / "Segmentation_labels" / f"{n}.png", r.integers(0, 9, (8, 10)))
    ds = SegmentationFolder(tmp_path)
    assert ds.layout == "msrs" and len(ds) == 2 and ds.num_classes == 9
    (vi, ir), lab = ds[0]
    assert vi.shape == ir.shape == (3, 8, 10) and lab.shape == (8, 10) and lab.dtype == torch.int64
    assert torch.equal(ir[0], ir[1])  # IR repeated to 3 channels, as the authors' loader
    raw = np.asarray(Image.open(tmp_path / "vi" / "00001D.png"))
    assert torch.allclose(vi, torch.from_numpy(raw / 255.0).permute(2, 0, 1).float())
    (vi, ir), lab = SegmentationFolder(tmp_path, size=(16, 16))[1]
    assert vi.shape == (3, 16, 16) and lab.shape == (16, 16)


def test_whu_layout_divides_labels_by_ten_and_names_bad_files(tmp_path):
    r = _rng(1)
    _img(tmp_path / "optical256" / "a.tif", r.integers(0, 256, (4, 4, 3)))
    _img(tmp_path / "sar256" / "a.tif", r.integers(0, 256, (4, 4)))
    lab = 10 * r.integers(0, 8, (4, 4))
    _img(tmp_path / "label256" / "a.tif", lab)
    ds = SegmentationFolder(tmp_path)
    assert ds.layout == "whu" and torch.equal(ds[0][1], torch.from_numpy(lab // 10))
    lab[0, 0] = 15
    _img(tmp_path / "label256" / "a.tif", lab)
    with pytest.raises(SegmentationDataError, match=r"a\.tif.*multiples of 10"):
        SegmentationFolder(tmp_path)


def test_generic_layout_with_three_modalities_and_grouping(tmp_path):
    r = _rng(2)
    for n in ("p1_z1", "p1_z2"):
        for m in ("t1", "t2", "flair"):
            _img(tmp_path / m / f"{n}.png", r.integers(0, 256, (6, 7)))
        _img(tmp_path / "label" / f"{n}.png", r.integers(0, 2, (6, 7)))
    ds = SegmentationFolder(tmp_path, num_classes=2)
    assert ds.layout == "generic" and ds.modalities == ("flair", "t1", "t2")
    mods, lab = ds[1]
    assert [m.shape for m in mods] == [(1, 6, 7)] * 3
    x1, x2 = group_modalities(mods, [[0], [1, 2]])
    assert x1.shape == (1, 6, 7) and x2.shape == (2, 6, 7)
    ds2 = SegmentationFolder(tmp_path, modalities=["t2", "t1"], num_classes=2)
    assert ds2.modalities == ("t2", "t1")


def test_nifti_volumes(tmp_path):
    nib = pytest.importorskip("nibabel", reason="NIfTI reading needs nibabel (dev/seg extra)")
    r = _rng(3)
    for m in ("flair", "t1"):
        (tmp_path / m).mkdir()
        vol = r.random((4, 5, 6)) * 300
        nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / m / "p01.nii.gz")
    (tmp_path / "label").mkdir()
    lab = r.integers(0, 2, (4, 5, 6)).astype(np.float64)
    nib.save(nib.Nifti1Image(lab, np.eye(4)), tmp_path / "label" / "p01.nii.gz")
    (flair, t1), y = SegmentationFolder(tmp_path, num_classes=2)[0]
    assert flair.shape == (1, 4, 5, 6) and float(flair.max()) == pytest.approx(1.0)
    assert torch.equal(y, torch.from_numpy(lab.astype(np.int64)))


def test_bad_data_errors_name_the_file(tmp_path):
    r = _rng(4)
    for m in ("a", "b"):
        _img(tmp_path / m / "x.png", r.integers(0, 256, (4, 4)))
    _img(tmp_path / "label" / "x.png", r.integers(0, 2, (4, 4)))
    _img(tmp_path / "a" / "y.png", r.integers(0, 256, (4, 4)))
    with pytest.raises(SegmentationDataError, match=r"a/y\.png: no partner in .*b/"):
        SegmentationFolder(tmp_path)
    _img(tmp_path / "b" / "y.png", r.integers(0, 256, (4, 5)))
    _img(tmp_path / "label" / "y.png", r.integers(0, 2, (4, 4)))
    with pytest.raises(SegmentationDataError, match=r"b/y\.png: size \(4, 5\) differs"):
        SegmentationFolder(tmp_path)
    _img(tmp_path / "b" / "y.png", r.integers(0, 256, (4, 4)))
    _img(tmp_path / "label" / "y.png", np.full((4, 4), 3))
    with pytest.raises(SegmentationDataError, match=r"label/y\.png: label values must lie in"):
        SegmentationFolder(tmp_path, num_classes=2)
    (tmp_path / "label" / "y.png").unlink()
    with pytest.raises(SegmentationDataError, match=r"a/y\.png: no partner in .*label/"):
        SegmentationFolder(tmp_path)
    with pytest.raises(SegmentationDataError, match="no such data folder"):
        SegmentationFolder(tmp_path / "nope")
    with pytest.raises(SegmentationDataError, match="at least 2 modality"):
        SegmentationFolder(tmp_path, modalities=["a"])


@pytest.mark.shared
def test_open_ms_slices(shared_dir):
    ds = SegmentationFolder(shared_dir / "data" / "open_ms" / "slices",
                            modalities=["flair", "t1", "t2", "t1post"], num_classes=2,
                            check="names")
    assert len(ds) == 218
    mods, lab = ds[0]
    assert [m.shape for m in mods] == [(1, 218, 182)] * 4 and int(lab.max()) <= 1
