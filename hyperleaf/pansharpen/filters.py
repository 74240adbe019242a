r"""Filters of the pan-sharpening protocol: MTF-matched Gaussians, decimation, interpolation.

Images are torch tensors ``(..., C, H, W)`` (any leading batch dimensions), floating point.

* :func:`toolbox_mtf_kernel` (``convention="toolbox"``, the default of :func:`mtf_filter`): the
  toolbox's ``genMTF``. A Gaussian ``H`` of standard deviation ``alpha = (N - 1) / (2 ratio)
  / sqrt(-2 ln G)`` frequency samples on an ``N x N`` grid (``fspecial``, entries below
  ``eps max H`` set to 0), scaled to a peak of 1, is the desired frequency response of
  ``fwind1``: the kernel is the inverse DFT of that response (:func:`fsamp2`) times the
  rotationally symmetric window ``w(sqrt(t1^2 + t2^2))`` (:func:`fwind1`), ``w`` the Kaiser
  window of ``beta = 0.5`` (MATLAB's ``kaiser(N)``) linearly interpolated, 0 beyond radius 1.
  The kernel is not separable and not normalised: its DC gain is 0.998-0.9997 (0.99874 for
  ``G = 0.3``, ratio 4); its response at Nyquist is close to ``G^1.05``. Applied as
  ``imfilter(x, h, 'replicate')`` (correlation, replicated borders).
* :func:`mtf_sigma` / :func:`mtf_kernel` (``convention="legacy"``, hyperleaf before issue 24):
  a Gaussian low-pass whose
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

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CONVENTIONS", "MTF_TAPS", "INTERP23_HALF", "bicubic", "check_convention", "decimate",
           "fsamp2", "fspecial_gaussian", "fwind1", "interp23", "interpolate", "kaiser",
           "lp_filter_gauss",
           "mtf_filter", "mtf_kernel", "mtf_sigma", "resize_matrix", "toolbox_mtf_kernel"]

#: Conventions of the pan-sharpening protocol. ``"toolbox"``: the MATLAB toolbox of Vivone et
#: al. (``genMTF`` filters, bicubic PAN degradation, D_lambda against the upsampled MS, Q2n on
#: ``uint16``); ``"legacy"``: hyperleaf's protocol before issue 24 (sampled Gaussians, PAN
#: degraded by its MTF, D_lambda of the QNR paper, Q2n without rounding).
CONVENTIONS = ("toolbox", "legacy")

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


def check_convention(convention: str) -> str:
    """``convention`` checked against :data:`CONVENTIONS` (a ValueError naming it otherwise).

    >>> check_convention("toolbox")
    'toolbox'
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    return convention


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


def kaiser(n: int, beta: float = 0.5) -> np.ndarray:
    r"""MATLAB's ``kaiser(n, beta)`` (symmetric), float64 ``(n,)``:
    ``I0(beta sqrt(1 - (2k / (n - 1) - 1)^2)) / I0(beta)``.

    >>> [round(float(v), 6) for v in kaiser(3)]
    [0.940306, 1.0, 0.940306]
    """
    if n < 1:
        raise ValueError(f"n: expected a positive window length, got {n}")
    if n == 1:
        return np.ones(1)
    k = np.arange(n, dtype=np.float64)
    arg = beta * np.sqrt(np.clip(1.0 - (2.0 * k / (n - 1) - 1.0) ** 2, 0.0, None))
    return np.i0(arg) / np.i0(beta)


def fspecial_gaussian(n: int, sigma: float) -> np.ndarray:
    r"""MATLAB's ``fspecial('gaussian', n, sigma)``: ``(n, n)`` float64, entries
    ``exp(-(x^2 + y^2) / (2 sigma^2))`` (centred), those below ``eps`` times the peak set to 0,
    then divided by their sum.

    >>> h = fspecial_gaussian(5, 1.0)
    >>> h.shape, round(float(h.sum()), 12), bool(h[2, 2] == h.max())
    ((5, 5), 1.0, True)
    """
    if n < 1 or sigma <= 0:
        raise ValueError(f"n/sigma: expected n >= 1 and sigma > 0, got {n}/{sigma}")
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2
    h = np.exp(-(x[None, :] ** 2 + x[:, None] ** 2) / (2.0 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0.0
    return h / h.sum()


def fsamp2(hd: np.ndarray) -> np.ndarray:
    r"""MATLAB's ``fsamp2``: the real ``(n, n)`` filter whose DFT samples, centred, are ``hd``
    (``fftshift(ifft2(ifftshift(hd)))`` rotated by 180 degrees for ``filter2``).

    >>> import numpy as np
    >>> h = fsamp2(np.ones((5, 5)))   # an all-pass response: the unit impulse
    >>> bool(np.allclose(h, np.eye(5)[2][:, None] * np.eye(5)[2][None, :]))
    True
    """
    hd = np.asarray(hd, dtype=np.float64)
    if hd.ndim != 2:
        raise ValueError(f"hd: expected a 2-D frequency response, got shape {hd.shape}")
    h = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(hd)))
    return np.real(np.rot90(h, 2)).copy()


def fwind1(hd: np.ndarray, window: np.ndarray) -> np.ndarray:
    r"""MATLAB's ``fwind1(hd, w)`` with a 1-D window: :func:`fsamp2` of ``hd`` times the
    rotated window ``w(r)``, ``r = sqrt(t1^2 + t2^2)`` on ``t = linspace(-1, 1, n)``, ``w``
    linearly interpolated and 0 where ``r > 1``. ``hd`` ``(n, n)``, ``window`` ``(n,)``.

    >>> import numpy as np
    >>> h = fwind1(np.ones((5, 5)), np.ones(5))
    >>> round(float(h.sum()), 12)
    1.0
    """
    w1 = np.asarray(window, dtype=np.float64)
    n = w1.shape[0]
    if np.shape(hd) != (n, n):
        raise ValueError(f"hd: expected shape ({n}, {n}) to match the window, got {np.shape(hd)}")
    t = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    r = np.sqrt(t[None, :] ** 2 + t[:, None] ** 2)
    w = np.interp(r, t, w1)
    w[r > 1.0] = 0.0
    return fsamp2(hd) * w


def toolbox_mtf_kernel(gain: float, ratio: int, taps: int = MTF_TAPS) -> Tensor:
    r"""The toolbox's ``genMTF`` kernel of one band, ``(taps, taps)`` float64 (not separable,
    not normalised; see the module's docstring for the design).

    ``alpha = sqrt(((taps - 1) / (2 ratio))^2 / (-2 ln gain))``;
    ``h = fwind1(H / max H, kaiser(taps))`` with ``H = fspecial_gaussian(taps, alpha)``.

    >>> h = toolbox_mtf_kernel(0.3, 4)
    >>> tuple(h.shape), round(float(h.sum()), 6)
    ((41, 41), 0.99874)
    """
    return _toolbox_gauss(gain, ratio, taps, taps - 1)


def _toolbox_gauss(gain: float, ratio: int, taps: int, span: int) -> Tensor:
    _check_ratio(ratio)
    if not 0.0 < gain < 1.0:
        raise ValueError(f"gain: expected a value in (0, 1), got {gain}")
    if taps < 3 or taps % 2 == 0:
        raise ValueError(f"taps: expected an odd number >= 3, got {taps}")
    alpha = math.sqrt((span * (1.0 / ratio) / 2) ** 2 / (-2.0 * math.log(gain)))
    big_h = fspecial_gaussian(taps, alpha)
    return torch.from_numpy(fwind1(big_h / big_h.max(), kaiser(taps, 0.5)))


def lp_filter_gauss(x: Tensor, ratio: int) -> Tensor:
    r"""The toolbox's ``LPfilterGauss`` (used by GSA and BT-H to low-pass the PAN): the
    :func:`toolbox_mtf_kernel` design with gain 0.3 on 41 taps, except that its Gaussian's
    width uses ``N`` where ``genMTF`` uses ``N - 1`` (``alpha = sqrt((N / (2 ratio))^2 /
    (-2 ln 0.3))``), applied as ``imfilter(x, h, 'replicate')``. ``x`` (..., C, H, W).

    >>> import torch
    >>> y = lp_filter_gauss(torch.ones(1, 1, 8, 8, dtype=torch.float64), 4)
    >>> round(float(y[0, 0, 4, 4]), 5)
    0.9988
    """
    _check_image(x, "x")
    k = _toolbox_gauss(0.3, ratio, MTF_TAPS, MTF_TAPS).to(x.dtype).to(x.device)
    flat, lead = _flat(x)
    c, p = flat.shape[1], MTF_TAPS // 2
    y = F.conv2d(F.pad(flat, (p, p, p, p), mode="replicate"), k.expand(c, 1, -1, -1), groups=c)
    return y.reshape(*lead, *y.shape[-3:])


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
               taps: int = MTF_TAPS, convention: str = "toolbox") -> Tensor:
    """Low-pass each band of ``x`` (..., C, H, W) with its MTF filter (replicated borders).

    ``gains``: one gain for all bands or one per band. ``convention="toolbox"``: the
    ``genMTF`` kernels (:func:`toolbox_mtf_kernel`, a 2-D correlation as ``imfilter``);
    ``"legacy"``: the separable sampled Gaussians of :func:`mtf_kernel`. Output: same shape
    and dtype as ``x``.

    >>> import torch
    >>> x = torch.ones(1, 2, 16, 16, dtype=torch.float64)
    >>> y = mtf_filter(x, 0.3, 4)
    >>> round(float(y[0, 0, 8, 8]), 6), round(float(mtf_filter(x, 0.3, 4, convention="legacy")[0, 0, 8, 8]), 6)
    (0.99874, 1.0)
    """
    _check_image(x, "x")
    check_convention(convention)
    c = x.shape[-3]
    g = [float(gains)] * c if isinstance(gains, (int, float)) else [float(v) for v in gains]
    if len(g) != c:
        raise ValueError(f"gains: expected 1 or {c} values (one per band), got {len(g)}")
    flat, lead = _flat(x)
    if convention == "legacy":
        k = torch.stack([mtf_kernel(v, ratio, taps) for v in g]).to(x.dtype).to(x.device)
        y = _separable(flat, k, "replicate")
    else:
        cache: dict[float, Tensor] = {}
        for v in g:
            if v not in cache:
                cache[v] = toolbox_mtf_kernel(v, ratio, taps)
        k = torch.stack([cache[v] for v in g]).to(x.dtype).to(x.device)
        y = _correlate_replicate(flat, k)
    return y.reshape(*lead, *y.shape[-3:])


def _correlate_replicate(x: Tensor, k: Tensor) -> Tensor:
    """``imfilter(x, k, 'replicate')`` per channel: x (N, C, H, W), k (C, T, T), T odd.

    Computed by FFT on the replicate-padded image (the 2-D kernels of the toolbox are not
    separable; a direct 41 x 41 correlation costs 1681 products per pixel). The circular
    convolution of the padded image with the flipped kernel equals the correlation on the
    ``H x W`` interior (no wrap-around reaches it); float64 results agree with the direct sum
    to ~1e-16 relative. The FFT runs in float64 for float64 inputs, float32 otherwise.
    """
    t = k.shape[-1]
    p = t // 2
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    hp, wp = xp.shape[-2:]
    kf = torch.fft.rfft2(k.flip(-2, -1), s=(hp, wp))
    y = torch.fft.irfft2(torch.fft.rfft2(xp) * kf, s=(hp, wp))
    h, w = x.shape[-2:]
    return y[..., t - 1:t - 1 + h, t - 1:t - 1 + w].contiguous()


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
    y, lead = _flat(x)
    first = True
    while ratio > 1:
        o = 1 if first else 0  # the toolbox's first pass puts samples on odd positions
        y = _up2(_up2(y, -1, o), -2, o)
        first, ratio = False, ratio // 2
    return y.reshape(*lead, *y.shape[-3:])


def _up2(x: Tensor, dim: int, o: int) -> Tensor:
    """One 23-tap doubling along ``dim`` (circular), polyphase: the samples land on positions
    ``o::2`` unchanged (the kernel is 1 at 0 and 0 at the other even offsets); the new
    positions are the 12 odd taps applied to the samples, as pairs of equal coefficients.

    For ``o = 1`` the new value at ``2t`` is ``sum_j h_(2j+1) (x[t + j] + x[t - 1 - j])``; for
    ``o = 0`` the new value at ``2t + 1`` is ``sum_j h_(2j+1) (x[t + 1 + j] + x[t - j])``,
    ``j = 0..5``, indices modulo the length: exactly the zero-inserted signal filtered by the
    23-tap kernel with circular borders.
    """
    n = x.shape[dim]
    pad = 6
    idx = torch.arange(-pad, n + pad, device=x.device) % n
    xp = x.index_select(dim, idx)  # xp[pad + i] = x[i mod n]
    new = None
    for j in range(6):
        h = INTERP23_HALF[2 * j + 1]
        a, b = (j, -1 - j) if o == 1 else (1 + j, -j)
        term = xp.narrow(dim, pad + a, n) + xp.narrow(dim, pad + b, n)
        new = term * h if new is None else new + term * h
    pair = (new, x) if o == 1 else (x, new)
    d = dim % x.ndim
    out = torch.stack(pair, d + 1)
    shape = list(x.shape)
    shape[d] = 2 * n
    return out.reshape(shape)


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
