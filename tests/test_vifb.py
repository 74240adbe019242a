"""The ``vifb`` convention: VIFB's MATLAB metrics.

Each metric is checked against an independent transcription of VIFB's ``metrics*.m`` written
here as loops over pixels, windows and channels (as the MATLAB code is written), on small
random images, to float64 rounding (``rel=1e-9``); and, with ``--shared``, all 17 x 21 x 13
values VIFB published in ``data/vifb/published_metrics.csv``.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hyperleaf import metrics as M
from hyperleaf.metrics import vifb

RNG = np.random.default_rng(23)


def _img(h=21, w=26, c=3, lo=0, hi=256):
    shape = (h, w, c) if c else (h, w)
    return RNG.integers(lo, hi, shape, dtype=np.uint8)


def _smooth(h=24, w=30, c=3):
    """Random but spatially correlated images (so that gradients, SSIM and contrast vary)."""
    base = RNG.normal(size=(h + 4, w + 4, c or 1)).cumsum(0).cumsum(1)
    base = base[4:, 4:] - base[4:, 4:].min()
    img = np.round(255 * base / base.max()).astype(np.uint8)
    return img if c else img[..., 0]


# ------------------------------------------------------------------ transcriptions (loops)


def t_entropy(ch):
    counts = [0] * 256
    for v in ch.ravel():
        counts[int(math.floor(v))] += 1
    n = ch.size
    return -sum(c / n * math.log2(c / n) for c in counts if c)


def t_sf(f):
    """metricsSpatial_frequency.m: [m, n] = size(f) on an RGB array gives n = 3W."""
    wide = np.concatenate([f[..., k] for k in range(f.shape[2])], axis=1) if f.ndim == 3 else f
    m, n = wide.shape
    rf = sum((float(wide[i, j]) - float(wide[i, j - 1])) ** 2 for i in range(m)
             for j in range(1, n)) / (m * n)
    cf = sum((float(wide[i, j]) - float(wide[i - 1, j])) ** 2 for j in range(n)
             for i in range(1, m)) / (m * n)
    return math.sqrt(rf + cf)


def t_ag(ch):
    ch = ch.astype(float)
    r, c = ch.shape
    total = 0.0
    for i in range(r):
        for j in range(c):
            gx = (ch[i, min(j + 1, c - 1)] - ch[i, max(j - 1, 0)]) / (
                2.0 if 0 < j < c - 1 else 1.0)
            gy = (ch[min(i + 1, r - 1), j] - ch[max(i - 1, 0), j]) / (
                2.0 if 0 < i < r - 1 else 1.0)
            total += math.sqrt((gx * gx + gy * gy) / 2)
    return total / ((r - 1) * (c - 1))


def t_mse_vifb(a, f):
    return math.sqrt(float(((a.astype(float) - f.astype(float)) ** 2).sum())) / a.size


def t_mutinf(a, b):
    a, b = a.astype(float), b.astype(float)

    def q(x):
        lo, hi = x.min(), x.max()
        if hi == lo:
            return np.zeros(x.shape, int)
        y = (x - lo) / (hi - lo) * 255
        return np.array([[int(math.floor(v + 0.5)) for v in row] for row in y])

    qa, qb = q(a), q(b)
    hab = defaultdict(int)
    ha, hb = defaultdict(int), defaultdict(int)
    for u, v in zip(qa.ravel(), qb.ravel()):
        hab[(u, v)] += 1
        ha[u] += 1
        hb[v] += 1
    n = qa.size

    def ent(h):
        return -sum(c / n * math.log(c / n) for c in h.values())

    return ent(ha) + ent(hb) - ent(hab)


def t_ce(s, f):
    ps, pf = np.bincount(s.ravel(), minlength=256) / s.size, np.bincount(
        f.ravel().astype(int), minlength=256) / f.size
    return sum(ps[k] * math.log2(ps[k] / pf[k]) for k in range(256) if ps[k] and pf[k])


def t_sobel_same(x, kernel, pad):
    """filter2(kernel, x, 'same') (pad 'zero') or imfilter(..., 'replicate')."""
    h, w = x.shape
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            s = 0.0
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    ii, jj = i + di, j + dj
                    if pad == "zero" and not (0 <= ii < h and 0 <= jj < w):
                        continue
                    ii, jj = min(max(ii, 0), h - 1), min(max(jj, 0), w - 1)
                    s += kernel[di + 1][dj + 1] * x[ii, jj]
            out[i, j] = s
    return out


# conv2(x, h, 'same') is filter2 with h rotated by 180 degrees: these are metricsQabf.m's
# h3 and h1, rotated.
H3 = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
H1 = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]


def t_qabf(a, b, f):
    """metricsQabf.m's Qabf: every image times 255 (im2double of a double is the identity)."""

    def grad(x):
        x = 255.0 * x.astype(float)
        sx, sy = t_sobel_same(x, H3, "zero"), t_sobel_same(x, H1, "zero")
        g = np.sqrt(sx * sx + sy * sy)
        ang = np.empty_like(g)
        for (i, j), v in np.ndenumerate(sx):
            ang[i, j] = math.pi / 2 if v == 0 else math.atan(sy[i, j] / v)
        return g, ang

    ga, aa = grad(a)
    gb, ab = grad(b)
    gf, af = grad(f)

    def q(gs, as_):
        out = np.empty_like(gs)
        for (i, j), g in np.ndenumerate(gs):
            if g > gf[i, j]:
                r = gf[i, j] / g
            elif g == gf[i, j]:
                r = gf[i, j]
            else:
                r = g / gf[i, j]
            o = 1 - abs(as_[i, j] - af[i, j]) / (math.pi / 2)
            out[i, j] = (0.9994 / (1 + math.exp(-15 * (r - 0.5)))) * (
                0.9879 / (1 + math.exp(-22 * (o - 0.8))))
        return out

    return float((q(ga, aa) * ga + q(gb, ab) * gb).sum() / (ga + gb).sum())


def t_ssim(a, f):
    a, f = a.astype(float), f.astype(float)
    t = np.arange(11) - 5
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5**2))
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            wa, wf = a[i:i + 11, j:j + 11], f[i:i + 11, j:j + 11]
            ua, uf = (g * wa).sum(), (g * wf).sum()
            va, vf = (g * wa * wa).sum() - ua * ua, (g * wf * wf).sum() - uf * uf
            cov = (g * wa * wf).sum() - ua * uf
            vals.append((2 * ua * uf + c1) * (2 * cov + c2) / ((ua**2 + uf**2 + c1)
                                                                * (va + vf + c2)))
    return float(np.mean(vals))


def t_normalize1(x):
    x = x.astype(float)
    if x.max() == 0 and x.min() == 0:
        return x
    y = (x - x.min()) / (x.max() - x.min()) * 255
    return np.floor(y + 0.5)


def t_freqspace(n):
    return np.arange(-n, n - 1, 2) / n if n % 2 == 0 else np.arange(-n + 1, n, 2) / n


def t_filter_freq(x, response):
    """ifft2(ifftshift(fftshift(fft2(x)) .* response)), real part."""
    return np.real(np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(x)) * response)))


def t_qcv(a, b, f):
    a, b, f = t_normalize1(a), t_normalize1(b), t_normalize1(f)
    flt1 = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    flt2 = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]
    h, w = a.shape
    u, v = np.meshgrid(t_freqspace(w), t_freqspace(h))
    u, v = w / 8 * u, h / 8 * v
    r = np.sqrt(u * u + v * v)
    theta = 2.6 * (0.0192 + 0.144 * r) * np.exp(-(0.144 * r) ** 1.1)
    hb, wb = -(-h // 16), -(-w // 16)
    num = den = 0.0
    for s in (a, b):
        gx, gy = t_sobel_same(s, flt1, "zero"), t_sobel_same(s, flt2, "zero")
        g = np.sqrt(gx * gx + gy * gy)
        d = t_filter_freq(s - f, theta)
        for bi in range(hb):
            for bj in range(wb):
                gblock = np.zeros((16, 16))
                dblock = np.zeros((16, 16))
                part = g[bi * 16:(bi + 1) * 16, bj * 16:(bj + 1) * 16]
                gblock[:part.shape[0], :part.shape[1]] = part
                part = d[bi * 16:(bi + 1) * 16, bj * 16:(bj + 1) * 16]
                dblock[:part.shape[0], :part.shape[1]] = part
                lam = (gblock**5).sum()
                num += lam * (dblock**2).mean()
                den += lam
    return num / den


def t_qcb(a, b, f):
    from scipy.signal import correlate2d

    a, b, f = t_normalize1(a), t_normalize1(b), t_normalize1(f)
    h, w = a.shape
    u, v = np.meshgrid(t_freqspace(w), t_freqspace(h))
    r = np.sqrt((w / 30 * u) ** 2 + (h / 30 * v) ** 2)
    sd = np.exp(-(r / 15.3870) ** 2) - 0.7622 * np.exp(-(r / 1.3456) ** 2)
    x, y = np.meshgrid(np.arange(-15, 16), np.arange(-15, 16))

    def gauss(s):
        return np.exp(-(x * x + y * y) / (2 * s * s)) / (2 * math.pi * s * s)

    def contrast(img):
        im = t_filter_freq(img, sd)
        c = np.abs(correlate2d(im, gauss(2), mode="same") / correlate2d(im, gauss(4),
                                                                       mode="same") - 1)
        return c**3 / (c**2 + 1e-4)

    c1, c2, cf = contrast(a), contrast(b), contrast(f)
    q1 = np.where(c1 < cf, c1 / cf, cf / c1)
    q2 = np.where(c2 < cf, c2 / cf, cf / c2)
    l1 = c1 * c1 / (c1 * c1 + c2 * c2)
    return float((l1 * q1 + (1 - l1) * q2).mean())


def transcription(f, vi, ir):
    """VIFB's 13 metrics, channel by channel, from the loops above (RGB fused image)."""
    out = defaultdict(list)
    for k in range(3):
        fk, vk = f[..., k], vi[..., k]
        ik = ir[..., k] if ir.ndim == 3 else ir
        out["EN"].append(t_entropy(fk.astype(float)))
        out["SD"].append(float(np.sqrt(((fk - fk.mean()) ** 2).sum() / fk.size)))
        out["AG"].append(t_ag(fk))
        g = t_sobel_same(fk.astype(float), [[1, 2, 1], [0, 0, 0], [-1, -2, -1]], "replicate")
        g2 = t_sobel_same(fk.astype(float), [[1, 0, -1], [2, 0, -2], [1, 0, -1]], "replicate")
        out["EI"].append(float(np.sqrt(g * g + g2 * g2).mean()))
        out["CE"].append((t_ce(vk, fk) + t_ce(ik, fk)) / 2)
        out["MI"].append(t_mutinf(vk, fk) + t_mutinf(ik, fk))
        m = (t_mse_vifb(vk, fk) + t_mse_vifb(ik, fk)) / 2
        out["RMSE"].append(m)
        out["PSNR"].append(20 * math.log10(255 / math.sqrt(m)))
        out["Qabf"].append(t_qabf(vk, ik, fk))
        out["SSIM"].append(t_ssim(vk, fk) + t_ssim(ik, fk))
        out["Q_CV"].append(t_qcv(vk, ik, fk))
        out["Q_CB"].append(t_qcb(vk, ik, fk))
    res = {k: float(np.mean(v)) for k, v in out.items()}
    res["SF"] = t_sf(f)
    return res


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("ir_channels", [3, 0])
def test_every_metric_matches_a_transcription_of_vifb(ir_channels):
    f, vi, ir = _smooth(), _smooth(), _smooth(c=ir_channels)
    ours = vifb.score(f, vi=vi, ir=ir)
    assert tuple(ours) == vifb.VIFB_METRICS
    ref = transcription(f, vi, ir)
    for name in vifb.VIFB_METRICS:
        assert ours[name] == pytest.approx(ref[name], rel=1e-9, abs=1e-12), name


def test_grey_infrared_is_used_for_every_channel():
    f, vi, ir = _smooth(), _smooth(), _smooth(c=0)
    assert vifb.score(f, vi=vi, ir=ir) == vifb.score(f, vi=vi, ir=np.stack([ir] * 3, -1))


def test_matlab_rgb2gray_rounds_as_matlab():
    # MATLAB: rgb2gray(uint8(cat(3, 255, 0, 0))) = 76; pure green 150; pure blue 29; and
    # (100, 150, 200) -> 0.298936*100 + 0.587043*150 + 0.114021*200 = 140.75 -> 141.
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200]]], np.uint8)
    assert vifb.matlab_rgb2gray(rgb, rounded=True).tolist() == [[76.0, 150.0, 29.0, 141.0]]
    y = vifb.matlab_rgb2gray(rgb, rounded=False)
    assert y[0, 3] == pytest.approx(0.298936021293775 * 100 + 0.587043074451121 * 150
                                    + 0.114020904255103 * 200, abs=1e-12)


def test_grey_fused_image_uses_rounded_or_unrounded_luminance_as_vifb():
    f, vi, ir = _smooth(c=0), _smooth(), _smooth()
    ours = vifb.score(f, vi=vi, ir=ir)
    yr = {k: vifb.matlab_rgb2gray(s, rounded=True).astype(np.uint8) for k, s in
          (("vi", vi), ("ir", ir))}
    yu = {k: vifb.matlab_rgb2gray(s, rounded=False) for k, s in (("vi", vi), ("ir", ir))}
    # SSIM, CE, MI call rgb2gray on uint8 (rounded); PSNR/RMSE/Qabf on double (unrounded).
    assert ours["SSIM"] == pytest.approx(t_ssim(yr["vi"], f) + t_ssim(yr["ir"], f), rel=1e-9)
    assert ours["CE"] == pytest.approx((t_ce(yr["vi"], f) + t_ce(yr["ir"], f)) / 2, rel=1e-9)
    assert ours["MI"] == pytest.approx(t_mutinf(yr["vi"], f) + t_mutinf(yr["ir"], f), rel=1e-9)
    m = (t_mse_vifb(yu["vi"], f) + t_mse_vifb(yu["ir"], f)) / 2
    assert ours["RMSE"] == pytest.approx(m, rel=1e-12)
    assert ours["Qabf"] == pytest.approx(t_qabf(yu["vi"], yu["ir"], f), rel=1e-9)
    assert ours["SF"] == pytest.approx(t_sf(f), rel=1e-12)


def test_evaluate_routes_the_vifb_convention_and_refuses_other_metrics():
    f, vi, ir = _smooth(), _smooth(), _smooth(c=0)
    direct = vifb.score(f, vi=vi, ir=ir)
    assert M.evaluate(f, ir=ir, vis=vi, convention="vifb") == direct
    assert M.evaluate(f, ir=ir, vis=vi, convention="vifb", metrics=["qcb", "rmse"]) == {
        "Q_CB": direct["Q_CB"], "RMSE": direct["RMSE"]}
    assert M.rmse(f, ir, vi, convention="vifb") == direct["RMSE"]
    assert M.en(f[..., 0]) == pytest.approx(t_entropy(f[..., 0].astype(float)))
    with pytest.raises(ValueError, match="VIF not defined in the vifb convention"):
        M.evaluate(f, ir=ir, vis=vi, convention="vifb", metrics=["VIF"])
    with pytest.raises(ValueError, match="vis: expected a grey"):
        vifb.score(f, vi=np.zeros((4, 4, 2), np.uint8), ir=ir)
    with pytest.raises(ValueError, match="differ in size"):
        vifb.score(f, vi=vi[:-1], ir=ir)


def test_float_inputs_are_scaled_by_255():
    f, vi, ir = _smooth(), _smooth(), _smooth()
    a = vifb.score(f, vi=vi, ir=ir)
    b = vifb.score(f / 255.0, vi=vi / 255.0, ir=ir / 255.0)
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-9), k


def test_psnr_is_infinite_only_when_fused_equals_both_sources():
    f = _smooth()
    s = vifb.score(f, vi=f, ir=f, metrics=["psnr", "rmse"])
    assert s == {"PSNR": math.inf, "RMSE": 0.0}


def test_cli_evaluate_convention_vifb(tmp_path):
    from hyperleaf.cli import main

    f, vi, ir = _smooth(48, 52), _smooth(48, 52), _smooth(48, 52, c=0)
    for d in ("ir", "vi", "fused"):
        (tmp_path / d).mkdir()
    Image.fromarray(vi).save(tmp_path / "vi" / "a.png")
    Image.fromarray(ir).save(tmp_path / "ir" / "a.png")
    Image.fromarray(f).save(tmp_path / "fused" / "a.png")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--fused", str(tmp_path / "fused"), "--data", str(tmp_path),
                 "--convention", "vifb", "--json", str(out), "--no-progress"]) == 0
    rec = json.loads(out.read_text())
    assert rec["convention"] == "vifb" and rec["metrics"] == list(vifb.VIFB_METRICS)
    want = vifb.score(f, vi=vi, ir=ir)
    for k, v in want.items():
        assert rec["images"][0][k] == pytest.approx(v, rel=1e-12), k


def test_cli_json_writes_null_not_infinity(tmp_path):
    from hyperleaf.cli import main

    img = _smooth(48, 52, c=0)
    for d in ("ir", "vi", "fused"):
        (tmp_path / d).mkdir()
        Image.fromarray(img).save(tmp_path / d / "a.png")
    out = tmp_path / "m.json"
    assert main(["evaluate", "--fused", str(tmp_path / "fused"), "--data", str(tmp_path),
                 "--metrics", "psnr,en", "--json", str(out), "--no-progress"]) == 0
    text = out.read_text()
    assert "Infinity" not in text and "NaN" not in text

    def refuse(token):
        raise AssertionError(f"non-JSON constant {token}")

    rec = json.loads(text, parse_constant=refuse)
    assert rec["images"][0]["PSNR"] is None and rec["mean"]["PSNR"] is None


# ------------------------------------------------------------------ VIFB's published values


def _resolution(text: str) -> float:
    mant = text.lower().split("e")[0]
    digits = len(mant.split(".")[1]) if "." in mant else 0
    exp = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    return 0.5 * 10.0 ** (exp - digits)


#: The metrics whose SwinFusion values VIFB published do not come from the fused JPEGs its
#: repository holds: on those files even the no-reference SD and EI (functions of the fused
#: image alone) differ by 0.05, 100x more than for any of the other 16 methods.
SWIN_MISMATCH = ("CE", "EI", "MI", "Q_CV", "SD", "SF")


@pytest.mark.shared
def test_vifb_published_values_reproduce(shared_dir):
    """16 of the 17 methods: every value equal to the published one to its printed precision
    (5 significant digits: half a unit of the last digit, plus 1e-9 for float64), which is
    tighter than 1e-2 everywhere but for Q_CV values >= 200 (printed to 0.01 or 0.1).
    SwinFusion: within 1e-2 on AG, EN, PSNR, Q_CB, Qabf, RMSE and SSIM; on the others within
    0.06, or 1 % for Q_CV (measured: 0.052 SD, 0.044 EI, 0.036 CE, 0.031 MI, 0.018 SF; Q_CV
    0.79 %): its files differ from those VIFB scored, see SWIN_MISMATCH."""
    root = Path(shared_dir) / "data" / "vifb"
    pub = defaultdict(dict)
    with open(root / "published_metrics.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            pub[(r["image"], r["method"])][vifb.PUBLISHED_NAMES[r["metric"]]] = r["value"]
    assert len(pub) == 17 * 21
    failures = []
    for (image, method), values in sorted(pub.items()):
        f = vifb.read_matlab(root / "fused" / method / f"{image}.jpg") / 255.0
        vi = vifb.read_matlab(root / "vi" / f"{image}.jpg") / 255.0
        ir = vifb.read_matlab(root / "ir" / f"{image}.jpg") / 255.0
        ours = vifb.score(f, vi=vi, ir=ir)
        assert set(values) == set(vifb.VIFB_METRICS)
        for name, text in values.items():
            d = abs(ours[name] - float(text))
            if method != "SwinFusion":
                allowed = _resolution(text) + 1e-9
            elif name in SWIN_MISMATCH:
                allowed = max(0.06, 1e-2 * abs(float(text)))
            else:
                allowed = 1e-2
            if d > allowed:
                failures.append((name, image, method, ours[name], text, d))
    assert not failures, failures[:20]
