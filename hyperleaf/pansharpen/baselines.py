r"""Classical pan-sharpening baselines on one API, as in Vivone et al.'s toolbox.

Every method is ``method(pan, lms, ms, ratio, sensor) -> fused`` with ``pan`` (N, 1, H, W),
``lms`` the MS interpolated to the PAN grid (N, C, H, W), ``ms`` the original MS
(N, C, H/r, W/r); statistics (means, standard deviations, regressions) are per image. Call them
through :func:`fuse`. ``equalise(p, t)`` below is ``(p - mean p) std(t) / std(p) + mean t``
(histogram matching of the first two moments, per image).

* ``EXP``: ``lms`` itself (the interpolated MS; no PAN).
* ``Brovey``: ``lms * equalise(pan, I) / I`` with ``I`` the band mean of ``lms``.
* ``IHS``: ``lms + (equalise(pan, I) - I)`` (generalised IHS, ``I`` the band mean).
* ``PCA``: principal components of ``lms`` (band covariance), the first one (sign chosen to
  correlate positively with the PAN) replaced by ``equalise(pan, PC1)``, transformed back.
* ``GS``: Gram-Schmidt in its injection form (Aiazzi et al. 2007): ``I`` the band mean,
  ``lms_b + g_b (equalise(pan, I) - I)`` with ``g_b = cov(lms_b, I) / var(I)``.
* ``GSA`` (the structure of toolbox ``GSA.m``): an adaptive intensity
  ``I = sum_b w_b (lms_b - mean lms_b)`` with weights (and an intercept) regressing the
  mean-free PAN, low-passed and decimated to the MS grid, on the mean-free original MS bands
  (least squares); ``lms_b + g_b ((pan - mean pan) - (I - mean I))``, ``g_b = cov(lms_b, I) /
  var(I)``, no histogram matching. The PAN's low-pass is the toolbox's ``LPfilterGauss`` plus
  nearest decimation (its ``gen_LP_image`` choice for GSA), not ``GSA.m``'s Starck-Murtagh
  wavelet filter.
* ``PRACS`` (toolbox ``PRACS.m``, Choi et al. 2011): MS bands histogram-matched to the PAN
  (negative values set to 0); ``I_l`` the regression (with offset) of the PAN shrunk and
  re-enlarged by bicubic ``imresize`` on them; partial replacement
  ``I_h,b = c_b pan + (1 - c_b) ms~_b`` with ``c_b = corr(I_l, ms~_b)``; band intensities
  ``I'_b`` regressing each ``I_h,b`` (bicubic down and up) on the matched bands; detail
  ``I_h,b - I'_b`` minus its mean; weights ``0.95 corr(I'_b, lms_b) std(lms_b) / mean_b
  std(lms_b)`` and the local adjustment ``1 - |1 - corr(I_l, lms_b) lms_b / I'_b|``.
* ``BDSD`` (toolbox ``BDSD.m`` with global estimation, the block size the whole image as the
  toolbox's demos pass it; Garzelli et al. 2008): at reduced resolution, the PAN through its
  MTF filter (PAN gain) sampled from pixel 2 every ``ratio``, the MS ``lms`` shrunk by bicubic
  ``imresize`` and that through the MS MTF filters; the injection matrix
  ``gamma = (Hd^T Hd)^-1 Hd^T (ms_orig - ms_LP)``, ``Hd = [ms_LP, pan_LP]``; then
  ``lms + [lms, pan] gamma`` at full resolution.
* ``MTF-GLP`` (toolbox ``MTF_GLP.m``): ``lms_b + (P_b - L_b)`` (unit gains) with
  ``P_b = equalise(pan, lms_b)``, ``L_b`` its low-pass through band b's MTF filter
  (:func:`~hyperleaf.pansharpen.filters.mtf_filter`, the toolbox's ``genMTF``), decimation
  and 23-tap interpolation (the generalised Laplacian pyramid).
* ``MTF-GLP-FS`` (toolbox ``MTF_GLP_FS.m``, Vivone et al. 2018): no equalisation;
  ``lms_b + g_b (pan - L_b)`` with ``L_b`` the PAN through band b's MTF, decimation and
  interpolation, and full-scale regression gains ``g_b = cov(lms_b, pan) / cov(L_b, pan)``.
* ``MTF-GLP-HPM`` (toolbox ``MTF_GLP_HPM.m``): ``lms_b * P_b / L_b`` (high-pass modulation).
* ``MTF-GLP-REG``: hyperleaf's former ``MTF-GLP`` (before issue 24; not a toolbox method):
  ``lms_b + g_b (P_b - L_b)``, ``g_b = cov(lms_b, L_b) / var(L_b)``. The former name now
  means the toolbox's unit-gain MTF-GLP.
* ``BT-H`` (toolbox ``BroveyRegHazeMin.m``, Lolli et al. 2017): Brovey with haze correction.
  Haze ``L_b``: for 4 bands ``(0.95, 0.45, 0.40, 0.05)`` times the 1st percentile of
  ``lms_b`` (MATLAB ``prctile``), otherwise the band minimum; ``I = sum_b a_b (lms_b - L_b)``
  with ``a`` the least-squares weights (no intercept) of ``lms`` on the PAN low-passed by
  :func:`~hyperleaf.pansharpen.filters.lp_filter_gauss`; the PAN equalised to ``I`` through
  the low-passed PAN's moments; ``max(lms_b - L_b, 0) P / (I + eps) + L_b``.

Example::

    >>> import torch
    >>> pan, ms = torch.rand(1, 1, 32, 32) + 0.1, torch.rand(1, 4, 8, 8) + 0.1
    >>> from hyperleaf.pansharpen.filters import interp23
    >>> fuse("GSA", pan, interp23(ms, 4), ms, ratio=4, sensor="QB").shape
    torch.Size([1, 4, 32, 32])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from hyperleaf.pansharpen.filters import (
    bicubic,
    decimate,
    interp23,
    interpolate,
    lp_filter_gauss,
    mtf_filter,
)
from hyperleaf.pansharpen.sensors import Sensor, get_sensor

__all__ = ["METHODS", "fuse"]

_TINY = 1e-12


def _mean(x: Tensor) -> Tensor:
    return x.mean((-2, -1), keepdim=True)


def _std(x: Tensor) -> Tensor:
    return x.std((-2, -1), keepdim=True)


def _equalise(p: Tensor, target: Tensor) -> Tensor:
    """``p`` shifted and scaled to ``target``'s mean and standard deviation (per band)."""
    return (p - _mean(p)) * (_std(target) / _std(p).clamp_min(_TINY)) + _mean(target)


def _cov(a: Tensor, b: Tensor) -> Tensor:
    """Per-image covariance over pixels, (N, C, H, W) x (N, C', H, W) -> (N, C|C', 1, 1)."""
    return ((a - _mean(a)) * (b - _mean(b))).mean((-2, -1), keepdim=True)


def exp_(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    return lms.clone()


def brovey(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    i = lms.mean(1, keepdim=True)
    return lms * _equalise(pan, i) / (i + _TINY)


def ihs(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    i = lms.mean(1, keepdim=True)
    return lms + (_equalise(pan, i) - i)


def pca(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    n, c, h, w = lms.shape
    mu = _mean(lms)
    x = (lms - mu).reshape(n, c, h * w)
    cov = x @ x.transpose(1, 2) / (h * w - 1)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    vecs = vecs.flip(-1)  # (N, C, C), column 0 = first principal direction
    pcs = vecs.transpose(1, 2) @ x  # (N, C, HW)
    p = pan.reshape(n, 1, h * w)
    pc1 = pcs[:, :1]
    sign = torch.where((((pc1 - pc1.mean(-1, keepdim=True)) * (p - p.mean(-1, keepdim=True)))
                        .sum(-1, keepdim=True)) < 0, -1.0, 1.0).to(lms.dtype)
    vecs = vecs.clone()
    vecs[:, :, :1] = vecs[:, :, :1] * sign
    pc1 = pc1 * sign
    pc1_img = pc1.reshape(n, 1, h, w)
    pcs = torch.cat([_equalise(pan, pc1_img).reshape(n, 1, h * w), pcs[:, 1:]], 1)
    return (vecs @ pcs).reshape(n, c, h, w) + mu


def _gs_inject(pan: Tensor, lms: Tensor, i: Tensor) -> Tensor:
    g = _cov(lms, i) / _cov(i, i).clamp_min(_TINY)
    return lms + g * (_equalise(pan, i) - i)


def gs(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    return _gs_inject(pan, lms, lms.mean(1, keepdim=True))


def gsa(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    n, c = ms.shape[:2]
    pan0 = pan - _mean(pan)
    pan_lr = decimate(lp_filter_gauss(pan0, ratio), ratio)  # (N, 1, h, w)
    ms0 = ms - _mean(ms)
    a = torch.cat([ms0.reshape(n, c, -1), torch.ones_like(ms[:, :1]).reshape(n, 1, -1)], 1)
    a = a.transpose(1, 2)  # (N, hw, C+1)
    weights = torch.linalg.lstsq(a, pan_lr.reshape(n, -1, 1)).solution  # (N, C+1, 1)
    lms0 = lms - _mean(lms)
    i = (lms0 * weights[:, :c].view(n, c, 1, 1)).sum(1, keepdim=True)
    i0 = i - _mean(i)
    g = _cov(lms, i0) / _cov(i0, i0).clamp_min(_TINY)
    out = lms0 + g * (pan0 - i0)
    return out - _mean(out) + _mean(lms)


def _glp_lowpass(p: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    """Band b's copy of the (equalised) PAN through band b's MTF, decimated, re-interpolated."""
    low = decimate(mtf_filter(p, sensor.gains_for(p.shape[1]), ratio), ratio)
    return interp23(low, ratio) if ratio & (ratio - 1) == 0 else interpolate(low, ratio,
                                                                             "bicubic")


def mtf_glp(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    p = _equalise(pan.expand_as(lms), lms)
    return lms + (p - _glp_lowpass(p, ratio, sensor))


def mtf_glp_reg(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    p = _equalise(pan.expand_as(lms), lms)
    low = _glp_lowpass(p, ratio, sensor)
    g = _cov(lms, low) / _cov(low, low).clamp_min(_TINY)
    return lms + g * (p - low)


def mtf_glp_fs(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    p = pan.expand_as(lms)
    low = _glp_lowpass(p.contiguous(), ratio, sensor)
    g = _cov(lms, p) / _cov(low, p)
    return lms + g * (p - low)


def prctile(x: Tensor, percent: float) -> Tensor:
    """MATLAB's ``prctile`` of each (H, W) image of ``x`` (..., H, W) -> (...): sorted values
    at percentages ``100 (i - 0.5) / n``, linear interpolation, clamped at the ends."""
    v = x.flatten(-2).sort(-1).values
    n = v.shape[-1]
    pos = percent / 100.0 * n - 0.5  # 0-based fractional index
    if pos <= 0:
        return v[..., 0]
    if pos >= n - 1:
        return v[..., -1]
    lo = int(pos)
    f = pos - lo
    return v[..., lo] * (1 - f) + v[..., lo + 1] * f


def bt_h(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    n, c, h, w = lms.shape
    if c == 4:
        haze = torch.tensor([0.95, 0.45, 0.40, 0.05], dtype=lms.dtype) * prctile(lms, 1)
    else:
        haze = lms.amin((-2, -1))
    haze = haze.view(n, c, 1, 1)
    pan_lp = lp_filter_gauss(pan, ratio)
    a = lms.reshape(n, c, -1).transpose(1, 2)  # (N, HW, C)
    alpha = torch.linalg.lstsq(a, pan_lp.reshape(n, -1, 1)).solution  # (N, C, 1)
    i = ((lms - haze) * alpha.view(n, c, 1, 1)).sum(1, keepdim=True)
    p = (pan - _mean(pan_lp)) * (_std(i) / _std(pan_lp)) + _mean(i)
    eps = torch.finfo(torch.float64).eps
    return (lms - haze).clamp_min(0) * (p / (i + eps)) + haze


def mtf_glp_hpm(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    p = _equalise(pan.expand_as(lms), lms)
    low = _glp_lowpass(p, ratio, sensor)
    return lms * p / (low + _TINY)


def _corr(a: Tensor, b: Tensor) -> Tensor:
    """MATLAB ``corr2`` per image and band: (N, C, H, W) x (N, C|1, H, W) -> (N, C, 1, 1)."""
    da, db = a - _mean(a), b - _mean(b)
    return (da * db).sum((-2, -1), keepdim=True) / torch.sqrt(
        (da * da).sum((-2, -1), keepdim=True) * (db * db).sum((-2, -1), keepdim=True))


def _regress(y: Tensor, bands: Tensor) -> Tensor:
    """Least squares of y (N, K, H, W) on [1, bands] (N, C, H, W): fitted values (N, K, H, W)."""
    n, c, h, w = bands.shape
    a = torch.cat([torch.ones(n, 1, h * w, dtype=bands.dtype), bands.reshape(n, c, -1)], 1)
    a = a.transpose(1, 2)  # (N, HW, C+1)
    coef = torch.linalg.lstsq(a, y.reshape(n, y.shape[1], -1).transpose(1, 2)).solution
    return (a @ coef).transpose(1, 2).reshape(n, y.shape[1], h, w)


def _bicubic_low(x: Tensor, ratio: int) -> Tensor:
    h, w = x.shape[-2:]
    return bicubic(bicubic(x, size=(h // ratio, w // ratio)), size=(h, w))


def bdsd(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    n, c, h, w = lms.shape
    pan_lp = mtf_filter(pan, sensor.pan_gain, ratio)[..., 2::ratio, 2::ratio]
    ms_orig = bicubic(lms, size=(h // ratio, w // ratio))
    ms_lp = mtf_filter(ms_orig, sensor.gains_for(c), ratio)
    hd = torch.cat([ms_lp, pan_lp], 1).reshape(n, c + 1, -1).transpose(1, 2)  # (N, hw, C+1)
    target = (ms_orig - ms_lp).reshape(n, c, -1).transpose(1, 2)  # (N, hw, C)
    gamma = torch.linalg.solve(hd.transpose(1, 2) @ hd, hd.transpose(1, 2) @ target)
    big = torch.cat([lms, pan], 1).reshape(n, c + 1, -1).transpose(1, 2)  # (N, HW, C+1)
    return lms + (big @ gamma).transpose(1, 2).reshape(n, c, h, w)


def pracs(pan: Tensor, lms: Tensor, ms: Tensor, ratio: int, sensor: Sensor) -> Tensor:
    beta = 0.95  # the toolbox's value (its comment: 1.95 for 8-bit data)
    sp, sb = _std(pan), _std(lms)
    hm = ((lms - _mean(lms) + _mean(pan) / sp * sb) * sp / sb).clamp_min(0)
    i_l = _regress(_bicubic_low(pan, ratio), hm)  # (N, 1, H, W)
    cc = _corr(hm, i_l)
    i_h = cc * pan + (1 - cc) * hm
    i_lp = _regress(_bicubic_low(i_h, ratio), hm)  # (N, C, H, W)
    delta = i_h - i_lp - (_mean(i_h) - _mean(i_lp))
    wts = beta * _corr(i_lp, lms) * sb / sb.mean(1, keepdim=True)
    adj = 1 - (1 - _corr(lms, i_l) * lms / i_lp).abs()
    return lms + wts * adj * delta


#: Baselines by name, in the order the tables list them.
METHODS: dict[str, Callable[..., Tensor]] = {
    "EXP": exp_, "Brovey": brovey, "IHS": ihs, "PCA": pca, "GS": gs, "GSA": gsa,
    "BT-H": bt_h, "BDSD": bdsd, "PRACS": pracs, "MTF-GLP": mtf_glp, "MTF-GLP-FS": mtf_glp_fs, "MTF-GLP-HPM": mtf_glp_hpm,
    "MTF-GLP-REG": mtf_glp_reg,
}


def fuse(method: str, pan: Tensor, lms: Tensor, ms: Tensor | None = None, ratio: int = 4,
         sensor: str | Sensor | None = None) -> Tensor:
    """Pan-sharpen with a classical ``method`` (a key of :data:`METHODS`).

    ``pan`` (N, 1, H, W) or (1, H, W); ``lms`` (N, C, H, W); ``ms`` (N, C, H/ratio, W/ratio),
    needed by GSA and the MTF-GLP methods (``None``: taken as ``decimate(lms, ratio)``, exact for
    the 23-tap interpolation). Returns (N, C, H, W) in ``lms``' dtype.
    """
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; expected one of {list(METHODS)} (the "
                         "former regression-gain MTF-GLP is MTF-GLP-REG)")
    squeeze = lms.ndim == 3
    if squeeze:
        pan, lms = pan[None], lms[None]
        ms = None if ms is None else ms[None]
    for name, t in (("pan", pan), ("lms", lms)):
        if not isinstance(t, Tensor) or t.ndim != 4 or not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point (N, C, H, W) tensor")
    if pan.shape[1] != 1 or pan.shape[0] != lms.shape[0] or pan.shape[-2:] != lms.shape[-2:]:
        raise ValueError(f"pan {tuple(pan.shape)} must be (N, 1, H, W) matching lms "
                         f"{tuple(lms.shape)}")
    if ms is None:
        ms = decimate(lms, ratio)
    if ms.shape[:2] != lms.shape[:2] or (ms.shape[-2] * ratio, ms.shape[-1] * ratio) != \
            lms.shape[-2:]:
        raise ValueError(f"ms {tuple(ms.shape)} must be lms {tuple(lms.shape)} shrunk by "
                         f"ratio {ratio}")
    s = get_sensor(sensor, bands=lms.shape[1])
    s.gains_for(lms.shape[1])
    out = METHODS[method](pan.to(lms.dtype), lms, ms.to(lms.dtype), ratio, s)
    return out[0] if squeeze else out
