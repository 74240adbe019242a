r"""Poincaré-ball operations on feature tensors, with geoopt as the source of semantics.

Every function here computes the same quantity, with the same clamps and the same projection
margin, as :mod:`geoopt`'s ``PoincareBall`` (curvature :math:`-c`), but

* along any axis ``dim`` (``dim=1`` by default, so ``(B, C, *spatial)`` maps and ``(B, D)``
  vectors both work),
* with the curvature carried in the data's dtype (geoopt keeps a float ``c`` in float32 through a
  softplus, which costs float64 work seven digits),
* in plain, fused PyTorch (geoopt's TorchScript math is ~2.4x slower on CPU and opaque to
  ``torch.compile``), and in forms that keep all float64 digits where geoopt's loses some
  (``artanh`` through ``atanh`` instead of a difference of logs; the Möbius-difference norm from
  the identity below instead of subtracting nearly equal vectors).

The test-suite proves each function equal to geoopt (``hyperleaf.geometry.reference``) and to
the closed forms evaluated in 50-digit arithmetic.

Closed forms (:math:`\sqrt{c}` written :math:`s`, norms along ``dim``):

.. math::
    \exp_0(v) = \tanh(s\|v\|)\,\frac{v}{s\|v\|},\qquad
    \log_0(y) = \operatorname{artanh}(s\|y\|)\,\frac{y}{s\|y\|},\qquad
    d_0(x) = \tfrac{2}{s}\operatorname{artanh}(s\|x\|),

.. math::
    d(x, y) = \tfrac{2}{s}\operatorname{artanh}\big(s\,\|(-x)\oplus_c y\|\big),\qquad
    \|(-x)\oplus_c y\|^2 = \frac{\|x-y\|^2}{(1-c\|x\|^2)(1-c\|y\|^2) + c\|x-y\|^2}.

Clamps shared with geoopt: norms below ``1e-15`` are raised to it before dividing, the ``tanh``
argument is clipped to ``[-15, 15]``, the ``artanh`` argument to ``1 - 1e-7`` (so distances of
points on or beyond the boundary saturate at :math:`\tfrac{2}{s}\operatorname{artanh}(1-10^{-7})`
instead of being infinite or NaN), the Möbius denominator to ``>= 1e-15``, and projection keeps
:math:`\|x\| \le (1-\epsilon)/s` with :math:`\epsilon` = 4e-3 in float32, 1e-5 in float64.

float16/bfloat16 inputs are computed in float32 and returned in their own dtype, and every
function runs with autocast disabled (:func:`float32_island`): under bf16/fp16 autocast the
reductions, clamps and ``artanh`` still run in float32 (autocast would put ``vecdot`` in bf16,
where the float32 clamp :math:`1-2^{-23}` rounds to 1 and ``artanh`` returns ``inf``).

No call converts a tensor to a Python number or branches on data (no host synchronisation; every
function compiles without a graph break). Extreme magnitudes are handled without a switch: a
float32 squared norm would overflow beyond :math:`\|x\| \approx 1.8\cdot10^{19}` (and
:math:`1/\|x\|`-sized factors go subnormal near float32's largest values), which would send a
diverging feature to the origin. The float32 radial maps (:func:`expmap0`, :func:`logmap0`,
:func:`project`, :func:`clip_features`) work on prescaled vectors :math:`x = s\,\hat x` with
:math:`s = \max_i |x_i|` (one extra pass), so a diverging feature lands where the exact formula
puts it (:func:`expmap0`: the boundary, :func:`project`: :math:`(1-\epsilon)/\sqrt{c}`,
:func:`clip_features`: ``r``). :func:`mobius_add` and :func:`dist` evaluate their 1/D-sized norms,
inner products and scalar formulas in float64 for float32 input (from prescaled vectors: never a
full-size float64 tensor) and choose per vector pair between the in-ball form of their
denominator and the direct form (where a point lies well outside the ball,
:math:`c\|x\|^2 > 2`, and the in-ball form cancels). float64 inputs are exact up to float64's own
overflow of squared norms (:math:`\|x\| \approx 10^{154}`). The price on large float32 maps
(``benchmarks/bench_geometry.py --baseline 7207088``, (2, 64, 128, 128), forward+backward, CPU,
benchmarks/README.md "Geometry"): :func:`expmap0`, :func:`logmap0`, :func:`project` take
0.8-1.25x the time of the earlier version that branched on a host-read peak,
:func:`clip_features` 1.7x, :func:`dist` 1.5-2x and :func:`mobius_add` 2.2-2.7x; LEAF's
training path applies the
geometry to pooled ``(B, D)`` rows (LeafHead, H2FR), where it is negligible, and HDGFB has its
own kernels.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings

import torch
from torch import Tensor

from hyperleaf.deprecation import renamed_kwarg

with warnings.catch_warnings():
    # geoopt 0.5.1 decorates its math with torch.jit.script, deprecated since torch 2.10
    # (a DeprecationWarning under torch 2.13, a FutureWarning under 2.14: filter by message).
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")
    import geoopt
    from geoopt.manifolds.stereographic import math as _gmath

__all__ = [
    "Curvature",
    "ball",
    "curvature",
    "expmap0",
    "logmap0",
    "dist",
    "dist0",
    "mobius_add",
    "project",
    "clip_features",
    "project_eps",
    "compute_dtype",
    "sqnorm",
    "sqrt0",
    "reduced_peak",
    "float32_island",
    "MIN_NORM",
    "TANH_CLAMP",
    "ARTANH_CLAMP",
    "reference",
]

Curvature = float | Tensor | geoopt.PoincareBall

#: Smallest norm divided by (geoopt's ``clamp_min(1e-15)``).
MIN_NORM = 1e-15
#: ``tanh`` arguments are clipped to ``[-TANH_CLAMP, TANH_CLAMP]`` (geoopt's ``tanh``).
TANH_CLAMP = 15.0
#: ``artanh`` arguments are clipped to ``[-ARTANH_CLAMP, ARTANH_CLAMP]`` (geoopt's ``artanh``).
ARTANH_CLAMP = 1.0 - 1e-7
#: Lower bound of the Möbius-addition denominator (geoopt's ``_mobius_add``).
MIN_DENOM = 1e-15


#: Möbius addition and the distance use their in-ball forms for the pairs whose points both have
#: c|x|^2 <= this (there the in-ball form's error is within a few ulps of the direct form's), the
#: direct forms for the other pairs: a per-pair choice, made without a data-dependent branch.
BALL_FORM_MAX = 2.0


def project_eps(dtype: torch.dtype) -> float:
    """Relative margin kept from the boundary by :func:`project` (geoopt's ``BALL_EPS``)."""
    return 4e-3 if compute_dtype(dtype) == torch.float32 else 1e-5


# --------------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------------


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the geometry computes in for inputs of ``dtype``: float32 for the half
    precisions (they lose the ball's boundary: ``1 - c|x|^2`` cancels), else ``dtype``.

    >>> compute_dtype(torch.bfloat16), compute_dtype(torch.float64)
    (torch.float32, torch.float64)
    """
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _as_input(x: object, name: str) -> tuple[Tensor, torch.dtype]:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype (float16/bfloat16/float32/float64), "
                        f"got {x.dtype}")
    out = x.dtype
    cd = compute_dtype(out)
    return (x if cd == out else x.to(cd)), out


def _as_pair(x: object, y: object, xname: str = "x", yname: str = "y"):
    x, xdt = _as_input(x, xname)
    y, ydt = _as_input(y, yname)
    try:
        torch.broadcast_shapes(x.shape, y.shape)
    except RuntimeError:
        raise ValueError(f"{xname} {tuple(x.shape)} and {yname} {tuple(y.shape)} "
                         "do not broadcast") from None
    out = torch.promote_types(xdt, ydt)
    cd = compute_dtype(out)
    return x.to(cd), y.to(cd), out


def _check_dim(dim: object, ndim: int, name: str = "dim") -> int:
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(dim).__name__}")
    if not -ndim <= dim < max(ndim, 1):
        raise ValueError(f"{name}={dim} is out of range for a tensor with {ndim} dimensions")
    return int(dim)


#: ``ARTANH_CLAMP`` as each compute dtype holds it (float32: 1 - 2^-23), read once at import so
#: that no call converts a tensor to a Python float (a host sync on an accelerator).
_ARTANH_CLAMPS = {dt: float(torch.tensor(ARTANH_CLAMP, dtype=dt))
                  for dt in (torch.float32, torch.float64)}


def _artanh_clamp(dtype: torch.dtype) -> float:
    """``ARTANH_CLAMP`` as a ``dtype`` computation holds it (float32: 1 - 2^-23)."""
    return _ARTANH_CLAMPS[compute_dtype(dtype)]


def reduced_peak(*reduced: Tensor) -> float:
    """The largest element of the (reduced, 1/D-sized) tensors, ``inf`` if any is NaN, ``0`` if
    all are empty. One host sync, cheap next to the reductions that produced the tensors.

    Used to decide once per call whether a float32 computation must widen to float64.

        >>> reduced_peak(torch.tensor([1.0, 3.0]), torch.tensor([2.0]))
        3.0
        >>> reduced_peak(torch.tensor([float("nan")]))
        inf
    """
    peaks = [t.detach().amax() for t in reduced if t.numel()]
    if not peaks:
        return 0.0
    peak = float(torch.stack(peaks).amax() if len(peaks) > 1 else peaks[0])
    return math.inf if math.isnan(peak) else peak


def _prescale(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``(s, x / s)`` with ``s`` the largest magnitude of each vector along ``dim`` (at least the
    dtype's smallest normal number): the scaled vectors have norms in ``[1, sqrt(D)]``, so their
    squared norms and inner products neither overflow nor underflow, whatever ``x``'s range.
    Sync-free replacement of a data-dependent switch to float64 (one extra pass over ``x``)."""
    # Detached: every caller's result is exactly independent of s (x = s (x/s) for any s > 0),
    # so the derivative with s held constant is the true one, and backward skips the max.
    # max(amax, -amin) is ~10x faster than vector_norm(ord=inf) along a strided axis.
    with torch.no_grad():
        s = torch.maximum(x.amax(dim, keepdim=True), -x.amin(dim, keepdim=True))
        s = s.clamp_min(torch.finfo(x.dtype).tiny)
    return s, x / s


def _first_tensor(items: object, depth: int = 3) -> Tensor | None:
    """The first tensor among ``items`` (a tensor, or lists/tuples of them, ``depth`` deep)."""
    if isinstance(items, Tensor):
        return items
    if depth and isinstance(items, (list, tuple)):
        for item in items:
            t = _first_tensor(item, depth - 1)
            if t is not None:
                return t
    return None


def _autocast_device(*args: object) -> str | None:
    """The device type of the first tensor argument (looking into lists and tuples) if
    autocast is on for it, else None."""
    t = _first_tensor(args)
    if t is None:
        return None
    dev = t.device.type
    return dev if torch.is_autocast_enabled(dev) else None


def float32_island(fn):
    """Run ``fn`` with autocast disabled for its tensors' device, so that its reductions
    (``vecdot`` is on autocast's low-precision list), clamps and ``artanh`` run in float32 or
    wider whatever the caller's autocast state; half-precision tensors are widened by the
    functions themselves (:func:`compute_dtype`). Compiles without a graph break.

    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     d = dist0(torch.full((1, 4), 0.49), c=1.0)
    >>> d.dtype, round(float(d), 4)   # 2 artanh(0.98), not artanh(1) = inf
    (torch.float32, 4.5951)
    """
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        dev = _autocast_device(*args, *kwargs.values())
        if dev is None:
            return fn(*args, **kwargs)
        with torch.autocast(dev, enabled=False):
            return fn(*args, **kwargs)
    return wrapped


def _narrow(t: Tensor) -> bool:
    """Whether ``t`` is computed in a dtype narrower than float64 (float32 here)."""
    return t.dtype != torch.float64


def _check_positive_scalar(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive float, a 0-d tensor or a geoopt.PoincareBall, "
                        f"got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value}")


def curvature(c: Curvature, like: Tensor) -> Tensor:
    """The curvature magnitude ``c`` as a 0-d tensor in ``like``'s dtype and device.

    ``c`` may be a positive float, a 0-d floating tensor (kept in the autograd graph), or a
    ``geoopt.PoincareBall`` (its ``c``, learnable or not). A float ``c`` is converted straight to the
    data's dtype, never through float32.
    """
    if isinstance(c, geoopt.PoincareBall):
        return c.c.to(dtype=like.dtype, device=like.device)
    if isinstance(c, Tensor):
        if c.dim() != 0 or not c.is_floating_point():
            raise TypeError(f"c must be a 0-d floating tensor, got shape {tuple(c.shape)} "
                            f"and dtype {c.dtype}")
        if not torch.compiler.is_compiling() and c.device.type == "cpu" and not c.requires_grad:
            _check_positive_scalar(float(c), "c")
        return c.to(dtype=like.dtype, device=like.device)
    _check_positive_scalar(c, "c")
    return torch.tensor(float(c), dtype=like.dtype, device=like.device)


def ball(c: Curvature = 1.0, *, learn_c: bool = False, learnable: bool | None = None
         ) -> geoopt.PoincareBall:
    """The ``geoopt.PoincareBall`` of curvature ``-c``: the home of ``ManifoldParameter``s.

    ``learn_c=True``: the curvature is a trained parameter (geoopt's learnable ball; the old
    keyword ``learnable`` still works, with a ``DeprecationWarning``).

    The curvature is stored in float64 so that ``ball(c).c`` equals ``c`` to ~1e-16 (a float ``c``
    given to geoopt directly becomes a float32 softplus, off by up to ~6e-8). Passing a ball
    returns it unchanged.

    Example::

        >>> b = ball(0.5)
        >>> p = geoopt.ManifoldParameter(torch.zeros(8, dtype=torch.float64), manifold=b)
        >>> float(b.c)
        0.5
    """
    learn_c = renamed_kwarg("ball", "learn_c", learn_c, "learnable", learnable)
    if isinstance(c, geoopt.PoincareBall):
        return c
    if isinstance(c, Tensor):
        value = c.detach().to(torch.float64)
        _check_positive_scalar(float(value), "c")
    else:
        _check_positive_scalar(c, "c")
        value = torch.tensor(float(c), dtype=torch.float64)
    return geoopt.PoincareBall(c=value, learnable=learn_c)


# --------------------------------------------------------------------------------------------
# operations
# --------------------------------------------------------------------------------------------


# Why two reduction paths: ``vector_norm`` is fast along a contiguous axis (rows ``(N, D)``) but
# ~10x slower than ``vecdot`` along a strided one (the channels of an NCHW map, dim=1), where
# ``vecdot`` vectorises across the contiguous pixels instead. Values agree to rounding (neither
# rescales: both overflow alike beyond ~1e19 in float32).


def sqnorm(x: Tensor, dim: int) -> Tensor:
    """``||x||^2`` along ``dim`` (kept as size 1); fast along strided axes (NCHW channels).

    >>> sqnorm(torch.tensor([[3.0, 4.0]]), -1)
    tensor([[25.]])
    """
    if x.stride(dim) == 1:
        return torch.linalg.vector_norm(x, dim=dim, keepdim=True).square()
    return torch.linalg.vecdot(x, x, dim=dim).unsqueeze(dim)


def sqrt0(x: Tensor) -> Tensor:
    """``sqrt(x)`` with a zero gradient at ``x = 0`` (``vector_norm``'s at the zero vector)
    instead of an infinite one.

    >>> x = torch.tensor([0.0, 4.0], requires_grad=True)
    >>> sqrt0(x).sum().backward()
    >>> x.grad
    tensor([0.0000, 0.2500])
    """
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def _norm(x: Tensor, dim: int, keepdim: bool = True) -> Tensor:
    """``||x||`` along ``dim``, with ``vector_norm``'s zero gradient at the zero vector."""
    if x.stride(dim) == 1:
        return torch.linalg.vector_norm(x, dim=dim, keepdim=keepdim)
    n = sqrt0(torch.linalg.vecdot(x, x, dim=dim))
    return n.unsqueeze(dim) if keepdim else n


@float32_island
def expmap0(x: Tensor, c: Curvature, dim: int = 1) -> Tensor:
    r"""Exponential map at the origin: tangent vectors to points of the ball.

    :math:`\exp_0(v) = \tanh(\sqrt{c}\|v\|)\, v / (\sqrt{c}\|v\|)`.

    Args:
        x: tangent vectors, any shape, the vector axis at ``dim``.
        c: curvature magnitude (float, 0-d tensor or ``geoopt.PoincareBall``).
        dim: the vector axis.

    Returns:
        Points of the same shape and dtype, inside the ball of radius :math:`1/\sqrt{c}`.

    Example::

        >>> v = torch.randn(2, 16, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> y = expmap0(v, c=0.5)          # (2, 16, 8, 8), |y| < 1/sqrt(0.5) along dim 1
        >>> torch.allclose(logmap0(y, c=0.5), v, atol=1e-4)
        True
    """
    x, out = _as_input(x, "x")
    sc = curvature(c, x).sqrt()
    dim = _check_dim(dim, x.dim())
    if not _narrow(x):
        z = sc * _norm(x, dim).clamp_min(MIN_NORM)
        return (x * (torch.tanh(z.clamp_max(TANH_CLAMP)) / z)).to(out)
    xs, inv, z = _scaled_radial(x, sc, dim)
    return (xs * (torch.tanh(z.clamp_max(TANH_CLAMP)) * inv)).to(out)


@float32_island
def logmap0(y: Tensor, c: Curvature, dim: int = 1) -> Tensor:
    r"""Logarithmic map at the origin: points of the ball to tangent vectors.

    :math:`\log_0(y) = \operatorname{artanh}(\sqrt{c}\|y\|)\, y / (\sqrt{c}\|y\|)`; points on or
    beyond the boundary map to vectors of norm :math:`\operatorname{artanh}(1-10^{-7})/\sqrt{c}`.

    Example::

        >>> y = expmap0(torch.randn(4, 32), c=1.0)
        >>> v = logmap0(y, c=1.0)          # (4, 32)
    """
    y, out = _as_input(y, "y")
    sc = curvature(c, y).sqrt()
    dim = _check_dim(dim, y.dim())
    clamp = _artanh_clamp(y.dtype)
    if not _narrow(y):
        z = sc * _norm(y, dim).clamp_min(MIN_NORM)
        return (y * (torch.atanh(z.clamp_max(clamp)) / z)).to(out)
    ys, inv, z = _scaled_radial(y, sc, dim)
    return (ys * (torch.atanh(z.clamp_max(clamp)) * inv)).to(out)


def _scaled_radial(x: Tensor, sc: Tensor, dim: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""float32 radial maps without a data-dependent switch: ``x = s * xs`` (:func:`_prescale`),
    ``z = sqrt(c) max(|x|, MIN_NORM)`` (``inf`` only beyond float32's range, where the clamps
    saturate) and ``inv`` with ``x f(z) / z = xs * f(z) * inv`` for any ``f``:
    :math:`inv = s / (\sqrt{c}\max(|x|, \text{MIN\_NORM}))`, a normal number for every finite
    ``x`` (no ``1/|x|``-sized factor goes subnormal)."""
    s, xs = _prescale(x, dim)
    ns = _norm(xs, dim)  # >= 1, or 0 for the zero vector
    n = s * ns
    z = sc * n.clamp_min(MIN_NORM)
    # s / max(|x|, MIN_NORM) / sqrt(c), without a 1/s^2-sized derivative for tiny vectors
    inv = torch.where(n < MIN_NORM, s / MIN_NORM, 1 / ns.clamp_min(0.5)) / sc
    return xs, inv, z


@float32_island
def dist0(x: Tensor, c: Curvature, dim: int = 1, keepdim: bool = False) -> Tensor:
    r"""Geodesic distance to the origin, :math:`\tfrac{2}{\sqrt{c}}\operatorname{artanh}(\sqrt{c}\|x\|)`.

    Returns the input's shape without ``dim`` (kept as size 1 with ``keepdim=True``).

    Example::

        >>> d = dist0(expmap0(torch.randn(2, 8, 4, 4), c=0.2), c=0.2)   # (2, 4, 4)
    """
    x, out = _as_input(x, "x")
    sc = curvature(c, x).sqrt()
    dim = _check_dim(dim, x.dim())
    n = _norm(x, dim, keepdim)
    # No float64 switch needed: an overflowed norm (inf) meets the artanh clamp, where the
    # exact norm saturates too (for any normal float32 curvature).
    return (2.0 * torch.atanh((sc * n).clamp_max(ARTANH_CLAMP)) / sc).to(out)


@float32_island
def dist(x: Tensor, y: Tensor, c: Curvature, dim: int = 1, keepdim: bool = False) -> Tensor:
    r"""Geodesic distance :math:`\tfrac{2}{\sqrt{c}}\operatorname{artanh}(\sqrt{c}\|(-x)\oplus_c y\|)`.

    The Möbius difference norm is taken from
    :math:`\|(-x)\oplus_c y\|^2 = \|x-y\|^2 / ((1-c\|x\|^2)(1-c\|y\|^2) + c\|x-y\|^2)`, an identity
    of the gyrovector space whose denominator equals geoopt's
    :math:`1 - 2c\langle x,y\rangle + c^2\|x\|^2\|y\|^2` but is a sum of non-negative terms inside
    the ball, so nearly coincident points keep their relative accuracy. ``x`` and ``y`` broadcast.
    For the pairs with a point far outside the ball (:math:`c\|x\|^2 > 2`) the denominator is
    taken in its direct form instead (per pair, without a data-dependent branch); for float32
    input the 1/D-sized norms, inner products and the scalar formula are evaluated in float64
    from prescaled vectors (see the module docstring).

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = (expmap0(torch.randn(3, 8, dtype=torch.float64, generator=g), 1.0)
        ...         for _ in range(2))
        >>> d = dist(x, y, c=1.0)           # (3,), d(x, x) == 0
    """
    x, y, out = _as_pair(x, y)
    k = curvature(c, x)
    dim = _check_dim(dim, max(x.dim(), y.dim()))
    clamp = _artanh_clamp(x.dtype)
    x2, y2, xy, _ = _pair_reductions(x, y, dim)
    n2 = _sqnorm_wide(x * 0.5 - y * 0.5, dim) * 4  # |x - y|^2, never overflowing
    k = k.to(x2.dtype)
    kx2, ky2 = k * x2, k * y2
    # In-ball form where both points are near the ball, the direct form elsewhere (per pair,
    # no data-dependent branch); float32 input: these 1/D-sized quantities in float64.
    denom = torch.where(_near_ball(k, x2, y2), (1 - kx2) * (1 - ky2) + k * n2,
                        1 - 2 * k * xy + kx2 * ky2)
    sc = k.sqrt()
    t = (sc * sqrt0(n2) / denom.clamp_min(MIN_DENOM).sqrt()).clamp_max(clamp)
    d = 2.0 * torch.atanh(t) / sc
    return (d if keepdim else d.squeeze(dim)).to(out)


def _sqnorm_wide(x: Tensor, dim: int) -> Tensor:
    """``|x|^2`` along ``dim`` (kept): float64 input directly; float32 input from the
    prescaled vectors, returned in float64 (never overflowing or underflowing)."""
    if not _narrow(x):
        return sqnorm(x, dim)
    s, xs = _prescale(x, dim)
    return s.double().square() * sqnorm(xs, dim).double()


def _pair_reductions(x: Tensor, y: Tensor, dim: int):
    """``(|x|^2, |y|^2, <x, y>, (sx, xs, sy, ys))`` along ``dim`` (kept), the reductions in
    float64 for float32 input (from the prescaled vectors ``x = sx xs``, ``y = sy ys``)."""
    if not _narrow(x):
        one = torch.ones((), dtype=x.dtype, device=x.device)
        return (sqnorm(x, dim), sqnorm(y, dim), torch.linalg.vecdot(x, y, dim=dim).unsqueeze(dim),
                (one, x, one, y))
    sx, xs = _prescale(x, dim)
    sy, ys = _prescale(y, dim)
    xs2, ys2 = sqnorm(xs, dim).double(), sqnorm(ys, dim).double()
    # the zero vector's scale is 0 (not the floor it was divided by): no coefficient of it is
    # sized by 1/floor
    wx, wy = sx.double().where(xs2 > 0, 0.0), sy.double().where(ys2 > 0, 0.0)
    x2, y2 = wx.square() * xs2, wy.square() * ys2
    xy = (wx * wy) * torch.linalg.vecdot(xs, ys, dim=dim).unsqueeze(dim).double()
    return x2, y2, xy, (wx, xs, wy, ys)


def _near_ball(k: Tensor, x2: Tensor, y2: Tensor) -> Tensor:
    """Where both points of a pair have ``k|.|^2 <= BALL_FORM_MAX`` (the in-ball forms hold)."""
    return (k * x2 <= BALL_FORM_MAX) & (k * y2 <= BALL_FORM_MAX)


@float32_island
def mobius_add(x: Tensor, y: Tensor, c: Curvature, dim: int = 1) -> Tensor:
    r"""Möbius addition :math:`x \oplus_c y`.

    .. math::
        x\oplus_c y = \frac{(1 + 2c\langle x,y\rangle + c\|y\|^2)\,x + (1 - c\|x\|^2)\,y}
                           {1 + 2c\langle x,y\rangle + c^2\|x\|^2\|y\|^2}
                    = \frac{a\,(x + y) + c\|x+y\|^2\,x}{a\,b + c\|x+y\|^2},
        \quad a = 1 - c\|x\|^2,\ b = 1 - c\|y\|^2.

    The second form (same value, expanded in the appendix of ``docs/paper-vs-geometry.md``) is
    what is computed: inside the ball every term of its denominator is non-negative and nearly
    opposite points do not cancel, so it keeps float64 digits where the first loses them.
    Outside the ball it is the other way round (``mobius_add(x, 0)`` cancels to garbage once
    :math:`c\|x\|^2 \gg 1/\epsilon`): pairs with a point far out (:math:`c\|x\|^2 > 2`) use the
    first form, in float64.

    Example::

        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = (expmap0(torch.randn(3, 8, dtype=torch.float64, generator=g), 1.0)
        ...         for _ in range(2))
        >>> z = mobius_add(x, y, c=1.0)                              # (3, 8)
        >>> torch.allclose(mobius_add(-x, z, c=1.0), y, atol=1e-5)   # left cancellation
        True
    """
    x, y, out = _as_pair(x, y)
    k = curvature(c, x)
    dim = _check_dim(dim, max(x.dim(), y.dim()))
    x2, y2, xy, (wx, xs, wy, ys) = _pair_reductions(x, y, dim)
    sh = x * 0.5 + y * 0.5  # (x + y) / 2: never overflows
    s2 = _sqnorm_wide(sh, dim) * 4
    k = k.to(x2.dtype)
    kx2, ky2 = k * x2, k * y2
    near = _near_ball(k, x2, y2)
    a = 1 - kx2
    denom = torch.where(near, a * (1 - ky2) + k * s2,
                        1 + 2 * k * xy + kx2 * ky2).clamp_min(MIN_DENOM)
    zero = torch.zeros((), dtype=denom.dtype, device=denom.device)
    # Near the ball (in-ball form): k|x+y|^2/D x + a/D (x+y); elsewhere (direct form):
    # (1 + 2k<x,y> + k|y|^2)/D x + a/D y, on the prescaled vectors. Per-vector coefficients,
    # zero where the other form applies, so the sum equals the selected form exactly.
    cx = torch.where(near, k * s2 / denom, zero).to(x.dtype)
    cs = torch.where(near, 2 * a / denom, zero).to(x.dtype)
    cxs = torch.where(near, zero, (1 + 2 * k * xy + k * y2) * wx / denom).to(x.dtype)
    cys = torch.where(near, zero, a * wy / denom).to(x.dtype)
    res = torch.addcmul(x * cx, sh, cs)
    res = torch.addcmul(res, xs, cxs)
    return torch.addcmul(res, ys, cys).to(out)


@float32_island
def project(x: Tensor, c: Curvature, dim: int = 1) -> Tensor:
    r"""Pull points back strictly inside the ball: :math:`\|x\| \le (1-\epsilon)/\sqrt{c}`.

    :math:`\epsilon` is :func:`project_eps` (4e-3 for float32 work, 1e-5 for float64), as geoopt.

    Example::

        >>> p = project(torch.full((2, 4), 10.0), c=1.0)    # norms (1 - 4e-3) along dim 1
    """
    x, out = _as_input(x, "x")
    maxnorm = (1 - project_eps(x.dtype)) / curvature(c, x).sqrt()
    dim = _check_dim(dim, x.dim())
    if not _narrow(x):
        n = _norm(x, dim).clamp_min(MIN_NORM)
        return torch.where(n > maxnorm, x * (maxnorm / n), x).to(out)
    return _radial_cap(x, maxnorm, dim).to(out)


def _radial_cap(x: Tensor, r: float | Tensor, dim: int) -> Tensor:
    """float32 ``x min(1, r/|x|)`` without a data-dependent switch: ``x = s xs``
    (:func:`_prescale`), ``x r/|x| = xs r/|xs|``, whatever ``x``'s range."""
    s, xs = _prescale(x, dim)
    ns = _norm(xs, dim)  # >= 1, or 0 for the zero vector (never capped)
    return torch.where(s * ns > r, xs * (r / ns.clamp_min(0.5)), x)


@float32_island
def clip_features(x: Tensor, r: float | Tensor, dim: int = 1) -> Tensor:
    r"""Feature clipping: rescale each vector so that :math:`\|x\| \le r`.

    :math:`x \min(1, r/\|x\|)`; used before :func:`expmap0` so that the exponential map does not
    saturate (Guo et al., *Clipped Hyperbolic Classifiers Are Super-Hyperbolic Classifiers*).

    Example::

        >>> v = clip_features(torch.randn(8, 64) * 10, r=2.0)   # every row has norm <= 2
    """
    x, out = _as_input(x, "x")
    if isinstance(r, Tensor):
        if r.dim() != 0 or not r.is_floating_point():
            raise TypeError(f"r must be a positive float or 0-d floating tensor, got {r.dtype} "
                            f"of shape {tuple(r.shape)}")
        if not torch.compiler.is_compiling() and r.device.type == "cpu" and not r.requires_grad:
            _check_positive_scalar(float(r), "r")
    else:
        _check_positive_scalar(r, "r")
    dim = _check_dim(dim, x.dim())
    if not _narrow(x):
        n = _norm(x, dim).clamp_min(MIN_NORM)
        return (x * (r / n).clamp_max(1.0)).to(out)
    return _radial_cap(x, r, dim).to(out)


# --------------------------------------------------------------------------------------------
# geoopt itself, for equivalence checks
# --------------------------------------------------------------------------------------------


class reference:  # noqa: N801 - a namespace, named like a module
    """The same operations computed by geoopt's own math, with ``k = -c`` in the data's dtype.

    Used by the test-suite and ``hyperleaf check`` to prove the fused functions above equal to
    geoopt; slower, and subject to geoopt's float64 digit losses noted in the module docstring.
    """

    @staticmethod
    def _k(c: Curvature, x: Tensor) -> Tensor:
        return -curvature(c, x)

    @staticmethod
    def expmap0(x: Tensor, c: Curvature, dim: int = 1) -> Tensor:
        return _gmath.expmap0(x, k=reference._k(c, x), dim=dim)

    @staticmethod
    def logmap0(y: Tensor, c: Curvature, dim: int = 1) -> Tensor:
        return _gmath.logmap0(y, k=reference._k(c, y), dim=dim)

    @staticmethod
    def dist0(x: Tensor, c: Curvature, dim: int = 1, keepdim: bool = False) -> Tensor:
        return _gmath.dist0(x, k=reference._k(c, x), dim=dim, keepdim=keepdim)

    @staticmethod
    def dist(x: Tensor, y: Tensor, c: Curvature, dim: int = 1, keepdim: bool = False) -> Tensor:
        return _gmath.dist(x, y, k=reference._k(c, x), dim=dim, keepdim=keepdim)

    @staticmethod
    def mobius_add(x: Tensor, y: Tensor, c: Curvature, dim: int = 1) -> Tensor:
        return _gmath.mobius_add(x, y, k=reference._k(c, x), dim=dim)

    @staticmethod
    def project(x: Tensor, c: Curvature, dim: int = 1) -> Tensor:
        return _gmath.project(x, k=reference._k(c, x), dim=dim)


# --------------------------------------------------------------------------------------------
# The c -> 0 limits (the Euclidean arm of the ablation)
# --------------------------------------------------------------------------------------------
#
# As c -> 0 the ball of radius 1/sqrt(c) grows to all of R^n and, since tanh(z)/z -> 1,
# artanh(z)/z -> 1 and the Möbius denominator -> 1, every map above tends to its Euclidean
# form uniformly on bounded sets (errors O(c |x|^2), proven numerically in
# tests/test_euclidean_limit.py):
#
#     exp_0(v) -> v,   log_0(y) -> y,   x (+)_c y -> x + y,   project(x) -> x,
#     d_0(x) -> 2 |x|,   d(x, y) -> 2 |x - y|.
#
# The factor 2 is the Poincaré metric's conformal factor 2 / (1 - c|x|^2) at c = 0: the limit
# keeps distances on the same scale as the hyperbolic arm's at small radii. ``clip_features``
# has no curvature and stays as it is.

__all__ += ["expmap0_c0", "logmap0_c0", "dist0_c0", "dist_c0", "mobius_add_c0"]


def expmap0_c0(x: Tensor, dim: int = 1) -> Tensor:
    r"""The c -> 0 limit of :func:`expmap0`: the identity, :math:`\lim_{c\to0}\exp_0(v) = v`.

    Returns ``x`` itself (any shape; ``dim`` is checked only).

    >>> v = torch.tensor([[0.3, -0.4]], dtype=torch.float64)
    >>> torch.equal(expmap0_c0(v), v), bool(torch.allclose(expmap0(v, 1e-9), v, atol=1e-9))
    (True, True)
    """
    x, out = _as_input(x, "x")
    _check_dim(dim, x.dim())
    return x.to(out)


def logmap0_c0(y: Tensor, dim: int = 1) -> Tensor:
    r"""The c -> 0 limit of :func:`logmap0`: the identity.

    >>> y = torch.tensor([[0.3, -0.4]])
    >>> torch.equal(logmap0_c0(y), y)
    True
    """
    y, out = _as_input(y, "y")
    _check_dim(dim, y.dim())
    return y.to(out)


def dist0_c0(x: Tensor, dim: int = 1, keepdim: bool = False) -> Tensor:
    r"""The c -> 0 limit of :func:`dist0`: :math:`2\|x\|` (shape of ``x`` without ``dim``).

    >>> dist0_c0(torch.tensor([[3.0, 4.0]]))
    tensor([10.])
    """
    x, out = _as_input(x, "x")
    dim = _check_dim(dim, x.dim())
    return (2.0 * _norm(x, dim, keepdim)).to(out)


def dist_c0(x: Tensor, y: Tensor, dim: int = 1, keepdim: bool = False) -> Tensor:
    r"""The c -> 0 limit of :func:`dist`: :math:`2\|x - y\|` (``x``, ``y`` broadcast).

    >>> dist_c0(torch.tensor([[1.0, 1.0]]), torch.tensor([[4.0, 5.0]]))
    tensor([10.])
    """
    x, y, out = _as_pair(x, y)
    dim = _check_dim(dim, max(x.dim(), y.dim()))
    return (2.0 * _norm(x - y, dim, keepdim)).to(out)


def mobius_add_c0(x: Tensor, y: Tensor, dim: int = 1) -> Tensor:
    r"""The c -> 0 limit of :func:`mobius_add`: :math:`x + y`.

    >>> mobius_add_c0(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 0.5]]))
    tensor([[1.5000, 2.5000]])
    """
    x, y, out = _as_pair(x, y)
    _check_dim(dim, max(x.dim(), y.dim()))
    return (x + y).to(out)
