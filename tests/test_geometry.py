"""hyperleaf.geometry against the Poincaré ball's closed forms (50-digit mpmath), geoopt, and the
ball's identities; gradients, shapes, dtypes and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hyperleaf import geometry as G
from hyperleaf.verify import oracle as O

C = st.floats(0.01, 10.0)
DIMS = st.integers(1, 512)
SEEDS = st.integers(0, 2**31 - 1)
F64_REL = 1e-10  # the library's float64 claim against the closed forms


def points(seed: int, n: int, d: int, c: float, lo: float, hi: float, log: bool = False):
    """n points of R^d with sqrt(c)|x| drawn in [lo, hi] (log-uniformly if log)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    s = 10 ** rng.uniform(math.log10(lo), math.log10(hi), n) if log else rng.uniform(lo, hi, n)
    return u * (s / math.sqrt(c))[:, None]


REGIMES = {  # s = sqrt(c)|x| inside the ball, the closed forms' domain
    "tiny": (1e-12, 1e-4, True),
    "interior": (0.01, 0.99, False),
    "near": (1 - 1e-2, 1 - 1e-5, False),
}
regimes = st.sampled_from(sorted(REGIMES))


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.ndim == 2:
        num = np.linalg.norm(got - want, axis=1)
        den = np.linalg.norm(want, axis=1)
    else:
        num, den = np.abs(got - want), np.abs(want)
    assert np.all(np.isfinite(got)), got
    # below 1e-40 the reference is a 50-digit rounding of an exact 0 (e.g. x + (-x))
    floor = 1e-40
    return float(np.max(np.where(den > floor, num / np.maximum(den, floor), num / floor)))


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# --------------------------------------------------------------------------------------------
# closed forms, float64
# --------------------------------------------------------------------------------------------


@given(seed=SEEDS, d=DIMS, c=C, regime=regimes)
def test_expmap0_closed_form(seed, d, c, regime):
    lo, hi, log = REGIMES[regime]
    x = points(seed, 3, d, c, lo, hi, log)
    # tangent vectors whose images land in the regime
    s = np.linalg.norm(x, axis=1, keepdims=True) * math.sqrt(c)
    v = x * np.arctanh(s) / s
    assert rel_err(G.expmap0(t64(v), c).numpy(), O.mp_expmap0(v, c)) <= F64_REL


@given(seed=SEEDS, d=DIMS, c=C, scale=st.floats(1.0, 1e4))
def test_expmap0_closed_form_large_tangents(seed, d, c, scale):
    v = points(seed, 3, d, c, 1.0, 2.0) * scale
    assert rel_err(G.expmap0(t64(v), c).numpy(), O.mp_expmap0(v, c)) <= F64_REL


@given(seed=SEEDS, d=DIMS, c=C, regime=regimes)
def test_logmap0_dist0_closed_form(seed, d, c, regime):
    x = points(seed, 3, d, c, *REGIMES[regime])
    assert rel_err(G.logmap0(t64(x), c).numpy(), O.mp_logmap0(x, c)) <= F64_REL
    assert rel_err(G.dist0(t64(x), c).numpy(), O.mp_dist0(x, c)) <= F64_REL


@given(seed=SEEDS, d=DIMS, c=C, regime=regimes, close=st.sampled_from([0.0, 1e-9, 1e-5, 1e-2]))
def test_dist_mobius_add_closed_form(seed, d, c, regime, close):
    x = points(seed, 3, d, c, *REGIMES[regime])
    if close:
        # a nearby partner at the same radius: relative accuracy for near points is the hard case
        y = x + close * np.abs(x).max() * np.random.default_rng(seed + 1).standard_normal(x.shape)
        y *= np.linalg.norm(x, axis=1, keepdims=True) / np.linalg.norm(y, axis=1, keepdims=True)
    else:
        y = points(seed + 1, 3, d, c, *REGIMES[regime])
    assert rel_err(G.dist(t64(x), t64(y), c).numpy(), O.mp_dist(x, y, c)) <= F64_REL
    assert rel_err(G.mobius_add(t64(x), t64(y), c).numpy(), O.mp_mobius_add(x, y, c)) <= F64_REL


@given(seed=SEEDS, d=DIMS, c=C, hi=st.floats(0.5, 1e3))
def test_project_and_clip_closed_form(seed, d, c, hi):
    x = points(seed, 4, d, c, 1e-3, hi, True)
    eps = G.project_eps(torch.float64)
    assert rel_err(G.project(t64(x), c).numpy(), O.mp_project(x, c, eps)) <= F64_REL
    r = 0.3 / math.sqrt(c)
    assert rel_err(G.clip_features(t64(x), r).numpy(), O.mp_clip_features(x, r)) <= F64_REL


# --------------------------------------------------------------------------------------------
# geoopt: same semantics
# --------------------------------------------------------------------------------------------


@given(seed=SEEDS, d=st.integers(1, 64), c=C, lo_hi=st.sampled_from([(0.01, 0.99), (1.5, 1e3)]))
def test_equal_to_geoopt(seed, d, c, lo_hi):
    x, y = t64(points(seed, 4, d, c, *lo_hi)), t64(points(seed + 1, 4, d, c, *lo_hi))
    ref = G.reference
    torch.testing.assert_close(G.expmap0(x, c), ref.expmap0(x, c), rtol=1e-12, atol=0)
    torch.testing.assert_close(G.project(x, c), ref.project(x, c), rtol=1e-12, atol=0)
    # geoopt's artanh is a difference of logs: absolute accuracy ~1e-16, hence atol
    torch.testing.assert_close(G.logmap0(x, c), ref.logmap0(x, c), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(G.dist0(x, c), ref.dist0(x, c), rtol=1e-9, atol=1e-12)
    if lo_hi[1] < 1:  # inside the ball; beyond it both saturate through different clamps
        torch.testing.assert_close(G.dist(x, y, c), ref.dist(x, y, c), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(G.mobius_add(x, y, c), ref.mobius_add(x, y, c),
                                   rtol=1e-12, atol=1e-15)


def test_ball_carries_exact_curvature():
    b = G.ball(0.5)
    assert isinstance(b, G.geoopt.PoincareBall)
    assert b.c.dtype == torch.float64 and abs(float(b.c) - 0.5) < 1e-15
    # geoopt's own float c is a float32 softplus: the loss this avoids is real
    assert abs(float(G.geoopt.PoincareBall(c=0.5).c.double()) - 0.5) > 1e-9
    x = t64(points(0, 5, 8, 0.5, 0.1, 0.9))
    torch.testing.assert_close(G.dist0(x, b), G.dist0(x, 0.5), rtol=1e-15, atol=0)
    assert G.ball(b) is b


def test_learnable_ball_gets_gradient():
    b = G.ball(0.7, learn_c=True)
    x = t64(points(1, 5, 8, 0.7, 0.1, 0.9))
    G.dist0(x, b).sum().backward()
    assert b.isp_c.grad is not None and torch.isfinite(b.isp_c.grad).all()
    assert float(b.isp_c.grad) != 0


def test_tensor_curvature_in_graph():
    c = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    x = t64(points(2, 4, 6, 0.3, 0.1, 0.9))
    G.dist0(x, c).sum().backward()
    assert torch.isfinite(c.grad) and float(c.grad) != 0


# --------------------------------------------------------------------------------------------
# identities of the ball
# --------------------------------------------------------------------------------------------


@given(seed=SEEDS, d=st.integers(1, 128), c=C)
def test_distance_axioms(seed, d, c):
    x, y, z = (t64(points(seed + k, 5, d, c, 0.0, 0.999)) for k in range(3))
    assert torch.all(G.dist(x, x, c) == 0)
    torch.testing.assert_close(G.dist(x, y, c), G.dist(y, x, c), rtol=1e-12, atol=0)
    assert torch.all(G.dist(x, z, c) <= G.dist(x, y, c) + G.dist(y, z, c) + 1e-10)
    torch.testing.assert_close(G.dist0(x, c), G.dist(torch.zeros_like(x), x, c),
                               rtol=1e-12, atol=0)


@given(seed=SEEDS, d=st.integers(1, 128), c=C)
def test_logmap0_inverts_expmap0_inside_clip_radius(seed, d, c):
    # tangent norms whose image stays inside the float64 projection margin
    v = t64(points(seed, 5, d, c, 1e-6, math.atanh(1 - 1e-5), True))
    torch.testing.assert_close(G.logmap0(G.expmap0(v, c), c), v, rtol=1e-10, atol=0)


@given(seed=SEEDS, d=st.integers(1, 128), c=C)
def test_mobius_left_cancellation(seed, d, c):
    x, y = (t64(points(seed + k, 5, d, c, 0.0, 0.95)) for k in range(2))
    back = G.mobius_add(-x, G.mobius_add(x, y, c), c)
    torch.testing.assert_close(back, y, rtol=1e-9, atol=1e-12)


@given(seed=SEEDS, d=st.integers(1, 128), c=C, dtype=st.sampled_from([torch.float32,
                                                                       torch.float64]))
def test_project_keeps_points_strictly_inside(seed, d, c, dtype):
    x = torch.from_numpy(points(seed, 6, d, c, 1e-3, 1e6, True)).to(dtype)
    p = G.project(x, c)
    n = torch.linalg.vector_norm(p.double(), dim=1) * math.sqrt(c)
    assert torch.all(n < 1)
    assert torch.all(n <= (1 - G.project_eps(dtype)) * (1 + 4 * torch.finfo(dtype).eps))
    inside = torch.linalg.vector_norm(x.double(), dim=1) * math.sqrt(c) < 0.5
    assert torch.equal(p[inside], x[inside])


# --------------------------------------------------------------------------------------------
# gradients: finite for every finite input, float32
# --------------------------------------------------------------------------------------------

HARD_NORMS = [0.0, 1e-30, 1e-8, 0.5, 0.999, 1.0, 1.0001, 3.0, 1e3, 1e6]


@pytest.mark.parametrize("c", [0.01, 0.5, 10.0])
@pytest.mark.parametrize("s", HARD_NORMS)
def test_gradients_finite_float32(c, s):
    rng = np.random.default_rng(0)
    d = rng.standard_normal((3, 7))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    base = torch.tensor(d * s / math.sqrt(c), dtype=torch.float32)
    other = torch.tensor(points(1, 3, 7, c, 0.1, 0.9), dtype=torch.float32)
    cases = {
        "expmap0": lambda x: G.expmap0(x, c),
        "logmap0": lambda x: G.logmap0(x, c),
        "dist0": lambda x: G.dist0(x, c),
        "dist_coincident": lambda x: G.dist(x, x.detach().clone(), c),
        "dist_self": lambda x: G.dist(x, x, c),
        "dist_other": lambda x: G.dist(x, other, c),
        "mobius_add": lambda x: G.mobius_add(x, other, c),
        "mobius_add_self": lambda x: G.mobius_add(x, x, c),
        "project": lambda x: G.project(x, c),
        "clip_features": lambda x: G.clip_features(x, 0.5),
    }
    for name, fn in cases.items():
        x = base.clone().requires_grad_(True)
        out = fn(x)
        assert torch.isfinite(out).all(), (name, out)
        (g,) = torch.autograd.grad(out.sum(), x)
        assert torch.isfinite(g).all(), (name, g)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("s", HARD_NORMS)
def test_strided_axis_path_equals_contiguous_path(s, dtype):
    # Norms along a strided axis (channels of an NCHW map) take the vecdot path, along a
    # contiguous one vector_norm: same values and gradients, zero vectors included.
    c = 0.5
    rng = np.random.default_rng(1)
    d = rng.standard_normal((6, 5))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d[0] = 0.0
    rows = torch.tensor(d * s / math.sqrt(c), dtype=dtype)       # (6, 5), axis contiguous
    other = torch.tensor(points(2, 6, 5, c, 0.1, 0.9), dtype=dtype)
    ops = {
        "expmap0": lambda x, o, dim: G.expmap0(x, c, dim=dim),
        "logmap0": lambda x, o, dim: G.logmap0(x, c, dim=dim),
        "dist0": lambda x, o, dim: G.dist0(x, c, dim=dim, keepdim=True),
        "dist": lambda x, o, dim: G.dist(x, o, c, dim=dim, keepdim=True),
        "dist_self": lambda x, o, dim: G.dist(x, x, c, dim=dim, keepdim=True),
        "mobius_add": lambda x, o, dim: G.mobius_add(x, o, c, dim=dim),
        "project": lambda x, o, dim: G.project(x, c, dim=dim),
        "clip_features": lambda x, o, dim: G.clip_features(x, 0.5, dim=dim),
    }
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-14}
    for name, fn in ops.items():
        xr = rows.clone().requires_grad_(True)
        xs = rows.t().contiguous().t().requires_grad_(True)      # same values, axis strided
        assert xs.stride(1) != 1
        out_r, out_s = fn(xr, other, 1), fn(xs, other.t().contiguous().t(), 1)
        w = torch.linspace(-1, 2, out_r.numel(), dtype=dtype).view(out_r.shape)
        (gr,) = torch.autograd.grad((out_r * w).sum(), xr)
        (gs,) = torch.autograd.grad((out_s * w).sum(), xs)
        assert torch.isfinite(out_s).all() and torch.isfinite(gs).all(), name
        # Equal where the op is well conditioned: tangent-space maps everywhere, ball ops for
        # points well inside (near and beyond the boundary both paths are right only to the
        # op's conditioning, ~eps / (1 - c|x|^2)).
        if s <= 0.5 or name in ("expmap0", "clip_features"):
            torch.testing.assert_close(out_s, out_r, **tol, msg=lambda m, name=name: f"{name}: {m}")
            torch.testing.assert_close(gs, gr, **tol, msg=lambda m, name=name: f"{name}: {m}")


def test_learnable_curvature_gradient_finite_at_origin():
    b = G.ball(1.0, learn_c=True)
    x = torch.zeros(2, 4, requires_grad=True)
    (G.dist0(x, b).sum() + G.expmap0(x, b).sum() + G.dist(x, x, b).sum()).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(b.isp_c.grad).all()


# --------------------------------------------------------------------------------------------
# shapes, dims, dtypes
# --------------------------------------------------------------------------------------------


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=5), data=st.data())
def test_any_rank_any_dim_matches_moving_the_axis(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = torch.randn(*shape, dtype=torch.float64) * 0.3
    y = torch.randn(*shape, dtype=torch.float64) * 0.3
    c = 0.7

    def moved(fn, *ts, keep_vector=True):
        flat = [t.movedim(dim, -1).reshape(-1, t.shape[dim]) for t in ts]
        out = fn(*flat)
        rest = [s for i, s in enumerate(ts[0].shape) if i != dim % len(shape)]
        if keep_vector:
            return out.reshape(*rest, ts[0].shape[dim]).movedim(-1, dim)
        return out.reshape(rest)

    for name in ("expmap0", "logmap0", "project"):
        f = getattr(G, name)
        torch.testing.assert_close(f(x, c, dim=dim), moved(lambda a, f=f: f(a, c), x))
    torch.testing.assert_close(G.mobius_add(x, y, c, dim=dim),
                               moved(lambda a, b: G.mobius_add(a, b, c), x, y))
    torch.testing.assert_close(G.dist(x, y, c, dim=dim),
                               moved(lambda a, b: G.dist(a, b, c), x, y, keep_vector=False))
    torch.testing.assert_close(G.dist0(x, c, dim=dim),
                               moved(lambda a: G.dist0(a, c), x, keep_vector=False))
    assert G.dist(x, y, c, dim=dim, keepdim=True).shape[dim] == 1
    torch.testing.assert_close(G.clip_features(x, 0.2, dim=dim),
                               moved(lambda a: G.clip_features(a, 0.2), x))


def test_feature_maps_channels_last_and_broadcasting():
    x = torch.randn(2, 8, 5, 6) * 0.2
    y = torch.randn(1, 8, 1, 6) * 0.2
    cl = x.contiguous(memory_format=torch.channels_last)
    for f in (G.expmap0, G.logmap0, G.project):
        torch.testing.assert_close(f(cl, 0.5), f(x, 0.5))
    d = G.dist(x, y, 0.5)
    assert d.shape == (2, 5, 6)
    torch.testing.assert_close(d, G.dist(x, y.expand_as(x), 0.5))
    torch.testing.assert_close(G.dist(cl, y, 0.5), d)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(dtype):
    x = (torch.randn(4, 16) * 0.2).to(dtype)
    y = (torch.randn(4, 16) * 0.2).to(dtype)
    for name, out, ref in [
        ("expmap0", G.expmap0(x, 0.5), G.expmap0(x.float(), 0.5)),
        ("logmap0", G.logmap0(x, 0.5), G.logmap0(x.float(), 0.5)),
        ("dist", G.dist(x, y, 0.5), G.dist(x.float(), y.float(), 0.5)),
        ("dist0", G.dist0(x, 0.5), G.dist0(x.float(), 0.5)),
        ("mobius_add", G.mobius_add(x, y, 0.5), G.mobius_add(x.float(), y.float(), 0.5)),
        ("project", G.project(x, 0.5), G.project(x.float(), 0.5)),
    ]:
        assert out.dtype == dtype, name
        assert torch.equal(out, ref.to(dtype)), name


def test_float64_curvature_not_rounded_through_float32():
    x = torch.full((1, 3), 0.2, dtype=torch.float64)
    c = 0.1  # not representable in float32
    n = math.sqrt(3) * 0.2
    want = 2 / math.sqrt(c) * math.atanh(math.sqrt(c) * n)
    assert abs(float(G.dist0(x, c)) - want) <= 4e-16 * want


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, exc, words", [
    (lambda: G.expmap0([1.0, 2.0], 1.0), TypeError, "x must be a torch.Tensor"),
    (lambda: G.logmap0(torch.ones(2, 3, dtype=torch.int64), 1.0), TypeError, "floating"),
    (lambda: G.dist0(torch.ones(2, 3), 0.0), ValueError, "c must be finite and > 0"),
    (lambda: G.dist0(torch.ones(2, 3), -1.0), ValueError, "c must be finite and > 0"),
    (lambda: G.dist0(torch.ones(2, 3), float("nan")), ValueError, "c must be finite"),
    (lambda: G.dist0(torch.ones(2, 3), float("inf")), ValueError, "c must be finite"),
    (lambda: G.dist0(torch.ones(2, 3), torch.tensor(-2.0)), ValueError, "c must be finite"),
    (lambda: G.dist0(torch.ones(2, 3), "1"), TypeError, "c must be"),
    (lambda: G.dist0(torch.ones(2, 3), torch.ones(2)), TypeError, "0-d"),
    (lambda: G.expmap0(torch.ones(2, 3), 1.0, dim=2), ValueError, "dim=2 is out of range"),
    (lambda: G.expmap0(torch.ones(2, 3), 1.0, dim=-3), ValueError, "out of range"),
    (lambda: G.expmap0(torch.ones(2, 3), 1.0, dim=1.0), TypeError, "dim must be an int"),
    (lambda: G.dist(torch.ones(2, 3), torch.ones(4, 3), 1.0), ValueError, "do not broadcast"),
    (lambda: G.mobius_add(torch.ones(2, 3), torch.ones(2, 5), 1.0), ValueError, "broadcast"),
    (lambda: G.dist(torch.ones(2, 3), "y", 1.0), TypeError, "y must be a torch.Tensor"),
    (lambda: G.clip_features(torch.ones(2, 3), 0.0), ValueError, "r must be finite and > 0"),
    (lambda: G.clip_features(torch.ones(2, 3), -1.0), ValueError, "r must be"),
    (lambda: G.ball(0.0), ValueError, "c must be finite and > 0"),
    # the curvature is checked before the axis (issue 9: a 1-D x with c=0 blamed dim)
    (lambda: G.expmap0(torch.ones(3), c=0), ValueError, "c must be finite and > 0, got 0"),
    (lambda: G.dist(torch.ones(3), torch.ones(3), c=-1.0), ValueError, "c must be finite"),
    (lambda: G.project(torch.ones(3), c=0.0), ValueError, "c must be finite"),
    (lambda: G.clip_features(torch.ones(3), 0.0), ValueError, "r must be finite and > 0"),
])
def test_bad_input_raises_clear_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# --------------------------------------------------------------------------------------------
# extreme magnitudes (issue 9 §6): float32 answers as the exact formula, up to float32's max
# --------------------------------------------------------------------------------------------

F32 = torch.float32
EPS32 = float(torch.finfo(F32).eps)
MAX32 = float(torch.finfo(F32).max)
#: the artanh clamp as float32 holds it (1 - 2^-23): the float32 calls' saturation
CLAMP32 = float(torch.tensor(G.ARTANH_CLAMP, dtype=F32))
#: below ~2^-63 float32 squared norms are subnormal: norms, and so distances, are then only
#: absolutely accurate, to ~sqrt(D) 2^-75; the distance tests allow this absolute error
TINY_DIST_ATOL = 1e-20


def wild_points(seed: int, n: int, d: int, lo: float = -30.0, hi: float = 38.5) -> np.ndarray:
    """n float32 vectors of R^d with norms 10^u, u uniform in [lo, hi] (each component stays
    below float32's max), returned as the exact float64 values of those float32 numbers."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return (u * 10 ** rng.uniform(lo, hi, n)[:, None]).astype(np.float32).astype(np.float64)


def row_norms(a: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a, axis=-1)


def assert_rows_close(got: torch.Tensor, want: np.ndarray, tol: np.ndarray, atol: float = 0.0):
    """Row-wise |got - want| <= tol |want| + atol, where ``want`` is representable in float32
    (rows whose exact value overflows float32 must come out inf, never NaN)."""
    g = got.double().numpy()
    assert not np.isnan(g).any(), g
    if want.ndim == 1:
        g, want = g[:, None], want[:, None]
    fits = row_norms(want) < MAX32 / 2
    assert np.all(np.isinf(g[~fits]).any(axis=-1)), (g[~fits], want[~fits])
    err = row_norms(g[fits] - want[fits])
    bound = np.broadcast_to(np.asarray(tol, np.float64), fits.shape)[fits]
    bound = bound * row_norms(want[fits]) + atol
    assert np.all(err <= bound), (err, bound, g[fits], want[fits])


def atanh_cond(t: np.ndarray) -> np.ndarray:
    """Relative condition number of artanh at its clamped argument."""
    t = np.minimum(np.abs(t), CLAMP32)
    return 1 + np.where(t > 0, t / ((1 - t * t) * np.arctanh(np.maximum(t, 1e-300))), 1.0)


def mp_dist_anywhere(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """Distance from the gyro definition, 2/s artanh(s |(-x) + y|) (Möbius sum in 50 digits),
    with float32's artanh clamp: valid off the ball too, independent of the library's identity."""
    m = O.mp_mobius_add(-x, y, c)
    t = math.sqrt(c) * row_norms(m)
    return 2 / math.sqrt(c) * np.arctanh(np.minimum(t, CLAMP32)), t


@given(seed=SEEDS, d=st.integers(1, 48), c=C)
def test_float32_maps_equal_exact_up_to_float32_max(seed, d, c):
    # expmap0, project, clip_features: well conditioned everywhere: a few float32 ulps.
    x = wild_points(seed, 6, d)
    x32 = torch.from_numpy(x).float()
    tol = 16 * EPS32
    assert_rows_close(G.expmap0(x32, c), O.mp_expmap0(x, c), tol)
    assert_rows_close(G.project(x32, c), O.mp_project(x, c, G.project_eps(F32)), tol)
    r = 0.7 / math.sqrt(c)
    assert_rows_close(G.clip_features(x32, r), O.mp_clip_features(x, r), tol)
    # logmap0, dist0: artanh's conditioning near the boundary, float32's clamp
    t = math.sqrt(c) * row_norms(x)
    tol_t = 16 * EPS32 * atanh_cond(t)
    assert_rows_close(G.logmap0(x32, c), O.mp_logmap0(x, c, CLAMP32), tol_t)
    assert_rows_close(G.dist0(x32, c), O.mp_dist0(x, c, CLAMP32), tol_t, TINY_DIST_ATOL)


def moebius_cond(x: np.ndarray, y: np.ndarray, c: float):
    """First-order relative error bound factors of Möbius addition x + y in floating point:
    the sizes of the terms summed over the size of each sum (the exact one)."""
    nx, ny = row_norms(x), row_norms(y)
    xy = np.einsum("ij,ij->i", x, y)
    A = 1 + 2 * c * xy + c * ny**2
    B = 1 - c * nx**2
    D = 1 + 2 * c * xy + c**2 * nx**2 * ny**2
    # near the ball the in-ball forms' terms, elsewhere the direct forms' (as documented)
    near = (c * nx**2 <= G.BALL_FORM_MAX) & (c * ny**2 <= G.BALL_FORM_MAX)
    terms_a = np.where(near, 1 + c * nx**2 + c * (nx + ny) ** 2, 1 + 2 * c * nx * ny + c * ny**2)
    terms_d = np.where(near, (1 + c * nx**2) * (1 + c * ny**2) + c * (nx + ny) ** 2,
                       1 + 2 * c * nx * ny + c**2 * nx**2 * ny**2)
    num = A[:, None] * x + B[:, None] * y
    cond_num = (np.abs(A) * nx + np.abs(B) * ny) / np.maximum(row_norms(num), 1e-300)
    return cond_num * (terms_a / np.abs(A) + (1 + c * nx**2) / np.abs(B)) + terms_d / np.abs(D)


@given(seed=SEEDS, d=st.integers(1, 48), c=C, lo=st.sampled_from([-30.0, -2.0, 0.0]))
def test_float32_mobius_add_and_dist_equal_exact_anywhere(seed, d, c, lo):
    # Pairs anywhere: in the ball, far out, beyond float32's squared-norm range, mixed.
    hi = 38.5 + min(0.0, 0.5 * math.log10(c))  # norms up to float32's max after / sqrt(c)
    x = wild_points(seed, 6, d, lo, hi) / math.sqrt(c)
    y = wild_points(seed + 1, 6, d, lo, hi) / math.sqrt(c)
    x, y = (a.astype(np.float32).astype(np.float64) for a in (x, y))
    assert np.isfinite(x).all() and np.isfinite(y).all()
    x32, y32 = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    kappa = moebius_cond(x, y, c)
    assert_rows_close(G.mobius_add(x32, y32, c), O.mp_mobius_add(x, y, c),
                      np.minimum(32 * EPS32 * kappa, 1.0))
    want, t = mp_dist_anywhere(x, y, c)
    kd = moebius_cond(-x, y, c) * atanh_cond(t)
    assert_rows_close(G.dist(x32, y32, c), want, np.minimum(32 * EPS32 * kd, 1.0),
                      TINY_DIST_ATOL)


@pytest.mark.parametrize("scale", [2.0**64, 1e20, 1e30, 2.0**126, MAX32])
@pytest.mark.parametrize("c", [0.01, 0.5, 10.0])
def test_diverging_feature_lands_on_the_boundary(scale, c):
    # issue 9 §6: a diverging float32 feature maps to the boundary, in its own direction; it
    # used to map to the origin once its squared norm overflowed.
    rng = np.random.default_rng(0)
    u = rng.standard_normal((4, 5)).astype(np.float32)
    u[0] = 1.0
    x = torch.from_numpy(u / np.abs(u).max(axis=1, keepdims=True)) * scale  # |x_i| <= scale
    unit = x.double() / torch.linalg.vector_norm(x.double(), dim=1, keepdim=True)
    sc = math.sqrt(c)
    eps = G.project_eps(F32)

    def lands(y, radius, what):
        n = torch.linalg.vector_norm(y.double(), dim=1)
        assert torch.isfinite(y).all(), what
        torch.testing.assert_close(n, torch.full_like(n, radius), rtol=4 * EPS32, atol=0,
                                   msg=lambda m: f"{what}: {m}")
        torch.testing.assert_close(y.double() / n[:, None], unit, rtol=0, atol=4 * EPS32)

    lands(G.expmap0(x, c), math.tanh(15) / sc, "expmap0")
    lands(G.project(x, c), (1 - eps) / sc, "project")
    lands(G.project(G.expmap0(x, c), c), (1 - eps) / sc, "project(expmap0)")
    lands(G.clip_features(x, 0.5), 0.5, "clip_features")
    lands(G.expmap0(G.clip_features(x, 1 / sc), c), math.tanh(1) / sc, "expmap0(clip)")
    lands(G.logmap0(x, c), math.atanh(CLAMP32) / sc, "logmap0")
    torch.testing.assert_close(G.dist0(x, c).double(),
                               torch.full((4,), 2 * math.atanh(CLAMP32) / sc, dtype=torch.float64),
                               rtol=4 * EPS32, atol=0)
    # from the origin and from a point inside: the saturated distance
    inside = G.expmap0(torch.randn(4, 5), c)
    for y in (torch.zeros_like(x), inside):
        torch.testing.assert_close(G.dist(x, y, c).double(), G.dist0(x, c).double(),
                                   rtol=4 * EPS32, atol=0)
    # Möbius addition of the origin is the identity, anywhere
    torch.testing.assert_close(G.mobius_add(x, torch.zeros_like(x), c), x, rtol=4 * EPS32, atol=0)
    torch.testing.assert_close(G.mobius_add(torch.zeros_like(x), x, c), x, rtol=4 * EPS32, atol=0)


def test_issue_reproducer_expmap0_and_clip_at_1e20():
    x = torch.full((1, 3), 1e20)
    want = torch.full((1, 3), math.tanh(15) / math.sqrt(0.5) / math.sqrt(3))
    torch.testing.assert_close(G.expmap0(x, c=0.5), want, rtol=2 * EPS32, atol=0)
    torch.testing.assert_close(G.clip_features(x, r=1),
                               torch.full((1, 3), 1 / math.sqrt(3)), rtol=2 * EPS32, atol=0)
    # the same along a strided axis (the vecdot reduction) and in half precision's container
    xs = x.t().contiguous().t()
    torch.testing.assert_close(G.expmap0(xs, c=0.5), want, rtol=2 * EPS32, atol=0)


@pytest.mark.parametrize("scale", [1e20, MAX32])
def test_no_nan_values_or_gradients_for_huge_finite_input(scale):
    g = torch.Generator().manual_seed(3)
    base = torch.rand(3, 6, generator=g) * 2 - 1
    other = torch.randn(3, 6, generator=g) * 0.1
    cases = {
        "expmap0": lambda x: G.expmap0(x, 0.5),
        "logmap0": lambda x: G.logmap0(x, 0.5),
        "dist0": lambda x: G.dist0(x, 0.5),
        "dist_other": lambda x: G.dist(x, other, 0.5),
        "dist_self": lambda x: G.dist(x, x, 0.5),
        "mobius_add": lambda x: G.mobius_add(x, other, 0.5),
        "mobius_add_self": lambda x: G.mobius_add(x, x, 0.5),
        "project": lambda x: G.project(x, 0.5),
        "clip_features": lambda x: G.clip_features(x, 0.5),
    }
    for name, fn in cases.items():
        x = (base * scale).requires_grad_(True)
        out = fn(x)
        assert out.dtype == F32 and not torch.isnan(out).any(), (name, out)
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert not torch.isnan(grad).any(), (name, grad)


def test_float64_only_on_reduced_quantities(monkeypatch):
    # float32 calls never convert a full-size tensor to float64, in or out of the ball and
    # beyond float32's squared-norm range alike: only the 1/C-sized reductions (norms, inner
    # products, the Möbius scalars) are widened, with no data-dependent branch.
    widened = []
    real_double, real_to = torch.Tensor.double, torch.Tensor.to

    def double(t, *a, **k):
        widened.append(t.shape)
        return real_double(t, *a, **k)

    def to(t, *a, **k):
        if torch.float64 in a or k.get("dtype") == torch.float64:
            widened.append(t.shape)
        return real_to(t, *a, **k)

    monkeypatch.setattr(torch.Tensor, "double", double)
    monkeypatch.setattr(torch.Tensor, "to", to)
    x, y = torch.randn(2, 8, 4, 4) * 0.2, torch.randn(2, 8, 4, 4) * 0.2
    for scale in (1.0, 10.0, 1e30):
        for out in (G.expmap0(x * 100 * scale, 0.5), G.logmap0(x * scale, 0.5),
                    G.dist0(x * scale, 0.5), G.project(x * scale, 0.5),
                    G.clip_features(x * scale, 1.0), G.mobius_add(x * scale, y, 0.5),
                    G.dist(x * scale, y, 0.5)):
            assert out.dtype == torch.float32
    assert widened, "the Möbius scalars are computed in float64"
    assert all(len(shape) == 0 or shape[1] == 1 for shape in widened), widened  # 0-d: c
