"""The two conventions of hyperleaf.metrics, the registry, and exactness on 8-bit images.

Expected values are worked out here from the definitions, by hand or with plain Python loops,
independently of the implementation (which filters whole images with SciPy).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hyperleaf import metrics as M
from hyperleaf.metrics import registry

F = np.array([[0, 0, 255, 255]] * 3, np.uint8)


def _window_stats(x, y, weights):
    """Weighted means, variances and covariance of two equal-size windows (plain loops)."""
    cells = [(i, j) for i in range(len(x)) for j in range(len(x[0]))]
    mx = sum(weights[i][j] * x[i][j] for i, j in cells)
    my = sum(weights[i][j] * y[i][j] for i, j in cells)
    vx = sum(weights[i][j] * (x[i][j] - mx) ** 2 for i, j in cells)
    vy = sum(weights[i][j] * (y[i][j] - my) ** 2 for i, j in cells)
    cxy = sum(weights[i][j] * (x[i][j] - mx) * (y[i][j] - my) for i, j in cells)
    return mx, my, vx, vy, cxy


def _ssim_formula(mx, my, vx, vy, cxy, c1, c2):
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def test_mi_mmif_is_in_nats():
    b = np.array([[0, 255, 0, 255]] * 3, np.uint8)  # independent of F
    # MI(F, F) = H(F) = ln 2 nats (two equally likely levels); MI(F, b) = 0
    assert M.mi(F, F, b, convention="mmif") == pytest.approx(math.log(2), abs=1e-12)
    assert M.mi(F, F, b) == pytest.approx(1.0, abs=1e-12)


def test_ssim_standard_one_window_by_hand():
    rng = np.random.default_rng(5)
    f, a, b = (rng.integers(0, 256, (11, 11)).astype(np.uint8) for _ in range(3))
    g = [math.exp(-((k - 5) ** 2) / (2 * 1.5**2)) for k in range(11)]
    total = sum(g)
    w = [[g[i] * g[j] / total**2 for j in range(11)] for i in range(11)]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    fl, al, bl = f.tolist(), a.tolist(), b.tolist()
    expected = sum(_ssim_formula(*_window_stats(fl, s, w), c1, c2) for s in (al, bl))
    assert M.ssim(f, a, b) == pytest.approx(expected, rel=1e-12)


def test_ssim_mmif_one_window_by_hand():
    # scikit-image defaults: 7x7 uniform window, sample covariance (n - 1), L = 2
    rng = np.random.default_rng(6)
    f, a, b = (rng.integers(0, 256, (7, 7)).astype(np.uint8) for _ in range(3))
    w = [[1 / 49] * 7 for _ in range(7)]
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    expected = 0.0
    for s in (a.tolist(), b.tolist()):
        mx, my, vx, vy, cxy = _window_stats(f.tolist(), s, w)
        expected += _ssim_formula(mx, my, vx * 49 / 48, vy * 49 / 48, cxy * 49 / 48, c1, c2)
    # mmif computes in float32, as the Evaluator's scikit-image does (the exact float32 path is
    # checked against scikit-image itself below): the float64 value to float32 rounding
    assert M.ssim(f, a, b, convention="mmif") == pytest.approx(expected, rel=1e-5)


def test_ssim_mmif_is_scikit_image_float32_path_exactly():
    """The Evaluator passes float32 images (0..255) to scikit-image's structural_similarity,
    which keeps float32 (>= 0.19) with the implicit data range 2 of float images (<= 0.19;
    given explicitly here, newer versions require it). Exact equality, per image, on images
    with flat regions (where float32 rounding decides)."""
    skm = pytest.importorskip("skimage.metrics", reason="scikit-image is not a hyperleaf "
                              "dependency; install it to compare with it")
    rng = np.random.default_rng(11)
    for _ in range(5):
        f, a, b = (rng.integers(0, 256, (40, 50)).astype(np.uint8) for _ in range(3))
        f[5:25, 10:40] = 77  # a flat block: C2 is tiny, float32 rounding decides there
        a[5:25, 10:40] = 77
        want = sum(skm.structural_similarity(f.astype(np.float32), s.astype(np.float32),
                                             data_range=2.0) for s in (a, b))
        assert M.ssim(f, a, b, convention="mmif") == want


def test_ssim_mmif_constant_images_luminance_only():
    f = np.full((9, 9), 100, np.uint8)
    g = np.full((9, 9), 140, np.uint8)
    c1 = (0.01 * 2) ** 2
    lum = (2 * 100 * 140 + c1) / (100**2 + 140**2 + c1)
    # float32 arithmetic, as the Evaluator's scikit-image: to float32 precision
    assert M.ssim(f, g, g, convention="mmif") == pytest.approx(2 * lum, rel=1e-7)


def test_psnr_mmif_peak_is_max_of_fused():
    f = np.array([[10, 20], [30, 40]], np.uint8)
    a = np.array([[12, 20], [30, 40]], np.uint8)  # MSE 1
    b = np.array([[10, 20], [30, 34]], np.uint8)  # MSE 9
    assert M.psnr(f, a, b, convention="mmif") == pytest.approx(10 * math.log10(40**2 / 5.0),
                                                               rel=1e-12)
    assert M.psnr(f, a, b) == pytest.approx(10 * math.log10(255**2 / 5.0), rel=1e-12)


def test_qabf_mmif_branch_where_gradients_are_equal():
    # f = a = b: every edge pixel has gA = gF > 0. standard: G = 1; mmif: G = gF (>= 255),
    # so its Q_g saturates at T_g.
    a = np.array([[0, 0, 255, 255]] * 4, np.uint8)
    qa = 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))
    assert M.qabf(a, a, a) == pytest.approx(0.9994 / (1 + math.exp(-15 * 0.5)) * qa, rel=1e-12)
    assert M.qabf(a, a, a, convention="mmif") == pytest.approx(0.9994 * qa, rel=1e-12)


def test_conventions_agree_on_the_shared_metrics():
    rng = np.random.default_rng(7)
    f, a, b = (rng.integers(0, 256, (48, 48)).astype(np.uint8) for _ in range(3))
    std = M.evaluate(f, ir=a, vis=b, metrics="all")
    mmif = M.evaluate(f, ir=a, vis=b, metrics="all", convention="mmif")
    differ = {"MI", "SSIM", "PSNR", "Qabf", "Nabf"}
    for name in std:
        if name not in differ:
            assert std[name] == mmif[name], name
    assert mmif["MI"] == pytest.approx(std["MI"] * math.log(2), rel=1e-12)
    with pytest.raises(ValueError, match="convention"):
        M.evaluate(f, ir=a, vis=b, convention="matlab")


def test_uint8_and_float_inputs_agree():
    rng = np.random.default_rng(8)
    f, a, b = (rng.integers(0, 256, (48, 48)).astype(np.uint8) for _ in range(3))
    exact = M.evaluate(f, ir=a, vis=b)
    scaled = M.evaluate(f.astype(np.float64) / 255, ir=a.astype(np.float64) / 255,
                        vis=b.astype(np.float64) / 255)
    for name, value in exact.items():
        assert scaled[name] == pytest.approx(value, rel=1e-12), name


def test_registry_names_are_case_insensitive_and_complete():
    assert registry.resolve(["qabf", "EN", "psnr", "en"]) == ("EN", "Qabf", "PSNR")
    assert registry.resolve(["fmi"]) == ("FMI_pixel", "FMI_gradient")
    assert registry.resolve(["qcb", "Q_CV"]) == ("Q_CB", "Q_CV")
    assert set(M.METRICS) <= set(registry.resolve(None))
    everything = registry.all_metrics()
    assert registry.resolve("all") == tuple(m.name for m in everything)
    for m in everything:
        assert m.reference and m.direction in ("↑", "↓"), m.name
    lower = {m.name for m in everything if not m.higher_is_better}
    assert lower == {"Nabf", "Q_CV", "CE", "RMSE"}
    with pytest.raises(ValueError, match="unknown metric 'XX'.*Qabf"):
        registry.resolve(["XX"])
    with pytest.raises(ValueError, match="several"):
        registry.get("FMI")
    with pytest.raises(ValueError, match="already"):
        registry.register("en", higher_is_better=True, reference="-")(lambda x, c: 0.0)


def test_evaluate_keeps_the_ten_by_default_and_accepts_any_case():
    rng = np.random.default_rng(9)
    f, a, b = (rng.integers(0, 256, (48, 48)).astype(np.uint8) for _ in range(3))
    assert list(M.evaluate(f, ir=a, vis=b)) == list(M.METRICS)
    assert list(M.evaluate(f, ir=a, vis=b, metrics=["ssim", "en"])) == ["EN", "SSIM"]


def test_equals_the_plain_transcription_to_1e10():
    # benchmarks/metrics_transcription.py: each metric on its own with 2-D convolve2d windows
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import metrics_transcription as plain

    rng = np.random.default_rng(21)
    f, a, b = (rng.integers(0, 256, (60, 70)).astype(np.uint8) for _ in range(3))
    a[10:40, 5:50] = 255  # flat, saturated regions: where VIF is ill-conditioned
    b[:20, :] = 17
    ours = M.evaluate(f, ir=a, vis=b)
    ref = plain.evaluate(*(x.astype(np.float64) for x in (f, a, b)))
    for name in M.METRICS:
        assert ours[name] == pytest.approx(ref[name], rel=1e-10, abs=0), name
