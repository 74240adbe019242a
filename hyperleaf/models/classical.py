r"""Classical infrared-visible fusers (no training), as VIFB runs them on colour pairs.

Every fuser takes ``ir`` and ``vis`` as ``uint8`` arrays, grey ``(H, W)`` or RGB ``(H, W, 3)``,
and returns ``uint8`` of the visible image's shape. Colour follows VIFB's harness: the pixel
fusers (average, maximum, Laplacian pyramid, TIF) fuse each RGB channel of the visible image
with the matching channel of the infrared one (a grey infrared image for every channel); GFF
computes its weights on the grey versions (MATLAB ``rgb2gray``) and applies them to every
channel. Outputs are rounded half away from zero and clipped to 0..255 (MATLAB ``uint8``).
All arithmetic is float64.

* :func:`fuse_average` -- ``(V + I) / 2``;
* :func:`fuse_maximum` -- ``max(V, I)``;
* :func:`fuse_laplacian` -- Laplacian pyramid (Burt & Adelson 1983; fusion rule of Burt &
  Kolczynski 1993): 4 levels of the 5-tap binomial kernel ``[1, 4, 6, 4, 1] / 16``
  (reflected borders), the detail coefficient of larger magnitude at each level, the mean of
  the two coarsest levels;
* :func:`fuse_gff` -- guided-filter fusion (S. Li, X. Kang, J. Hu, IEEE TIP 22(7), 2013):
  saliency ``|Laplacian| * Gaussian(11, sigma 5)``, one-hot weights of the larger saliency,
  refined by guided filters (r = 45, eps = 0.3 for the base layer, r = 7, eps = 1e-6 for the
  detail layer), quantised to 8 bits and renormalised, two-scale fusion with a 31x31 mean;
* :func:`fuse_tif` -- two-scale image fusion (D. P. Bavirisetti, R. Dhuli, Infrared Phys.
  Technol. 76, 2016): base layers by a 35x35 mean (circular borders), detail weights from
  the saliency ``(mean_35 - median_3x3)^2``, base layers averaged.

:data:`CLASSICAL` maps the names ``hyperleaf leaderboard --with-builtins`` uses to them.

Example::

    >>> import numpy as np
    >>> ir = np.full((8, 8), 200, np.uint8)
    >>> vis = np.zeros((8, 8, 3), np.uint8)
    >>> fuse_average(ir, vis)[0, 0].tolist()
    [100, 100, 100]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

__all__ = ["CLASSICAL", "fuse_average", "fuse_gff", "fuse_laplacian", "fuse_maximum",
           "fuse_tif", "guided_filter"]

_RGB2GRAY = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647],
                                    [1.0, -1.106, 1.703]]))[0]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB ``uint8``: round half away from zero, clip, NaN to 0."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    r = np.floor(x)
    r = r + (x - r >= 0.5)
    return np.clip(r, 0, 255).astype(np.uint8)


def _check(ir: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ir, vis = np.asarray(ir), np.asarray(vis)
    for name, a in (("ir", ir), ("vis", vis)):
        if a.dtype != np.uint8:
            raise ValueError(f"{name}: expected a uint8 image, got dtype {a.dtype}")
        if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
            raise ValueError(f"{name}: expected (H, W) or (H, W, 3), got shape {a.shape}")
    if ir.shape[:2] != vis.shape[:2]:
        raise ValueError(f"ir, vis: sizes differ: {ir.shape[:2]} and {vis.shape[:2]}")
    return ir, vis


def _per_channel(fuse2d: Callable[[np.ndarray, np.ndarray], np.ndarray]
                 ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Apply a grey fuser ``fuse2d(vis, ir) -> float`` to each visible channel."""

    def fuse(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        ir, vis = _check(ir, vis)
        if vis.ndim == 2:
            return _to_uint8(fuse2d(vis.astype(np.float64), _grey(ir, rounded=True)))
        out = np.empty(vis.shape, np.uint8)
        for k in range(3):
            src = ir[..., k] if ir.ndim == 3 else ir
            out[..., k] = _to_uint8(fuse2d(vis[..., k].astype(np.float64),
                                           src.astype(np.float64)))
        return out

    fuse.__doc__ = fuse2d.__doc__
    return fuse


def _grey(img: np.ndarray, rounded: bool) -> np.ndarray:
    if img.ndim == 2:
        return img.astype(np.float64)
    y = img.astype(np.float64) @ _RGB2GRAY
    return np.asarray(_to_uint8(y), dtype=np.float64) if rounded else y


def _average(v: np.ndarray, i: np.ndarray) -> np.ndarray:
    return (v + i) / 2.0


def _maximum(v: np.ndarray, i: np.ndarray) -> np.ndarray:
    return np.maximum(v, i)


_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
_LEVELS = 4


def _blur(x: np.ndarray) -> np.ndarray:
    return ndimage.correlate1d(ndimage.correlate1d(x, _BINOMIAL, axis=0, mode="reflect"),
                               _BINOMIAL, axis=1, mode="reflect")


def _expand(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = np.zeros(shape)
    up[::2, ::2] = x
    return 4.0 * _blur(up)


def _pyramid(x: np.ndarray) -> list[np.ndarray]:
    levels = []
    for _ in range(_LEVELS - 1):
        if min(x.shape) < 2:
            break
        small = _blur(x)[::2, ::2]
        levels.append(x - _expand(small, x.shape))
        x = small
    levels.append(x)
    return levels


def _laplacian(v: np.ndarray, i: np.ndarray) -> np.ndarray:
    pv, pi = _pyramid(v), _pyramid(i)
    fused = [np.where(np.abs(a) >= np.abs(b), a, b) for a, b in zip(pv[:-1], pi[:-1])]
    out = (pv[-1] + pi[-1]) / 2.0
    for detail in reversed(fused):
        out = detail + _expand(out, detail.shape)
    return out


_TIF_MEAN = np.full(35, 1.0 / 35.0)


def _tif(v: np.ndarray, i: np.ndarray) -> np.ndarray:
    def layers(x):
        # circular borders by explicit padding (np.pad repeats the image when the window is
        # larger than it, as MATLAB's padarray does), then the valid windows
        padded = np.pad(x, 17, mode="wrap")
        base = ndimage.correlate1d(ndimage.correlate1d(padded, _TIF_MEAN, axis=0),
                                   _TIF_MEAN, axis=1)[17:-17, 17:-17]
        med = ndimage.median_filter(x, size=3, mode="constant", cval=0.0)
        return base, x - base, (base - med) ** 2

    b1, d1, s1 = layers(v)
    b2, d2, s2 = layers(i)
    with np.errstate(divide="ignore", invalid="ignore"):
        w1, w2 = s1 / (s1 + s2), s2 / (s1 + s2)
    return w1 * d1 + w2 * d2 + 0.5 * b1 + 0.5 * b2  # 0/0 stays NaN -> 0, as MATLAB's uint8


fuse_average = _per_channel(_average)
fuse_average.__doc__ = "Mean of the two images, per visible channel: ``(V + I) / 2``."
fuse_maximum = _per_channel(_maximum)
fuse_maximum.__doc__ = "Pixel-wise maximum, per visible channel: ``max(V, I)``."
fuse_laplacian = _per_channel(_laplacian)
fuse_laplacian.__doc__ = ("Laplacian-pyramid fusion (4 levels, larger-magnitude details, mean "
                          "base), per visible channel.")
fuse_tif = _per_channel(_tif)
fuse_tif.__doc__ = ("TIF (Bavirisetti & Dhuli 2016): 35x35 mean base layers averaged, details "
                    "weighted by ``(mean_35 - median_3)^2`` saliency, per visible channel.")


def _box_sum(x: np.ndarray, r: int) -> np.ndarray:
    """Sums over the ``(2r+1)^2`` windows, truncated at the border (He's ``boxfilter``)."""
    ones = np.ones(2 * r + 1)
    return ndimage.correlate1d(ndimage.correlate1d(x, ones, axis=0, mode="constant"),
                               ones, axis=1, mode="constant")


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    r"""He, Sun & Tang's guided filter (ECCV 2010) of ``src`` by the grey ``guide``, ``(H, W)``.

    ``q = mean(a) I + mean(b)`` with ``a = cov(I, p) / (var(I) + eps)``,
    ``b = mean(p) - a mean(I)``; means over ``(2r+1)^2`` windows truncated at the border.

    >>> g = np.linspace(0, 1, 25).reshape(5, 5)
    >>> bool(np.allclose(guided_filter(g, g, 1, 1e-12), g))
    True
    """
    n = _box_sum(np.ones_like(guide), r)
    mi, mp = _box_sum(guide, r) / n, _box_sum(src, r) / n
    cov = _box_sum(guide * src, r) / n - mi * mp
    var = _box_sum(guide * guide, r) / n - mi * mi
    a = cov / (var + eps)
    b = mp - a * mi
    return (_box_sum(a, r) / n) * guide + _box_sum(b, r) / n


_GFF_LAPLACE = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _gauss(size: int, sigma: float) -> np.ndarray:
    t = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def fuse_gff(ir: np.ndarray, vis: np.ndarray, r1: int = 45, eps1: float = 0.3, r2: int = 7,
             eps2: float = 1e-6) -> np.ndarray:
    """Guided-filter fusion (Li, Kang & Hu 2013) of the visible image (first source: it wins
    ties of saliency) and the infrared one; weights on the grey images, applied to every
    visible channel (the infrared image replicated)."""
    ir, vis = _check(ir, vis)
    srcs = [vis, ir]
    greys = [_grey(s, rounded=True) / 255.0 for s in srcs]
    g11 = _gauss(11, 5.0)
    sal = []
    for g in greys:
        h = np.abs(ndimage.correlate(g, _GFF_LAPLACE, mode="nearest"))
        sal.append(ndimage.correlate1d(ndimage.correlate1d(h, g11, axis=0, mode="nearest"),
                                       g11, axis=1, mode="nearest") + 1e-12)
    pick = np.argmax(np.stack(sal), axis=0)  # first source on ties, as MATLAB's max
    weights = []
    for r, eps in ((r1, eps1), (r2, eps2)):
        w = [_to_uint8(guided_filter(g, (pick == k).astype(np.float64), r, eps) * 255.0)
             .astype(np.float64) / 255.0 + 1e-12 for k, g in enumerate(greys)]
        total = w[0] + w[1]
        weights.append([x / total for x in w])
    (wb0, wb1), (wd0, wd1) = weights
    box = np.full(31, 1.0 / 31.0)

    def two_scale(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = img / 255.0
        base = ndimage.correlate1d(ndimage.correlate1d(x, box, axis=0, mode="nearest"),
                                   box, axis=1, mode="nearest")
        return base, x - base

    channels = range(3) if vis.ndim == 3 else [None]
    out = np.empty(vis.shape, np.uint8)
    for k in channels:
        if k is None:
            v, i = vis.astype(np.float64), _grey(ir, rounded=True)
        else:
            v = vis[..., k].astype(np.float64)
            i = (ir[..., k] if ir.ndim == 3 else ir).astype(np.float64)
        bv, dv = two_scale(v)
        bi, di = two_scale(i)
        f = bv * wb0 + bi * wb1 + dv * wd0 + di * wd1
        if k is None:
            out[...] = _to_uint8(f * 255.0)
        else:
            out[..., k] = _to_uint8(f * 255.0)
    return out


#: Built-in classical fusers by name (``fn(ir, vis) -> uint8``).
CLASSICAL: dict[str, Callable[..., np.ndarray]] = {
    "average": fuse_average, "maximum": fuse_maximum, "laplacian": fuse_laplacian,
    "GFF": fuse_gff, "TIF": fuse_tif}
