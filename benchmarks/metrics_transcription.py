"""Plain NumPy/SciPy transcription of the ten fusion metrics (``standard`` convention), the
baseline of ``bench_metrics.py``.

Each metric is written on its own, straight from its definition (docs/metrics.md), the way
the field's evaluation scripts do it: 2-D windows with ``scipy.signal.convolve2d``, nothing
shared between metrics. It is kept here, not in the package, as the reference the vectorised
``hyperleaf.metrics`` is timed and checked against (results equal to 1e-10 relative).

Inputs are float64 arrays on the 0..255 scale (``(H, W)``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import convolve2d


def en(f):
    h = np.bincount(np.rint(f).astype(np.int64).ravel(), minlength=256) / f.size
    h = h[h > 0]
    return float(-np.sum(h * np.log2(h)))


def sd(f):
    return float(np.sqrt(np.mean((f - f.mean()) ** 2)))


def sf(f):
    return float(np.sqrt(np.mean((f[:, 1:] - f[:, :-1]) ** 2)
                         + np.mean((f[1:, :] - f[:-1, :]) ** 2)))


def ag(f):
    gy, gx = np.gradient(f)
    return float(np.sum(np.sqrt((gx**2 + gy**2) / 2)) / f.size)


def _mi(x, y):
    x, y = np.rint(x).astype(np.int64).ravel(), np.rint(y).astype(np.int64).ravel()
    joint, _, _ = np.histogram2d(x, y, bins=256, range=[[0, 256], [0, 256]])
    p = joint / x.size
    px, py = p.sum(axis=1), p.sum(axis=0)
    mi = 0.0
    nz = np.nonzero(p)
    for i, j in zip(*nz):
        mi += p[i, j] * math.log2(p[i, j] / (px[i] * py[j]))
    return mi


def mi(f, a, b):
    return _mi(f, a) + _mi(f, b)


def _corr(x, y):
    xc, yc = x - x.mean(), y - y.mean()
    return float(np.sum(xc * yc) / np.sqrt(np.sum(xc**2) * np.sum(yc**2)))


def scd(f, a, b):
    return _corr(f - b, a) + _corr(f - a, b)


def _gauss2d(n, sigma):
    m = (n - 1) / 2
    y, x = np.ogrid[-m:m + 1, -m:m + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return h / h.sum()


def _vif(ref, dist):
    sigma_nsq, eps = 2.0, 1e-10
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _gauss2d(n, n / 5.0)
        if scale > 1:
            ref = convolve2d(ref, win, mode="valid")[::2, ::2]
            dist = convolve2d(dist, win, mode="valid")[::2, ::2]
        mu1 = convolve2d(ref, win, mode="valid")
        mu2 = convolve2d(dist, win, mode="valid")
        s1 = convolve2d(ref * ref, win, mode="valid") - mu1 * mu1
        s2 = convolve2d(dist * dist, win, mode="valid") - mu2 * mu2
        s12 = convolve2d(ref * dist, win, mode="valid") - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        g[s1 < eps] = 0
        sv[s1 < eps] = s2[s1 < eps]
        s1[s1 < eps] = 0
        g[s2 < eps] = 0
        sv[s2 < eps] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1 + g * g * s1 / (sv + sigma_nsq)))
        den += np.sum(np.log10(1 + s1 / sigma_nsq))
    return float(num / den)


def _centre(x):
    # VIF uses only local variances and covariances, so it is exactly invariant to shifting an
    # image; shifting by the most frequent grey level makes flat regions exact zeros and keeps
    # E[x^2] - E[x]^2 from leaving rounding noise there (measured: up to 9e-10 relative
    # on TNO without it, amplified by the gain cov / var).
    return x - np.bincount(np.rint(x).astype(np.int64).ravel()).argmax()


def vif(f, a, b):
    f, a, b = _centre(f), _centre(a), _centre(b)
    return _vif(a, f) + _vif(b, f)


def _sobel(x):
    # convolve2d flips the kernels: these are the Sobel correlations of the definition, negated,
    # which leaves strength and atan(gy / gx) unchanged.
    kx = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    ky = np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])
    gx = convolve2d(x, kx, mode="same")
    gy = convolve2d(x, ky, mode="same")
    g = np.sqrt(gx * gx + gy * gy)
    ang = np.zeros_like(x)
    ang[gx == 0] = math.pi / 2
    ang[gx != 0] = np.arctan(gy[gx != 0] / gx[gx != 0])
    return g, ang


def _q(ga, aa, gf, af):
    g = np.zeros_like(ga)
    g[ga > gf] = gf[ga > gf] / ga[ga > gf]
    g[ga == gf] = 1.0
    g[ga < gf] = ga[ga < gf] / gf[ga < gf]
    o = 1 - np.abs(aa - af) / (math.pi / 2)
    qg = 0.9994 / (1 + np.exp(-15 * (g - 0.5)))
    qa = 0.9879 / (1 + np.exp(-22 * (o - 0.8)))
    return qg * qa


def qabf(f, a, b):
    ga, aa = _sobel(a)
    gb, ab = _sobel(b)
    gf, af = _sobel(f)
    return float(np.sum(_q(ga, aa, gf, af) * ga + _q(gb, ab, gf, af) * gb) / np.sum(ga + gb))


def _ssim(x, y):
    win = _gauss2d(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx = convolve2d(x, win, mode="valid")
    my = convolve2d(y, win, mode="valid")
    vx = convolve2d(x * x, win, mode="valid") - mx * mx
    vy = convolve2d(y * y, win, mode="valid") - my * my
    cxy = convolve2d(x * y, win, mode="valid") - mx * my
    s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def ssim(f, a, b):
    return _ssim(f, a) + _ssim(f, b)


def psnr(f, a, b):
    mse = (np.mean((f - a) ** 2) + np.mean((f - b) ** 2)) / 2
    return float(10 * np.log10(255.0**2 / mse))


def evaluate(f, a, b):
    """The ten metrics, each computed on its own (the baseline's order of the table)."""
    return {"EN": en(f), "SD": sd(f), "SF": sf(f), "AG": ag(f), "MI": mi(f, a, b),
            "SCD": scd(f, a, b), "VIF": vif(f, a, b), "Qabf": qabf(f, a, b),
            "SSIM": ssim(f, a, b), "PSNR": psnr(f, a, b)}
