r"""Quality indices of pan-sharpening, following the MATLAB toolbox of Vivone et al.

(G. Vivone et al., "A critical comparison among pansharpening algorithms", IEEE TGRS 2015, and
"A new benchmark based on recent advances in multispectral pansharpening", IEEE GRSM 2021.)

Images are ``(C, H, W)`` (or ``(N, C, H, W)``: indices then average over the N images) torch
tensors or NumPy arrays, computed in float64.

Every index takes ``convention=`` (:data:`~hyperleaf.pansharpen.filters.CONVENTIONS`):
``"toolbox"`` (default) computes what the toolbox's ``indexes_evaluation`` /
``indexes_evaluation_FS`` compute; ``"legacy"`` keeps hyperleaf's indices before issue 24. They
differ in three places only: D_lambda (the toolbox compares the fused bands' Q with that of
the *upsampled* MS, ``block`` blocks at full resolution, so EXP scores exactly 0; legacy uses
the QNR paper's option, the original MS in ``block / ratio`` blocks), Q2n (the toolbox casts
both images to ``uint16`` -- MATLAB rounding, half away from zero, saturating at 0 and 65535 --
so it needs digital numbers: ``scale=`` multiplies the images first, and images in [0, 1]
without ``scale`` are refused; legacy does not round) and D_lambda_K (the toolbox low-passes
the fused image with its ``genMTF`` kernels and rounds in Q2n; legacy uses sampled Gaussians).
SAM, ERGAS, Q, SCC and D_s are the same under both. ``ref`` is the ground truth, ``fused`` the
pan-sharpened image, on the same scale (indices are scale-invariant except where noted).

Reduced resolution (with ground truth):

* :func:`sam` -- spectral angle mapper, mean over pixels of
  ``acos(<r, f> / (|r| |f|))`` in **degrees**; pixels where ``|r| |f| = 0`` are left out.
* :func:`ergas` -- ``100 / ratio * sqrt(mean_b(MSE_b / mean(r_b)^2))``.
* :func:`q_index` -- Q (UIQI, Wang & Bovik) of each band on ``block`` x ``block`` windows slid
  by one pixel, averaged over windows, then over bands (toolbox ``Q.m``/``img_qi``, block 32).
* :func:`q2n` -- Q2n (Q4 for 4 bands, Q8 for 8; Garzelli & Nencini 2009): the hypercomplex UIQI
  on ``block`` x ``block`` blocks shifted by ``shift`` (both 32), images mirror-extended to a
  whole number of blocks and bands zero-padded to a power of 2 as the toolbox does. The toolbox
  casts both images to ``uint16`` first (it assumes digital numbers); so does
  ``convention="toolbox"`` (after multiplying by ``scale``); ``"legacy"`` does not quantise,
  so it also works on images scaled to [0, 1]. As in the toolbox, a reference
  block of zero standard deviation is divided by machine epsilon, so a fused block that
  differs from a flat reference by rounding noise scores erratically there.
* :func:`scc` -- spatial correlation coefficient: Sobel gradient magnitudes of the interior
  (one-pixel border dropped, zero padding), ``sum(Gf Gr) / sqrt(sum Gf^2 sum Gr^2)`` over all
  bands (toolbox ``SCC.m``).

Full resolution (no ground truth): ``ms`` the original low-resolution MS (C, H/r, W/r), ``pan``
(1, H, W):

* :func:`d_lambda` -- ``(mean_{l != m} |Q(F_l, F_m) - Q(MS_l, MS_m)|^p)^(1/p)``, Q on
  non-overlapping blocks of ``block`` pixels, ``p = 1``; toolbox: ``MS`` the 23-tap
  interpolated MS (or ``lms=``) in ``block`` blocks; legacy: the original MS in
  ``block / ratio`` blocks;
* :func:`d_s` -- ``(mean_l |Q(F_l, P) - Q(MS~_l, P~)|^q)^(1/q)``, ``q = 1``, with ``MS~`` the
  23-tap interpolation of ``ms`` and ``P~`` the PAN shrunk by MATLAB-bicubic ``imresize`` then
  23-tap interpolated back (the toolbox 1.0 option of ``D_s.m``); blocks of ``block`` pixels;
* :func:`qnr` -- ``(1 - D_lambda)(1 - D_s)`` (alpha = beta = 1);
* :func:`d_lambda_khan` -- ``1 - Q2n(MS~, MTF(F))``: the fused image low-passed with the
  sensor's MTF filters (at full resolution) against the interpolated MS (Khan et al. 2009);
* :func:`hqnr` -- ``(1 - D_lambda_khan)(1 - D_s)``.

Block Q for D_lambda/D_s is ``4 cov(x, y) mean(x) mean(y) / ((var x + var y)(mean x^2 +
mean y^2))``; for degenerate blocks (the toolbox returns NaN) the conventions of ``img_qi``
apply: zero variances give ``2 mx my / (mx^2 + my^2)``, all-zero blocks give 1.

Evaluation parameters of the toolbox's demos, stated for the tables: ``block = 32`` for Q, Q2n,
D_lambda, D_s, HQNR; ``flag_cut_bounds`` with ``dim_cut = 21`` on 256-pixel and larger images
(``cut=`` here; rows/columns ``dim_cut - 1`` to ``H - dim_cut`` are kept, as MATLAB's
``dim_cut:end-dim_cut``); ``th_values = 0`` (no clipping; ``clip=`` here clips to
``[0, clip]``).

Example::

    >>> import torch
    >>> ref = torch.rand(4, 64, 64, dtype=torch.float64) + 0.1
    >>> round(sam(ref, 2 * ref), 6), round(q2n(ref, ref, scale=2047), 6)
    (0.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hyperleaf.pansharpen.filters import bicubic, check_convention, interp23, mtf_filter
from hyperleaf.pansharpen.sensors import get_sensor

__all__ = ["FULL_RESOLUTION", "REDUCED_RESOLUTION", "matlab_uint16", "d_lambda", "d_lambda_khan", "d_s",
           "ergas", "full_resolution", "hqnr", "q2n", "q_index", "qnr", "reduced_resolution",
           "sam", "scc", "uiqi"]

#: Index names of the reduced- and full-resolution tables, in the order they are printed.
REDUCED_RESOLUTION = ("SAM", "ERGAS", "Q2n", "Q", "SCC")
FULL_RESOLUTION = ("D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR")

_EPS = float(np.finfo(np.float64).eps)


def _t(x: Any, name: str) -> Tensor:
    """A float64 tensor of shape (N, C, H, W) (a (C, H, W) input gets N = 1)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor or array, got {type(x).__name__}")
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"{name}: expected shape (C, H, W) or (N, C, H, W), got {tuple(x.shape)}")
    if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int16, torch.int32,
                                                 torch.int64, torch.uint16)):
        raise ValueError(f"{name}: expected a real-valued image, got {x.dtype}")
    return x.detach().to("cpu", torch.float64)


def _same(a: Tensor, b: Tensor, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{na} {tuple(a.shape)} and {nb} {tuple(b.shape)} must have the same "
                         "shape")


# ----------------------------------------------------------------------------- reduced resolution


def sam(ref: Any, fused: Any, convention: str = "toolbox") -> float:
    """Spectral angle mapper in degrees (0 for identical or proportional spectra).

    ``ref``, ``fused``: (C, H, W) or (N, C, H, W); the same under both conventions.

    >>> import torch
    >>> sam(torch.ones(3, 4, 4), torch.ones(3, 4, 4))
    0.0
    """
    check_convention(convention)
    r, f = _t(ref, "ref"), _t(fused, "fused")
    _same(r, f, "ref", "fused")
    out = []
    for ri, fi in zip(r, f, strict=True):
        dot = (ri * fi).sum(0)
        norm = torch.sqrt((ri * ri).sum(0) * (fi * fi).sum(0))
        keep = norm > 0
        cos = (dot[keep] / norm[keep]).clamp(-1.0, 1.0)
        out.append(float(torch.rad2deg(torch.acos(cos)).mean()) if keep.any() else 0.0)
    return float(np.mean(out))


def ergas(ref: Any, fused: Any, ratio: int, convention: str = "toolbox") -> float:
    """ERGAS, ``100 / ratio * sqrt(mean over bands of MSE_b / mean(ref_b)^2)``.

    ``ref``, ``fused``: (C, H, W) or (N, C, H, W); the same under both conventions.

    >>> import torch
    >>> ergas(torch.ones(2, 4, 4), torch.full((2, 4, 4), 1.1), 4)  # doctest: +ELLIPSIS
    2.5000...
    """
    check_convention(convention)
    r, f = _t(ref, "ref"), _t(fused, "fused")
    _same(r, f, "ref", "fused")
    if not isinstance(ratio, (int, float)) or ratio <= 0:
        raise ValueError(f"ratio: expected a positive number, got {ratio!r}")
    mse = ((r - f) ** 2).mean((-2, -1))
    mu2 = r.mean((-2, -1)) ** 2
    return float(((100.0 / ratio) * torch.sqrt((mse / mu2).mean(-1))).mean())


def _window_sums(x: Tensor, block: int) -> Tensor:
    """Sums over every block x block window (stride 1, 'valid'), x (M, 1, H, W)."""
    return F.avg_pool2d(x, block, stride=1) * (block * block)


def uiqi(x: Any, y: Any, block: int = 32, convention: str = "toolbox") -> float:
    """UIQI of two single-band images (H, W), windows of ``block`` slid by one pixel (img_qi).

    The same under both conventions.

    >>> import torch
    >>> x = torch.rand(8, 8, dtype=torch.float64) + 1
    >>> round(uiqi(x, x, 4), 12)
    1.0
    """
    check_convention(convention)
    a, b = _t(x, "x"), _t(y, "y")
    _same(a, b, "x", "y")
    if a.shape[:2] != (1, 1):
        raise ValueError(f"x: expected one band (H, W), got {tuple(a.shape)}")
    return float(_qi_bands(a[0], b[0], block).mean())


def _qi_bands(r: Tensor, f: Tensor, block: int) -> Tensor:
    """img_qi per band: (C,) mean quality of (C, H, W) pairs."""
    c, h, w = r.shape
    if block > min(h, w):
        raise ValueError(f"block: {block} is larger than the image ({h}x{w})")
    n = block * block
    x, y = r[:, None], f[:, None]
    sx, sy = _window_sums(x, block), _window_sums(y, block)
    sxx, syy, sxy = _window_sums(x * x, block), _window_sums(y * y, block), \
        _window_sums(x * y, block)
    sum_mul = sx * sy
    sq_sum_mul = sx * sx + sy * sy
    numerator = 4 * (n * sxy - sum_mul) * sum_mul
    den1 = n * (sxx + syy) - sq_sum_mul
    den = den1 * sq_sum_mul
    q = torch.ones_like(den)
    deg = (den1 == 0) & (sq_sum_mul != 0)
    q = torch.where(deg, 2 * sum_mul / torch.where(deg, sq_sum_mul, 1.0), q)
    ok = den != 0
    q = torch.where(ok, numerator / torch.where(ok, den, 1.0), q)
    return q.mean((-3, -2, -1))


def q_index(ref: Any, fused: Any, block: int = 32, convention: str = "toolbox") -> float:
    """Q: UIQI per band (sliding ``block`` windows), averaged over bands (toolbox ``Q.m``).

    ``ref``, ``fused``: (C, H, W) or (N, C, H, W); the same under both conventions.

    >>> import torch
    >>> x = torch.rand(2, 8, 8, dtype=torch.float64) + 1
    >>> round(q_index(x, x, 4), 12)
    1.0
    """
    check_convention(convention)
    r, f = _t(ref, "ref"), _t(fused, "fused")
    _same(r, f, "ref", "fused")
    return float(np.mean([float(_qi_bands(ri, fi, block).mean()) for ri, fi in zip(r, f,
                                                                                   strict=True)]))


def _conj(v: Tensor) -> Tensor:
    return torch.cat([v[:1], -v[1:]], 0)


def _onion(a: Tensor, b: Tensor) -> Tensor:
    """Hypercomplex (Cayley-Dickson) product along dim 0, as the toolbox's ``onion_mult``."""
    n = a.shape[0]
    if n == 1:
        return a * b
    half = n // 2
    a1, b1 = a[:half], _conj(a[half:])
    c, d = b[:half], _conj(b[half:])
    if n == 2:
        return torch.cat([a1 * c - d * b1, a1 * d + c * b1], 0)
    r1 = _onion(a1, c)
    r2 = _onion(d, _conj(b1))
    r3 = _onion(_conj(a1), d)
    r4 = _onion(c, b1)
    return torch.cat([r1 - r2, r3 + r4], 0)


def _mirror_extend(x: Tensor, block: int, shift: int) -> tuple[Tensor, int, int]:
    """Toolbox q2n padding: mirror (edge included) to (steps - 1) shift + block pixels."""
    h, w = x.shape[-2:]
    sx, sy = math.ceil(h / shift), math.ceil(w / shift)
    e1, e2 = (sx - 1) * shift + block - h, (sy - 1) * shift + block - w
    if e1 > h or e2 > w:
        raise ValueError(f"image {h}x{w} too small for Q2n blocks of {block} (shift {shift})")
    if e2 > 0:
        x = torch.cat([x, x[..., :, w - e2:].flip(-1)], -1)
    if e1 > 0:
        x = torch.cat([x, x[..., h - e1:, :].flip(-2)], -2)
    return x, sx, sy


def _q2n_one(r: Tensor, f: Tensor, block: int, shift: int) -> float:
    r, sx, sy = _mirror_extend(r, block, shift)
    f, _, _ = _mirror_extend(f, block, shift)
    c = r.shape[0]
    nb = 1 << (c - 1).bit_length() if c > 1 else 1
    if nb != c:
        pad = r.new_zeros(nb - c, *r.shape[1:])
        r, f = torch.cat([r, pad]), torch.cat([f, pad])
    # blocks: (K, nb, block, block) with K = sx * sy, in row-major block order
    def blocks(x: Tensor) -> Tensor:
        u = x.unfold(1, block, shift).unfold(2, block, shift)  # (nb, sx, sy, block, block)
        return u[:, :sx, :sy].permute(1, 2, 0, 3, 4).reshape(-1, nb, block, block)

    d1, d2 = blocks(r), blocks(f)
    d2 = torch.cat([d2[:, :1], -d2[:, 1:]], 1)  # conjugate the fused image
    n = block * block
    mean = d1.mean((-2, -1), keepdim=True)
    std = d1.std((-2, -1), keepdim=True)  # std2: N - 1
    std = torch.where(std == 0, torch.full_like(std, _EPS), std)
    d1 = (d1 - mean) / std + 1
    # The fused band is normalised with the reference's statistics; a reference band of mean
    # exactly 0 shifts it without dividing (the toolbox tests the mean, not the std, there).
    sign = torch.ones(nb, dtype=d2.dtype)
    sign[1:] = -1
    sign = sign.view(1, nb, 1, 1)
    raw = d2 * sign  # undo the conjugation to normalise
    norm = torch.where(mean == 0, raw - mean + 1, (raw - mean) / std + 1)
    d2 = norm * sign
    m1, m2 = d1.mean((-2, -1)), d2.mean((-2, -1))  # (K, nb)
    q1m2, q2m2 = (m1 * m1).sum(1), (m2 * m2).sum(1)
    k = n / (n - 1)
    int1 = k * (d1 * d1).sum(1).mean((-2, -1))
    int2 = k * (d2 * d2).sum(1).mean((-2, -1))
    t3 = int1 + int2 - k * (q1m2 + q2m2)
    mean_bias = 2 * torch.sqrt(q1m2) * torch.sqrt(q2m2) / (q1m2 + q2m2)
    qu = _onion(d1.transpose(0, 1), d2.transpose(0, 1))  # (nb, K, block, block)
    qm = _onion(m1.T, m2.T)  # (nb, K)
    qv = k * qu.mean((-2, -1))
    q = (qv - k * qm) * (mean_bias * 2 / torch.where(t3 == 0, 1.0, t3))
    degenerate = torch.zeros_like(q)
    degenerate[-1] = mean_bias
    q = torch.where((t3 == 0)[None], degenerate, q)
    return float(torch.sqrt((q * q).sum(0)).mean())


def matlab_uint16(x: Tensor) -> Tensor:
    """MATLAB's ``uint16(x)`` as float64: rounded half away from zero, saturated to
    [0, 65535], NaN to 0.

    >>> import torch
    >>> matlab_uint16(torch.tensor([-3.0, 0.5, 1.5, 2.5, 2.4999, 70000.0])).tolist()
    [0.0, 1.0, 2.0, 3.0, 2.0, 65535.0]
    """
    x = x.to(torch.float64)
    low = torch.floor(x)
    y = low + ((x - low) >= 0.5).to(x.dtype)
    y = torch.nan_to_num(y, nan=0.0)
    return y.clamp(0.0, 65535.0)


def _digital(r: Tensor, f: Tensor, scale: float | None, where: str) -> tuple[Tensor, Tensor]:
    """The toolbox's uint16 cast of ``scale`` times both images (scale None: as they are,
    refused when the reference's maximum is below 2: it would round to 0 and 1 only)."""
    if scale is None:
        if not float(r.max()) >= 2.0:
            raise ValueError(f"{where}: convention 'toolbox' casts the images to uint16 as the "
                             "toolbox does and the reference's maximum is below 2 (images in "
                             "[0, 1]?): pass scale= (the data's "
                             "largest digital number, e.g. 2047 for 11 bits) or "
                             "convention='legacy'")
        scale = 1.0
    if not scale > 0:
        raise ValueError(f"scale: expected a positive number, got {scale!r}")
    return matlab_uint16(r * scale), matlab_uint16(f * scale)


def q2n(ref: Any, fused: Any, block: int = 32, shift: int | None = None,
        convention: str = "toolbox", scale: float | None = None) -> float:
    """Q2n (Q4/Q8): hypercomplex UIQI on ``block`` blocks shifted by ``shift`` (default block).

    ``ref``, ``fused``: (C, H, W) or (N, C, H, W); the result is not symmetric in them (the
    blocks are normalised with the reference's statistics). ``convention="toolbox"`` rounds
    ``scale * image`` to ``uint16`` first (:func:`matlab_uint16`; ``scale`` None: the images
    are digital numbers already; a reference whose maximum is below 2, e.g. an image in
    [0, 1], is refused); ``"legacy"`` does not
    round and ignores ``scale``.

    >>> import torch
    >>> ref = torch.rand(4, 32, 32, dtype=torch.float64)
    >>> round(q2n(ref, ref, scale=2047), 12), round(q2n(ref, ref, convention="legacy"), 12)
    (1.0, 1.0)
    """
    check_convention(convention)
    r, f = _t(ref, "ref"), _t(fused, "fused")
    _same(r, f, "ref", "fused")
    if convention == "toolbox":
        r, f = _digital(r, f, scale, "q2n")
    shift = block if shift is None else shift
    if block < 2 or shift < 1:
        raise ValueError(f"block/shift: expected block >= 2 and shift >= 1, got {block}/{shift}")
    return float(np.mean([_q2n_one(ri, fi, block, shift) for ri, fi in zip(r, f, strict=True)]))


def _sobel_magnitude(x: Tensor) -> Tensor:
    """Toolbox SCC: Sobel magnitude of the interior (one-pixel border dropped, zero padding)."""
    x = x[..., 1:-1, 1:-1]
    k = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]], dtype=x.dtype)
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    gy = F.conv2d(flat, k.view(1, 1, 3, 3), padding=1)
    gx = F.conv2d(flat, k.T.contiguous().view(1, 1, 3, 3), padding=1)
    return torch.sqrt(gx * gx + gy * gy).view(n, c, h, w)


def scc(ref: Any, fused: Any, convention: str = "toolbox") -> float:
    """Spatial correlation coefficient of the Sobel gradient magnitudes (1 when identical).

    ``ref``, ``fused``: (C, H, W) or (N, C, H, W); the same under both conventions.

    >>> import torch
    >>> x = torch.rand(2, 8, 8, dtype=torch.float64)
    >>> round(scc(x, 3 * x), 12)
    1.0
    """
    check_convention(convention)
    r, f = _t(ref, "ref"), _t(fused, "fused")
    _same(r, f, "ref", "fused")
    gr, gf = _sobel_magnitude(r), _sobel_magnitude(f)
    num = (gr * gf).sum((1, 2, 3))
    den = torch.sqrt((gr * gr).sum((1, 2, 3)) * (gf * gf).sum((1, 2, 3)))
    return float((num / den).mean())


def _cut(x: Tensor, cut: int) -> Tensor:
    if cut <= 0:
        return x
    h, w = x.shape[-2:]
    if 2 * cut >= min(h, w):
        raise ValueError(f"cut: {cut} leaves nothing of a {h}x{w} image")
    return x[..., cut - 1:h - cut, cut - 1:w - cut]


def reduced_resolution(ref: Any, fused: Any, ratio: int, block: int = 32, cut: int = 0,
                       clip: float | None = None, convention: str = "toolbox",
                       scale: float | None = None) -> dict[str, float]:
    """``{"SAM", "ERGAS", "Q2n", "Q", "SCC"}`` as the toolbox's ``indexes_evaluation``.

    ``cut``: the demos' ``dim_cut`` (0 = ``flag_cut_bounds`` off); ``clip``: ``th_values``
    (clip the fused image to ``[0, clip]``; None = off). Q's block shrinks to the image when
    the cut image is smaller than ``block`` (Q2n extends by mirroring instead). ``scale``:
    the digital-number scale of Q2n under ``convention="toolbox"`` (see :func:`q2n`).

    >>> import torch
    >>> ref = torch.rand(4, 32, 32, dtype=torch.float64) + 0.1
    >>> sorted(reduced_resolution(ref, ref, 4, scale=1023))
    ['ERGAS', 'Q', 'Q2n', 'SAM', 'SCC']
    """
    check_convention(convention)
    r, f = _cut(_t(ref, "ref"), cut), _cut(_t(fused, "fused"), cut)
    _same(r, f, "ref", "fused")
    if clip is not None:
        f = f.clamp(0.0, float(clip))
    qb = min(block, *r.shape[-2:])
    return {"SAM": sam(r, f), "ERGAS": ergas(r, f, ratio),
            "Q2n": q2n(r, f, block, convention=convention, scale=scale),
            "Q": q_index(r, f, qb), "SCC": scc(r, f)}


# ----------------------------------------------------------------------------- full resolution


def _block_q(x: Tensor, y: Tensor, block: int) -> Tensor:
    """Mean over non-overlapping ``block`` blocks of the block Q of (..., H, W) pairs."""
    h, w = x.shape[-2:]
    if h % block or w % block:
        raise ValueError(f"image {h}x{w} is not a whole number of {block}-pixel blocks")
    def split(t: Tensor) -> Tensor:
        lead = t.shape[:-2]
        t = t.reshape(*lead, h // block, block, w // block, block)
        return t.transpose(-3, -2).reshape(*lead, -1, block * block)

    a, b = split(x), split(y)
    ma, mb = a.mean(-1), b.mean(-1)
    da, db = a - ma[..., None], b - mb[..., None]
    m = block * block
    va, vb = (da * da).sum(-1) / (m - 1), (db * db).sum(-1) / (m - 1)
    cab = (da * db).sum(-1) / (m - 1)
    den_v, den_m = va + vb, ma * ma + mb * mb
    q = 4 * cab * ma * mb / torch.where((den_v * den_m) == 0, 1.0, den_v * den_m)
    q = torch.where((den_v == 0) & (den_m != 0), 2 * ma * mb / torch.where(den_m == 0, 1.0,
                                                                           den_m), q)
    q = torch.where((den_v == 0) & (den_m == 0), torch.ones_like(q), q)
    return q.mean(-1)


def _fr_inputs(fused: Any, ms: Any, pan: Any, ratio: int) -> tuple[Tensor, Tensor, Tensor]:
    f, m, p = _t(fused, "fused"), _t(ms, "ms"), _t(pan, "pan")
    if p.shape[1] != 1:
        raise ValueError(f"pan: expected one band, got {tuple(p.shape)}")
    if m.shape[:2] != f.shape[:2] or (m.shape[-2] * ratio, m.shape[-1] * ratio) != f.shape[-2:]:
        raise ValueError(f"ms {tuple(m.shape)} must be fused {tuple(f.shape)} shrunk by ratio "
                         f"{ratio}")
    if p.shape[-2:] != f.shape[-2:] or p.shape[0] != f.shape[0]:
        raise ValueError(f"pan {tuple(p.shape)} must match fused {tuple(f.shape)} in size")
    return f, m, p


def _upsampled(m: Tensor, lms: Any, f: Tensor, ratio: int) -> Tensor:
    """The MS at the fused image's scale: ``lms`` when given, else 23-tap interpolated."""
    if lms is None:
        return interp23(m, ratio)
    u = _t(lms, "lms")
    _same(u, f, "lms", "fused")
    return u


def d_lambda(fused: Any, ms: Any, ratio: int, block: int = 32, p: int = 1,
             convention: str = "toolbox", lms: Any = None) -> float:
    """Spectral distortion of QNR (inter-band Q), 0 when preserved.

    ``fused`` (C, H, W) or (N, C, H, W); ``ms`` the original MS (.., C, H/ratio, W/ratio).
    ``"toolbox"``: Q of each band pair of ``fused`` against the same pair of the upsampled MS
    (``lms``, default the 23-tap interpolation of ``ms``), both in ``block`` blocks -- the
    upsampled MS itself (EXP) scores exactly 0. ``"legacy"``: against ``ms`` in
    ``block / ratio`` blocks (the QNR paper's option).

    >>> import torch
    >>> from hyperleaf.pansharpen import interp23
    >>> ms = torch.rand(4, 16, 16, dtype=torch.float64) + 0.1
    >>> d_lambda(interp23(ms, 4), ms, 4)
    0.0
    """
    check_convention(convention)
    f, m = _t(fused, "fused"), _t(ms, "ms")
    if block % ratio:
        raise ValueError(f"block {block} must be a multiple of ratio {ratio}")
    c = f.shape[1]
    if c < 2:
        raise ValueError("d_lambda: needs at least 2 bands")
    if m.shape[:2] != f.shape[:2]:
        raise ValueError(f"ms {tuple(m.shape)} and fused {tuple(f.shape)} must have the same "
                         "images and bands")
    if convention == "toolbox":
        m, mb = _upsampled(m, lms, f, ratio), block
    else:
        mb = block // ratio
    out = []
    for fi, mi in zip(f, m, strict=True):
        iu = torch.triu_indices(c, c, 1)
        qf = _block_q(fi[iu[0]], fi[iu[1]], block)
        qm = _block_q(mi[iu[0]], mi[iu[1]], mb)
        out.append(float(((qf - qm).abs() ** p).mean() ** (1 / p)))
    return float(np.mean(out))


def d_s(fused: Any, ms: Any, pan: Any, ratio: int, block: int = 32, q: int = 1,
        convention: str = "toolbox", lms: Any = None) -> float:
    """Spatial distortion of QNR (band-to-PAN Q at both scales, toolbox 1.0 option).

    ``fused`` (.., C, H, W), ``ms`` (.., C, H/ratio, W/ratio), ``pan`` (.., 1, H, W);
    ``lms``: the upsampled MS (default the 23-tap interpolation of ``ms``). The same under
    both conventions.

    >>> import torch
    >>> pan = torch.rand(1, 32, 32, dtype=torch.float64) + 0.1
    >>> ms = torch.rand(4, 8, 8, dtype=torch.float64) + 0.1
    >>> d_s(pan.expand(4, -1, -1), ms, pan, 4) >= 0.0
    True
    """
    check_convention(convention)
    f, m, pn = _fr_inputs(fused, ms, pan, ratio)
    up = _upsampled(m, lms, f, ratio)
    out = []
    for fi, ui, pi in zip(f, up, pn, strict=True):
        h, w = pi.shape[-2:]
        pan_lr = bicubic(pi, size=(h // ratio, w // ratio))
        pan_filt = interp23(pan_lr, ratio)
        q_high = _block_q(fi, pi.expand_as(fi), block)
        q_low = _block_q(ui, pan_filt.expand_as(ui), block)
        out.append(float(((q_high - q_low).abs() ** q).mean() ** (1 / q)))
    return float(np.mean(out))


def qnr(fused: Any, ms: Any, pan: Any, ratio: int, block: int = 32,
        convention: str = "toolbox", lms: Any = None) -> float:
    """Quality with no reference, ``(1 - D_lambda)(1 - D_s)`` (both under ``convention``).

    >>> import torch
    >>> from hyperleaf.pansharpen import interp23
    >>> ms = torch.rand(4, 8, 8, dtype=torch.float64) + 0.1
    >>> pan = interp23(ms, 4).mean(0, keepdim=True)
    >>> 0.0 <= qnr(interp23(ms, 4), ms, pan, 4) <= 1.0
    True
    """
    _fr_inputs(fused, ms, pan, ratio)
    return (1 - d_lambda(fused, ms, ratio, block, convention=convention, lms=lms)) * \
        (1 - d_s(fused, ms, pan, ratio, block, convention=convention, lms=lms))


def d_lambda_khan(fused: Any, ms: Any, ratio: int, sensor: Any = None, block: int = 32,
                  convention: str = "toolbox", scale: float | None = None,
                  lms: Any = None) -> float:
    """Khan's spectral distortion ``1 - Q2n(MS~, MTF(fused))``.

    ``MS~``: ``lms`` or the 23-tap interpolation of ``ms``; ``MTF``: :func:`mtf_filter` of the
    sensor's gains under ``convention`` (``genMTF`` kernels for ``"toolbox"``), Q2n with
    ``block`` blocks and shift under ``convention`` and ``scale`` (see :func:`q2n`).

    >>> import torch
    >>> ms = torch.rand(4, 16, 16, dtype=torch.float64) + 0.1
    >>> from hyperleaf.pansharpen import interp23
    >>> 0.0 <= d_lambda_khan(interp23(ms, 4), ms, 4, scale=2047) <= 1.0
    True
    """
    check_convention(convention)
    f, m = _t(fused, "fused"), _t(ms, "ms")
    s = get_sensor(sensor, bands=f.shape[1])
    low = mtf_filter(f, s.gains_for(f.shape[1]), ratio, convention=convention)
    return 1.0 - q2n(_upsampled(m, lms, f, ratio), low, block, convention=convention,
                     scale=scale)


def hqnr(fused: Any, ms: Any, pan: Any, ratio: int, sensor: Any = None, block: int = 32,
         convention: str = "toolbox", scale: float | None = None, lms: Any = None) -> float:
    """Hybrid QNR, ``(1 - D_lambda_khan)(1 - D_s)`` (both under ``convention``).

    >>> import torch
    >>> from hyperleaf.pansharpen import interp23
    >>> ms = torch.rand(4, 8, 8, dtype=torch.float64) + 0.1
    >>> pan = interp23(ms, 4).mean(0, keepdim=True)
    >>> 0.0 <= hqnr(interp23(ms, 4), ms, pan, 4, scale=255) <= 1.0
    True
    """
    _fr_inputs(fused, ms, pan, ratio)
    return (1 - d_lambda_khan(fused, ms, ratio, sensor, block, convention, scale, lms)) * \
        (1 - d_s(fused, ms, pan, ratio, block, convention=convention, lms=lms))


def full_resolution(fused: Any, ms: Any, pan: Any, ratio: int, sensor: Any = None,
                    block: int = 32, clip: float | None = None, convention: str = "toolbox",
                    scale: float | None = None, lms: Any = None) -> dict[str, float]:
    """``{"D_lambda", "D_s", "QNR", "D_lambda_K", "HQNR"}`` of one fused image (or a batch).

    ``fused`` (.., C, H, W), ``ms`` (.., C, H/ratio, W/ratio), ``pan`` (.., 1, H, W);
    ``lms``: the upsampled MS (default 23-tap); ``scale``: the digital-number scale of Q2n
    in D_lambda_K under ``convention="toolbox"``.

    >>> import torch
    >>> from hyperleaf.pansharpen import interp23
    >>> ms = torch.rand(4, 8, 8, dtype=torch.float64) + 0.1
    >>> pan = interp23(ms, 4).mean(0, keepdim=True)
    >>> full_resolution(interp23(ms, 4), ms, pan, 4, scale=255)["D_lambda"]
    0.0
    """
    check_convention(convention)
    f, m, p = _fr_inputs(fused, ms, pan, ratio)
    if clip is not None:
        f = f.clamp(0.0, float(clip))
    dl = d_lambda(f, m, ratio, block, convention=convention, lms=lms)
    ds = d_s(f, m, p, ratio, block, convention=convention, lms=lms)
    dk = d_lambda_khan(f, m, ratio, sensor, block, convention, scale, lms)
    return {"D_lambda": dl, "D_s": ds, "QNR": (1 - dl) * (1 - ds), "D_lambda_K": dk,
            "HQNR": (1 - dk) * (1 - ds)}

