"""Pan-sharpening's pieces (formerly hyperleaf.train.pansharpen): the standardising wrapper,
its statistics, and run folders that carry them (trained through the engine by the train_pansharpen wrapper, with normalisation or
without; both load)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hyperleaf.data import PanCollection
from hyperleaf.experiments.pansharpen import train_pansharpen
from hyperleaf.models import SHIP
from hyperleaf.pansharpen.network import Standardised, sharpen
from hyperleaf.pansharpen.patches import band_statistics, patches
from hyperleaf.runs import load_run


class _PanPlusLms(nn.Module):
    """A residual network whose residual is the (standardised) PAN."""

    def forward(self, pan, lms, return_features=False):
        out = lms + pan
        return (out, ["features"]) if return_features else out


def test_standardised_is_lms_plus_band_spread_times_residual():
    g = torch.Generator().manual_seed(0)
    pan, lms = torch.rand(2, 1, 5, 6, generator=g), torch.rand(2, 3, 5, 6, generator=g)
    ms_mean, ms_std, pan_mean, pan_std = [0.2, 0.3, 0.4], [0.5, 0.25, 2.0], [0.1], [4.0]
    net = Standardised(_PanPlusLms(), pan_mean, pan_std, ms_mean, ms_std)
    # by hand: sigma_c ((lms - mu_c) / sigma_c + (pan - mu_p) / sigma_p) + mu_c
    #        = lms + sigma_c (pan - 0.1) / 4
    expected = lms + torch.tensor(ms_std).view(1, 3, 1, 1) * (pan - 0.1) / 4.0
    torch.testing.assert_close(net(pan, lms), expected, rtol=0, atol=1e-6)  # float32 buffers
    out, feats = net(pan, lms, return_features=True)
    assert feats == ["features"] and torch.equal(out, net(pan, lms))


def test_standardised_untrained_ship_is_exp():
    """SHIP's residual starts at zero, so the wrapped model starts as the interpolated MS."""
    net = Standardised(SHIP(n_feat=4, task="pansharpen", ms_bands=3), [0.3], [0.1],
                       [0.2, 0.25, 0.3], [0.05, 0.04, 0.1]).eval()
    pan, lms = torch.rand(1, 1, 16, 16), torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(pan, lms), lms, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kwargs,msg", [
    ({"ms_std": [1.0, 0.0]}, "ms_std"),
    ({"pan_mean": [float("nan")]}, "pan_mean"),
    ({"pan_std": [1.0, 2.0]}, "pan_mean/pan_std"),
    ({"ms_mean": [0.0, 0.0, 0.0]}, "ms_mean/ms_std"),
])
def test_standardised_rejects_bad_statistics(kwargs, msg):
    stats = {"pan_mean": [0.0], "pan_std": [1.0], "ms_mean": [0.0, 0.0], "ms_std": [1.0, 1.0]}
    with pytest.raises(ValueError, match=msg):
        Standardised(_PanPlusLms(), **{**stats, **kwargs})


def test_standardised_rejects_wrong_band_count():
    net = Standardised(_PanPlusLms(), [0.0], [1.0], [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"lms: expected shape \(B, 2, H, W\)"):
        net(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3, 4, 4))


def test_band_statistics_match_numpy():
    rng = np.random.default_rng(1)
    samples = [{"pan": torch.from_numpy(rng.random((1, 4, 4))),
                "lms": torch.from_numpy(rng.random((2, 4, 4)))} for _ in range(3)]
    st = band_statistics(samples)
    lms = np.stack([s["lms"].numpy() for s in samples])
    pan = np.stack([s["pan"].numpy() for s in samples])
    np.testing.assert_allclose(st["ms_mean"], lms.mean((0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(st["ms_std"], lms.std((0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(st["pan_mean"], [pan.mean()], rtol=1e-12)
    np.testing.assert_allclose(st["pan_std"], [pan.std()], rtol=1e-12)
    samples[0]["lms"][1] = samples[1]["lms"][1] = samples[2]["lms"][1] = 0.5
    with pytest.raises(ValueError, match="constant"):
        band_statistics(samples)


def _scene_pair(tmp_path, seed=0):
    """A full-resolution folder of two PAN + MS .mat pairs (ratio 2, 3 bands, 8-bit)."""
    sio = pytest.importorskip("scipy.io", reason="scipy (the 'pan' extra) writes .mat files")
    rng = np.random.default_rng(seed)
    for k in (1, 2):
        ms = rng.integers(20, 200, (32, 32, 3)).astype(np.uint8)
        pan = np.repeat(np.repeat(ms.mean(-1), 2, 0), 2, 1).astype(np.uint8)
        sio.savemat(tmp_path / f"{k}_ms.mat", {"cropped_im": ms})
        sio.savemat(tmp_path / f"{k}_pan.mat", {"cropped_gray": pan})
    return tmp_path


@pytest.mark.parametrize("normalise", [True, False])
def test_run_folder_carries_the_statistics_and_reloads(tmp_path, normalise):
    (tmp_path / "d").mkdir()
    data = _scene_pair(tmp_path / "d")
    run = tmp_path / "run"
    # scene 1 trains (four 16x16 tiles of the 32x32 reduced scene), scene 2 validates
    res = train_pansharpen(data, run, steps=2, batch_size=2, n_feat=4, patch=16,
                           train_samples=[0], normalise=normalise, log=None)
    cfg = res["config"]
    assert (run / "config.yaml").is_file() and (run / "checkpoints").is_dir()
    assert cfg["train_index"] == "0" and cfg["task"] == "pansharpen"
    ds = PanCollection(data, dtype=torch.float64)
    if normalise:
        expected = band_statistics(patches(ds, None, 16, [0]))
        assert cfg["pan_statistics"].keys() == expected.keys()
        for key, values in expected.items():
            assert cfg["pan_statistics"][key] == pytest.approx(values, rel=1e-6)  # float32 tiles
    else:
        assert cfg["pan_statistics"] is None
    loaded = load_run(run, task="pansharpen")
    net = loaded.model
    assert isinstance(net, Standardised) == normalise and loaded.config.to_dict() == cfg
    s = ds[1]
    out = sharpen(net, s["pan"], s["lms"])
    assert out.shape == s["lms"].shape and torch.isfinite(out).all()
    assert res["final_l1"] > 0 and res["seconds"] > 0
