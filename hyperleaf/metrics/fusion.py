r"""The ten standard metrics of infrared-visible image fusion, in two conventions.

All metrics work on the 8-bit scale: ``uint8`` arrays are used as they are (exact integers),
float arrays must lie in ``[0, 1]`` and are multiplied by 255 (histogram-based metrics round
them to the 256 grey levels). Images are 2-D ``(H, W)``; NumPy arrays or torch tensors. Every
computation is float64, vectorised over the whole image.

No-reference (the fused image ``f`` alone), identical in both conventions:

* ``EN``  entropy of the 256-bin grey histogram, in bits;
* ``SD``  standard deviation (population);
* ``SF``  spatial frequency, ``sqrt(mean(dx^2) + mean(dy^2))`` over horizontally/vertically
  adjacent pixels;
* ``AG``  average gradient, ``mean(sqrt((gx^2 + gy^2) / 2))`` with central differences
  (one-sided at the border, ``np.gradient``).

Against the sources ``a`` (infrared) and ``b`` (visible), sums over both (every one symmetric
in ``a`` and ``b``: the two-source helpers ``mi(f, a, b)`` ... give the same value for
``(f, b, a)``; :func:`evaluate` still takes the sources by keyword, ``ir=``/``vis=``):

* ``MI``   ``MI(f, a) + MI(f, b)`` from 256-level joint histograms; ``standard``: bits,
  ``mmif``: nats;
* ``SCD``  ``corr(f - b, a) + corr(f - a, b)`` (Pearson);
* ``VIF``  ``VIF(a -> f) + VIF(b -> f)``, pixel-domain VIF over 4 scales, Gaussian windows of
  17, 9, 5, 3 taps (sigma = taps / 5), noise variance 2 (Sheikh & Bovik 2006); needs >= 41x41;
* ``Qabf`` Xydeas-Petrovic edge preservation, Sobel gradients with zero padding, constants
  ``Tg, kg, Dg = 0.9994, -15, 0.5``; ``Ta, ka, Da = 0.9879, -22, 0.8``. Where ``gA = gF`` the
  strength ratio is 1 (``standard``) or ``gF`` (``mmif``, the MMIF Evaluator's branch);
* ``SSIM`` ``SSIM(f, a) + SSIM(f, b)``, mean over the windows inside the image. ``standard``:
  Wang et al. 2004, Gaussian 11x11, sigma 1.5, population statistics, ``L = 255``;
  ``mmif``: scikit-image's ``structural_similarity`` defaults on float images, 7x7 uniform
  window, sample covariance (``49/48``), implicit ``L = 2``;
* ``PSNR`` ``10 log10(P^2 / ((MSE(f, a) + MSE(f, b)) / 2))`` in dB, ``P = 255`` (``standard``)
  or ``max(f)`` (``mmif``); ``inf`` when both MSEs are 0, ``-inf`` for an all-black fused
  image in ``mmif`` (``P = 0``).

``VIF`` of a flat source (``0/0``) is 1.0, the Evaluator's value. An error inside a metric is
raised as ``ValueError`` starting with the metric's name.

docs/metrics.md gives each definition with its reference and the conventions' measured
differences on TNO.

Example::

    >>> import numpy as np
    >>> from hyperleaf import metrics
    >>> f = np.array([[0, 0, 255, 255]] * 4, np.uint8)
    >>> metrics.en(f)
    1.0
    >>> scores = metrics.evaluate(f, ir=f, vis=f, metrics=("EN", "PSNR"))
    >>> scores["PSNR"]
    inf
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from hyperleaf.deprecation import positional_to_keywords
from hyperleaf.metrics import vifb as _vifb
from hyperleaf.metrics._images import FusionInputs, gaussian_1d
from hyperleaf.metrics._images import correlate_valid as _valid
from hyperleaf.metrics.registry import check_convention, get, register, resolve

__all__ = ["METRICS", "ag", "en", "evaluate", "mi", "psnr", "qabf", "scd", "sd", "sf", "ssim",
           "vif"]

#: The ten original metric names, in the order tables list them.
METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR")

_WANG = "Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, IEEE TIP 13(4), 2004"


# ------------------------------------------------------------------ no-reference metrics


@register("EN", higher_is_better=True, sources=False, unit="bits",
          reference="J. W. Roberts, J. van Aardt, F. Ahmed, J. Appl. Remote Sens. 2, 2008")
def _en(x: FusionInputs, convention: str) -> float:
    p = np.bincount(x.levels("f").ravel(), minlength=256) / x.f.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@register("SD", higher_is_better=True, sources=False,
          reference="Y.-J. Rao, Meas. Sci. Technol. 8(4), 1997")
def _sd(x: FusionInputs, convention: str) -> float:
    return float(np.std(x.f))


@register("SF", higher_is_better=True, sources=False,
          reference="A. M. Eskicioglu, P. S. Fisher, IEEE Trans. Commun. 43(12), 1995")
def _sf(x: FusionInputs, convention: str) -> float:
    f = x.f
    rf = np.mean((f[:, 1:] - f[:, :-1]) ** 2)
    cf = np.mean((f[1:, :] - f[:-1, :]) ** 2)
    return float(math.sqrt(rf + cf))


@register("AG", higher_is_better=True, sources=False,
          reference="G. Cui, H. Feng, Z. Xu, Q. Li, Y. Chen, Opt. Commun. 341, 2015")
def _ag(x: FusionInputs, convention: str) -> float:
    gy, gx = np.gradient(x.f)
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))


# ------------------------------------------------------------------ against the sources


def _mi_pair(x: FusionInputs, src: str) -> float:
    """MI(f, src) in nats from the 256 x 256 joint histogram."""
    f, s = x.levels("f").ravel(), x.levels(src).ravel()
    joint = np.bincount(f * 256 + s, minlength=65536).reshape(256, 256) / f.size
    pf, ps = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    outer = np.outer(pf, ps)
    return float((joint[nz] * np.log(joint[nz] / outer[nz])).sum())


@register("MI", higher_is_better=True, unit="bits (standard) / nats (mmif)",
          reference="G. Qu, D. Zhang, P. Yan, Electron. Lett. 38(7), 2002")
def _mi(x: FusionInputs, convention: str) -> float:
    x.sources()
    nats = _mi_pair(x, "a") + _mi_pair(x, "b")
    return nats if convention == "mmif" else nats / math.log(2.0)


def corr(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two arrays (float64); 0 when either is constant."""
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float((xc * xc).sum()) * float((yc * yc).sum()))
    return float((xc * yc).sum()) / den if den > 0 else 0.0


@register("SCD", higher_is_better=True,
          reference="V. Aslantas, E. Bendes, AEU Int. J. Electron. Commun. 69(12), 2015")
def _scd(x: FusionInputs, convention: str) -> float:
    a, b = x.sources()
    return corr(x.f - b, a) + corr(x.f - a, b)


_VIF_SIGMA_N2 = 2.0
_VIF_EPS = 1e-10


def _vif_windows() -> list[tuple[str, np.ndarray]]:
    return [(f"vif{n}", gaussian_1d(n, n / 5.0)) for n in (17, 9, 5, 3)]


def _vif_pyramid(x: FusionInputs, key: str) -> list[np.ndarray]:
    """The image at each VIF scale: filtered by that scale's window and decimated by 2."""

    def make():
        levels, img = [], x.centred(key)  # shift-invariant: see FusionInputs.centred
        for s, (_, w) in enumerate(_vif_windows()):
            if s > 0:
                img = _valid(img, w)[::2, ::2]
            levels.append(np.ascontiguousarray(img))
        return levels

    return x.cached(("vif-pyramid", key), make)


def _vif_fused_stats(x: FusionInputs, scale: int, w: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Local mean and variance of the fused image at ``scale`` (shared by both sources)."""

    def make():
        dist = _vif_pyramid(x, "f")[scale]
        mu = _valid(dist, w)
        return mu, _valid(dist * dist, w) - mu * mu

    return x.cached(("vif-fused", scale), make)


def _vif_pair(x: FusionInputs, src: str) -> float:
    """VIF of the fused image as a distortion of source ``src`` (Sheikh-Bovik, pixel domain)."""
    refs, dists = _vif_pyramid(x, src), _vif_pyramid(x, "f")
    num = den = 0.0
    for s, (_, w) in enumerate(_vif_windows()):
        ref, dist = refs[s], dists[s]
        mu1 = _valid(ref, w)
        mu2, s2 = _vif_fused_stats(x, s, w)
        s1 = _valid(ref * ref, w) - mu1 * mu1
        s12 = _valid(ref * dist, w) - mu1 * mu2
        s1, s2 = np.maximum(s1, 0.0), np.maximum(s2, 0.0)
        g = s12 / (s1 + _VIF_EPS)
        sv = s2 - g * s12
        low1 = s1 < _VIF_EPS
        g = np.where(low1, 0.0, g)
        sv = np.where(low1, s2, sv)
        s1 = np.where(low1, 0.0, s1)
        low2 = s2 < _VIF_EPS
        g = np.where(low2, 0.0, g)
        sv = np.where(low2, 0.0, sv)
        neg = g < 0
        sv = np.where(neg, s2, sv)
        g = np.where(neg, 0.0, g)
        sv = np.maximum(sv, _VIF_EPS)
        num += float(np.log10(1.0 + g * g * s1 / (sv + _VIF_SIGMA_N2)).sum())
        den += float(np.log10(1.0 + s1 / _VIF_SIGMA_N2).sum())
    if den == 0.0:
        # a flat source carries no information: 0/0, which the Evaluator maps to 1.0 through
        # its NaN branch; both conventions return that
        return 1.0
    return num / den


@register("VIF", higher_is_better=True,
          reference="H. R. Sheikh, A. C. Bovik, IEEE TIP 15(2), 2006; Y. Han, Y. Cai, Y. Cao, "
                    "X. Xu, Inf. Fusion 14(2), 2013")
def _vif(x: FusionInputs, convention: str) -> float:
    x.sources()
    if min(x.shape) < 41:
        raise ValueError(f"VIF needs images of at least 41x41, got {x.shape}")
    return _vif_pair(x, "a") + _vif_pair(x, "b")


_TG, _KG, _DG = 0.9994, -15.0, 0.5
_TA, _KA, _DA = 0.9879, -22.0, 0.8


def edge_preservation(x: FusionInputs, src: str, convention: str) -> np.ndarray:
    """Per-pixel ``Q^{SF} = Q_g Q_a`` of source ``src`` in the fused image (Xydeas-Petrovic)."""

    def make():
        gs, as_ = x.gradient(src)
        gf, af = x.gradient("f")
        with np.errstate(divide="ignore", invalid="ignore"):
            equal = 1.0 if convention == "standard" else gf
            ratio = np.where(gs > gf, gf / gs, np.where(gs == gf, equal, gs / gf))
        orient = 1.0 - np.abs(as_ - af) / (math.pi / 2)
        qg = _TG / (1.0 + np.exp(_KG * (ratio - _DG)))
        qa = _TA / (1.0 + np.exp(_KA * (orient - _DA)))
        return qg * qa

    return x.cached(("edge-preservation", src, convention), make)


@register("Qabf", higher_is_better=True,
          reference="C. S. Xydeas, V. Petrovic, Electron. Lett. 36(4), 2000")
def _qabf(x: FusionInputs, convention: str) -> float:
    x.sources()
    ga, gb = x.gradient("a")[0], x.gradient("b")[0]
    den = float((ga + gb).sum())
    if den == 0:
        return 0.0
    qaf, qbf = edge_preservation(x, "a", convention), edge_preservation(x, "b", convention)
    return float((qaf * ga + qbf * gb).sum()) / den


def _ssim_mmif(f: np.ndarray, s: np.ndarray) -> float:
    """scikit-image's ``structural_similarity(f, s)`` as the MMIF Evaluator runs it: float32
    images (0..255), float32 arithmetic throughout (scikit-image >= 0.19 keeps float32),
    7x7 ``uniform_filter`` (reflected borders), sample covariance ``49/48``, ``L = 2``, the
    3-pixel border cropped and the map averaged in float64. With a constant ``C2 = 0.0036``
    the float32 rounding decides near-flat windows, so float64 differs by up to ~1e-4."""
    x, y = f.astype(np.float32), s.astype(np.float32)
    ux, uy = ndimage.uniform_filter(x, size=7), ndimage.uniform_filter(y, size=7)
    uxx = ndimage.uniform_filter(x * x, size=7)
    uyy = ndimage.uniform_filter(y * y, size=7)
    uxy = ndimage.uniform_filter(x * y, size=7)
    norm = 49.0 / 48.0
    vx, vy, vxy = norm * (uxx - ux * ux), norm * (uyy - uy * uy), norm * (uxy - ux * uy)
    c1, c2 = (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2
    a1, a2 = 2 * ux * uy + c1, 2 * vxy + c2
    b1, b2 = ux**2 + uy**2 + c1, vx + vy + c2
    m = (a1 * a2) / (b1 * b2)
    return float(m[3:-3, 3:-3].mean(dtype=np.float64))


def _ssim_pair(x: FusionInputs, src: str, convention: str) -> float:
    if convention == "mmif":
        if min(x.shape) < 7:
            raise ValueError(f"SSIM needs images of at least 7x7, got {x.shape}")
        return _ssim_mmif(x.f, x.image(src))
    if convention == "standard":
        wname, w, norm, L = "gauss11", gaussian_1d(11, 1.5), 1.0, 255.0
    else:
        wname, w, L = "uniform7", np.full(7, 1.0 / 7.0), 2.0
        norm = 49.0 / 48.0  # scikit-image's sample covariance
    if min(x.shape) < len(w):
        raise ValueError(f"SSIM needs images of at least {len(w)}x{len(w)}, got {x.shape}")
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mf, ms = x.filtered("f", wname, w), x.filtered(src, wname, w)
    vf = norm * (x.filtered("ff", wname, w) - mf * mf)
    vs = norm * (x.filtered(src + src, wname, w) - ms * ms)
    cov = norm * (x.filtered("f" + src, wname, w) - mf * ms)
    s = ((2 * mf * ms + c1) * (2 * cov + c2)) / ((mf * mf + ms * ms + c1) * (vf + vs + c2))
    return float(s.mean())


@register("SSIM", higher_is_better=True, reference=_WANG)
def _ssim(x: FusionInputs, convention: str) -> float:
    x.sources()
    return _ssim_pair(x, "a", convention) + _ssim_pair(x, "b", convention)


@register("PSNR", higher_is_better=True, unit="dB",
          reference="Q. Huynh-Thu, M. Ghanbari, Electron. Lett. 44(13), 2008")
def _psnr(x: FusionInputs, convention: str) -> float:
    a, b = x.sources()
    mse = (np.mean((x.f - a) ** 2) + np.mean((x.f - b) ** 2)) / 2.0
    peak = 255.0 if convention == "standard" else float(x.f.max())
    if mse == 0:
        return math.inf
    if peak == 0:  # mmif, an all-black fused image: log10(0)
        return -math.inf
    return float(10.0 * math.log10(peak * peak / mse))


# ------------------------------------------------------------------ public functions


def _one(name: str, fused: Any, ir: Any = None, vis: Any = None,
         convention: str = "standard") -> float:
    check_convention(convention)
    metric = get(name)
    if convention == "vifb":
        if not metric.sources:
            ir = vis = fused
        return _vifb.score(fused, vi=vis, ir=ir, metrics=(metric.name,))[metric.name]
    x = FusionInputs(fused, ir, vis) if metric.sources else FusionInputs(fused)
    return metric.compute(x, convention)


def en(f: Any) -> float:
    """Entropy (bits) of the 256-bin grey histogram of ``f`` ``(H, W)``."""
    return _one("EN", f)


def sd(f: Any) -> float:
    """Standard deviation (population) of ``f`` on the 0..255 scale."""
    return _one("SD", f)


def sf(f: Any) -> float:
    """Spatial frequency ``sqrt(mean(dx^2) + mean(dy^2))`` of ``f``."""
    return _one("SF", f)


def ag(f: Any) -> float:
    """Average gradient ``mean(sqrt((gx^2 + gy^2) / 2))`` (central differences)."""
    return _one("AG", f)


def mi(f: Any, a: Any, b: Any, convention: str = "standard") -> float:
    """``MI(f, a) + MI(f, b)``, 256-level joint histograms; bits (``standard``) or nats."""
    return _one("MI", f, a, b, convention)


def scd(f: Any, a: Any, b: Any, convention: str = "standard") -> float:
    """Sum of correlations of differences: ``corr(f - b, a) + corr(f - a, b)``."""
    return _one("SCD", f, a, b, convention)


def vif(f: Any, a: Any, b: Any, convention: str = "standard") -> float:
    """``VIF(a -> f) + VIF(b -> f)``, pixel-domain VIF over 4 scales (images >= 41x41)."""
    return _one("VIF", f, a, b, convention)


def qabf(f: Any, a: Any, b: Any, convention: str = "standard") -> float:
    """Xydeas-Petrovic ``Q^{AB/F}`` (edge information of a and b kept in f), in [0, 1]."""
    return _one("Qabf", f, a, b, convention)


def ssim(f: Any, a: Any, b: Any, convention: str = "standard") -> float:
    """``SSIM(f, a) + SSIM(f, b)``: Gaussian 11x11 / L = 255 (``standard``) or the MMIF
    Evaluator's scikit-image defaults (``mmif``)."""
    return _one("SSIM", f, a, b, convention)


def psnr(f: Any, a: Any, b: Any, convention: str = "standard") -> float:
    """``10 log10(P^2 / mean(MSE(f, a), MSE(f, b)))`` in dB; ``P = 255`` or ``max(f)``."""
    return _one("PSNR", f, a, b, convention)


_UNSET: Any = object()


def evaluate(fused: Any, *old: Any, ir: Any = _UNSET, vis: Any = _UNSET,
             metrics: Any = METRICS, convention: str = "standard") -> dict[str, float]:
    """The named metrics of one fused image against its infrared and visible sources:
    ``evaluate(fused, ir=..., vis=...)``.

    The sources are keyword-only (the networks take the visible image first; a keyword cannot
    be swapped silently). The former ``evaluate(fused, ir, vis[, metrics[, convention]])``
    still works for one release, with a ``DeprecationWarning``.

    Args:
        fused, ir, vis: ``(H, W)`` images of one size, ``uint8`` or float in ``[0, 1]``.
        metrics: names (case-insensitive), ``"all"`` or ``None`` (the default set); the ten
            original metrics unless given (``vifb``: VIFB's 13 unless given).
        convention: ``"standard"`` or ``"mmif"`` (see the module docstring), or ``"vifb"``:
            VIFB's MATLAB metrics, where ``fused``, ``ir`` and ``vis`` may be ``(H, W, 3)``
            RGB (:mod:`hyperleaf.metrics.vifb`).

    Returns ``{name: value}`` in table order. Intermediate results (grey levels, gradients,
    filtered images) are computed once and shared by the metrics that need them.
    """
    if old:
        given = positional_to_keywords(
            "evaluate", "evaluate(fused, ir=..., vis=..., metrics=..., convention=...)",
            ("ir", "vis", "metrics", "convention"), old,
            {"ir": ir, "vis": vis, "metrics": metrics, "convention": convention},
            {"ir": _UNSET, "vis": _UNSET, "metrics": METRICS, "convention": "standard"})
        ir, vis, metrics, convention = (given[k] for k in ("ir", "vis", "metrics", "convention"))
    if ir is _UNSET or vis is _UNSET:
        raise TypeError("evaluate: ir and vis are required keywords: "
                        "evaluate(fused, ir=..., vis=...)")
    check_convention(convention)
    if convention == "vifb":
        return _vifb.score(fused, vi=vis, ir=ir, metrics=None if metrics is METRICS else metrics)
    names = resolve(metrics)
    x = FusionInputs(fused, ir, vis)
    out = {}
    for name in names:
        try:
            out[name] = get(name).compute(x, convention)
        except (ValueError, ArithmeticError) as exc:
            raise ValueError(f"{name}: {exc}") from exc
    return out
