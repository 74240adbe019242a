"""Classical baselines: identities each method must satisfy, and a synthetic scene where the
PAN carries the MS's missing detail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperleaf.pansharpen import METHODS, fuse, interp23
from hyperleaf.pansharpen import metrics as pm

F64 = torch.float64


def _scene(seed=0, n=1, c=4, size=64):
    """Scenes of discs shared by all bands (band-dependent brightness, as real bands are
    correlated) plus a little noise; the PAN is the band mean (a perfect PAN)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(size, dtype=F64).view(size, 1)
    x = torch.arange(size, dtype=F64).view(1, size)
    gt = []
    for _ in range(n):
        img = 0.2 + 0.1 * torch.rand(c, 1, 1, generator=g, dtype=F64).expand(c, size, size)
        for _disc in range(4):
            a, b, r = torch.rand(3, generator=g, dtype=F64)
            disc = ((y - size * a) ** 2 + (x - size * b) ** 2 < (size * (0.1 + 0.15 * r)) ** 2)
            img = img + 0.3 * torch.rand(c, 1, 1, generator=g, dtype=F64) * disc
        gt.append(img + 0.01 * torch.rand(c, size, size, generator=g, dtype=F64))
    gt = torch.stack(gt)
    return gt, gt.mean(1, keepdim=True)


def _inputs(seed=0, n=1):
    """(gt, pan, ms, lms): the MS is gt through QuickBird's MTF, decimated by 4."""
    from hyperleaf.pansharpen import decimate, mtf_filter

    gt, pan = _scene(seed, n)
    ms = decimate(mtf_filter(gt, (0.34, 0.32, 0.30, 0.22), 4), 4)
    return gt, pan, ms, interp23(ms, 4)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_shape_dtype_batch(method):
    gt, pan, ms, lms = _inputs(n=2)
    out = fuse(method, pan, lms, ms, 4, "QB")
    assert out.shape == lms.shape and out.dtype == F64 and torch.isfinite(out).all()
    one = fuse(method, pan[1:], lms[1:], ms[1:], 4, "QB")
    torch.testing.assert_close(out[1:], one, rtol=1e-10, atol=1e-12)  # per-image statistics
    unbatched = fuse(method, pan[0], lms[0], ms[0], 4, "QB")
    torch.testing.assert_close(unbatched, out[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "EXP"])
def test_every_method_beats_exp_when_the_pan_holds_the_detail(method):
    gt, pan, ms, lms = _inputs(seed=3)
    exp = pm.ergas(gt, lms, 4)
    assert pm.ergas(gt, fuse(method, pan, lms, ms, 4, "QB"), 4) < exp


def test_exp_is_the_interpolated_ms():
    _, pan, ms, lms = _inputs()
    assert torch.equal(fuse("EXP", pan, lms, ms, 4, "QB"), lms)


def test_brovey_keeps_spectral_angles_and_ihs_keeps_band_differences():
    _, pan, ms, lms = _inputs(seed=1)
    assert pm.sam(lms, fuse("Brovey", pan, lms, ms, 4, "QB")) == pytest.approx(0, abs=1e-5)
    ihs = fuse("IHS", pan, lms, ms, 4, "QB")
    torch.testing.assert_close(ihs[:, 1:] - ihs[:, :1], lms[:, 1:] - lms[:, :1])


@pytest.mark.parametrize("method", ["Brovey", "IHS", "GS"])
def test_a_pan_equal_to_the_intensity_changes_nothing(method):
    _, _, ms, lms = _inputs(seed=2)
    intensity = lms.mean(1, keepdim=True)
    torch.testing.assert_close(fuse(method, intensity, lms, ms, 4, "QB"), lms, rtol=1e-10,
                               atol=1e-12)


def test_pca_with_its_own_first_component_changes_nothing():
    _, _, ms, lms = _inputs(seed=4)
    n, c, h, w = lms.shape
    x = (lms - lms.mean((-2, -1), keepdim=True)).reshape(c, h * w)
    _, vecs = torch.linalg.eigh(x @ x.T)
    pc1 = (vecs[:, -1] @ x).reshape(1, 1, h, w)
    torch.testing.assert_close(fuse("PCA", 3 * pc1 + 7, lms, ms, 4, "QB"), lms, rtol=1e-9,
                               atol=1e-10)


@pytest.mark.parametrize("method", ["MTF-GLP", "MTF-GLP-HPM"])
def test_glp_methods_inject_nothing_from_a_flat_pan(method):
    from hyperleaf.pansharpen import get_sensor, toolbox_mtf_kernel

    _, pan, ms, lms = _inputs(seed=5)
    flat = torch.full_like(pan, 0.5)
    # the toolbox's genMTF kernels have a DC gain below 1: the flat PAN (equalised to each
    # band's mean m) leaves m (1 - dc) in P - P_LP and 1 / dc in P / P_LP
    dc = torch.tensor([float(toolbox_mtf_kernel(g, 4).sum())
                       for g in get_sensor("QB").ms_gains], dtype=lms.dtype).view(1, -1, 1, 1)
    if method == "MTF-GLP-HPM":
        want = lms / dc
    else:
        want = lms + lms.mean((-2, -1), keepdim=True) * (1 - dc)
    torch.testing.assert_close(fuse(method, flat, lms, ms, 4, "QB"), want, rtol=1e-9, atol=1e-9)


def test_fuse_errors():
    _, pan, ms, lms = _inputs()
    with pytest.raises(ValueError, match="method: unknown 'SFIM'"):
        fuse("SFIM", pan, lms, ms)
    with pytest.raises(ValueError, match="pan .* must be \\(N, 1, H, W\\)"):
        fuse("IHS", lms, lms, ms)
    with pytest.raises(ValueError, match="shrunk by ratio 2"):
        fuse("GSA", pan, lms, ms, 2, "QB")
    with pytest.raises(ValueError, match="has 4 MS bands, the image has 4|8"):
        fuse("GSA", pan, lms, ms, 4, "WV3")


# ----------------------------------------------------------------------------- toolbox names


def _np_prctile(v, p):
    """MATLAB prctile of a vector: sorted values at 100 (i - 0.5) / n, linear in between."""
    v = np.sort(np.ravel(v))
    n = v.size
    pts = 100 * (np.arange(1, n + 1) - 0.5) / n
    return float(np.interp(p, pts, v))


def _np_glp_low(img, gain):
    """PAN_LP of the toolbox's MTF-GLP family: genMTF filter, nearest decimation, 23 taps."""
    from hyperleaf.pansharpen import decimate, toolbox_mtf_kernel

    k = toolbox_mtf_kernel(gain, 4).numpy()
    p = np.pad(img, 20, mode="edge")
    low = np.zeros_like(img)
    for i in range(41):
        for j in range(41):
            low += k[i, j] * p[i:i + img.shape[0], j:j + img.shape[1]]
    t = decimate(torch.from_numpy(low)[None, None], 4)
    return interp23(t, 4)[0, 0].numpy()


def test_mtf_glp_unit_gains_and_fs_regression_as_the_toolbox():
    _, pan, ms, lms = _inputs(seed=7)
    gains = (0.34, 0.32, 0.30, 0.22)
    glp = fuse("MTF-GLP", pan, lms, ms, 4, "QB")[0].numpy()
    fs = fuse("MTF-GLP-FS", pan, lms, ms, 4, "QB")[0].numpy()
    P, L = pan[0, 0].numpy(), lms[0].numpy()
    for b, g in enumerate(gains):
        # MTF_GLP.m: equalise the PAN to the band (std2: N - 1), unit gain
        eq = (P - P.mean()) * (L[b].std(ddof=1) / P.std(ddof=1)) + L[b].mean()
        np.testing.assert_allclose(glp[b], L[b] + eq - _np_glp_low(eq, g), rtol=0, atol=1e-12)
        # MTF_GLP_FS.m: no equalisation, g = cov(MS, PAN) / cov(PAN_LP, PAN)
        low = _np_glp_low(P, g)
        gfs = np.cov(L[b].ravel(), P.ravel())[0, 1] / np.cov(low.ravel(), P.ravel())[0, 1]
        np.testing.assert_allclose(fs[b], L[b] + gfs * (P - low), rtol=0, atol=1e-12)


def test_bt_h_as_broveyreghazemin():
    from hyperleaf.pansharpen import lp_filter_gauss
    from hyperleaf.pansharpen.baselines import prctile

    _, pan, ms, lms = _inputs(seed=8)
    L, P = lms[0].numpy(), pan[0, 0].numpy()
    for b in range(4):
        assert float(prctile(lms[0, b], 1)) == pytest.approx(_np_prctile(L[b], 1), abs=1e-15)
    haze = np.array([0.95, 0.45, 0.40, 0.05]) * np.array([_np_prctile(L[b], 1) for b in range(4)])
    plp = lp_filter_gauss(pan, 4)[0, 0].numpy()
    alpha = np.linalg.lstsq(L.reshape(4, -1).T, plp.ravel(), rcond=None)[0]
    i = sum(alpha[b] * (L[b] - haze[b]) for b in range(4))
    p = (P - plp.mean()) * (i.std(ddof=1) / plp.std(ddof=1)) + i.mean()
    want = np.stack([np.maximum(L[b] - haze[b], 0) * p / (i + np.finfo(float).eps) + haze[b]
                     for b in range(4)])
    np.testing.assert_allclose(fuse("BT-H", pan, lms, ms, 4, "QB")[0].numpy(), want, rtol=0,
                               atol=1e-10)


@pytest.mark.shared
def test_pleiades_baselines_follow_the_toolbox_ordering(shared_dir):
    """Reduced-resolution Pleiades scene (the CDIF file: gt, lrms, pan), toolbox indices
    (Q2n on the 10-bit digital numbers): EXP is the worst of the toolbox methods; the
    relations the 2021 benchmark reports hold: GSA > GS, MTF-GLP-FS > MTF-GLP, BT-H > GSA."""
    from hyperleaf.data import PanCollection

    ds = PanCollection(shared_dir / "data" / "pansharpening" / "pleiades" / "Pleiades_test.mat",
                       scale=1023, dtype=F64)
    s = ds[0]
    names = ("EXP", "GS", "GSA", "BT-H", "BDSD", "PRACS", "MTF-GLP", "MTF-GLP-FS",
             "MTF-GLP-HPM")
    t = {m: pm.reduced_resolution(s["gt"], fuse(m, s["pan"], s["lms"], s["ms"], 4), 4,
                                  scale=1023) for m in names}
    for m in names[1:]:
        assert t[m]["ERGAS"] < t["EXP"]["ERGAS"] and t[m]["Q2n"] > t["EXP"]["Q2n"], m
    for better, worse in (("GSA", "GS"), ("MTF-GLP-FS", "MTF-GLP"), ("BT-H", "GSA")):
        assert t[better]["ERGAS"] < t[worse]["ERGAS"], (better, worse)
        assert t[better]["Q2n"] > t[worse]["Q2n"], (better, worse)


def test_gs_and_gsa_as_the_toolbox_structure():
    """GS.m: PAN equalised to the mean-free band mean I0, g_b = cov(I0, MS_b) / var(I0), final
    mean equalisation. GSA.m's structure: weights of [MS_LR - mean, 1] regressing the low-passed,
    decimated mean-free PAN; no equalisation (low-pass: LPfilterGauss + nearest decimation)."""
    from hyperleaf.pansharpen import decimate, lp_filter_gauss

    _, pan, ms, lms = _inputs(seed=9)
    L, P, M = lms[0].numpy(), pan[0, 0].numpy(), ms[0].numpy()
    L0 = L - L.mean((1, 2), keepdims=True)

    def fuse_cs(i0, p):
        out = []
        for b in range(4):
            g = np.cov(i0.ravel(), L0[b].ravel())[0, 1] / np.var(i0.ravel(), ddof=1)
            f = L0[b] + g * (p - i0)
            out.append(f - f.mean() + L[b].mean())
        return np.stack(out)

    i0 = L.mean(0) - L.mean()
    p = (P - P.mean()) * (i0.std(ddof=1) / P.std(ddof=1)) + i0.mean()
    np.testing.assert_allclose(fuse("GS", pan, lms, ms, 4)[0].numpy(), fuse_cs(i0, p), rtol=0,
                               atol=1e-12)
    p0 = P - P.mean()
    plr = decimate(lp_filter_gauss(torch.from_numpy(p0)[None, None], 4), 4)[0, 0].numpy()
    M0 = M - M.mean((1, 2), keepdims=True)
    a = np.concatenate([M0.reshape(4, -1), np.ones((1, M0[0].size))]).T
    w = np.linalg.lstsq(a, plr.ravel(), rcond=None)[0]
    i = sum(w[b] * L0[b] for b in range(4)) + w[4]
    np.testing.assert_allclose(fuse("GSA", pan, lms, ms, 4)[0].numpy(),
                               fuse_cs(i - i.mean(), p0), rtol=0, atol=1e-12)


def test_pracs_as_the_toolbox():
    """PRACS.m, line by line in NumPy (regress: least squares with an offset column; corr2;
    std/std2 with N - 1; imresize bicubic down and up)."""
    from hyperleaf.pansharpen import bicubic

    _, pan, ms, lms = _inputs(seed=10)
    L, P = lms[0].numpy(), pan[0, 0].numpy()
    nb, n, m = L.shape

    def low(img):
        t = torch.from_numpy(img)[None, None]
        return bicubic(bicubic(t, size=(n // 4, m // 4)), size=(n, m))[0, 0].numpy()

    def corr2(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    hm = np.stack([np.maximum((L[k] - L[k].mean() + P.mean() / P.std(ddof=1) * L[k].std(ddof=1))
                              * P.std(ddof=1) / L[k].std(ddof=1), 0) for k in range(nb)])
    bb = np.concatenate([np.ones((n * m, 1)), hm.reshape(nb, -1).T], 1)
    i_l = (bb @ np.linalg.lstsq(bb, low(P).ravel(), rcond=None)[0]).reshape(n, m)
    i_h = np.stack([corr2(i_l, hm[k]) * P + (1 - corr2(i_l, hm[k])) * hm[k] for k in range(nb)])
    i_lp = np.stack([(bb @ np.linalg.lstsq(bb, low(i_h[k]).ravel(), rcond=None)[0]).reshape(n, m)
                     for k in range(nb)])
    delta = i_h - i_lp - (i_h.mean((1, 2)) - i_lp.mean((1, 2)))[:, None, None]
    aux3 = np.mean([L[k].std(ddof=1) for k in range(nb)])
    w = [0.95 * corr2(i_lp[k], L[k]) * L[k].std(ddof=1) / aux3 for k in range(nb)]
    li = np.stack([1 - np.abs(1 - corr2(i_l, L[k]) * L[k] / i_lp[k]) for k in range(nb)])
    want = np.stack([L[k] + w[k] * li[k] * delta[k] for k in range(nb)])
    np.testing.assert_allclose(fuse("PRACS", pan, lms, ms, 4)[0].numpy(), want, rtol=0,
                               atol=1e-10)


def test_bdsd_as_the_toolbox_global_estimation():
    """BDSD.m with S = the image size (one block), in NumPy: MTF_PAN + pixels 3:ratio:end,
    imresize(I_MS, 1/ratio), MTF at that scale, gamma = (Hd'Hd) \\ Hd' (ms_orig - ms_LP_d)."""
    from hyperleaf.pansharpen import bicubic, get_sensor, toolbox_mtf_kernel

    _, pan, ms, lms = _inputs(seed=11)
    s = get_sensor("QB")
    L, P = lms[0].numpy(), pan[0, 0].numpy()

    def imfilter(img, k):
        p = np.pad(img, 20, mode="edge")
        out = np.zeros_like(img)
        for i in range(41):
            for j in range(41):
                out += k[i, j] * p[i:i + img.shape[0], j:j + img.shape[1]]
        return out

    pan_lp_d = imfilter(P, toolbox_mtf_kernel(s.pan_gain, 4).numpy())[2::4, 2::4]
    ms_orig = bicubic(lms, size=(16, 16))[0].numpy()
    ms_lp_d = np.stack([imfilter(ms_orig[k], toolbox_mtf_kernel(s.ms_gains[k], 4).numpy())
                        for k in range(4)])
    hd = np.concatenate([ms_lp_d.reshape(4, -1), pan_lp_d.reshape(1, -1)]).T
    b = np.linalg.solve(hd.T @ hd, hd.T)
    big = np.concatenate([L.reshape(4, -1), P.reshape(1, -1)]).T
    want = np.stack([L[k] + (big @ (b @ (ms_orig[k] - ms_lp_d[k]).ravel())).reshape(64, 64)
                     for k in range(4)])
    np.testing.assert_allclose(fuse("BDSD", pan, lms, ms, 4, "QB")[0].numpy(), want, rtol=0,
                               atol=1e-9)
