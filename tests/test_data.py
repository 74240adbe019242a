"""Datasets of hyperleaf.data: the embedded synthetic sets and real pairs (on temp files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hyperleaf import io as hio
from hyperleaf.data import (
    SEG_CLASSES,
    PairDataset,
    SyntheticFusion,
    SyntheticSegmentation,
    sample_seed,
    split_pairs,
)
from hyperleaf.filters import sobel_magnitude


def test_synthetic_is_deterministic_per_index_and_splits_differ():
    a, b = SyntheticFusion(16, 32, "train", seed=3), SyntheticFusion(16, 32, "train", seed=3)
    # Any access order gives the same sample.
    for i in (5, 0, 5, 15):
        assert torch.equal(a[i]["ir"], b[i]["ir"]) and torch.equal(a[i]["vis"], b[i]["vis"])
    assert not torch.equal(a[0]["vis"], a[1]["vis"])
    val = SyntheticFusion(16, 32, "val", seed=3)
    assert not torch.equal(a[0]["vis"], val[0]["vis"])
    other = SyntheticFusion(16, 32, "train", seed=4)
    assert not torch.equal(a[0]["vis"], other[0]["vis"])
    x = a[2]
    assert x["vis"].shape == x["ir"].shape == (1, 32, 32)
    assert x["vis"].dtype == torch.float32
    assert 0 <= float(x["vis"].min()) and float(x["vis"].max()) <= 1


def test_synthetic_modalities_carry_their_own_content():
    """Hot targets are bright only in IR; fine texture only in VIS; the layout is shared."""
    seg = SyntheticSegmentation(12, 64, "train", seed=0)
    hot_gap, tex_ratio, edge_corr = [], [], []
    for i in range(len(seg)):
        s = seg[i]
        vis, ir, m = s["vis"][0], s["ir"][0], s["mask"]
        hot = m == 1
        if hot.sum() > 0:
            hot_gap.append(float(ir[hot].mean() - ir[~hot].mean()))
            assert float(ir[hot].max()) > 0.8
        tex = m == 2
        if tex.sum() > 16:
            g_vis = sobel_magnitude(vis[None, None])[0, 0]
            g_ir = sobel_magnitude(ir[None, None])[0, 0]
            tex_ratio.append(float(g_vis[tex].mean() / (g_ir[tex].mean() + 1e-6)))
        gv = sobel_magnitude(vis[None, None]).flatten()
        gi = sobel_magnitude(ir[None, None]).flatten()
        edge_corr.append(float(torch.corrcoef(torch.stack([gv, gi]))[0, 1]))
    assert hot_gap and min(hot_gap) > 0.3
    assert tex_ratio and min(tex_ratio) > 3.0
    assert np.mean(edge_corr) > 0.1  # shared region edges show in both gradients


def test_segmentation_labels_and_sizes():
    ds = SyntheticSegmentation(4, 48, "val")
    s = ds[1]
    assert s["mask"].shape == (48, 48) and s["mask"].dtype == torch.int64
    assert set(s["mask"].unique().tolist()) <= set(range(len(SEG_CLASSES)))


@pytest.mark.parametrize("kwargs,msg", [
    ({"size": 8}, "size"), ({"length": 0}, "length"), ({"split": "dev"}, "split")])
def test_synthetic_rejects_bad_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        SyntheticFusion(**{"length": 4, "size": 32, **kwargs})


def test_sample_seed_is_spread():
    seeds = {sample_seed(0, "train", i) for i in range(1000)}
    assert len(seeds) == 1000


def _write(path, array):
    Image.fromarray(array).save(path)


@pytest.fixture
def pair_dir(tmp_path):
    rng = np.random.default_rng(0)
    for d in ("ir", "vi"):
        (tmp_path / d).mkdir()
    for k in range(5):
        _write(tmp_path / "ir" / f"{k:03d}.png", rng.integers(0, 255, (40, 50), dtype=np.uint8))
        _write(tmp_path / "vi" / f"{k:03d}.png", rng.integers(0, 255, (40, 50), dtype=np.uint8))
    return tmp_path


def test_pair_dataset_crops_flips_and_is_seeded(pair_dir):
    ds = PairDataset.from_folder(pair_dir, crop=24, train=True, val_fraction=0.2)
    assert len(ds) == 4
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a, b = ds.get(1, g1), ds.get(1, g2)
    assert a["ir"].shape == (1, 24, 24)
    assert torch.equal(a["ir"], b["ir"]) and torch.equal(a["vis"], b["vis"])
    # The crop is a window of the source image, possibly flipped: find it.
    full = torch.from_numpy(hio.read_gray(ds.pairs[1].ir))
    found = False
    for t in (a["ir"][0], a["ir"][0].flip(0), a["ir"][0].flip(1), a["ir"][0].flip(0).flip(1)):
        win = full.unfold(0, 24, 1).unfold(1, 24, 1)
        if (win == t).all(-1).all(-1).any():
            found = True
    assert found
    val = PairDataset.from_folder(pair_dir, crop=24, train=False, val_fraction=0.2)
    assert len(val) == 1 and val.pairs[0].name == "004"
    v = val[0]["ir"][0]
    assert torch.equal(v, full.new_tensor(hio.read_gray(val.pairs[0].ir))[8:32, 13:37])


def test_split_pairs_holds_out_the_last():
    pairs = [hio.ImagePair(str(i), ir=None, vis=None) for i in range(21)]
    tr, va = split_pairs(pairs, 0.1)
    assert [p.name for p in va] == ["19", "20"] and len(tr) == 19
    one = pairs[:1]
    assert split_pairs(one) == (one, one)


def test_bad_data_errors_name_the_file(pair_dir):
    (pair_dir / "vi" / "002.png").unlink()
    with pytest.raises(hio.ImageError, match="002.png"):
        PairDataset.from_folder(pair_dir, crop=24)


def test_unreadable_and_mismatched_and_small(pair_dir):
    bad = pair_dir / "ir" / "001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(hio.ImageError, match="001.png"):
        PairDataset.from_folder(pair_dir, crop=24)
    _write(bad, np.zeros((40, 49), np.uint8))
    with pytest.raises(hio.ImageError, match="size mismatch.*001.png"):
        PairDataset.from_folder(pair_dir, crop=24)
    _write(bad, np.zeros((40, 50), np.uint8))
    with pytest.raises(hio.ImageError, match="smaller than the crop"):
        PairDataset.from_folder(pair_dir, crop=45)


def test_empty_folder(tmp_path):
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    with pytest.raises(hio.ImageError, match="no images"):
        PairDataset.from_folder(tmp_path, crop=24)
    with pytest.raises(ValueError, match="no image pairs"):
        PairDataset([], crop=24)
