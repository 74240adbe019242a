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


def test_flat_layout_files_case_modality(tmp_path):
    """CASE_MODALITY files in one folder (or one sub-folder per case), the label suffix found
    among LABEL_NAMES up to case; the same items as the generic layout of the same files."""
    nib = pytest.importorskip("nibabel", reason="NIfTI reading needs nibabel (dev/seg extra)")
    r = _rng(5)
    flat, cases = tmp_path / "flat", tmp_path / "cases"
    vols = {}
    for case in ("p07", "p19_x"):  # an underscore inside the case name: split at the last one
        for mod in ("FLAIR", "T1", "GT"):
            arr = (r.integers(0, 2, (3, 4, 5)) if mod == "GT" else r.random((3, 4, 5)) * 50)
            vols[case, mod] = arr
            for p in (flat / f"{case}_{mod}.nii.gz", cases / case / f"{case}_{mod}.nii.gz"):
                p.parent.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(arr.astype(np.float64), np.eye(4)), p)
    for root in (flat, cases):
        ds = SegmentationFolder(root, modalities=["flair", "t1"])  # matched up to case
        assert ds.layout == "flat" and ds.modalities == ("FLAIR", "T1") and ds.label_dir == "GT"
        assert ds.names == ["p07", "p19_x"] and ds.num_classes == 2 and ds.num_classes_inferred
        (flair, t1), y = ds[1]
        assert torch.equal(y, torch.from_numpy(vols["p19_x", "GT"].astype(np.int64)))
        want = vols["p19_x", "T1"] / vols["p19_x", "T1"].max()
        assert torch.allclose(t1[0], torch.from_numpy(want).float())
    (flat / "p19_x_T1.nii.gz").unlink()
    with pytest.raises(SegmentationDataError, match=r"p19_x_FLAIR\.nii\.gz: no partner .*"
                                                    r"p19_x_T1\.\*"):
        SegmentationFolder(flat)
    (flat / "oddname.nii.gz").write_bytes(b"")
    with pytest.raises(SegmentationDataError, match=r"oddname\.nii\.gz: expected a name "
                                                    r"CASE_MODALITY"):
        SegmentationFolder(flat, layout="flat")


def test_flat_layout_label_suffix_must_be_unique_or_named(tmp_path):
    r = _rng(6)
    for suffix in ("a", "b", "seg", "mask"):
        _img(tmp_path / f"c1_{suffix}.png", r.integers(0, 2, (4, 4)))
    with pytest.raises(SegmentationDataError, match="more than one label suffix.*label="):
        SegmentationFolder(tmp_path)
    ds = SegmentationFolder(tmp_path, label="mask")
    assert ds.modalities == ("a", "b", "seg") and ds.label_dir == "mask"


def test_num_classes_from_the_layout_or_the_labels(tmp_path):
    r = _rng(7)
    # fixed layouts declare theirs: MSRS 9 (even when these labels only reach 3)
    msrs = tmp_path / "msrs"
    for m in ("vi", "ir"):
        _img(msrs / m / "a.png", r.integers(0, 256, (4, 4)))
    _img(msrs / "Segmentation_labels" / "a.png", r.integers(0, 4, (4, 4)))
    ds = SegmentationFolder(msrs)
    assert ds.num_classes == 9 and not ds.num_classes_inferred
    # given: the labels are checked against it, the error names the file
    with pytest.raises(SegmentationDataError, match=r"Segmentation_labels/a\.png: label values "
                                                    r"must lie in \[0, 2\)"):
        SegmentationFolder(msrs, num_classes=2)
    # generic: largest label + 1 over all items (the second item holds the 4)
    gen = tmp_path / "gen"
    for i, top in enumerate((2, 4)):
        for m in ("a", "b"):
            _img(gen / m / f"s{i}.png", r.integers(0, 256, (4, 4)))
        lab = r.integers(0, top + 1, (4, 4))
        lab[0, 0] = top
        lab[0, 1] = 0
        _img(gen / "label" / f"s{i}.png", lab)
    for check in ("all", "names"):
        ds = SegmentationFolder(gen, check=check)
        assert ds.num_classes == 5 and ds.num_classes_inferred
    # labels that look like 0/255 masks: inferring 256 classes would be wrong; refused
    _img(gen / "label" / "s1.png", np.where(r.random((4, 4)) > 0.5, 255, 0))
    with pytest.raises(SegmentationDataError, match=r"label/s1\.png: label value 255 but only "
                                                    r"\d distinct values.*num_classes"):
        SegmentationFolder(gen)
    assert SegmentationFolder(gen, num_classes=256).num_classes == 256
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        SegmentationFolder(gen, num_classes=1)


def test_generic_label_folder_names(tmp_path):
    r = _rng(8)
    for m in ("t1", "t2"):
        _img(tmp_path / m / "x.png", r.integers(0, 256, (4, 4)))
    _img(tmp_path / "Masks" / "x.png", r.integers(0, 2, (4, 4)))
    ds = SegmentationFolder(tmp_path)
    assert ds.layout == "generic" and ds.label_dir == "Masks" and ds.modalities == ("t1", "t2")
    with pytest.raises(SegmentationDataError, match="no modality 'pd'"):
        SegmentationFolder(tmp_path, modalities=["t1", "pd"])
    (tmp_path / "Masks").rename(tmp_path / "other")
    with pytest.raises(SegmentationDataError, match="no segmentation layout recognised"):
        SegmentationFolder(tmp_path)


@pytest.mark.shared
def test_open_ms_volumes_flat(shared_dir):
    pytest.importorskip("nibabel", reason="NIfTI reading needs nibabel (dev/seg extra)")
    ds = SegmentationFolder(shared_dir / "data" / "open_ms" / "volumes",
                            modalities=["flair", "t1", "t2", "t1post"], check="names")
    assert ds.layout == "flat" and ds.names == ["p07", "p19"] and ds.label_dir == "GT"
    assert ds.num_classes == 2 and ds.num_classes_inferred
    mods, lab = ds[0]
    assert [m.shape for m in mods] == [(1, 182, 218, 182)] * 4 and lab.shape == (182, 218, 182)
