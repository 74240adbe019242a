r"""Validated inputs of the fusion metrics and the filters they share.

:class:`FusionInputs` holds the fused image ``f`` and its sources ``a`` (infrared) and ``b``
(visible) as float64 on the 0..255 scale, checked once, and caches what several metrics reuse
(grey levels, Sobel gradients, filtered images), so that :func:`hyperleaf.metrics.evaluate`
computes each of them once per image.

Filters are separable and run whole-image in C (``scipy.ndimage.correlate1d``), in float64:

* :func:`correlate_valid` -- ``sum_k w[k] x[i + k]`` over the windows that fit inside the image
  (MATLAB ``filter2(w, x, 'valid')`` for the symmetric windows used here);
* :func:`sobel` -- Sobel responses with zero padding (MATLAB ``filter2`` / SciPy
  ``correlate2d(..., boundary='fill')``).

Example::

    >>> import numpy as np
    >>> x = FusionInputs(np.eye(4, dtype=np.uint8) * 255, np.zeros((4, 4), np.uint8),
    ...                  np.zeros((4, 4), np.uint8))
    >>> x.f.dtype, float(x.f.max())
    (dtype('float64'), 255.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["FusionInputs", "as255", "correlate_valid", "gaussian_1d", "levels255", "sobel"]


def as255(img: Any, name: str) -> np.ndarray:
    """An image as C-contiguous float64 ``(H, W)`` on the 0..255 scale, validated.

    ``uint8`` arrays are used as they are (exact integers); float arrays must lie in ``[0, 1]``
    and are multiplied by 255. NumPy arrays or torch tensors.
    """
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    a = np.asarray(img)
    if a.ndim != 2 or min(a.shape) < 2:
        raise ValueError(f"{name}: expected a 2-D image (H, W) with H, W >= 2, got shape "
                         f"{a.shape}")
    return levels255(a, name)


def levels255(a: np.ndarray, name: str) -> np.ndarray:
    """A validated array of any shape as C-contiguous float64 on the 0..255 scale: ``uint8``
    exactly, floats in ``[0, 1]`` (finite) times 255; ``ValueError`` naming ``name`` otherwise."""
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a, dtype=np.float64)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: expected uint8 or float in [0, 1], got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise ValueError(f"{name}: float images must lie in [0, 1], got [{a.min():.4g}, "
                         f"{a.max():.4g}] (clamp the network output first)")
    return np.ascontiguousarray(np.clip(a, 0.0, 1.0) * 255.0)


def gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps centred on the middle one (float64)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def correlate_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable correlation with the window ``w (x) w``, 'valid' windows only.

    ``x`` is ``(H, W)``, ``w`` a 1-D window of odd length ``n``; returns ``(H-n+1, W-n+1)``.
    """
    r = (len(w) - 1) // 2
    # The boundary mode only touches the cropped border; 'nearest' is the cheapest.
    y = ndimage.correlate1d(x, w, axis=0, mode="nearest")[r:x.shape[0] - r]
    return ndimage.correlate1d(y, w, axis=1, mode="nearest")[:, r:x.shape[1] - r]


_SMOOTH = np.array([1.0, 2.0, 1.0])
_DIFF = np.array([-1.0, 0.0, 1.0])


def sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel responses ``(gx, gy)`` with zero padding, ``(H, W)`` each.

    ``gx`` correlates with ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (left to right), ``gy``
    with ``[[1, 2, 1], [0, 0, 0], [-1, -2, -1]]`` (bottom to top, image rows run downwards).
    On integer images every response is an exact integer.
    """
    gx = ndimage.correlate1d(ndimage.correlate1d(x, _SMOOTH, axis=0, mode="constant"),
                             _DIFF, axis=1, mode="constant")
    gy = ndimage.correlate1d(ndimage.correlate1d(x, _SMOOTH, axis=1, mode="constant"),
                             -_DIFF, axis=0, mode="constant")
    return gx, gy


class FusionInputs:
    """A fused image and its two sources, validated, with shared intermediate results.

    Args:
        fused, ir, vis: ``(H, W)`` images of one size: ``uint8``, or float in ``[0, 1]``.

    Attributes ``f``, ``a`` (infrared), ``b`` (visible): float64 on the 0..255 scale.
    """

    def __init__(self, fused: Any, ir: Any = None, vis: Any = None) -> None:
        self.f = as255(fused, "fused")
        self.a = None if ir is None else as255(ir, "ir")
        self.b = None if vis is None else as255(vis, "vis")
        for name, img in (("ir", self.a), ("vis", self.b)):
            if img is not None and img.shape != self.f.shape:
                raise ValueError(f"images differ in size: fused is {self.f.shape}, {name} is "
                                 f"{img.shape}")
        self._cache: dict[Any, Any] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.f.shape  # type: ignore[return-value]

    def sources(self) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)``; ``ValueError`` when the inputs were given without sources."""
        if self.a is None or self.b is None:
            raise ValueError("this metric needs the infrared and visible sources (ir, vis)")
        return self.a, self.b

    def image(self, key: str) -> np.ndarray:
        """``"f"``, ``"a"`` or ``"b"``."""
        img = getattr(self, key)
        if img is None:
            self.sources()
        return img

    def cached(self, key: Any, make) -> Any:
        """``make()`` computed once per ``key``."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def levels(self, key: str) -> np.ndarray:
        """Grey levels 0..255 (int64) of image ``key`` (rounded for non-integer inputs)."""
        return self.cached(("levels", key),
                           lambda: np.rint(self.image(key)).astype(np.int64))

    def centred(self, key: str) -> np.ndarray:
        """Image ``key`` minus its most frequent grey level (exact on integer images).

        For metrics built only from local variances and covariances (VIF): they are exactly
        invariant to such a shift, and flat regions become exact zeros, so the
        ``E[x^2] - E[x]^2`` cancellation no longer leaves rounding noise where the true
        variance is 0 or tiny (VIF's gain ``cov / var`` amplifies that noise)."""

        def make():
            mode = int(np.bincount(self.levels(key).ravel()).argmax())
            return self.image(key) - float(mode)

        return self.cached(("centred", key), make)

    def gradient(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Sobel strength ``g`` and orientation ``atan(gy / gx)`` (``pi/2`` where ``gx = 0``)."""

        def make():
            gx, gy = sobel(self.image(key))
            g = np.sqrt(gx * gx + gy * gy)
            zero = gx == 0
            with np.errstate(divide="ignore", invalid="ignore"):
                ang = np.where(zero, math.pi / 2, np.arctan(gy / np.where(zero, 1.0, gx)))
            return g, ang

        return self.cached(("gradient", key), make)

    def filtered(self, key: str, w_name: str, w: np.ndarray) -> np.ndarray:
        """``correlate_valid`` of ``key`` (an image name or a product like ``"ab"``)."""

        def make():
            x = self.image(key[0])
            for k in key[1:]:
                x = x * self.image(k)
            return correlate_valid(x, w)

        return self.cached(("filtered", key, w_name), make)
