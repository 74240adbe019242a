"""The further fusion metrics (CC, SCC, EI, Nabf, FMI, MS-SSIM, Q_CB, Q_CV, CE) against values
worked out by hand or by plain-loop transcriptions of their definitions on tiny images."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest

from hyperleaf import metrics as M
from hyperleaf.metrics.fusion_extra import ms_ssim_scales


def _pearson(x, y):
    x, y = [float(v) for v in np.ravel(x)], [float(v) for v in np.ravel(y)]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    num = sum((p - mx) * (q - my) for p, q in zip(x, y))
    return num / math.sqrt(sum((p - mx) ** 2 for p in x) * sum((q - my) ** 2 for q in y))


def _rand(shape, seed, n=3):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape).astype(np.uint8) for _ in range(n)]


def _correlate_loops(img, kernel, pad):
    """``sum_kl K[k][l] x[i+k-r][j+l-r]`` with ``pad(i, j)`` outside the image."""
    h, w, r = len(img), len(img[0]), len(kernel) // 2
    out = [[0.0] * w for _ in range(h)]
    for i in range(h):
        for j in range(w):
            s = 0.0
            for k in range(len(kernel)):
                for m in range(len(kernel)):
                    y, x = i + k - r, j + m - r
                    v = img[y][x] if 0 <= y < h and 0 <= x < w else pad(y, x)
                    s += kernel[k][m] * v
            out[i][j] = s
    return out


SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
SOBEL_Y = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]


def test_cc_by_hand():
    f, a, b = _rand((5, 6), 10)
    assert M.cc(f, a, b) == pytest.approx((_pearson(a, f) + _pearson(b, f)) / 2, rel=1e-12)


def test_scc_by_hand():
    f, a, b = _rand((6, 7), 11)
    lap = [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]

    def hp(x):  # high-pass on the pixels whose 3x3 window lies inside the image
        full = _correlate_loops(x.tolist(), lap, lambda y, x: 0.0)
        return [row[1:-1] for row in full[1:-1]]

    expected = (_pearson(hp(a), hp(f)) + _pearson(hp(b), hp(f))) / 2
    assert M.scc(f, a, b) == pytest.approx(expected, rel=1e-12)


def test_ei_by_hand_with_replicated_borders():
    (f,) = _rand((4, 5), 12, 1)
    img = f.tolist()

    def edge(y, x):
        return img[min(max(y, 0), 3)][min(max(x, 0), 4)]

    gx = _correlate_loops(img, SOBEL_X, edge)
    gy = _correlate_loops(img, SOBEL_Y, edge)
    expected = sum(math.hypot(gx[i][j], gy[i][j]) for i in range(4) for j in range(5)) / 20
    assert M.ei(f) == pytest.approx(expected, rel=1e-12)


def test_nabf_by_hand():
    # f = 2a: every Sobel response doubles, orientations are kept, G^{AF} = 1/2 wherever a
    # has an edge and f's edges are stronger than both sources': Nabf = 1 - Q_g(1/2) Q_a(1).
    (a,) = _rand((6, 6), 13, 1)
    a = a // 2
    f = a * 2
    q = 0.9994 / (1 + math.exp(0.0)) * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert M.nabf(f, a, a) == pytest.approx(1 - q, rel=1e-12)
    assert M.qabf(f, a, a) == pytest.approx(q, rel=1e-12)
    # a fused image weaker than its sources adds no artefacts
    assert M.nabf(a, f, f) == 0.0


def test_ce_by_hand():
    a = np.array([[0, 0], [1, 1]], np.uint8)     # levels 0, 1 with 1/2, 1/2
    f = np.array([[0, 1], [1, 1]], np.uint8)     # 1/4, 3/4
    ce_a = 0.5 * math.log2(0.5 / 0.25) + 0.5 * math.log2(0.5 / 0.75)
    assert M.ce(f, a, f) == pytest.approx(ce_a / 2, rel=1e-12)
    assert M.ce(a, a, a) == 0.0


def test_ms_ssim_identical_constant_and_scales():
    rng = np.random.default_rng(14)
    a = rng.integers(0, 256, (44, 44)).astype(np.uint8)
    assert M.ms_ssim(a, a, a) == pytest.approx(2.0, rel=1e-12)
    # constant images: contrast-structure 1 at every scale, luminance at the coarsest;
    # 44 px gives 3 scales (44, 22, 11), weights renormalised over the first three
    f, g = np.full((44, 44), 100, np.uint8), np.full((44, 44), 140, np.uint8)
    c1 = (0.01 * 255) ** 2
    lum = (2 * 100 * 140 + c1) / (100**2 + 140**2 + c1)
    w3 = 0.3001 / (0.0448 + 0.2856 + 0.3001)
    assert M.ms_ssim(f, g, g) == pytest.approx(2 * lum**w3, rel=1e-12)
    assert ms_ssim_scales((176, 200)) == 5 and ms_ssim_scales((175, 400)) == 4
    assert ms_ssim_scales((11, 11)) == 1
    with pytest.raises(ValueError, match="11x11"):
        ms_ssim_scales((10, 40))


def _fmi_window(s, f):
    """One window pair's normalised MI, transcribed from Haghighat & Razian's fast-FMI with
    scalar loops (values in MATLAB's column-major order)."""
    if s == f:
        return 1.0

    def pdf(v):
        lo, hi = min(v), max(v)
        v = [1.0] * len(v) if hi == lo else [(x - lo) / (hi - lo) for x in v]
        return [x / sum(v) for x in v]

    ps, pf = pdf(s), pdf(f)
    n = len(ps)
    cs = [sum(ps[: i + 1]) for i in range(n)]
    cf = [sum(pf[: i + 1]) for i in range(n)]
    ms, mf = sum(ps) / n, sum(pf) / n
    num = sum((p - ms) * (q - mf) for p, q in zip(ps, pf))
    c = 0.0 if num == 0 else num / math.sqrt(sum((p - ms) ** 2 for p in ps)
                                             * sum((q - mf) ** 2 for q in pf))
    sd_s = math.sqrt(max(sum((i + 1) ** 2 * p for i, p in enumerate(ps))
                         - sum((i + 1) * p for i, p in enumerate(ps)) ** 2, 0))
    sd_f = math.sqrt(max(sum((i + 1) ** 2 * p for i, p in enumerate(pf))
                         - sum((i + 1) * p for i, p in enumerate(pf)) ** 2, 0))

    def bound(u, v):
        return min(u, v) if c >= 0 else max(u + v - 1, 0.0)

    if c == 0 or sd_s == 0 or sd_f == 0:
        k = 0.0
    else:
        cov = sum(bound(cf[i], cs[j]) - cf[i] * cs[j] for i in range(n) for j in range(n))
        k = c / (cov / (sd_f * sd_s))

    def cdf2(i, j):
        return 0.0 if i < 0 or j < 0 else bound(cf[i], cs[j])

    hj = 0.0
    for i in range(n):
        for j in range(n):
            rect = cdf2(i, j) - cdf2(i - 1, j) - cdf2(i, j - 1) + cdf2(i - 1, j - 1)
            p = k * rect + (1 - k) * pf[i] * ps[j]
            if p != 0:
                hj += (-p * cmath.log(p) / math.log(2)).real
    hs = -sum(p * math.log2(p) for p in ps if p)
    hf = -sum(p * math.log2(p) for p in pf if p)
    mi = hs + hf - hj
    return 0.0 if mi == 0 else 2 * mi / (hs + hf)


def _fmi_loops(f, a, b):
    h, w = f.shape
    vals = []
    for i in range(h - 2):
        for j in range(w - 2):
            def win(x, i=i, j=j):
                return [float(x[i + r, j + c]) for c in range(3) for r in range(3)]
            vals.append((_fmi_window(win(a), win(f)) + _fmi_window(win(b), win(f))) / 2)
    return sum(vals) / len(vals)


def test_fmi_pixel_and_gradient_against_loops():
    f, a, b = _rand((5, 6), 15)
    a[0, :3] = f[0, :3]  # some windows partly equal, one column flat
    a[:, 4] = 7
    assert M.fmi_pixel(f, a, b) == pytest.approx(_fmi_loops(f, a, b), rel=1e-12)
    grad = [np.gradient(x.astype(float), axis=1) for x in (f, a, b)]
    assert M.fmi_gradient(f, a, b) == pytest.approx(_fmi_loops(*grad), rel=1e-12)
    assert M.fmi_pixel(a, a, a) == 1.0


def _dft_filter(img, response):
    """``real(ifft2(fft2(img) * response))`` with explicit DFT sums."""
    h, w = len(img), len(img[0])
    spec = [[sum(img[y][x] * cmath.exp(-2j * math.pi * (u * y / h + v * x / w))
                 for y in range(h) for x in range(w)) * response[u][v]
             for v in range(w)] for u in range(h)]
    return [[(sum(spec[u][v] * cmath.exp(2j * math.pi * (u * y / h + v * x / w))
                  for u in range(h) for v in range(w)) / (h * w)).real
             for x in range(w)] for y in range(h)]


def _radius(h, w):
    def freq(k, n):  # signed frequency index of FFT bin k, in cycles per image
        return k if k < (n + 1) // 2 else k - n
    return [[math.hypot(freq(u, h) / 15.0, freq(v, w) / 15.0) for v in range(w)]
            for u in range(h)]


def test_q_cb_against_loops():
    f, a, b = _rand((6, 7), 16)
    r = _radius(6, 7)
    dog = [[math.exp(-(x / 15.3870) ** 2) - 0.7622 * math.exp(-(x / 1.3456) ** 2) for x in row]
           for row in r]

    def gauss(sigma):
        g = [math.exp(-((k - 15) ** 2) / (2 * sigma * sigma)) for k in range(31)]
        t = sum(g)
        return [[g[i] * g[j] / t**2 for j in range(31)] for i in range(31)]

    g1, g2 = gauss(2.0), gauss(4.0)

    def masked(img):
        x = _dft_filter(img.astype(float).tolist(), dog)
        near = _correlate_loops(x, g1, lambda y, x: 0.0)
        far = _correlate_loops(x, g2, lambda y, x: 0.0)
        out = []
        for rn, rf in zip(near, far):
            row = []
            for n, d in zip(rn, rf):
                c = abs(n / d - 1) if d != 0 else 0.0
                row.append(c**3 / (c * c + 1e-4))
            out.append(row)
        return out

    ca, cb, cf = masked(a), masked(b), masked(f)

    def keep(s, t):
        if s == 0 and t == 0:
            return 1.0
        return s / t if s < t else t / s

    total = 0.0
    for i in range(6):
        for j in range(7):
            sa, sb = ca[i][j] ** 2, cb[i][j] ** 2
            la = sa / (sa + sb) if sa + sb > 0 else 0.5
            total += la * keep(ca[i][j], cf[i][j]) + (1 - la) * keep(cb[i][j], cf[i][j])
    assert M.q_cb(f, a, b) == pytest.approx(total / 42, rel=1e-9)
    assert M.q_cb(a, a, a) == pytest.approx(1.0, rel=1e-12)


def test_q_cv_against_loops():
    f, a, b = _rand((18, 20), 17)  # blocks of 16x16, 16x4, 2x16, 2x4
    r = _radius(18, 20)
    csf = [[2.6 * (0.0192 + 0.114 * x) * math.exp(-((0.114 * x) ** 1.1)) for x in row]
           for row in r]

    def grad(img):
        x = img.astype(float).tolist()
        gx = _correlate_loops(x, SOBEL_X, lambda y, x: 0.0)
        gy = _correlate_loops(x, SOBEL_Y, lambda y, x: 0.0)
        return [[math.hypot(p, q) for p, q in zip(rx, ry)] for rx, ry in zip(gx, gy)]

    blocks = [(r0, c0) for r0 in (0, 16) for c0 in (0, 16)]

    def cells(r0, c0):
        return [(i, j) for i in range(r0, min(r0 + 16, 18)) for j in range(c0, min(c0 + 16, 20))]

    num = den = 0.0
    for s in (a, b):
        g = grad(s)
        d = _dft_filter((s.astype(float) - f).tolist(), csf)
        for r0, c0 in blocks:
            lam = sum(g[i][j] for i, j in cells(r0, c0))
            dist = sum(d[i][j] ** 2 for i, j in cells(r0, c0)) / len(cells(r0, c0))
            num += lam * dist
            den += lam
    assert M.q_cv(f, a, b) == pytest.approx(num / den, rel=1e-9)
    assert M.q_cv(a, a, a) == 0.0


def test_new_metrics_reject_bad_input():
    f, a, b = _rand((5, 6), 18)
    with pytest.raises(ValueError, match="differ in size"):
        M.cc(f, a[:4], b)
    with pytest.raises(ValueError, match="11x11"):
        M.ms_ssim(f, a, b)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.ce(f.astype(float), a, b)


# ------------------------------------------------------------------ issue 23, section 3


def _edge_q_loops(s, f):
    """Per-pixel Sobel strength of ``s`` and Xydeas-Petrovic Q^{SF} (standard: G = 1 where the
    strengths are equal), by loops."""
    sx, sy = _correlate_loops(s, SOBEL_X, lambda y, x: 0), _correlate_loops(s, SOBEL_Y,
                                                                           lambda y, x: 0)
    fx, fy = _correlate_loops(f, SOBEL_X, lambda y, x: 0), _correlate_loops(f, SOBEL_Y,
                                                                           lambda y, x: 0)
    h, w = len(s), len(s[0])
    g, gf, q = [[0.0] * w for _ in range(h)], [[0.0] * w for _ in range(h)], [[0.0] * w
                                                                              for _ in range(h)]
    for i in range(h):
        for j in range(w):
            gs = math.hypot(sx[i][j], sy[i][j])
            gff = math.hypot(fx[i][j], fy[i][j])
            a_s = math.pi / 2 if sx[i][j] == 0 else math.atan(sy[i][j] / sx[i][j])
            a_f = math.pi / 2 if fx[i][j] == 0 else math.atan(fy[i][j] / fx[i][j])
            ratio = 1.0 if gs == gff else (gff / gs if gs > gff else gs / gff)
            orient = 1 - abs(a_s - a_f) / (math.pi / 2)
            q[i][j] = (0.9994 / (1 + math.exp(-15 * (ratio - 0.5)))) * (
                0.9879 / (1 + math.exp(-22 * (orient - 0.8))))
            g[i][j], gf[i][j] = gs, gff
    return g, gf, q


def test_nabf_on_distinct_sources_against_loops():
    """Distinct sources, so that the artefact mask's AND (gF above *both* source strengths)
    and the per-source weights (1 - Q^{AF}) gA, (1 - Q^{BF}) gB are each exercised: an OR mask
    or swapped weights change the value."""
    for seed in (31, 32, 33):
        f, a, b = _rand((9, 11), seed)
        a = (a // 3).astype(np.uint8)  # weaker edges in a: f's edges exceed a's more often
        ga, gf, qa = _edge_q_loops(a.tolist(), f.tolist())
        gb, _, qb = _edge_q_loops(b.tolist(), f.tolist())
        num = den = 0.0
        n_and = n_or = 0
        for i in range(9):
            for j in range(11):
                den += ga[i][j] + gb[i][j]
                if gf[i][j] > ga[i][j] and gf[i][j] > gb[i][j]:
                    num += (1 - qa[i][j]) * ga[i][j] + (1 - qb[i][j]) * gb[i][j]
                    n_and += 1
                n_or += gf[i][j] > ga[i][j] or gf[i][j] > gb[i][j]
        assert 0 < n_and < n_or  # the two masks differ on these images
        assert M.nabf(f, a, b) == pytest.approx(num / den, rel=1e-12)
        assert M.nabf(f, b, a) == pytest.approx(num / den, rel=1e-12)


def _ms_ssim_loops(f, s, weights):
    from scipy.signal import correlate2d

    t = np.arange(11) - 5
    w = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f, s = f.astype(float), s.astype(float)
    value = 1.0
    for j, wj in enumerate(weights):
        mf, ms = correlate2d(f, w, "valid"), correlate2d(s, w, "valid")
        vf = correlate2d(f * f, w, "valid") - mf * mf
        vs = correlate2d(s * s, w, "valid") - ms * ms
        cov = correlate2d(f * s, w, "valid") - mf * ms
        cs = (2 * cov + c2) / (vf + vs + c2)
        if j == len(weights) - 1:
            value *= float((cs * (2 * mf * ms + c1) / (mf * mf + ms * ms + c1)).mean()) ** wj
        else:
            value *= float(cs.mean()) ** wj
            h, ww = f.shape[0] // 2 * 2, f.shape[1] // 2 * 2
            f = f[:h, :ww].reshape(h // 2, 2, ww // 2, 2).mean(axis=(1, 3))
            s = s[:h, :ww].reshape(h // 2, 2, ww // 2, 2).mean(axis=(1, 3))
    return value


def test_ms_ssim_five_scales_uses_the_published_weights_as_they_are():
    """Wang's code multiplies with the published weights, which sum to 1.0001; only fewer
    scales renormalise."""
    rng = np.random.default_rng(41)
    base = rng.normal(size=(180, 184)).cumsum(0).cumsum(1)
    f = np.round(255 * (base - base.min()) / np.ptp(base)).astype(np.uint8)
    a = np.clip(f.astype(int) + rng.integers(-20, 21, f.shape), 0, 255).astype(np.uint8)
    published = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    assert sum(published) == pytest.approx(1.0001)
    want = _ms_ssim_loops(f, a, published)
    assert M.ms_ssim(f, a, a) == pytest.approx(2 * want, rel=1e-12)
    renormalised = _ms_ssim_loops(f, a, [w / sum(published) for w in published])
    assert abs(2 * renormalised - M.ms_ssim(f, a, a)) > 1e-6  # the two are distinguishable


def test_vif_of_a_flat_source_is_one_as_the_evaluator():
    rng = np.random.default_rng(42)
    f = rng.integers(0, 256, (48, 50)).astype(np.uint8)
    flat = np.full((48, 50), 90, np.uint8)
    b = rng.integers(0, 256, (48, 50)).astype(np.uint8)
    for conv in ("standard", "mmif"):
        with_flat = M.vif(f, flat, b, convention=conv)
        assert with_flat == pytest.approx(1.0 + M.vif(f, b, b, convention=conv) / 2, rel=1e-12)


def test_psnr_mmif_of_an_all_black_fused_image_is_minus_infinity():
    black = np.zeros((8, 8), np.uint8)
    a = np.full((8, 8), 10, np.uint8)
    assert M.psnr(black, a, a, convention="mmif") == -math.inf
    assert M.psnr(black, black, black, convention="mmif") == math.inf
    assert M.psnr(black, a, a) == pytest.approx(10 * math.log10(255**2 / 100), rel=1e-12)


def test_errors_name_the_pair_and_the_metric(tmp_path):
    from PIL import Image

    from hyperleaf.io import ImagePair
    from hyperleaf.metrics.folder import evaluate_pair

    img = np.zeros((20, 20), np.uint8)
    for name in ("ir.png", "vis.png", "x.png"):
        Image.fromarray(img).save(tmp_path / name)
    pair = ImagePair("x", ir=tmp_path / "ir.png", vis=tmp_path / "vis.png")
    with pytest.raises(ValueError, match=r"pair 'x' \(fused .*x\.png\): VIF: VIF needs images "
                                         r"of at least 41x41"):
        evaluate_pair(tmp_path, pair, ("EN", "VIF"))


def test_mmif_reads_colour_as_the_evaluators_rounded_luminance(tmp_path):
    from PIL import Image

    from hyperleaf.metrics.folder import _read_mmif

    rng = np.random.default_rng(43)
    rgb = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    got = _read_mmif(tmp_path / "c.png")
    c = rgb.astype(int)
    exact = (299 * c[..., 0] + 587 * c[..., 1] + 114 * c[..., 2]) / 1000
    assert got.dtype == np.uint8
    assert np.abs(got - exact).max() <= 0.5 + 1e-4  # rounded to the nearest level
