r"""The further fusion metrics that benchmark suites report beside the ten of
:mod:`hyperleaf.metrics.fusion` (VIFB, Zhang et al. 2020, and the field's papers).

Same input rules: ``(H, W)`` images, ``uint8`` or float in ``[0, 1]``, computed in float64
on the 0..255 scale. ``a`` is the infrared source, ``b`` the visible one, ``f`` the fused image.

* ``CC``       ``(corr(a, f) + corr(b, f)) / 2``, Pearson;
* ``SCC``      spatial correlation coefficient (Zhou et al. 1998): the mean over both sources of
  ``corr(L * s, L * f)`` with ``L`` the 3x3 Laplacian high-pass ``8`` / ``-1``, windows inside
  the image. Not SCD (sum of correlations of differences), which stays;
* ``EI``       edge intensity, ``mean(sqrt(gx^2 + gy^2))`` of ``f``, Sobel, replicated borders;
* ``Nabf``     fusion artefacts (Kumar's modified ``N^{AB/F}``): over pixels where
  ``gF > gA`` and ``gF > gB``, ``sum((1 - Q^{AF}) gA + (1 - Q^{BF}) gB) / sum(gA + gB)`` with
  the per-pixel ``Q`` of Qabf;
* ``FMI_pixel``, ``FMI_gradient``  fast feature mutual information (Haghighat & Razian 2014),
  3x3 windows, on the pixels and on the horizontal derivative (MATLAB ``gradient``);
* ``MS-SSIM``  ``MS-SSIM(f, a) + MS-SSIM(f, b)``, 5 scales (Wang et al. 2003);
* ``Q_CB``     Chen-Blum perceptual contrast preservation;
* ``Q_CV``     Chen-Varshney regional CSF-weighted difference (lower is better);
* ``CE``       cross entropy of the grey histograms, mean over both sources (lower is better);
* ``RMSE``     ``sqrt((MSE(f, a) + MSE(f, b)) / 2)`` (lower is better; not in the default set).

docs/metrics.md gives each definition in full, with the parameters and edge cases.

Example::

    >>> import numpy as np
    >>> from hyperleaf import metrics
    >>> a = np.array([[0, 0, 255, 255]] * 4, np.uint8)
    >>> metrics.ce(a, a, a)
    0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from hyperleaf.metrics._images import FusionInputs, correlate_valid, gaussian_1d, sobel
from hyperleaf.metrics.fusion import _one, corr, edge_preservation
from hyperleaf.metrics.registry import add_alias, register

__all__ = ["cc", "ce", "ei", "fmi_gradient", "fmi_pixel", "ms_ssim", "nabf", "q_cb", "q_cv",
           "rmse", "scc"]


@register("CC", higher_is_better=True,
          reference="J. Ma, Y. Ma, C. Li, Inf. Fusion 45, 2019 (survey, eq. of CC)")
def _cc(x: FusionInputs, convention: str) -> float:
    a, b = x.sources()
    return (corr(a, x.f) + corr(b, x.f)) / 2.0


_LAPLACIAN = np.array([[-1.0, -1.0, -1.0], [-1.0, 8.0, -1.0], [-1.0, -1.0, -1.0]])


def _highpass(x: FusionInputs, key: str) -> np.ndarray:
    return x.cached(("laplacian", key), lambda: ndimage.correlate(
        x.image(key), _LAPLACIAN, mode="constant")[1:-1, 1:-1])


@register("SCC", higher_is_better=True,
          reference="J. Zhou, D. L. Civco, J. A. Silander, Int. J. Remote Sens. 19(4), 1998")
def _scc(x: FusionInputs, convention: str) -> float:
    x.sources()
    if min(x.shape) < 3:
        raise ValueError(f"SCC needs images of at least 3x3, got {x.shape}")
    hf = _highpass(x, "f")
    return (corr(_highpass(x, "a"), hf) + corr(_highpass(x, "b"), hf)) / 2.0


@register("EI", higher_is_better=True, sources=False,
          reference="B. Rajalingam, R. Priya, Int. J. Eng. Sci. Invent. 2018; VIFB (X. Zhang, "
                    "P. Ye, G. Xiao, CVPRW 2020)")
def _ei(x: FusionInputs, convention: str) -> float:
    f = np.pad(x.f, 1, mode="edge")
    gx, gy = sobel(f)
    gx, gy = gx[1:-1, 1:-1], gy[1:-1, 1:-1]
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


@register("Nabf", higher_is_better=False,
          reference="B. K. Shreyamsha Kumar, Signal Image Video Process. 7(6), 2013 (modified "
                    "N^{AB/F} of V. Petrovic, C. Xydeas, ICCV 2005)")
def _nabf(x: FusionInputs, convention: str) -> float:
    x.sources()
    ga, gb, gf = x.gradient("a")[0], x.gradient("b")[0], x.gradient("f")[0]
    den = float((ga + gb).sum())
    if den == 0:
        return 0.0
    artefact = (gf > ga) & (gf > gb)
    qaf, qbf = edge_preservation(x, "a", convention), edge_preservation(x, "b", convention)
    num = ((1.0 - qaf) * ga + (1.0 - qbf) * gb)[artefact].sum()
    return float(num) / den


# ------------------------------------------------------------------ fast FMI

_FMI_CHUNK = 16384  # windows per vectorised block (bounds memory at ~13 MB per array)


def _windows(feature: np.ndarray) -> np.ndarray:
    """All 3x3 windows as rows of 9 values in column-major order (MATLAB's ``sub(:)``)."""
    win = np.lib.stride_tricks.sliding_window_view(feature, (3, 3))
    return np.ascontiguousarray(win.transpose(0, 1, 3, 2)).reshape(-1, 9)


def _pdf(w: np.ndarray) -> np.ndarray:
    """Windows rescaled to [0, 1] (all ones when flat) and normalised to sum 1."""
    lo, hi = w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True)
    flat = hi == lo
    scaled = np.where(flat, 1.0, (w - lo) / np.where(flat, 1.0, hi - lo))
    return scaled / scaled.sum(axis=1, keepdims=True)


def _entropy_bits(p: np.ndarray, axis) -> np.ndarray:
    """``-sum p log2 |p|`` over the non-zero entries (the real part of MATLAB's complex log
    for the negative joint-PDF entries the Nelsen construction can produce)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p != 0, -p * np.log2(np.abs(np.where(p != 0, p, 1.0))), 0.0)
    return t.sum(axis=axis)


def _fmi_windows(s: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Normalised MI of each pair of windows (rows of ``s`` and ``f``), fast-FMI estimate."""
    same = np.all(s == f, axis=1)
    ps, pf = _pdf(s), _pdf(f)
    cs, cf = np.cumsum(ps, axis=1), np.cumsum(pf, axis=1)
    st, ft = ps - ps.mean(axis=1, keepdims=True), pf - pf.mean(axis=1, keepdims=True)
    num = (st * ft).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(num == 0, 0.0, num / np.sqrt((st * st).sum(axis=1) * (ft * ft).sum(axis=1)))
    idx = np.arange(1, 10, dtype=np.float64)
    sd_s = np.sqrt(np.maximum(ps @ (idx * idx) - (ps @ idx) ** 2, 0.0))
    sd_f = np.sqrt(np.maximum(pf @ (idx * idx) - (pf @ idx) ** 2, 0.0))
    fi, sj = cf[:, :, None], cs[:, None, :]
    upper = np.minimum(fi, sj)                 # Frechet upper bound M(F_i, S_j)
    lower = np.maximum(fi + sj - 1.0, 0.0)     # Frechet lower bound W(F_i, S_j)
    positive = (c >= 0)[:, None, None]
    bound = np.where(positive, upper, lower)
    indep = fi * sj
    cov = (bound - indep).sum(axis=(1, 2))
    sds = sd_f * sd_s
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where((c == 0) | (sds == 0), 0.0, c / (cov / sds))
    k = np.where(np.isfinite(k), k, 0.0)
    # Joint PDF: rectangle measure of the bound copula (zero below the first row/column).
    padded = np.zeros((len(c), 10, 10))
    padded[:, 1:, 1:] = bound
    rect = padded[:, 1:, 1:] - padded[:, :-1, 1:] - padded[:, 1:, :-1] + padded[:, :-1, :-1]
    joint = k[:, None, None] * rect + (1.0 - k)[:, None, None] * (pf[:, :, None]
                                                                 * ps[:, None, :])
    hj = _entropy_bits(joint, (1, 2))
    hs, hf = _entropy_bits(ps, 1), _entropy_bits(pf, 1)
    mi = hs + hf - hj
    with np.errstate(divide="ignore", invalid="ignore"):
        nmi = np.where(mi == 0, 0.0, 2.0 * mi / (hs + hf))
    return np.where(same, 1.0, nmi)


def _fmi(x: FusionInputs, feature) -> float:
    x.sources()
    if min(x.shape) < 3:
        raise ValueError(f"FMI needs images of at least 3x3, got {x.shape}")
    wf, wa, wb = (_windows(feature(x.image(k))) for k in "fab")
    total = 0.0
    for i in range(0, len(wf), _FMI_CHUNK):
        sl = slice(i, i + _FMI_CHUNK)
        total += float((_fmi_windows(wa[sl], wf[sl]) + _fmi_windows(wb[sl], wf[sl])).sum())
    return total / (2.0 * len(wf))


_HAGHIGHAT = ("M. Haghighat, M. A. Razian, IEEE AICT 2014 (fast-FMI); M. B. A. Haghighat, "
              "A. Aghagolzadeh, H. Seyedarabi, Comput. Electr. Eng. 37(5), 2011")


@register("FMI_pixel", higher_is_better=True, default=False, reference=_HAGHIGHAT)
def _fmi_pixel(x: FusionInputs, convention: str) -> float:
    return _fmi(x, lambda img: img)


@register("FMI_gradient", higher_is_better=True, default=False, reference=_HAGHIGHAT)
def _fmi_gradient(x: FusionInputs, convention: str) -> float:
    return _fmi(x, lambda img: np.gradient(img, axis=1))


add_alias("FMI", "FMI_pixel", "FMI_gradient")

# ------------------------------------------------------------------ MS-SSIM

_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_scales(shape: tuple[int, int]) -> int:
    """Scales MS-SSIM uses for an image of ``shape``: 5, or fewer when the coarsest image
    (halved ``scales - 1`` times) would be smaller than the 11x11 window."""
    side = min(shape)
    scales = 0
    while scales < 5 and side // (2**scales) >= 11:
        scales += 1
    if scales == 0:
        raise ValueError(f"MS-SSIM needs images of at least 11x11, got {tuple(shape)}")
    return scales


def _halve(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _ms_ssim_pair(f: np.ndarray, s: np.ndarray) -> float:
    scales = ms_ssim_scales(f.shape)
    weights = np.array(_MS_WEIGHTS[:scales])
    if scales < 5:
        # fewer scales: the first weights renormalised to sum 1; at 5 scales the published
        # weights as they are (they sum to 1.0001), as Wang's code uses them
        weights = weights / weights.sum()
    w = gaussian_1d(11, 1.5)
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    value = 1.0
    for j in range(scales):
        mf, ms = correlate_valid(f, w), correlate_valid(s, w)
        vf = correlate_valid(f * f, w) - mf * mf
        vs = correlate_valid(s * s, w) - ms * ms
        cov = correlate_valid(f * s, w) - mf * ms
        cs = (2.0 * cov + c2) / (vf + vs + c2)
        if j == scales - 1:
            term = float((cs * (2.0 * mf * ms + c1) / (mf * mf + ms * ms + c1)).mean())
        else:
            term = float(cs.mean())
            f, s = _halve(f), _halve(s)
        # A negative contrast-structure mean has no real fractional power: clamp it to 0.
        value *= max(term, 0.0) ** weights[j]
    return value


@register("MS-SSIM", higher_is_better=True,
          reference="Z. Wang, E. P. Simoncelli, A. C. Bovik, Asilomar Conf. 2003")
def _ms_ssim(x: FusionInputs, convention: str) -> float:
    a, b = x.sources()
    return _ms_ssim_pair(x.f, a) + _ms_ssim_pair(x.f, b)


# ------------------------------------------------------------------ Chen-Blum, Chen-Varshney


def _frequency_radius(shape: tuple[int, int], span_deg: float = 15.0) -> np.ndarray:
    """Radial frequency in cycles per degree of each FFT bin, for an image whose width and
    height each span ``span_deg`` degrees of visual angle."""
    fy = np.fft.fftfreq(shape[0]) * shape[0] / span_deg
    fx = np.fft.fftfreq(shape[1]) * shape[1] / span_deg
    return np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def _csf_filter(img: np.ndarray, response: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifft2(np.fft.fft2(img) * response))


_CB_G1, _CB_G2 = gaussian_1d(31, 2.0), gaussian_1d(31, 4.0)


def _masked_contrast(x: FusionInputs, key: str) -> np.ndarray:
    def make():
        r = _frequency_radius(x.shape)
        dog = np.exp(-(r / 15.3870) ** 2) - 0.7622 * np.exp(-(r / 1.3456) ** 2)
        img = _csf_filter(x.image(key), dog)
        near = ndimage.correlate1d(ndimage.correlate1d(img, _CB_G1, 0, mode="constant"),
                                   _CB_G1, 1, mode="constant")
        far = ndimage.correlate1d(ndimage.correlate1d(img, _CB_G2, 0, mode="constant"),
                                  _CB_G2, 1, mode="constant")
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.abs(np.where(far != 0, near / np.where(far != 0, far, 1.0) - 1.0, 0.0))
        return c**3 / (c * c + 1e-4)

    return x.cached(("cb-contrast", key), make)


def _preservation(cs: np.ndarray, cf: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(cs < cf, cs / cf, cf / cs)
    return np.where((cs == 0) & (cf == 0), 1.0, q)


@register("Q_CB", higher_is_better=True, aliases=("Qcb",),
          reference="Y. Chen, R. S. Blum, Image Vis. Comput. 27(10), 2009")
def _q_cb(x: FusionInputs, convention: str) -> float:
    x.sources()
    ca, cb, cf = (_masked_contrast(x, k) for k in "abf")
    sa, sb = ca * ca, cb * cb
    with np.errstate(divide="ignore", invalid="ignore"):
        la = np.where(sa + sb > 0, sa / (sa + sb), 0.5)
    q = la * _preservation(ca, cf) + (1.0 - la) * _preservation(cb, cf)
    return float(q.mean())


_CV_BLOCK = 16


def _block_sums(m: np.ndarray) -> np.ndarray:
    rows = np.add.reduceat(m, np.arange(0, m.shape[0], _CV_BLOCK), axis=0)
    return np.add.reduceat(rows, np.arange(0, m.shape[1], _CV_BLOCK), axis=1)


@register("Q_CV", higher_is_better=False, aliases=("Qcv",),
          reference="H. Chen, P. K. Varshney, Inf. Fusion 8(2), 2007")
def _q_cv(x: FusionInputs, convention: str) -> float:
    a, b = x.sources()
    r = _frequency_radius(x.shape)
    csf = 2.6 * (0.0192 + 0.114 * r) * np.exp(-((0.114 * r) ** 1.1))
    counts = _block_sums(np.ones(x.shape))
    num = den = 0.0
    dists = []
    for key, s in (("a", a), ("b", b)):
        saliency = _block_sums(x.gradient(key)[0])
        d = _block_sums(_csf_filter(s - x.f, csf) ** 2) / counts
        dists.append(d)
        num += float((saliency * d).sum())
        den += float(saliency.sum())
    if den == 0:  # no edges in either source: every region weighs the same
        return float(np.mean((dists[0] + dists[1]) / 2.0))
    return num / den


# ------------------------------------------------------------------ root mean square error


@register("RMSE", higher_is_better=False, default=False,
          reference="P. Jagalingam, A. V. Hegde, Aquatic Procedia 4, 2015; VIFB (X. Zhang, "
                    "P. Ye, G. Xiao, CVPRW 2020)")
def _rmse(x: FusionInputs, convention: str) -> float:
    a, b = x.sources()
    return float(np.sqrt((np.mean((x.f - a) ** 2) + np.mean((x.f - b) ** 2)) / 2.0))


# ------------------------------------------------------------------ cross entropy


def _histogram(x: FusionInputs, key: str) -> np.ndarray:
    return x.cached(("hist", key), lambda: np.bincount(
        x.levels(key).ravel(), minlength=256) / x.f.size)


@register("CE", higher_is_better=False, unit="bits",
          reference="VIFB: X. Zhang, P. Ye, G. Xiao, CVPRW 2020 (cross entropy)")
def _ce(x: FusionInputs, convention: str) -> float:
    x.sources()
    hf = _histogram(x, "f")
    total = 0.0
    for key in "ab":
        hs = _histogram(x, key)
        both = (hs > 0) & (hf > 0)
        total += float((hs[both] * np.log2(hs[both] / hf[both])).sum())
    return total / 2.0


# ------------------------------------------------------------------ public functions


def cc(f: Any, a: Any, b: Any) -> float:
    """Correlation coefficient ``(corr(a, f) + corr(b, f)) / 2``."""
    return _one("CC", f, a, b)


def scc(f: Any, a: Any, b: Any) -> float:
    """Spatial correlation coefficient: mean correlation of Laplacian high-passes."""
    return _one("SCC", f, a, b)


def ei(f: Any) -> float:
    """Edge intensity: mean Sobel gradient magnitude (replicated borders)."""
    return _one("EI", f)


def nabf(f: Any, a: Any, b: Any, convention: str = "standard") -> float:
    """Fusion artefacts ``N^{AB/F}`` (Kumar's modification); 0 is best."""
    return _one("Nabf", f, a, b, convention)


def fmi_pixel(f: Any, a: Any, b: Any) -> float:
    """Fast feature mutual information on the pixels (3x3 windows), in [0, 1]."""
    return _one("FMI_pixel", f, a, b)


def fmi_gradient(f: Any, a: Any, b: Any) -> float:
    """Fast feature mutual information on the horizontal derivative (3x3 windows)."""
    return _one("FMI_gradient", f, a, b)


def ms_ssim(f: Any, a: Any, b: Any) -> float:
    """``MS-SSIM(f, a) + MS-SSIM(f, b)`` over up to 5 scales (see :func:`ms_ssim_scales`)."""
    return _one("MS-SSIM", f, a, b)


def q_cb(f: Any, a: Any, b: Any) -> float:
    """Chen-Blum ``Q_CB`` (perceptual contrast preservation), in [0, 1]."""
    return _one("Q_CB", f, a, b)


def q_cv(f: Any, a: Any, b: Any) -> float:
    """Chen-Varshney ``Q_CV`` (regional perceptual difference); 0 is best."""
    return _one("Q_CV", f, a, b)


def rmse(f: Any, a: Any, b: Any, convention: str = "standard") -> float:
    """``sqrt((MSE(f, a) + MSE(f, b)) / 2)`` on the 0..255 scale; 0 is best (``vifb``:
    VIFB's ``(e(a, f) + e(b, f)) / 2`` with ``e = sqrt(sum d^2) / (H W)``)."""
    return _one("RMSE", f, a, b, convention)


def ce(f: Any, a: Any, b: Any) -> float:
    """Cross entropy (bits) of the grey histograms, mean over the two sources; 0 is best."""
    return _one("CE", f, a, b)


