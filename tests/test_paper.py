"""hyperleaf.paper against an independent float64 NumPy transcription, against the seed's own
code (opt-in: ../shared), and the exact relations to true geometry of docs/paper-vs-geometry.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hyperleaf import geometry as G
from hyperleaf import paper as P
from hyperleaf.verify import oracle as O
from tests.test_geometry import points

C = st.floats(0.01, 10.0)
SEEDS = st.integers(0, 2**31 - 1)
DIMS = st.integers(1, 512)
# sqrt(c)|x| ranges: 0 to past the boundary
NORMS = st.sampled_from([(1e-9, 1e-3, True), (0.01, 0.95, False), (0.95, 0.9999, False),
                         (1.01, 1e3, True)])

UNARY = ["euclid_to_hyper", "hyper_to_euclid", "distance_to_origin", "distance_to_origin_norm"]
BINARY = ["hyper_distance", "hyper_distance_scale", "mobius_add"]


def _rel(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    same = (np.isnan(got) & np.isnan(want)) | (got == want)
    diff = np.where(same, 0.0, np.abs(got - want))
    scale = np.where(same, 1.0, np.abs(want))
    if got.ndim == 2:  # vectors: normwise (single components may cancel)
        diff, scale = np.linalg.norm(diff, axis=1), np.linalg.norm(scale, axis=1)
    return float(np.max(diff / np.maximum(scale, 1e-300)))


def _tol(op: str, norms) -> float:
    # float64; near and beyond the boundary the seed's formulas amplify rounding through
    # 1 - c|x|^2 (see docs/paper-vs-geometry.md, "conditioning")
    lo, hi, _ = norms
    if hi > 1:
        return 1e-6
    if hi > 0.99:
        return 1e-10
    return 1e-12


@given(seed=SEEDS, d=DIMS, c=C, norms=NORMS, op=st.sampled_from(UNARY))
def test_unary_against_numpy_float64(seed, d, c, norms, op):
    x = points(seed, 4, d, c, *norms)
    got = getattr(P, op)(torch.from_numpy(x), c=c).numpy()
    want = getattr(O, "np_" + op)(x, c)
    assert _rel(got, want) <= _tol(op, norms)


@given(seed=SEEDS, d=DIMS, c=C, norms=NORMS, op=st.sampled_from(BINARY))
def test_binary_against_numpy_float64(seed, d, c, norms, op):
    u, v = points(seed, 4, d, c, *norms), points(seed + 1, 4, d, c, *norms)
    got = getattr(P, op)(torch.from_numpy(u), torch.from_numpy(v), c=c).numpy()
    want = getattr(O, "np_" + op)(u, v, c)
    assert _rel(got, want) <= _tol(op, norms)


@given(seed=SEEDS, d=st.integers(1, 64), c=C, op=st.sampled_from(UNARY + BINARY))
def test_float32_against_numpy_interior(seed, d, c, op):
    u = points(seed, 4, d, c, 0.05, 0.9).astype(np.float32)
    v = points(seed + 1, 4, d, c, 0.05, 0.9).astype(np.float32)
    args = (u,) if op in UNARY else (u, v)
    got = getattr(P, op)(*map(torch.from_numpy, args), c=c).double().numpy()
    want = getattr(O, "np_" + op)(*(a.astype(np.float64) for a in args), c)
    # arcosh has an infinite slope at 1: its absolute floor is sqrt(2u)/sqrt(c)
    atol = math.sqrt(4 * 2.0**-24) / math.sqrt(c) if "distance" in op else 0.0
    if got.ndim == 2:  # vectors: normwise (components may cancel)
        err = np.linalg.norm(got - want, axis=1)
        assert np.all(err <= 2e-5 * np.linalg.norm(want, axis=1)), err
    else:
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=atol)


@given(seed=SEEDS, b=st.integers(1, 8), levels=st.integers(2, 6))
def test_ranking_losses_against_numpy(seed, b, levels):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((b, levels)) * 4
    idx = rng.integers(0, levels, b)
    tgt = np.stack([rng.permutation(levels) for _ in range(b)])
    got = float(P.top1_loss(torch.from_numpy(s), torch.from_numpy(idx)))
    assert abs(got - O.np_top1_loss(s, idx)) <= 1e-12 * max(1.0, abs(got))
    got = float(P.listwise_ranking_loss(torch.from_numpy(s), torch.from_numpy(tgt)))
    assert abs(got - O.np_listwise_ranking_loss(s, tgt)) <= 1e-12 * max(1.0, abs(got))


# --------------------------------------------------------------------------------------------
# the seed's own code (read from ../shared at test time)
# --------------------------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("c", [0.05, 0.2, 0.5, 1.0, 2.0, 7.0])
def test_swapping_the_seeds_hyperbolic_utils(seed_namespace, dtype, rtol, c):
    seed_utils = seed_namespace["HyperbolicUtils"](c)
    ours = P.HyperbolicUtils(c)
    g = torch.Generator().manual_seed(int(c * 100))
    for scale in (1e-4, 0.3, 1.0, 10.0):
        u = (torch.randn(16, 24, generator=g) * scale / math.sqrt(24)).to(dtype)
        v = (torch.randn(16, 24, generator=g) * scale / math.sqrt(24)).to(dtype)
        for name in UNARY:
            torch.testing.assert_close(getattr(ours, name)(u), getattr(seed_utils, name)(u),
                                       rtol=rtol, atol=0, equal_nan=True)
        for name in BINARY:
            torch.testing.assert_close(getattr(ours, name)(u, v),
                                       getattr(seed_utils, name)(u, v),
                                       rtol=rtol, atol=0, equal_nan=True)


@pytest.mark.shared
def test_seed_ranking_functions_and_classes(seed_namespace):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 4, dtype=torch.float64, generator=g)
    t = torch.stack([torch.randperm(4, generator=g) for _ in range(5)])
    i = torch.randint(0, 4, (5,), generator=g)
    assert float(P.top1_loss(s, i)) == float(seed_namespace["top1_loss"](s, i))
    assert float(P.listwise_ranking_loss(s, t)) == float(
        seed_namespace["listwise_ranking_loss"](s, t))

    levels = [[torch.randn(6, 10, dtype=torch.float64, generator=g) * 0.2 for _ in range(3)]
              for _ in range(3)]
    theirs = seed_namespace["RankingBasedGeometryLoss"](alpha=0.7, beta=1.3, gamma=2.0, c=0.5)
    ours = P.RankingBasedGeometryLoss(alpha=0.7, beta=1.3, gamma=2.0, c=0.5)
    assert float(ours(*levels)) == float(theirs(*levels))

    ref = seed_namespace["HyperbolicAttentionFusion"](8, hyper_c=0.2, hidden_dim=16).double()
    mine = P.HyperbolicAttentionFusion(8, hyper_c=0.2, hidden_dim=16).double()
    mine.load_state_dict(ref.state_dict())
    xs = [torch.randn(2, 8, 5, 7, dtype=torch.float64, generator=g) for _ in range(3)]
    assert torch.equal(mine(*xs), ref(*xs))


# --------------------------------------------------------------------------------------------
# the exact relations of docs/paper-vs-geometry.md, float64
# --------------------------------------------------------------------------------------------


@given(seed=SEEDS, d=DIMS, c=C, norms=NORMS)
def test_euclid_to_hyper_is_expmap0_of_the_clipped_tangent(seed, d, c, norms):
    x = torch.from_numpy(points(seed, 4, d, c, *norms))
    eps = P.EPS
    n = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    xs = x * torch.clamp((1 / math.sqrt(c) - eps) / (n + eps), max=1.0)
    ns = torch.linalg.vector_norm(xs, dim=1, keepdim=True)
    got = P.euclid_to_hyper(x, c=c)
    torch.testing.assert_close(got, G.expmap0(xs, c) * ns / (ns + eps), rtol=1e-12, atol=0)
    # hence its outputs stay below tanh(1)/sqrt(c)
    assert torch.all(torch.linalg.vector_norm(got, dim=1) < math.tanh(1) / math.sqrt(c))


@given(seed=SEEDS, d=DIMS, c=C, norms=st.sampled_from([(1e-6, 1e-2, True), (0.01, 0.99, False)]),
       same=st.booleans())
def test_hyper_distance_gap_closed_form(seed, d, c, norms, same):
    u = torch.from_numpy(points(seed, 1, d, c, *norms))
    v = u.clone() if same else torch.from_numpy(points(seed + 1, 1, d, c, *norms))
    dp = float(P.hyper_distance(u, v, c=c))
    dg = float(G.dist(u, v, c))
    a = float((1 - c * u.pow(2).sum()) * (1 - c * v.pow(2).sum()))
    sc = math.sqrt(c)
    # cosh(sqrt(c) d_paper) = cosh(sqrt(c) d) + 1/A - 1, A = (1 - c|u|^2)(1 - c|v|^2)
    want = max(math.cosh(sc * dg) + 1 / a - 1, 1 + P.EPS)
    assert math.isclose(math.cosh(sc * dp), want, rel_tol=1e-12)
    assert dp >= dg
    if same:
        assert dg == 0 and dp > 0


@given(seed=SEEDS, d=DIMS, c=C, norms=st.sampled_from([(1e-9, 1e-3, True), (0.01, 0.999, False)]))
def test_distance_to_origin_is_half_dist0(seed, d, c, norms):
    x = torch.from_numpy(points(seed, 5, d, c, *norms))
    assert math.isclose(float(P.distance_to_origin(x, c=c)), float(G.dist0(x, c).mean()) / 2,
                        rel_tol=1e-12)


@given(seed=SEEDS, d=DIMS, c=C)
def test_mobius_add_uses_sqrt_c(seed, d, c):
    u = torch.from_numpy(points(seed, 4, d, c, 0.01, 0.9))
    v = torch.from_numpy(points(seed + 1, 4, d, c, 0.01, 0.9))
    uu, vv = u / (1 + 1e-8), v / (1 + 1e-8)
    a, b = uu.pow(2).sum(1, keepdim=True), vv.pow(2).sum(1, keepdim=True)
    p = (uu * vv).sum(1, keepdim=True)
    sc = math.sqrt(c)
    want = ((1 + 2 * sc * p + c * b) * uu + (1 - c * a) * vv) / (1 + 2 * sc * p + c**2 * a * b
                                                                  + 1e-8)
    torch.testing.assert_close(P.mobius_add(u, v, c=c), want, rtol=1e-12, atol=1e-15)


def test_mobius_add_equals_gyro_only_at_c_1():
    g = torch.Generator().manual_seed(3)
    u = torch.randn(8, 5, dtype=torch.float64, generator=g) * 0.2
    v = torch.randn(8, 5, dtype=torch.float64, generator=g) * 0.2
    a, b = P.mobius_add(u, v, c=1.0), G.mobius_add(u, v, 1.0)
    # only the seed's 1e-8 guards remain: u, v / (1 + 1e-8) and denominator + 1e-8
    assert torch.all(torch.linalg.vector_norm(a - b, dim=1)
                     <= 4e-8 * torch.linalg.vector_norm(b, dim=1))
    for c in (0.2, 2.0):
        assert (P.mobius_add(u, v, c=c) - G.mobius_add(u, v, c)).abs().max() > 1e-3


@given(seed=SEEDS, d=DIMS, c=C, norms=NORMS)
def test_hyper_to_euclid_clamps_at_one_minus_eps(seed, d, c, norms):
    x = torch.from_numpy(points(seed, 4, d, c, *norms))
    eps = P.EPS
    n = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    nc = n.clamp(min=eps, max=1 - eps)
    got = P.hyper_to_euclid(x, c=c)
    ok = (math.sqrt(c) * nc < 1 - 1e-7).squeeze(1)  # else the seed's arctanh is inf/NaN
    torch.testing.assert_close(got[ok], (G.logmap0(x * nc / n, c) * n / nc)[ok],
                               rtol=1e-9, atol=0)
    if c < 1:  # inside the ball but |x| > 1: wrong
        y = torch.from_numpy(points(seed, 2, d, c, 0.999, 0.9999)) if 1 / math.sqrt(c) > 1.01 \
            else None
        if y is not None and bool((torch.linalg.vector_norm(y, dim=1) > 1).all()):
            assert not torch.allclose(P.hyper_to_euclid(y, c=c), G.logmap0(y, c), rtol=1e-3)


def test_eps_vanishes_in_float32():
    assert torch.tensor(1 + P.EPS, dtype=torch.float32) == 1  # the clamp is clamp(min=1)
    assert torch.tensor(1 + P.EPS, dtype=torch.float64) > 1
    for dtype, finite in ((torch.float32, False), (torch.float64, True)):
        u = torch.zeros(1, 4, dtype=dtype, requires_grad=True)
        P.hyper_distance(u, torch.zeros(1, 4, dtype=dtype), c=1.0).backward()
        assert bool(torch.isfinite(u.grad).all()) is finite


@pytest.mark.parametrize("call, exc, words", [
    (lambda: P.euclid_to_hyper(torch.ones(2, 3), c=0.0), ValueError, "c must be finite and > 0"),
    (lambda: P.euclid_to_hyper(torch.ones(2, 3), c="a"), TypeError, "c must be a positive float"),
    (lambda: P.euclid_to_hyper([1.0], c=1.0), TypeError, "x must be a torch.Tensor"),
    (lambda: P.hyper_to_euclid(torch.ones(3), c=1.0), ValueError, "at least 2 dimensions"),
    (lambda: P.hyper_distance(torch.ones(2, 3), torch.ones(3, 3)), ValueError, "broadcast"),
    (lambda: P.mobius_add(torch.ones(2, 3, dtype=torch.int32), torch.ones(2, 3)), TypeError,
     "floating"),
    (lambda: P.top1_loss(torch.ones(2, 3), torch.ones(2)), TypeError, "integer"),
    (lambda: P.listwise_ranking_loss(torch.ones(2, 3), torch.ones(2, 4)), ValueError, "shape"),
])
def test_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
