r"""Standard metrics of infrared-visible image fusion.

All metrics work on the 8-bit scale: ``uint8`` arrays are used as they are, float arrays must
lie in ``[0, 1]`` and are multiplied by 255 (histogram-based metrics round them to the 256
grey levels). Images are 2-D ``(H, W)``; NumPy arrays or torch tensors.

No-reference (the fused image ``f`` alone):

* ``EN``  entropy of the 256-bin grey histogram, in bits;
* ``SD``  standard deviation (population);
* ``SF``  spatial frequency, ``sqrt(mean(dx^2) + mean(dy^2))`` with ``dx``/``dy`` the
  differences of horizontally/vertically adjacent pixels;
* ``AG``  average gradient, ``mean(sqrt((gx^2 + gy^2) / 2))`` with ``np.gradient``'s central
  differences (one-sided at the border).

Against the sources ``a`` (infrared) and ``b`` (visible), the usual sums over both:

* ``MI``   ``MI(f, a) + MI(f, b)``, 256-level joint histograms, in bits (torchmetrics'
  ``mutual_info_score``, converted from nats);
* ``SCD``  ``corr(f - b, a) + corr(f - a, b)`` (Pearson, torchmetrics);
* ``VIF``  ``VIF(a -> f) + VIF(b -> f)``, pixel-domain multi-scale VIF, noise variance 2
  (torchmetrics ``visual_information_fidelity``; needs images of at least 41x41);
* ``Qabf`` Xydeas-Petrovic edge preservation with Sobel gradients and the published constants
  (``Tg, kg, Dg = 0.9994, -15, 0.5``; ``Ta, ka, Da = 0.9879, -22, 0.8``);
* ``SSIM`` ``SSIM(f, a) + SSIM(f, b)`` (torchmetrics, Gaussian 11x11, sigma 1.5, range 255);
* ``PSNR`` ``10 log10(255^2 / ((MSE(f, a) + MSE(f, b)) / 2))`` (torchmetrics, on both pairs).

Example::

    >>> from hyperleaf import metrics
    >>> scores = metrics.evaluate(fused, ir, vis)     # doctest: +SKIP
    >>> scores["EN"], scores["Qabf"]                  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["METRICS", "ag", "en", "evaluate", "mi", "psnr", "qabf", "scd", "sd", "sf", "ssim",
           "vif"]

#: Metric names in the order tables list them.
METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR")


def _as255(img: Any, name: str) -> np.ndarray:
    """An image as float64 on the 0..255 scale (validated)."""
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    a = np.asarray(img)
    if a.ndim != 2 or min(a.shape) < 2:
        raise ValueError(f"{name}: expected a 2-D image (H, W) with H, W >= 2, got {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 or float in [0, 1], got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise ValueError(f"{name}: float images must lie in [0, 1], got [{a.min():.4g}, "
                         f"{a.max():.4g}] (clamp the network output first)")
    return np.clip(a, 0.0, 1.0) * 255.0


def _levels(a255: np.ndarray) -> np.ndarray:
    return np.rint(a255).astype(np.int64)


def _same(f: np.ndarray, *others: np.ndarray) -> None:
    for o in others:
        if o.shape != f.shape:
            raise ValueError(f"images differ in size: {f.shape} and {o.shape}")


def en(f: Any) -> float:
    """Entropy (bits) of the 256-bin grey histogram."""
    x = _levels(_as255(f, "f"))
    p = np.bincount(x.ravel(), minlength=256) / x.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def sd(f: Any) -> float:
    """Standard deviation (population) on the 0..255 scale."""
    return float(np.std(_as255(f, "f")))


def sf(f: Any) -> float:
    """Spatial frequency ``sqrt(mean(dx^2) + mean(dy^2))``."""
    x = _as255(f, "f")
    rf = np.mean((x[:, 1:] - x[:, :-1]) ** 2)
    cf = np.mean((x[1:, :] - x[:-1, :]) ** 2)
    return float(math.sqrt(rf + cf))


def ag(f: Any) -> float:
    """Average gradient ``mean(sqrt((gx^2 + gy^2) / 2))`` (central differences)."""
    x = _as255(f, "f")
    gy, gx = np.gradient(x)
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2.0)))


def _mi_pair(x: np.ndarray, y: np.ndarray) -> float:
    from torchmetrics.functional.clustering import mutual_info_score

    nats = mutual_info_score(torch.from_numpy(_levels(x).ravel()),
                             torch.from_numpy(_levels(y).ravel()))
    return float(nats) / math.log(2.0)


def mi(f: Any, a: Any, b: Any) -> float:
    """``MI(f, a) + MI(f, b)`` in bits, 256-level joint histograms."""
    f, a, b = _as255(f, "f"), _as255(a, "a"), _as255(b, "b")
    _same(f, a, b)
    return _mi_pair(f, a) + _mi_pair(f, b)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    from torchmetrics.functional import pearson_corrcoef

    return float(pearson_corrcoef(torch.from_numpy(x.ravel()), torch.from_numpy(y.ravel())))


def scd(f: Any, a: Any, b: Any) -> float:
    """Sum of correlations of differences: ``corr(f - b, a) + corr(f - a, b)``."""
    f, a, b = _as255(f, "f"), _as255(a, "a"), _as255(b, "b")
    _same(f, a, b)
    return _corr(f - b, a) + _corr(f - a, b)


def vif(f: Any, a: Any, b: Any) -> float:
    """``VIF(a -> f) + VIF(b -> f)``, pixel-domain multi-scale VIF (torchmetrics)."""
    from torchmetrics.functional.image import visual_information_fidelity

    f, a, b = _as255(f, "f"), _as255(a, "a"), _as255(b, "b")
    _same(f, a, b)
    if min(f.shape) < 41:
        raise ValueError(f"VIF needs images of at least 41x41, got {f.shape}")
    ft = torch.from_numpy(f)[None, None]
    return sum(float(visual_information_fidelity(ft, torch.from_numpy(s)[None, None]))
               for s in (a, b))


_SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
_SOBEL_X = _SOBEL_Y.T[:, ::-1].copy()  # [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]


def _sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient strength and orientation (correlation with zero padding, like filter2)."""
    from scipy.signal import correlate2d

    gx = correlate2d(x, _SOBEL_X, mode="same", boundary="fill")
    gy = correlate2d(x, _SOBEL_Y, mode="same", boundary="fill")
    g = np.sqrt(gx**2 + gy**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ang = np.where(gx == 0, math.pi / 2, np.arctan(gy / np.where(gx == 0, 1.0, gx)))
    return g, ang


def _edge_preservation(gs, as_, gf, af) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gs > gf, gf / gs, np.where(gs == gf, 1.0, gs / gf))
    ratio = np.nan_to_num(ratio, nan=0.0)
    orient = 1.0 - np.abs(as_ - af) / (math.pi / 2)
    qg = 0.9994 / (1.0 + np.exp(-15.0 * (ratio - 0.5)))
    qa = 0.9879 / (1.0 + np.exp(-22.0 * (orient - 0.8)))
    return qg * qa


def qabf(f: Any, a: Any, b: Any) -> float:
    """Xydeas-Petrovic Q^{AB/F} (edge information transferred from a and b to f), in [0, 1]."""
    f, a, b = _as255(f, "f"), _as255(a, "a"), _as255(b, "b")
    _same(f, a, b)
    gf, af = _sobel(f)
    ga, aa = _sobel(a)
    gb, ab = _sobel(b)
    qaf = _edge_preservation(ga, aa, gf, af)
    qbf = _edge_preservation(gb, ab, gf, af)
    den = (ga + gb).sum()
    if den == 0:
        return 0.0
    return float((qaf * ga + qbf * gb).sum() / den)


def ssim(f: Any, a: Any, b: Any) -> float:
    """``SSIM(f, a) + SSIM(f, b)`` (torchmetrics; Gaussian 11x11, sigma 1.5, range 255)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    f, a, b = _as255(f, "f"), _as255(a, "a"), _as255(b, "b")
    _same(f, a, b)
    ft = torch.from_numpy(f)[None, None]
    return sum(float(structural_similarity_index_measure(ft, torch.from_numpy(s)[None, None],
                                                         data_range=255.0))
               for s in (a, b))


def psnr(f: Any, a: Any, b: Any) -> float:
    """``10 log10(255^2 / mean(MSE(f, a), MSE(f, b)))`` in dB (torchmetrics)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    f, a, b = _as255(f, "f"), _as255(a, "a"), _as255(b, "b")
    _same(f, a, b)
    ft = torch.from_numpy(f)
    # One PSNR over (f, f) vs (a, b): its MSE is the mean of the two MSEs.
    return float(peak_signal_noise_ratio(torch.stack([ft, ft]),
                                         torch.stack([torch.from_numpy(a), torch.from_numpy(b)]),
                                         data_range=255.0))


def evaluate(fused: Any, ir: Any, vis: Any, metrics: tuple[str, ...] = METRICS
             ) -> dict[str, float]:
    """All (or the named) metrics of one fused image against its infrared and visible sources.

    Returns ``{name: value}`` in the order of :data:`METRICS`.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"metrics: unknown {unknown}; known: {list(METRICS)}")
    single = {"EN": en, "SD": sd, "SF": sf, "AG": ag}
    pair = {"MI": mi, "SCD": scd, "VIF": vif, "Qabf": qabf, "SSIM": ssim, "PSNR": psnr}
    out: dict[str, float] = {}
    for m in METRICS:
        if m not in metrics:
            continue
        out[m] = single[m](fused) if m in single else pair[m](fused, ir, vis)
    return out
