r"""The ``vifb`` convention: VIFB's 13 fusion metrics as its MATLAB code computes them.

VIFB (X. Zhang, P. Ye, G. Xiao, "VIFB: A Visible and Infrared Image Fusion Benchmark", CVPRW
2020) scores every method with the ``metrics*.m`` files of its repository, called as
``metricsX(imgVI, imgIR, fused)`` on the images as ``imread`` returns them (``uint8``, RGB or
grey). This module reproduces those numbers from the same arrays; its conventions, each
differing from hyperleaf's ``standard`` one (docs/metrics.md gives the measured sizes):

* **Per RGB channel, averaged.** When the fused image has 3 channels, every metric except SF
  is computed on channel ``k`` of the fused image against channel ``k`` of each source (a grey
  source is used whole for every channel) and the three values are averaged.
* **Grey fused image.** The metrics see one channel; a colour source is reduced by MATLAB's
  ``rgb2gray`` (``Y = 0.298936 R + 0.587043 G + 0.114021 B``, the first row of the inverse
  NTSC matrix), *rounded* to ``uint8`` where VIFB's code calls it on ``uint8`` data (SSIM,
  MI, CE) and unrounded where it calls it on ``double`` data (PSNR, RMSE, Qabf). VIFB's Q_CB
  and Q_CV fail on that input in MATLAB; here they use the rounded luminance.
* ``EN``   entropy (bits) of the 256-bin histogram of ``floor(F)``.
* ``SD``   population standard deviation (VIFB's "Variance").
* ``AG``   ``sum(sqrt((gx^2 + gy^2) / 2)) / ((H - 1)(W - 1))`` with MATLAB ``gradient``
  (central differences, one-sided at the border): the sum runs over ``H x W`` pixels but is
  divided by ``(H - 1)(W - 1)``.
* ``EI``   mean Sobel magnitude, replicated borders (``imfilter(..., 'replicate')``).
* ``SF``   computed once on the ``H x 3W`` image that MATLAB's two-output ``size`` makes of an
  RGB array (the channels side by side, so one difference per row crosses from R to G and
  from G to B), ``sqrt(RF + CF)`` with both sums divided by ``H x 3W``.
* ``CE``   ``(CE(VI, F) + CE(IR, F)) / 2``, ``CE(S, F) = sum_k p_S(k) log2(p_S(k) / p_F(k))``
  over the grey levels where both histograms are non-zero.
* ``MI``   ``MI(VI, F) + MI(IR, F)`` in **nats**; each image is first min-max stretched to
  ``[0, 1]`` and requantised with ``int16(x * 255)`` (round half away from zero).
* ``PSNR`` ``20 log10(255 / sqrt(M))`` and ``RMSE`` ``M``, with
  ``M = (e(VI, F) + e(IR, F)) / 2`` and VIFB's ``e(S, F) = sqrt(sum (S - F)^2) / (H W)``
  (the root of the *sum* of squares over the pixel count, not a mean squared error).
* ``Qabf`` Xydeas-Petrovic with ``conv2`` Sobel responses (zero padding; the kernels rotated
  by 180 degrees, so the horizontal response has the opposite sign to a correlation's, which
  moves the orientation where the vertical response is 0), the ``gA = gF`` branch giving the
  ratio ``gF`` (as ``mmif``), on the images scaled by 255 (VIFB applies ``255 * im2double``
  to ``double`` arrays, a no-op ``im2double``).
* ``SSIM`` ``SSIM(VI, F) + SSIM(IR, F)``, Gaussian 11x11, sigma 1.5, ``L = 255``, population
  statistics, mean over the valid windows (the ``standard`` SSIM, per channel).
* ``Q_CB`` Chen-Blum as Z. Liu's ``metricChenBlum.m``: images ``normalize1``-d (stretched to
  0..255 and rounded), the DoG contrast-sensitivity filter ``exp(-(r/15.3870)^2) - 0.7622
  exp(-(r/1.3456)^2)`` on MATLAB's ``freqspace`` grid scaled by ``(W/30, H/30)``, local
  contrast ``|G_2 * I / G_4 * I - 1|`` with *unnormalised* 31x31 Gaussians (sigma 2 and 4,
  zero padding), masked contrast ``C^3 / (C^2 + 1e-4)``, saliency ``C_A^2 / (C_A^2 + C_B^2)``.
* ``Q_CV`` Chen-Varshney as Z. Liu's ``metricChen.m``: images ``normalize1``-d, saliency the
  sum of ``g^5`` (Sobel magnitude, alpha = 5) per 16x16 block, difference images filtered by
  Mannos-Sakrison's CSF as written there, ``2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1)``
  (0.144 for the published 0.114) on the ``freqspace`` grid scaled by ``(W/8, H/8)``, the
  mean of its square per 16x16 block (``blkproc`` zero-pads partial blocks, so each divides
  by 256), ``Q = sum(l_A D_A + l_B D_B) / sum(l_A + l_B)``.

Where VIFB's MATLAB gives NaN (a flat image in ``normalize1``, ``0/0`` contrast ratios),
this module gives the value the formula's limit suggests (flat: zeros; equal contrasts: a
preservation of 1, an equal split of saliency); docs/metrics.md lists these cases.

Every computation is float64 and vectorised over the channels.

Example::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> vi = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    >>> ir = rng.integers(0, 256, (32, 40), dtype=np.uint8)
    >>> s = score(vi, vi=vi, ir=ir, metrics=("SSIM", "RMSE"))
    >>> round(s["RMSE"], 6) == round(float(np.mean([
    ...     np.sqrt(((vi[..., k].astype(float) - ir) ** 2).sum()) / vi[..., k].size / 2
    ...     for k in range(3)])), 6)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from hyperleaf.io import read_image
from hyperleaf.metrics._images import gaussian_1d, levels255

__all__ = ["PUBLISHED_NAMES", "VIFB_METRICS", "matlab_rgb2gray", "read_matlab", "score"]

#: VIFB's 13 metrics under their hyperleaf registry names, in the order its tables use.
VIFB_METRICS = ("AG", "CE", "EI", "EN", "MI", "PSNR", "Qabf", "Q_CB", "Q_CV", "RMSE", "SF",
                "SSIM", "SD")

#: VIFB's own metric names (``metricsNAME.m``) to hyperleaf's.
PUBLISHED_NAMES = {"Avg_gradient": "AG", "Cross_entropy": "CE", "Edge_intensity": "EI",
                   "Entropy": "EN", "Mutinf": "MI", "Psnr": "PSNR", "Qabf": "Qabf",
                   "Qcb": "Q_CB", "Qcv": "Q_CV", "Rmse": "RMSE", "Spatial_frequency": "SF",
                   "Ssim": "SSIM", "Variance": "SD"}

# MATLAB's rgb2gray weights: the first row of the inverse of the NTSC RGB -> YIQ matrix as
# MATLAB writes it.
_NTSC = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
_RGB2GRAY = np.linalg.inv(_NTSC)[0]


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round`` (and integer conversion): halves away from zero, exactly."""
    a = np.abs(x)
    r = np.floor(a)
    r = r + (a - r >= 0.5)
    return np.copysign(r, x)


def matlab_rgb2gray(rgb: np.ndarray, rounded: bool) -> np.ndarray:
    """MATLAB ``rgb2gray`` of an ``(H, W, 3)`` array on the 0..255 scale, float64 ``(H, W)``.

    ``Y = 0.298936 R + 0.587043 G + 0.114021 B``; ``rounded=True`` rounds half away from
    zero and clips to 0..255, as MATLAB does for ``uint8`` input (``False``: ``double`` input).

    >>> matlab_rgb2gray(np.array([[[255, 0, 0]]], np.uint8), rounded=True)
    array([[76.]])
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    y = rgb[..., 0] * _RGB2GRAY[0] + rgb[..., 1] * _RGB2GRAY[1] + rgb[..., 2] * _RGB2GRAY[2]
    return np.clip(_round_half_away(y), 0.0, 255.0) if rounded else y


def read_matlab(path: str | Path) -> np.ndarray:
    """An image as MATLAB's ``imread`` + ``double`` give it: float64 on the 0..255 scale,
    ``(H, W)`` for grey files and ``(H, W, 3)`` for colour ones (8-bit values exact;
    16-bit files are rescaled to 0..255). JPEG files are decoded by Pillow (libjpeg-turbo),
    which may differ from MATLAB's decoder by a grey level on some pixels.

    >>> read_matlab("vi/carLight.jpg").shape   # doctest: +SKIP
    (460, 630, 3)
    """
    a = read_image(path).astype(np.float64) * 255.0
    return np.rint(a) if _is_8bit(path) else a


def _is_8bit(path: str | Path) -> bool:
    from PIL import Image

    with Image.open(path) as im:
        return im.mode in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr")


def _as_image(img: Any, name: str) -> np.ndarray:
    """Validated float64 ``(H, W)`` or ``(H, W, 3)`` on the 0..255 scale."""
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or min(a.shape[:2]) < 2:
        raise ValueError(f"{name}: expected a grey (H, W) or RGB (H, W, 3) image with H, W >= 2, "
                         f"got shape {a.shape}")
    return levels255(a, name)


class _Inputs:
    """The fused image and the sources as ``(C, H, W)`` stacks for each of VIFB's cases."""

    def __init__(self, fused: np.ndarray, vi: np.ndarray, ir: np.ndarray) -> None:
        for name, img in (("vis", vi), ("ir", ir)):
            if img.shape[:2] != fused.shape[:2]:
                raise ValueError(f"images differ in size: fused is {fused.shape[:2]}, {name} is "
                                 f"{img.shape[:2]}")
        self.colour = fused.ndim == 3
        self.fused, self.vi, self.ir = fused, vi, ir
        self.f = np.moveaxis(fused, -1, 0) if self.colour else fused[None]
        self._cache: dict[Any, Any] = {}

    def source(self, key: str, rounded: bool) -> np.ndarray:
        """Source ``key`` (``"vi"`` or ``"ir"``) as ``(C, H, W)`` matching :attr:`f`."""

        def make():
            img = self.vi if key == "vi" else self.ir
            if self.colour:
                if img.ndim == 3:
                    return np.moveaxis(img, -1, 0)
                return np.broadcast_to(img, (3, *img.shape))
            if img.ndim == 3:
                return matlab_rgb2gray(img, rounded)[None]
            return img[None]

        return self.cached(("src", key, rounded and not self.colour), make)

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


# ------------------------------------------------------------------ helpers on (C, H, W)


def _corr(x: np.ndarray, w: np.ndarray, mode: str) -> np.ndarray:
    """Separable correlation of each channel with ``w (x) w`` ('same' size)."""
    y = ndimage.correlate1d(x, w, axis=-2, mode=mode)
    return ndimage.correlate1d(y, w, axis=-1, mode=mode)


def _valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    r = (len(w) - 1) // 2
    return _corr(x, w, "nearest")[..., r:x.shape[-2] - r, r:x.shape[-1] - r]


_SMOOTH = np.array([1.0, 2.0, 1.0])
_DIFF = np.array([-1.0, 0.0, 1.0])


def _sobel(x: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Correlations with ``[[-1,0,1],[-2,0,2],[-1,0,1]]`` and its transpose, per channel."""
    gx = ndimage.correlate1d(ndimage.correlate1d(x, _SMOOTH, axis=-2, mode=mode),
                             _DIFF, axis=-1, mode=mode)
    gy = ndimage.correlate1d(ndimage.correlate1d(x, _SMOOTH, axis=-1, mode=mode),
                             _DIFF, axis=-2, mode=mode)
    return gx, gy


def _hist(levels: np.ndarray) -> np.ndarray:
    """``(C, 256)`` normalised histograms of integer levels ``(C, H, W)``."""
    c = levels.shape[0]
    idx = levels.reshape(c, -1).astype(np.int64) + 256 * np.arange(c)[:, None]
    return np.bincount(idx.ravel(), minlength=256 * c).reshape(c, 256) / levels[0].size


def _levels(x: np.ndarray, name: str) -> np.ndarray:
    lv = np.rint(x)
    if lv.min() < 0 or lv.max() > 255:
        raise ValueError(f"{name}: grey levels outside 0..255")
    return lv


def _freq_radius(shape: tuple[int, int], sx: float, sy: float) -> np.ndarray:
    """``sqrt((sx u)^2 + (sy v)^2)`` on MATLAB's ``freqspace(shape, 'meshgrid')`` grid,
    reordered to NumPy's FFT layout (``ifftshift``)."""

    def grid(n: int) -> np.ndarray:
        return (np.arange(n) - n // 2) * (2.0 / n)

    v, u = grid(shape[0])[:, None] * sy, grid(shape[1])[None, :] * sx
    return np.fft.ifftshift(np.sqrt(u * u + v * v))


def _fft_filter(x: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Real part of ``ifft2(fft2(x) * response)`` per channel (the imaginary part MATLAB keeps
    is rounding noise, about 1e-13 of the real part, for these symmetric responses)."""
    return np.real(np.fft.ifft2(np.fft.fft2(x) * response))


def _normalize1(x: np.ndarray) -> np.ndarray:
    """Z. Liu's ``normalize1`` per channel: stretched to 0..255 and rounded; a channel of
    zeros stays; a flat non-zero channel (0/0 in MATLAB) becomes zeros."""
    lo = x.min(axis=(-2, -1), keepdims=True)
    hi = x.max(axis=(-2, -1), keepdims=True)
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _round_half_away((x - lo) / np.where(span > 0, span, 1.0) * 255.0)
    out = np.where(span > 0, out, 0.0)
    return np.where((hi == 0) & (lo == 0), x, out)


# ------------------------------------------------------------------ the 13 metrics


def _en(x: _Inputs) -> float:
    p = _hist(np.floor(x.f))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return float(np.mean(-t.sum(axis=1)))


def _sd(x: _Inputs) -> float:
    return float(np.mean(np.std(x.f, axis=(1, 2))))


def _ag(x: _Inputs) -> float:
    h, w = x.f.shape[1:]
    gy, gx = np.gradient(x.f, axis=(1, 2))
    s = np.sqrt((gx * gx + gy * gy) / 2.0).sum(axis=(1, 2))
    return float(np.mean(s / ((h - 1) * (w - 1))))


def _ei(x: _Inputs) -> float:
    gx, gy = _sobel(x.f, "nearest")
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


def _sf(x: _Inputs) -> float:
    wide = np.concatenate(list(x.f), axis=1)  # MATLAB's H x (C W) view of the array
    n = wide.size
    rf = float(((wide[:, 1:] - wide[:, :-1]) ** 2).sum()) / n
    cf = float(((wide[1:, :] - wide[:-1, :]) ** 2).sum()) / n
    return math.sqrt(rf + cf)


def _ce(x: _Inputs) -> float:
    pf = _hist(_levels(x.f, "fused"))
    total = np.zeros(x.f.shape[0])
    for key in ("vi", "ir"):
        ps = _hist(_levels(x.source(key, rounded=True), key))
        both = (ps > 0) & (pf > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(both, ps * np.log2(np.where(both, ps, 1.0) / np.where(both, pf, 1.0)),
                         0.0)
        total += t.sum(axis=1)
    return float(np.mean(total / 2.0))


def _requantise(x: np.ndarray) -> np.ndarray:
    """``int16(255 (x - min) / (max - min))`` per channel (zeros when flat)."""
    lo = x.min(axis=(1, 2), keepdims=True)
    span = x.max(axis=(1, 2), keepdims=True) - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (x - lo) / np.where(span != 0, span, 1.0)
    return np.where(span != 0, _round_half_away(y * 255.0), 0.0).astype(np.int64)


def _entropy_nats(counts: np.ndarray) -> np.ndarray:
    p = counts / counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)


def _mi(x: _Inputs) -> float:
    c = x.f.shape[0]
    qf = _requantise(x.f).reshape(c, -1)
    total = np.zeros(c)
    for key in ("vi", "ir"):
        qs = _requantise(np.asarray(x.source(key, rounded=True))).reshape(c, -1)
        idx = (np.arange(c)[:, None] * 65536 + qs * 256 + qf).ravel()
        joint = np.bincount(idx, minlength=65536 * c).reshape(c, 256, 256).astype(np.float64)
        hs = _entropy_nats(joint.sum(axis=2))
        hf = _entropy_nats(joint.sum(axis=1))
        hj = _entropy_nats(joint.reshape(c, -1))
        total += hs + hf - hj
    return float(np.mean(total))


def _vifb_error(x: _Inputs) -> np.ndarray:
    """Per channel ``(e(VI, F) + e(IR, F)) / 2`` with ``e = sqrt(sum d^2) / (H W)``."""

    def make():
        n = x.f[0].size
        e = [np.sqrt(((x.source(k, rounded=False) - x.f) ** 2).sum(axis=(1, 2))) / n
             for k in ("vi", "ir")]
        return (e[0] + e[1]) / 2.0

    return x.cached("error", make)


def _rmse(x: _Inputs) -> float:
    return float(np.mean(_vifb_error(x)))


def _psnr(x: _Inputs) -> float:
    m = _vifb_error(x)
    with np.errstate(divide="ignore"):
        p = 20.0 * np.log10(255.0 / np.sqrt(m))
    return float(np.mean(p))


_SSIM_W = gaussian_1d(11, 1.5)


def _ssim(x: _Inputs) -> float:
    if min(x.f.shape[1:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11, got {x.f.shape[1:]}")
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    f = x.f
    mf = _valid(f, _SSIM_W)
    vf = _valid(f * f, _SSIM_W) - mf * mf
    total = np.zeros(f.shape[0])
    for key in ("vi", "ir"):
        s = np.asarray(x.source(key, rounded=True), dtype=np.float64)
        ms = _valid(s, _SSIM_W)
        vs = _valid(s * s, _SSIM_W) - ms * ms
        cov = _valid(s * f, _SSIM_W) - ms * mf
        m = ((2 * ms * mf + c1) * (2 * cov + c2)) / ((ms * ms + mf * mf + c1) * (vs + vf + c2))
        total += m.mean(axis=(1, 2))
    return float(np.mean(total))


_TG, _KG, _DG = 0.9994, -15.0, 0.5
_TA, _KA, _DA = 0.9879, -22.0, 0.8


def _strength_angle(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # conv2 with metricsQabf.m's h3 and h1 (kernels rotated by 180 degrees): the horizontal
    # response is minus _sobel's, the vertical one equal; the sign matters where it is 0
    # (the angle is then +pi/2 while the others change sign).
    gx, gy = _sobel(img, "constant")
    gx = -gx
    g = np.sqrt(gx * gx + gy * gy)
    zero = gx == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ang = np.where(zero, math.pi / 2, np.arctan(gy / np.where(zero, 1.0, gx)))
    return g, ang


def _qabf(x: _Inputs) -> float:
    gf, af = _strength_angle(255.0 * x.f)
    nums, dens = np.zeros(x.f.shape[0]), np.zeros(x.f.shape[0])
    for key in ("vi", "ir"):
        gs, as_ = _strength_angle(255.0 * np.asarray(x.source(key, rounded=False)))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(gs > gf, gf / gs, np.where(gs == gf, gf, gs / gf))
        orient = 1.0 - np.abs(as_ - af) / (math.pi / 2)
        q = _TG / (1.0 + np.exp(_KG * (ratio - _DG))) * _TA / (1.0 + np.exp(_KA * (orient - _DA)))
        nums += (q * gs).sum(axis=(1, 2))
        dens += gs.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(dens > 0, nums / np.where(dens > 0, dens, 1.0), 0.0)
    return float(np.mean(per))


def _gauss31(sigma: float) -> np.ndarray:
    """One factor of Liu's unnormalised 31x31 Gaussian ``exp(-(x^2+y^2)/(2 s^2)) / (2 pi s^2)``."""
    t = np.arange(-15, 16, dtype=np.float64)
    return np.exp(-(t * t) / (2.0 * sigma * sigma)) / math.sqrt(2.0 * math.pi * sigma * sigma)


_CB_G1, _CB_G2 = _gauss31(2.0), _gauss31(4.0)


def _cb_contrast(img: np.ndarray, sd: np.ndarray) -> np.ndarray:
    filt = _fft_filter(img, sd)
    near, far = _corr(filt, _CB_G1, "constant"), _corr(filt, _CB_G2, "constant")
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.abs(near / far - 1.0)
    c = np.where(np.isfinite(c), c, 0.0)
    return c**3 / (c * c + 1e-4)


def _q_cb(x: _Inputs) -> float:
    h, w = x.f.shape[1:]
    r = _freq_radius((h, w), w / 30.0, h / 30.0)
    sd = np.exp(-(r / 15.3870) ** 2) - 0.7622 * np.exp(-(r / 1.3456) ** 2)
    cf = _cb_contrast(_normalize1(x.f), sd)
    ca = _cb_contrast(_normalize1(np.asarray(x.source("vi", rounded=True))), sd)
    cb = _cb_contrast(_normalize1(np.asarray(x.source("ir", rounded=True))), sd)

    def keep(cs: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(cs < cf, cs / cf, cf / cs)
        return np.where((cs == 0) & (cf == 0), 1.0, q)

    sa, sb = ca * ca, cb * cb
    with np.errstate(divide="ignore", invalid="ignore"):
        la = np.where(sa + sb > 0, sa / (sa + sb), 0.5)
        lb = np.where(sa + sb > 0, sb / (sa + sb), 0.5)
    q = la * keep(ca) + lb * keep(cb)
    return float(np.mean(q.mean(axis=(1, 2))))


_CV_BLOCK = 16


def _blocks(m: np.ndarray) -> np.ndarray:
    """Sums over 16x16 blocks per channel (partial blocks at the right/bottom included)."""
    rows = np.add.reduceat(m, np.arange(0, m.shape[1], _CV_BLOCK), axis=1)
    return np.add.reduceat(rows, np.arange(0, m.shape[2], _CV_BLOCK), axis=2)


def _q_cv(x: _Inputs) -> float:
    h, w = x.f.shape[1:]
    r = _freq_radius((h, w), w / 8.0, h / 8.0)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    f = _normalize1(x.f)
    num, den = np.zeros(x.f.shape[0]), np.zeros(x.f.shape[0])
    dists = []
    for key in ("vi", "ir"):
        s = _normalize1(np.asarray(x.source(key, rounded=True)))
        gx, gy = _sobel(s, "constant")
        sal = _blocks(np.sqrt(gx * gx + gy * gy) ** 5)
        d = _blocks(_fft_filter(s - f, csf) ** 2) / float(_CV_BLOCK * _CV_BLOCK)
        dists.append(d)
        num += (sal * d).sum(axis=(1, 2))
        den += sal.sum(axis=(1, 2))
    flat = np.mean((dists[0] + dists[1]) / 2.0, axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(den > 0, num / np.where(den > 0, den, 1.0), flat)
    return float(np.mean(per))


_FUNCS: dict[str, Callable[[_Inputs], float]] = {
    "AG": _ag, "CE": _ce, "EI": _ei, "EN": _en, "MI": _mi, "PSNR": _psnr, "Qabf": _qabf,
    "Q_CB": _q_cb, "Q_CV": _q_cv, "RMSE": _rmse, "SF": _sf, "SSIM": _ssim, "SD": _sd}


def select(metrics: Iterable[str] | str | None) -> tuple[str, ...]:
    """Canonical names of a selection among VIFB's 13 (``None`` or ``"all"``: all of them,
    in :data:`VIFB_METRICS` order); ``ValueError`` naming a metric VIFB does not define."""
    from hyperleaf.metrics.registry import resolve

    if metrics is None:
        return VIFB_METRICS
    if isinstance(metrics, str):
        metrics = [metrics]
    metrics = list(metrics)
    if any(isinstance(m, str) and m.casefold() == "all" for m in metrics):
        return VIFB_METRICS
    names = resolve(metrics)
    bad = [n for n in names if n not in _FUNCS]
    if bad:
        raise ValueError(f"metrics: {', '.join(bad)} not defined in the vifb convention; "
                         f"VIFB's metrics: {', '.join(VIFB_METRICS)}")
    return tuple(n for n in VIFB_METRICS if n in names)


def score(fused: Any, *, vi: Any, ir: Any, metrics: Iterable[str] | str | None = None
          ) -> dict[str, float]:
    """VIFB's metrics of one fused image against its visible and infrared sources.

    Args:
        fused, vi, ir: ``(H, W)`` grey or ``(H, W, 3)`` RGB images of one size: ``uint8``
            (as ``imread`` gives them) or float in ``[0, 1]`` (scaled by 255, not rounded).
        metrics: names among :data:`VIFB_METRICS` (case-insensitive, registry aliases
            accepted), ``"all"`` or ``None`` (all 13).

    Returns ``{name: value}`` in :data:`VIFB_METRICS` order (MI in nats, PSNR in dB; PSNR is
    ``inf`` when the fused image equals both sources).
    """
    names = select(metrics)
    x = _Inputs(_as_image(fused, "fused"), _as_image(vi, "vis"), _as_image(ir, "ir"))
    return {n: _FUNCS[n](x) for n in names}
