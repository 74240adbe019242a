"""hyperleaf.metrics against values worked out by hand on tiny images.

Expected values are computed here from the definitions with plain Python loops / closed forms,
independently of the implementation (which vectorises or calls torchmetrics).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hyperleaf import metrics as M

F = np.array([[0, 0, 255, 255], [0, 0, 255, 255], [0, 0, 255, 255]], np.uint8)


def test_en_two_equal_levels_is_one_bit():
    assert M.en(F) == pytest.approx(1.0)
    # four levels with probabilities 1/2, 1/4, 1/8, 1/8 -> 1.75 bits
    img = np.array([[0] * 4 + [1] * 2 + [2, 3]], np.uint8).reshape(2, 4)
    assert M.en(img) == pytest.approx(1.75)


def test_sd_sf_ag_by_hand():
    x = np.array([[0, 10, 40], [20, 20, 20]], np.uint8)
    vals = [0, 10, 40, 20, 20, 20]
    mean = sum(vals) / 6
    assert M.sd(x) == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in vals) / 6))
    # SF: horizontal diffs 10, 30, 0, 0; vertical diffs 20, 10, -20
    rf = (100 + 900 + 0 + 0) / 4
    cf = (400 + 100 + 400) / 3
    assert M.sf(x) == pytest.approx(math.sqrt(rf + cf))
    # AG with central differences (one-sided at borders)
    gx = [[10, 20, 30], [0, 0, 0]]
    gy = [[20, 10, -20], [20, 10, -20]]
    ag = sum(math.sqrt((gx[i][j] ** 2 + gy[i][j] ** 2) / 2) for i in range(2) for j in range(3))
    assert M.ag(x) == pytest.approx(ag / 6)


def test_float_input_is_scaled_and_validated():
    assert M.sd(F.astype(np.float32) / 255) == pytest.approx(M.sd(F))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.sd(np.full((3, 3), 1.5))
    with pytest.raises(ValueError, match="2-D"):
        M.en(np.zeros((3,)))


def test_mi_by_hand():
    a = F.copy()  # identical to F: MI = H(F) = 1 bit
    b = np.array([[0, 255, 0, 255]] * 3, np.uint8)  # independent of F: MI = 0
    assert M.mi(F, a, b) == pytest.approx(1.0, abs=1e-6)
    # partially dependent: joint over pairs (f, c)
    c = np.array([[0, 0, 0, 255]] * 3, np.uint8)
    # joint p: (0,0)=1/2, (255,0)=1/4, (255,255)=1/4; pf = (1/2,1/2), pc = (3/4,1/4)
    mi = 0.5 * math.log2(0.5 / (0.5 * 0.75)) + 0.25 * math.log2(0.25 / (0.5 * 0.75)) \
        + 0.25 * math.log2(0.25 / (0.5 * 0.25))
    assert M.mi(F, c, b) == pytest.approx(mi, abs=1e-6)


def _pearson(x, y):
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    mx, my = sum(x) / len(x), sum(y) / len(y)
    num = sum((p - mx) * (q - my) for p, q in zip(x, y))
    den = math.sqrt(sum((p - mx) ** 2 for p in x) * sum((q - my) ** 2 for q in y))
    return num / den


def test_scd_by_hand():
    rng = np.random.default_rng(0)
    f, a, b = (rng.integers(0, 256, (5, 6)).astype(np.uint8) for _ in range(3))
    fa, ff, fb = (x.astype(float) for x in (a, f, b))
    expected = _pearson(ff - fb, fa) + _pearson(ff - fa, fb)
    assert M.scd(f, a, b) == pytest.approx(expected, rel=1e-9)


def test_psnr_by_hand():
    f = np.array([[10, 20], [30, 40]], np.uint8)
    a = np.array([[12, 20], [30, 40]], np.uint8)  # MSE 1
    b = np.array([[10, 20], [30, 34]], np.uint8)  # MSE 9
    assert M.psnr(f, a, b) == pytest.approx(10 * math.log10(255**2 / 5.0), rel=1e-6)


def test_ssim_identical_and_constant_shift():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (32, 32)).astype(np.uint8)
    assert M.ssim(a, a, a) == pytest.approx(2.0, abs=1e-6)
    # constant images c1, c2: SSIM reduces to the luminance term (2 c1 c2 + C1)/(c1^2 + c2^2 + C1)
    c1, c2, k = 100.0, 140.0, (0.01 * 255) ** 2
    f = np.full((32, 32), 100, np.uint8)
    g = np.full((32, 32), 140, np.uint8)
    lum = (2 * c1 * c2 + k) / (c1**2 + c2**2 + k)
    assert M.ssim(f, g, g) == pytest.approx(2 * lum, rel=1e-5)


def test_qabf_by_hand():
    # a vertical step edge: Sobel gx inside = 4 * 255 at the two columns beside the step
    a = np.array([[0, 0, 255, 255]] * 4, np.uint8)
    assert M.qabf(a, a, a) == pytest.approx(0.9994 / (1 + math.exp(-15 * 0.5)) * 0.9879
                                             / (1 + math.exp(-22 * 0.2)), rel=1e-9)
    # f keeps the edge at half strength, same orientation: per-pixel G = 0.5 everywhere
    # where a has gradient (zero padding gives borders their own values, all scaled by 0.5)
    f = np.where(a > 0, 127.5, 0.0) / 255.0
    qg = 0.9994 / (1 + math.exp(-15 * (0.5 - 0.5)))
    qa = 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))
    assert M.qabf(f, a, a) == pytest.approx(qg * qa, rel=1e-9)


def test_vif_identical_is_one_each_and_needs_41px():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (48, 48)).astype(np.uint8)
    assert M.vif(a, a, a) == pytest.approx(2.0, rel=1e-6)
    with pytest.raises(ValueError, match="41"):
        M.vif(a[:20, :20], a[:20, :20], a[:20, :20])


def test_evaluate_all_and_subset():
    rng = np.random.default_rng(3)
    f, a, b = (rng.random((48, 48)) for _ in range(3))
    out = M.evaluate(f, ir=a, vis=b)
    assert list(out) == list(M.METRICS)
    assert all(math.isfinite(v) for v in out.values())
    assert out["EN"] == pytest.approx(M.en(f))
    assert list(M.evaluate(f, ir=a, vis=b, metrics=("Qabf", "EN"))) == ["EN", "Qabf"]
    with pytest.raises(ValueError, match="unknown"):
        M.evaluate(f, ir=a, vis=b, metrics=("XX",))
    with pytest.raises(ValueError, match="differ in size"):
        M.mi(f, a[:40], b)


def test_evaluate_takes_the_sources_by_keyword_and_the_old_call_still_works():
    import warnings

    rng = np.random.default_rng(4)
    f, a, b = (rng.random((48, 48)) for _ in range(3))
    new = M.evaluate(f, ir=a, vis=b, metrics="all", convention="mmif")
    with pytest.warns(DeprecationWarning, match=r"evaluate: passing ir, vis, metrics, "
                                                r"convention by position is deprecated; use "
                                                r"evaluate\(fused, ir=\.\.\., vis=\.\.\."):
        old = M.evaluate(f, a, b, "all", "mmif")
    assert old == new
    with pytest.warns(DeprecationWarning):
        assert M.evaluate(f, a, b, convention="mmif", metrics="all") == new
    with pytest.raises(TypeError, match="ir and vis are required keywords"):
        M.evaluate(f, vis=b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(TypeError, match="got ir both by position and by keyword"):
            M.evaluate(f, a, ir=a, vis=b)
        with pytest.raises(TypeError, match="at most 4 arguments"):
            M.evaluate(f, a, b, "all", "mmif", 5)
    # the old public path is the same function
    from hyperleaf.metrics.fusion import evaluate

    assert M.evaluate is evaluate


def test_every_two_source_metric_is_symmetric_in_its_sources():
    """The one-metric helpers keep ``(f, a, b)`` positional: swapping a and b cannot change a
    value (float64, to 1e-12 relative), both conventions."""
    from hyperleaf.metrics.registry import all_metrics

    rng = np.random.default_rng(5)
    f, a, b = (rng.random((48, 48)) for _ in range(3))
    for conv in ("standard", "mmif"):
        one = M.evaluate(f, ir=a, vis=b, metrics="all", convention=conv)
        two = M.evaluate(f, ir=b, vis=a, metrics="all", convention=conv)
        for m in all_metrics():
            assert two[m.name] == pytest.approx(one[m.name], rel=1e-12, abs=1e-12), (m.name,
                                                                                  conv)


def test_image_pair_modalities_are_keywords():
    from pathlib import Path

    from hyperleaf.io import ImagePair

    p = ImagePair("8", ir=Path("IR8.png"), vis=Path("VIS8.png"))
    assert (p.name, p.ir.name, p.vis.name) == ("8", "IR8.png", "VIS8.png")
    with pytest.warns(DeprecationWarning, match=r"ImagePair: passing ir, vis by position"):
        assert ImagePair("8", Path("IR8.png"), Path("VIS8.png")) == p
    with pytest.raises(TypeError, match="ir and vis are required keywords"):
        ImagePair("8", ir=Path("IR8.png"))
    with pytest.raises(AttributeError):
        p.ir = Path("x")  # still frozen
