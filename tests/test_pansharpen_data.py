"""Pan-sharpening data and Wald's protocol: sensors, MTF filters, interpolation, PanCollection.

Expected values are computed by hand in the comments (or follow from identities: an
interpolating kernel keeps its samples, a low-pass with DC gain 1 keeps a constant).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hyperleaf.data import PanCollection
from hyperleaf.pansharpen import (
    SENSORS,
    bicubic,
    decimate,
    degrade,
    get_sensor,
    interp23,
    interpolate,
    mtf_filter,
    mtf_kernel,
    mtf_sigma,
    reduced_resolution,
)
from hyperleaf.pansharpen.data import infer_scale
from hyperleaf.pansharpen.filters import INTERP23_HALF, resize_matrix

F64 = torch.float64


# ----------------------------------------------------------------------------- sensors


def test_sensor_gains_as_published():
    assert get_sensor("WV3").ms_gains == (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315)
    assert get_sensor("worldview-3").pan_gain == 0.14
    assert get_sensor("QuickBird").ms_gains == (0.34, 0.32, 0.30, 0.22)
    assert get_sensor("IKONOS").pan_gain == 0.17
    assert get_sensor("GeoEye-1").ms_gains == (0.23,) * 4
    assert get_sensor("WV2").ms_gains == (0.35,) * 7 + (0.27,)
    assert get_sensor("GF2").max_value == 1023 and get_sensor("WV3").max_value == 2047
    for key in ("PLEIADES", "GF2", "LANDSAT7"):
        assert "generic" in SENSORS[key].source  # said, not hidden


def test_sensor_errors():
    with pytest.raises(ValueError, match="sensor: unknown 'Sentinel'"):
        get_sensor("Sentinel")
    with pytest.raises(ValueError, match="has 8 MS bands, the image has 4"):
        get_sensor("WV3").gains_for(4)
    with pytest.raises(ValueError, match="bands"):
        get_sensor(None)
    assert len(get_sensor(None, bands=3).ms_gains) == 3


# ----------------------------------------------------------------------------- MTF filter


@pytest.mark.parametrize("gain,ratio", [(0.3, 4), (0.14, 4), (0.22, 2), (0.35, 4)])
def test_mtf_kernel_response_at_nyquist_is_the_gain(gain, ratio):
    k = mtf_kernel(gain, ratio)
    assert k.shape == (41,) and abs(float(k.sum()) - 1) < 1e-15
    x = torch.arange(41, dtype=F64) - 20
    nu = 1 / (2 * ratio)  # the MS Nyquist frequency in cycles per PAN pixel
    response = float((k * torch.cos(2 * math.pi * nu * x)).sum())
    # A sampled Gaussian's DTFT equals the continuous one up to aliasing, the nearest alias
    # being 2 exp(-2 pi^2 sigma^2 (1 - nu)^2) (normalisation included), and to the truncation
    # at 20 taps (negligible for sigma <= 3).
    sigma = mtf_sigma(gain, ratio)
    alias = 2 * math.exp(-2 * math.pi ** 2 * sigma ** 2 * (1 - nu) ** 2)
    assert abs(response - gain) < 2 * alias + 1e-12


def test_mtf_sigma_by_hand():
    # sigma = ratio sqrt(-2 ln G) / pi; G = exp(-1/2) gives ratio / pi exactly.
    assert mtf_sigma(math.exp(-0.5), 4) == pytest.approx(4 / math.pi, rel=1e-15)
    with pytest.raises(ValueError, match="gain"):
        mtf_sigma(1.2, 4)


def test_mtf_filter_keeps_constants_and_lowers_contrast():
    x = torch.full((2, 3, 20, 24), 7.0, dtype=F64)
    legacy = {"convention": "legacy"}
    assert torch.allclose(mtf_filter(x, [0.3, 0.2, 0.1], 4, **legacy), x, atol=1e-12)
    # the toolbox's genMTF kernels are not normalised: a constant is scaled by the DC gain
    from hyperleaf.pansharpen import toolbox_mtf_kernel

    dc = torch.tensor([float(toolbox_mtf_kernel(g, 4).sum()) for g in (0.3, 0.2, 0.1)], dtype=F64)
    assert bool(((dc > 0.99) & (dc < 1.0)).all())
    torch.testing.assert_close(mtf_filter(x, [0.3, 0.2, 0.1], 4),
                               7.0 * dc.view(1, 3, 1, 1).expand_as(x), rtol=0, atol=1e-12)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    y = mtf_filter(checker[None, None].to(F64), 0.3, 4, **legacy)
    assert float(y[0, 0, 8:-8, 8:-8].std()) < 1e-6  # the PAN Nyquist is fully removed
    with pytest.raises(ValueError, match="gains: expected 1 or 3"):
        mtf_filter(x, [0.3, 0.3], 4)


def test_decimate_takes_the_matlab_nearest_samples():
    x = torch.arange(64, dtype=F64).view(1, 1, 8, 8)
    # imresize(x, 1/4, 'nearest'): 1-based rows 3 and 7 -> 0-based 2 and 6
    assert decimate(x, 4)[0, 0].tolist() == [[18.0, 22.0], [50.0, 54.0]]
    assert decimate(x, 2)[0, 0, 0].tolist() == [9.0, 11.0, 13.0, 15.0]
    with pytest.raises(ValueError, match="multiples of ratio 3"):
        decimate(x, 3)


# ----------------------------------------------------------------------------- interpolation


def test_interp23_kernel_is_interpolating_and_sums_to_two():
    full = INTERP23_HALF[::-1] + INTERP23_HALF[1:]
    assert len(full) == 23
    assert abs(sum(full) - 2) < 1e-9  # zero-insertion halves the DC gain per axis
    assert all(INTERP23_HALF[k] == 0 for k in range(2, 12, 2))


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_interp23_keeps_samples_and_constants(ratio):
    g = torch.Generator().manual_seed(0)
    ms = torch.rand(2, 3, 6, 5, generator=g, dtype=F64)
    up = interp23(ms, ratio)
    o = ratio // 2
    assert up.shape == (2, 3, 6 * ratio, 5 * ratio)
    assert torch.equal(up[..., o::ratio, o::ratio], ms)
    assert decimate(up, ratio).equal(ms)
    c = interp23(torch.full((1, 1, 4, 4), 3.0, dtype=F64), ratio)
    assert torch.allclose(c, torch.full_like(c, 3.0), atol=1e-8)


def test_interp23_rejects_non_powers_of_two():
    with pytest.raises(ValueError, match="power of 2"):
        interp23(torch.zeros(1, 1, 4, 4), 3)


def test_bicubic_matches_hand_computed_matlab_value():
    # imresize([1 2 3 4], [1 8]) first output: u = 0.75, Keys weights (a = -0.5) at
    # d = 1.75, 0.75, -0.25, -1.25: -0.0234375, 0.2265625, 0.8671875, -0.0703125 on the
    # mirrored samples 2, 1, 1, 2 -> 0.90625.
    y = bicubic(torch.tensor([[[1.0, 2.0, 3.0, 4.0]]], dtype=F64), size=(1, 8))
    assert float(y[0, 0, 0]) == pytest.approx(0.90625, abs=1e-15)
    assert torch.allclose(y[0, 0], 5 - y[0, 0].flip(0), atol=1e-14)  # symmetric about 2.5
    m = resize_matrix(12, 3)  # shrinking: antialiased rows still sum to 1
    assert torch.allclose(m.sum(1), torch.ones(3, dtype=F64), atol=1e-14)
    assert interpolate(torch.rand(1, 2, 3, 3, dtype=F64), 3, "bicubic").shape == (1, 2, 9, 9)


# ----------------------------------------------------------------------------- Wald


def test_degrade_shapes_constants_and_errors():
    pan = torch.full((2, 1, 64, 64), 0.5, dtype=F64)
    ms = torch.full((2, 4, 16, 16), 0.25, dtype=F64)
    pan_lr, ms_lr = degrade(pan, ms, 4, "QB", convention="legacy")
    assert pan_lr.shape == (2, 1, 16, 16) and ms_lr.shape == (2, 4, 4, 4)
    assert torch.allclose(ms_lr, torch.full_like(ms_lr, 0.25), atol=1e-12)
    pan_lr, ms_lr = degrade(pan, ms, 4, "QB")  # toolbox: bicubic PAN keeps constants exactly
    assert pan_lr.shape == (2, 1, 16, 16) and ms_lr.shape == (2, 4, 4, 4)
    assert torch.allclose(pan_lr, torch.full_like(pan_lr, 0.5), atol=1e-14)
    sample = reduced_resolution(pan, ms, 4, "QB")
    assert sample["gt"] is ms and sample["lms"].shape == (2, 4, 16, 16)
    with pytest.raises(ValueError, match="has 4 MS bands, the image has 8"):
        degrade(torch.zeros(1, 1, 64, 64, dtype=F64), torch.zeros(1, 8, 16, 16, dtype=F64), 4,
                "QB")
    with pytest.raises(ValueError, match="do not differ by ratio 2"):
        degrade(pan, ms, 2, "QB")
    with pytest.raises(ValueError, match="pan: expected one band"):
        degrade(ms, ms, 1, "QB")


def test_degrade_filters_each_band_with_its_own_gain():
    g = torch.Generator().manual_seed(1)
    ms = torch.rand(1, 4, 32, 32, generator=g, dtype=F64)
    pan = torch.rand(1, 1, 128, 128, generator=g, dtype=F64)
    _, ms_lr = degrade(pan, ms, 4, "QB")
    gains = get_sensor("QB").ms_gains
    for b in range(4):
        want = decimate(mtf_filter(ms[:, b:b + 1], gains[b], 4), 4)
        assert torch.equal(ms_lr[:, b:b + 1], want)


# ----------------------------------------------------------------------------- PanCollection


def test_infer_scale():
    assert infer_scale(2047) == 2047 and infer_scale(2048) == 4095
    assert infer_scale(1000) == 1023 and infer_scale(10, np.dtype(np.uint8)) == 255
    with pytest.raises(ValueError, match="16 bits"):
        infer_scale(70000)


def _arrays(n=3, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"gt": rng.uniform(0, 2047, (n, c, 16, 16)), "lms": rng.uniform(0, 2047, (n, c, 16, 16)),
            "ms": rng.uniform(0, 2000, (n, c, 4, 4)), "pan": rng.uniform(0, 2047, (n, 1, 16, 16))}


def test_pancollection_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py (the 'pan' extra) reads HDF5")
    a = _arrays()
    with h5py.File(tmp_path / "x.h5", "w") as f:
        for k, v in a.items():
            f[k] = v
    ds = PanCollection(tmp_path / "x.h5")
    assert len(ds) == 3 and ds.ratio == 4 and ds.bands == 4 and ds.reduced
    assert ds.scale == 2047 and ds.scale_source.startswith("inferred")
    s = ds[1]
    assert s["gt"].dtype == torch.float32
    np.testing.assert_allclose(s["ms"].numpy(), a["ms"][1] / 2047, rtol=1e-6)
    ds2 = PanCollection(tmp_path / "x.h5", scale=1023, dtype=F64)
    np.testing.assert_array_equal(ds2[2]["pan"].numpy(), a["pan"][2] / 1023)
    with h5py.File(tmp_path / "y.h5", "w") as f:
        for k, v in a.items():
            f[k] = v
        f.attrs["scale"] = 1023
    assert PanCollection(tmp_path / "y.h5").scale_source == "file attribute"
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["pan"] = a["pan"]
    with pytest.raises(ValueError, match="missing datasets"):
        PanCollection(tmp_path / "bad.h5")


def test_pancollection_mat_variants(tmp_path):
    sio = pytest.importorskip("scipy.io", reason="scipy reads .mat")
    a = _arrays(n=1)
    hwc = {k: np.moveaxis(v[0], 0, -1) for k, v in a.items()}
    sio.savemat(tmp_path / "rr.mat", {"I_GT": hwc["gt"], "I_MS": hwc["lms"], "I_MS_LR": hwc["ms"],
                                      "I_PAN": hwc["pan"][..., 0]})
    ds = PanCollection(tmp_path / "rr.mat", dtype=F64)
    s = ds.raw(0)
    np.testing.assert_array_equal(s["ms"], a["ms"][0])
    np.testing.assert_array_equal(s["gt"], a["gt"][0])
    np.testing.assert_array_equal(s["pan"], a["pan"][0])
    # Full resolution: I_MS at MS size only; lms comes from the 23-tap interpolation.
    sio.savemat(tmp_path / "fr.mat", {"I_MS": hwc["ms"], "I_PAN": hwc["pan"][..., 0]})
    fr = PanCollection(tmp_path / "fr.mat", scale=2047, dtype=F64)
    assert not fr.reduced
    torch.testing.assert_close(fr[0]["lms"], interp23(torch.from_numpy(a["ms"][0] / 2047), 4))
    sio.savemat(tmp_path / "bad.mat", {"X": hwc["ms"]})
    with pytest.raises(ValueError, match="expected variables I_PAN"):
        PanCollection(tmp_path / "bad.mat")


def test_pancollection_pairs_and_folders(tmp_path):
    sio = pytest.importorskip("scipy.io", reason="scipy reads .mat")
    rng = np.random.default_rng(3)
    for k in (1, 2):
        sio.savemat(tmp_path / f"{k}_ms.mat", {"im": rng.integers(0, 256, (8, 8, 3), np.uint8)})
        sio.savemat(tmp_path / f"{k}_pan.mat", {"g": rng.integers(0, 256, (16, 16), np.uint8)})
    ds = PanCollection(tmp_path)
    assert len(ds) == 2 and ds.ratio == 2 and ds.bands == 3 and ds.scale == 255
    pair = PanCollection((tmp_path / "2_pan.mat", tmp_path / "2_ms.mat"), dtype=F64)
    np.testing.assert_array_equal(pair.raw(0)["ms"], ds.raw(1)["ms"])
    with pytest.raises(FileNotFoundError, match="nope.mat"):
        PanCollection((tmp_path / "nope.mat", tmp_path / "1_ms.mat"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no PAN \\+ MS pairs"):
        PanCollection(empty)


def test_pancollection_geotiff_pair(tmp_path):
    tifffile = pytest.importorskip("tifffile", reason="tifffile (the 'pan' extra) reads GeoTIFF")
    rng = np.random.default_rng(4)
    ms = rng.integers(100, 1600, (4, 8, 8)).astype(np.uint16)
    pan = rng.integers(100, 2047, (32, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ms.tif", ms, planarconfig="separate", photometric="minisblack")
    tifffile.imwrite(tmp_path / "pan.tif", pan)
    ds = PanCollection(tmp_path, dtype=F64)
    assert ds.ratio == 4 and ds.bands == 4 and ds.scale == 2047
    np.testing.assert_array_equal(ds.raw(0)["ms"], ms)
    tifffile.imwrite(tmp_path / "ms_hwc.tif", np.moveaxis(ms, 0, -1), planarconfig="contig",
                     photometric="minisblack")
    hwc = PanCollection((tmp_path / "pan.tif", tmp_path / "ms_hwc.tif"), dtype=F64)
    np.testing.assert_array_equal(hwc.raw(0)["ms"], ms)


def test_pancollection_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PanCollection(tmp_path / "missing.h5")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a PanCollection file"):
        PanCollection(tmp_path / "x.txt")


# ----------------------------------------------------------------------------- real data


@pytest.mark.shared
def test_real_wv3_is_one_patch_repeated(shared_dir):
    ds = PanCollection(shared_dir / "data/pansharpening/wv3_rr100.h5", dtype=F64)
    assert len(ds) == 100 and ds.bands == 8 and ds.ratio == 4 and ds.scale == 2047
    first = ds.raw(0)
    # The file holds ONE patch 100 times (docs/pansharpening.md says what this means).
    for i in (1, 50, 99):
        assert all(np.array_equal(first[k], ds.raw(i)[k]) for k in first)


@pytest.mark.shared
def test_real_landsat_and_geotiff(shared_dir):
    ls = PanCollection(shared_dir / "data/pansharpening/landsat7")
    assert len(ls) == 10 and ls.ratio == 2 and ls.bands == 6 and ls.scale == 255
    geo = PanCollection(shared_dir / "data/pansharpening/osman")
    assert geo.ratio == 4 and geo.bands == 4 and geo.scale == 2047 and geo.geo is not None
    s = reduced_resolution(geo[0]["pan"][None].double(), geo[0]["ms"][None].double(), 4, None)
    assert s["gt"].shape == (1, 4, 200, 200) and s["pan"].shape == (1, 1, 200, 200)


def test_old_paths_of_the_moved_modules_still_import():
    """Pan-sharpening's pieces sit in one package (issue 21); the old paths are the same module
    objects (private names and patching included)."""
    import importlib
    import sys

    import hyperleaf.pansharpen.data as new_data
    import hyperleaf.pansharpen.metrics as new_metrics
    from hyperleaf.train import pansharpen as legacy

    for old in ("hyperleaf.data.pancollection", "hyperleaf.metrics.pansharpening"):
        sys.modules.pop(old, None)  # imported afresh: the warning is raised on import
        with pytest.warns(DeprecationWarning, match="moved to hyperleaf.pansharpen"):
            importlib.import_module(old)
    old_data = sys.modules["hyperleaf.data.pancollection"]
    old_metrics = sys.modules["hyperleaf.metrics.pansharpening"]

    assert old_data is new_data and old_metrics is new_metrics
    from hyperleaf.pansharpen import evaluation, network, patches

    assert legacy.evaluate_methods is evaluation.evaluate_methods
    assert legacy.sharpen is network.sharpen and legacy.patches is patches.patches
