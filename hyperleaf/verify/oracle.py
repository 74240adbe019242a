"""Independent oracles for the numerical-consistency suite.

* ``np_*``: float64 NumPy transcriptions of the LEAF seed's handwritten formulas
  (:mod:`hyperleaf.paper`), written from the seed text with NumPy instead of torch, same eps
  values, clamps and order of operations. They share no code with the torch versions.
* ``mp_*``: the Poincaré ball's closed forms (textbook definitions, not the rearranged forms of
  :mod:`hyperleaf.geometry`) evaluated in 50-digit arithmetic with mpmath on the exact float64
  values of the inputs, then rounded to float64. Where :mod:`hyperleaf.geometry` documents a
  clamp (points on or beyond the boundary), the oracle applies the same documented clamp.

Arrays are ``(N, D)`` float64, vectors along axis 1; scalar results are ``(N,)``.
"""

from __future__ import annotations

import mpmath
import numpy as np

from hyperleaf.geometry import ARTANH_CLAMP, TANH_CLAMP

__all__ = [
    "np_euclid_to_hyper",
    "np_hyper_to_euclid",
    "np_hyper_distance",
    "np_hyper_distance_scale",
    "np_distance_to_origin",
    "np_distance_to_origin_norm",
    "np_mobius_add",
    "np_top1_loss",
    "np_listwise_ranking_loss",
    "mp_expmap0",
    "mp_logmap0",
    "mp_dist0",
    "mp_dist",
    "mp_mobius_add",
    "mp_project",
    "mp_clip_features",
]

DPS = 50
_EPS = 1e-8


# --------------------------------------------------------------------------------------------
# the seed's formulas in NumPy
# --------------------------------------------------------------------------------------------


def _nrm(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(a * a, axis=1, keepdims=True))


def np_euclid_to_hyper(x: np.ndarray, c: float) -> np.ndarray:
    sc = np.sqrt(c)
    n = _nrm(x)
    scale = np.minimum(1.0, (1.0 / sc - _EPS) / (n + _EPS))
    xs = x * scale
    ns = _nrm(xs)
    return np.tanh(sc * ns) / (sc * (ns + _EPS)) * xs


def np_hyper_to_euclid(x: np.ndarray, c: float) -> np.ndarray:
    sc = np.sqrt(c)
    n = np.clip(_nrm(x), _EPS, 1 - _EPS)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (1 / sc) * np.arctanh(sc * n) * (x / n)


def _np_acosh_dist(u: np.ndarray, v: np.ndarray, c: float, eps: float) -> np.ndarray:
    max_norm = 1.0 / np.sqrt(c) - eps
    nu = np.minimum(_nrm(u), max_norm)
    nv = np.minimum(_nrm(v), max_norm)
    num = 1 + 2 * c * np.sum((u - v) ** 2, axis=1, keepdims=True)
    den = (1 - c * nu**2) * (1 - c * nv**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        arg = np.maximum(num / den, 1 + eps)
        return (1 / np.sqrt(c)) * np.arccosh(arg)


def np_hyper_distance(u: np.ndarray, v: np.ndarray, c: float) -> float:
    return float(np.mean(_np_acosh_dist(u, v, c, _EPS)))


def np_rescale_into_ball(u: np.ndarray, c: float, eps: float) -> np.ndarray:
    """The seed's rescaling before its distance (``hyper_distance_scale``, HDGFB's map)."""
    n = _nrm(u) + eps
    return u * (np.minimum(n, 1.0 / np.sqrt(c) - eps) / n)


def np_hyper_distance_scale(u: np.ndarray, v: np.ndarray, c: float) -> float:
    us, vs = np_rescale_into_ball(u, c, _EPS), np_rescale_into_ball(v, c, _EPS)
    return float(np.mean(_np_acosh_dist(us, vs, c, _EPS)))


def np_hyper_distance_map(u: np.ndarray, v: np.ndarray, c: float, eps: float = 1e-6) -> np.ndarray:
    """Per-row distance of HDGFB's ``hyper_distance_map`` (local eps 1e-6), ``(N,)``."""
    us, vs = np_rescale_into_ball(u, c, eps), np_rescale_into_ball(v, c, eps)
    return _np_acosh_dist(us, vs, c, eps)[:, 0]


def np_distance_to_origin(x: np.ndarray, c: float) -> float:
    sc = np.sqrt(c)
    n = _nrm(x)
    scale = np.minimum(1.0, (1.0 / sc - _EPS) / (n + _EPS))
    with np.errstate(invalid="ignore"):
        return float(np.mean((1.0 / sc) * np.arctanh(sc * (n * scale))))


def np_distance_to_origin_norm(x: np.ndarray, c: float) -> float:
    return float(np.mean(_nrm(x)))


def np_mobius_add(u: np.ndarray, v: np.ndarray, c: float) -> np.ndarray:
    sc = np.sqrt(c)
    u = u / (1 + 1e-8)
    v = v / (1 + 1e-8)
    uu = np.sum(u**2, axis=1, keepdims=True)
    vv = np.sum(v**2, axis=1, keepdims=True)
    uv = np.sum(u * v, axis=1, keepdims=True)
    num = (1 + 2 * sc * uv + c * vv) * u + (1 - c * uu) * v
    den = 1 + 2 * sc * uv + c**2 * uu * vv
    return num / (den + 1e-8)


def np_top1_loss(predicts: np.ndarray, target_index: np.ndarray) -> float:
    m = predicts.max(axis=1, keepdims=True)
    logp = predicts - m - np.log(np.sum(np.exp(predicts - m), axis=1, keepdims=True))
    return float(np.mean(-logp[np.arange(predicts.shape[0]), target_index]))


def np_listwise_ranking_loss(predicts: np.ndarray, targets: np.ndarray) -> float:
    order = np.argsort(targets, axis=1, kind="stable")
    y = np.take_along_axis(predicts, order, axis=1)
    # log sum_{j >= i} exp(y_j), the ListMLE normaliser of position i
    tail = np.logaddexp.accumulate(y[:, ::-1], axis=1)[:, ::-1]
    return float(np.mean(-(y - tail)))


# --------------------------------------------------------------------------------------------
# Poincaré-ball closed forms in mpmath
# --------------------------------------------------------------------------------------------


def _rows(a: np.ndarray):
    return [[mpmath.mpf(float(v)) for v in row] for row in np.asarray(a, dtype=np.float64)]


def _n2(v) -> mpmath.mpf:
    return mpmath.fsum(t * t for t in v)


def _dot(u, v) -> mpmath.mpf:
    return mpmath.fsum(a * b for a, b in zip(u, v))


def _vec_out(rows) -> np.ndarray:
    return np.array([[float(t) for t in r] for r in rows], dtype=np.float64)


def _artanh_clamped(z, clamp: float):
    return mpmath.atanh(min(z, mpmath.mpf(clamp)))


def mp_expmap0(v: np.ndarray, c: float) -> np.ndarray:
    """:math:`\\tanh(\\sqrt{c}\\|v\\|) v / (\\sqrt{c}\\|v\\|)` (tanh argument clipped at 15)."""
    with mpmath.workdps(DPS):
        sc = mpmath.sqrt(mpmath.mpf(c))
        out = []
        for r in _rows(v):
            n = mpmath.sqrt(_n2(r))
            f = mpmath.mpf(1) if n == 0 else mpmath.tanh(min(sc * n, TANH_CLAMP)) / (sc * n)
            out.append([f * t for t in r])
        return _vec_out(out)


def mp_logmap0(y: np.ndarray, c: float, clamp: float = ARTANH_CLAMP) -> np.ndarray:
    """:math:`\\operatorname{artanh}(\\sqrt{c}\\|y\\|) y / (\\sqrt{c}\\|y\\|)`."""
    with mpmath.workdps(DPS):
        sc = mpmath.sqrt(mpmath.mpf(c))
        out = []
        for r in _rows(y):
            n = mpmath.sqrt(_n2(r))
            f = mpmath.mpf(1) if n == 0 else _artanh_clamped(sc * n, clamp) / (sc * n)
            out.append([f * t for t in r])
        return _vec_out(out)


def mp_dist0(x: np.ndarray, c: float, clamp: float = ARTANH_CLAMP) -> np.ndarray:
    """:math:`\\tfrac{2}{\\sqrt{c}} \\operatorname{artanh}(\\sqrt{c}\\|x\\|)`, ``(N,)``."""
    with mpmath.workdps(DPS):
        sc = mpmath.sqrt(mpmath.mpf(c))
        return np.array([float(2 * _artanh_clamped(sc * mpmath.sqrt(_n2(r)), clamp) / sc)
                         for r in _rows(x)])


def _mp_madd(u, v, c):
    uu, vv, uv = _n2(u), _n2(v), _dot(u, v)
    a = 1 + 2 * c * uv + c * vv
    b = 1 - c * uu
    den = 1 + 2 * c * uv + c * c * uu * vv
    return [(a * p + b * q) / den for p, q in zip(u, v)]


def mp_dist(x: np.ndarray, y: np.ndarray, c: float, clamp: float | None = ARTANH_CLAMP
            ) -> np.ndarray:
    """Inside the ball: :math:`\\operatorname{arcosh}(1 + 2c\\|x-y\\|^2 / ((1-c\\|x\\|^2)
    (1-c\\|y\\|^2))) / \\sqrt{c}` (the classical formula, exact at 50 digits), ``(N,)``,
    capped at the saturation :math:`2\\operatorname{artanh}(\\text{clamp})/\\sqrt{c}` of the
    documented artanh clamp (``clamp=None``: no cap)."""
    with mpmath.workdps(DPS):
        cc = mpmath.mpf(c)
        sc = mpmath.sqrt(cc)
        cap = mpmath.inf if clamp is None else 2 * mpmath.atanh(mpmath.mpf(clamp)) / sc
        out = []
        for u, v in zip(_rows(x), _rows(y)):
            diff = _n2([p - q for p, q in zip(u, v)])
            den = (1 - cc * _n2(u)) * (1 - cc * _n2(v))
            z = 2 * cc * diff / den
            # arcosh(1 + z) = log1p(z + sqrt(z (z + 2))): keeps every digit when z is tiny
            out.append(float(min(mpmath.log1p(z + mpmath.sqrt(z * (z + 2))) / sc, cap)))
        return np.array(out)


def mp_mobius_add(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """Möbius addition by its gyrovector definition."""
    with mpmath.workdps(DPS):
        cc = mpmath.mpf(c)
        return _vec_out([_mp_madd(u, v, cc) for u, v in zip(_rows(x), _rows(y))])


def _mp_clip_rows(x: np.ndarray, maxn) -> np.ndarray:
    # x min(1, maxn / |x|) row by row (call inside workdps).
    out = []
    for row in _rows(x):
        n = mpmath.sqrt(_n2(row))
        f = maxn / n if n > maxn else mpmath.mpf(1)
        out.append([f * t for t in row])
    return _vec_out(out)


def mp_project(x: np.ndarray, c: float, eps: float) -> np.ndarray:
    """:math:`x \\min(1, (1-\\epsilon)/(\\sqrt{c}\\|x\\|))`."""
    with mpmath.workdps(DPS):
        return _mp_clip_rows(x, (1 - mpmath.mpf(eps)) / mpmath.sqrt(mpmath.mpf(c)))


def mp_clip_features(x: np.ndarray, r: float) -> np.ndarray:
    """:math:`x \\min(1, r/\\|x\\|)`."""
    with mpmath.workdps(DPS):
        return _mp_clip_rows(x, mpmath.mpf(r))
