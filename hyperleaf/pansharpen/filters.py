r"""Filters of the pan-sharpening protocol: MTF-matched Gaussians, decimation, interpolation.

Images are torch tensors ``(..., C, H, W)`` (any leading batch dimensions), floating point.

* :func:`mtf_sigma` / :func:`mtf_kernel` / :func:`mtf_filter`: a Gaussian low-pass whose
  frequency response at the MS Nyquist frequency ``1 / (2 ratio)`` cycles per pixel equals
  the sensor's gain ``G``. A Gaussian of standard deviation ``sigma`` (pixels) has response
  ``exp(-2 pi^2 sigma^2 nu^2)``; solving for ``exp(-2 pi^2 sigma^2 / (4 ratio^2)) = G`` gives

  .. math:: \sigma = \frac{\mathrm{ratio}}{\pi} \sqrt{-2 \ln G}.

  The kernel is that Gaussian sampled on 41 taps (the toolbox's size) and normalised to a DC
  gain of 1; borders are replicated (as the toolbox's ``imfilter(..., 'replicate')``). The
  toolbox designs the same Gaussian by frequency sampling with a Kaiser window (``fwind1``);
  the two kernels agree to the Gaussian's truncation, not bit for bit.
* :func:`decimate`: keep every ``ratio``-th pixel starting at ``ratio // 2`` (MATLAB's
  ``imresize(x, 1/ratio, 'nearest')``, which the toolbox's Wald degradation uses).
* :func:`interp23`: the 23-tap polynomial interpolation kernel of the pan-sharpening community
  (Aiazzi et al. 2002), applied ``log2(ratio)`` times: upsample by 2 with zeros, filter rows and
  columns with the symmetric 23-tap kernel, circular borders. Original samples land on
  positions ``ratio // 2 + k ratio`` (consistent with :func:`decimate`) and are kept exactly,
  because the kernel is 1 at its centre and 0 at every other even offset.
* :func:`bicubic`: MATLAB's ``imresize`` bicubic (Keys, a = -0.5), antialiased when shrinking,
  mirrored borders; any scale.

Example::

    >>> import torch
    >>> ms = torch.rand(1, 4, 16, 16, dtype=torch.float64)
    >>> up = interp23(ms, 4)
    >>> up.shape, bool(torch.equal(up[..., 2::4, 2::4], ms))
    (torch.Size([1, 4, 64, 64]), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MTF_TAPS", "INTERP23_HALF", "bicubic", "decimate", "interp23", "interpolate",
           "mtf_filter", "mtf_kernel", "mtf_sigma", "resize_matrix"]

#: Length of the MTF kernels (the toolbox's N = 41).
MTF_TAPS = 41

#: Half of the 23-tap interpolation kernel, centre first (offsets 0, 1, ..., 11); the full
#: kernel is symmetric. Even offsets other than 0 are zero: an interpolating filter.
INTERP23_HALF = (1.0, 0.610668182370, 0.0, -0.145397186478, 0.0, 0.043619155884, 0.0,
                 -0.010385513306, 0.0, 0.001615524292, 0.0, -0.000120162964)


def _check_image(x: Tensor, name: str, min_dim: int = 3) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim < min_dim:
        raise ValueError(f"{name}: expected shape (..., C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")


def _check_ratio(ratio: int) -> int:
    if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
        raise ValueError(f"ratio: expected a positive integer, got {ratio!r}")
    return ratio


def mtf_sigma(gain: float, ratio: int) -> float:
    """Standard deviation (pixels) of the Gaussian with response ``gain`` at ``1/(2 ratio)``.

    >>> round(mtf_sigma(0.3, 4), 4)
    1.9758
    """
    _check_ratio(ratio)
    if not 0.0 < gain < 1.0:
        raise ValueError(f"gain: expected a value in (0, 1), got {gain}")
    return ratio * math.sqrt(-2.0 * math.log(gain)) / math.pi


def mtf_kernel(gain: float, ratio: int, taps: int = MTF_TAPS, dtype=torch.float64) -> Tensor:
    """The 1-D Gaussian (``taps``,) of :func:`mtf_sigma`, summing to 1 (the 2-D kernel is its
    outer product with itself)."""
    if taps < 1 or taps % 2 == 0:
        raise ValueError(f"taps: expected a positive odd number, got {taps}")
    sigma = mtf_sigma(gain, ratio)
    x = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype)


def _separable(x: Tensor, k: Tensor, mode: str) -> Tensor:
    """Depthwise separable filtering of (N, C, H, W) with per-channel 1-D kernels ``k`` (C, T)."""
    c, t = k.shape
    p = t // 2
    if mode == "circular":
        # F.pad's circular mode needs pad <= size; periodic indices work for any size.
        h, w = x.shape[-2:]
        rows = torch.arange(-p, h + p, device=x.device) % h
        cols = torch.arange(-p, w + p, device=x.device) % w
        x = x.index_select(-2, rows).index_select(-1, cols)
    else:
        x = F.pad(x, (p, p, p, p), mode=mode)
    x = F.conv2d(x, k.view(c, 1, 1, t), groups=c)
    return F.conv2d(x, k.view(c, 1, t, 1), groups=c)


def _flat(x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    lead = x.shape[:-3]
    return x.reshape(-1, *x.shape[-3:]), lead


def mtf_filter(x: Tensor, gains: float | Sequence[float], ratio: int,
               taps: int = MTF_TAPS) -> Tensor:
    """Low-pass each band of ``x`` (..., C, H, W) with its MTF Gaussian (replicated borders).

    ``gains``: one gain for all bands or one per band.
    """
    _check_image(x, "x")
    c = x.shape[-3]
    g = [float(gains)] * c if isinstance(gains, (int, float)) else [float(v) for v in gains]
    if len(g) != c:
        raise ValueError(f"gains: expected 1 or {c} values (one per band), got {len(g)}")
    k = torch.stack([mtf_kernel(v, ratio, taps) for v in g]).to(x.dtype).to(x.device)
    flat, lead = _flat(x)
    y = _separable(flat, k, "replicate")
    return y.reshape(*lead, *y.shape[-3:])


def decimate(x: Tensor, ratio: int) -> Tensor:
    """Every ``ratio``-th pixel from ``ratio // 2`` (MATLAB ``imresize(.., 1/ratio, 'nearest')``).

    H and W must be multiples of ``ratio``.
    """
    _check_image(x, "x", 2)
    _check_ratio(ratio)
    h, w = x.shape[-2:]
    if h % ratio or w % ratio:
        raise ValueError(f"x: height and width must be multiples of ratio {ratio}, got {h}x{w}")
    o = ratio // 2
    return x[..., o::ratio, o::ratio]


def interp23(x: Tensor, ratio: int) -> Tensor:
    """Upsample ``x`` (..., C, h, w) by ``ratio`` (a power of 2) with the 23-tap kernel."""
    _check_image(x, "x")
    _check_ratio(ratio)
    if ratio & (ratio - 1):
        raise ValueError(f"ratio: the 23-tap interpolation needs a power of 2, got {ratio} "
                         "(use bicubic)")
    half = torch.tensor(INTERP23_HALF, dtype=x.dtype, device=x.device)
    kernel = torch.cat([half.flip(0), half[1:]])  # 23 taps, centre at index 11
    y, lead = _flat(x)
    c = y.shape[1]
    k = kernel.expand(c, -1)
    first = True
    while ratio > 1:
        n, _, h, w = y.shape
        up = y.new_zeros(n, c, 2 * h, 2 * w)
        o = 1 if first else 0  # the toolbox's first pass puts samples on odd positions
        up[..., o::2, o::2] = y
        y = _separable(up, k, "circular")
        first, ratio = False, ratio // 2
    return y.reshape(*lead, *y.shape[-3:])


def _cubic(x: Tensor) -> Tensor:
    a = x.abs()
    a2, a3 = a * a, a * a * a
    return ((1.5 * a3 - 2.5 * a2 + 1) * (a <= 1)
            + (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def resize_matrix(n_in: int, n_out: int, antialias: bool = True) -> Tensor:
    """(n_out, n_in) float64 matrix of MATLAB's bicubic ``imresize`` along one axis."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be positive, got {n_in} -> {n_out}")
    scale = n_out / n_in
    shrink = antialias and scale < 1
    width = 4.0 / scale if shrink else 4.0
    x = torch.arange(1, n_out + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    d = u[:, None] - idx
    wts = scale * _cubic(scale * d) if shrink else _cubic(d)
    wts = wts / wts.sum(1, keepdim=True)
    # mirrored borders: 1..n, n..1, repeated
    i0 = (idx.long() - 1) % (2 * n_in)
    i0 = torch.where(i0 < n_in, i0, 2 * n_in - 1 - i0)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.scatter_add_(1, i0, wts)
    return m


def bicubic(x: Tensor, size: tuple[int, int] | None = None, scale: float | None = None,
            antialias: bool = True) -> Tensor:
    """MATLAB-style bicubic resize of ``x`` (..., C, H, W) to ``size`` or by ``scale``."""
    _check_image(x, "x", 2)
    h, w = x.shape[-2:]
    if (size is None) == (scale is None):
        raise ValueError("bicubic: give exactly one of size or scale")
    if size is None:
        if scale <= 0:
            raise ValueError(f"scale: expected a positive number, got {scale}")
        size = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
    mh = resize_matrix(h, size[0], antialias).to(x.dtype).to(x.device)
    mw = resize_matrix(w, size[1], antialias).to(x.dtype).to(x.device)
    return mh @ x @ mw.T


def interpolate(ms: Tensor, ratio: int, method: str = "23tap") -> Tensor:
    """``ms`` (..., C, h, w) upsampled to (..., C, h ratio, w ratio): ``"23tap"`` or ``"bicubic"``."""
    if method in ("23tap", "interp23"):
        return interp23(ms, ratio)
    if method == "bicubic":
        _check_ratio(ratio)
        h, w = ms.shape[-2:]
        return bicubic(ms, size=(h * ratio, w * ratio))
    raise ValueError(f"method: expected '23tap' or 'bicubic', got {method!r}")
