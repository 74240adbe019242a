"""H2FR loss: paper mode equals the seed, geodesic mode equals an independent transcription,
ranking invariants, the learned core on the ball with RiemannianAdam, to_ball, errors."""

from __future__ import annotations

import math

import geoopt
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import hyperleaf
from hyperleaf import geometry, paper
from hyperleaf.nn import H2FRLoss, to_ball

F64 = torch.float64
TOL = 1e-10


def rel(a, b) -> float:
    if isinstance(a, (list, tuple)):
        a, b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    den = b.abs().max().item()
    num = (a - b).abs().max().item()
    return num if den == 0 else num / den


def levels(L, B, D, scale, seed, c=0.5, M=2):
    g = torch.Generator().manual_seed(seed)

    def one():
        return [to_ball(torch.randn(B, D, generator=g, dtype=F64) * scale, c, clip_r=2.0)
                .detach().requires_grad_() for _ in range(L)]

    return one(), [one() for _ in range(M)]


def grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


config = st.tuples(st.integers(2, 4), st.integers(1, 4), st.integers(1, 6),
                   st.sampled_from([0.0, 1e-3, 0.3, 1.0, 3.0]), st.integers(0, 2**16))


# --------------------------------------------------------------------------------------------
# paper mode == the seed
# --------------------------------------------------------------------------------------------


@given(cfg=config, alpha=st.floats(0.1, 3), beta=st.floats(0.1, 3))
def test_paper_equals_seed_reference(cfg, alpha, beta):
    L, B, D, scale, seed = cfg
    fused, (m1, m2) = levels(L, B, D, scale, seed)
    ref = paper.RankingBasedGeometryLoss(alpha, beta, gamma=7.0, c=0.5)(fused, m1, m2)
    got = H2FRLoss(alpha, beta, c=0.5, mode="paper", gamma=7.0)(fused, m1, m2)
    assert rel(got, ref) <= TOL
    ts = [*fused, *m1, *m2]
    assert rel(grads(got, ts), grads(ref, ts)) <= TOL


@pytest.mark.shared
@given(cfg=config)
def test_paper_equals_seed_own_code(seed_namespace, cfg):
    L, B, D, scale, seed = cfg
    fused, (m1, m2) = levels(L, B, D, scale, seed)
    ref = seed_namespace["RankingBasedGeometryLoss"](1.3, 0.7, c=0.5)(fused, m1, m2)
    got = H2FRLoss(1.3, 0.7, c=0.5)(fused, m1, m2)
    assert rel(got, ref) <= TOL
    ts = [*fused, *m1, *m2]
    assert rel(grads(got, ts), grads(ref, ts)) <= TOL


# --------------------------------------------------------------------------------------------
# geodesic mode == independent transcription (explicit sums over samples, levels, items)
# --------------------------------------------------------------------------------------------


def transcribed_geodesic(fused, mods, alpha, beta, c, tau, core=None):
    sc = math.sqrt(c)

    def d(x):  # geodesic distance to the core through Möbius addition, per sample
        if core is None:
            return 2 / sc * torch.atanh(sc * x.norm(dim=1))
        y = -core.expand_as(x)
        xy, y2, x2 = (x * y).sum(1, keepdim=True), (y * y).sum(1, keepdim=True), (x * x).sum(1, keepdim=True)
        madd = ((1 + 2 * c * xy + c * x2) * y + (1 - c * y2) * x) / (1 + 2 * c * xy + c * c * x2 * y2)
        return 2 / sc * torch.atanh(sc * madd.norm(dim=1))

    L, B = len(fused), fused[0].shape[0]
    total = 0.0
    lvl_loss = 0.0
    for b in range(B):
        s = [-d(f)[b] / tau for f in reversed(fused)]  # deepest first
        for i in range(L):
            lvl_loss = lvl_loss + (torch.log(sum(torch.exp(v) for v in s[i:])) - s[i]) / L
    total = total + alpha * lvl_loss / B
    for lvl in range(L):
        t = 0.0
        for b in range(B):
            items = [-d(fused[lvl])[b] / tau] + [-d(m[lvl])[b] / tau for m in mods]
            t = t - torch.log(torch.exp(items[0]) / sum(torch.exp(v) for v in items))
        total = total + beta * t / B
    return total


@given(cfg=config, tau=st.floats(0.3, 3.0), m=st.integers(1, 3), c=st.floats(0.1, 2.0),
       learned=st.booleans())
def test_geodesic_equals_transcription(cfg, tau, m, c, learned):
    L, B, D, scale, seed = cfg
    fused, mods = levels(L, B, D, scale, seed, c=c, M=m)
    loss = H2FRLoss(0.8, 1.2, c=c, mode="geodesic", temperature=tau,
                    core="learned" if learned else "origin", core_dim=D if learned else None,
                    dtype=F64)
    core = None
    if learned:
        # A generator seeded apart from the features' one: with the same seed the core would
        # coincide with the first feature (B = 1), where the distance has a kink (d = 0) and
        # any subgradient is right.
        with torch.no_grad():
            loss.core.copy_(to_ball(torch.randn(1, D, dtype=F64, generator=torch.Generator()
                                                .manual_seed(seed + 7919)), c)[0])
        core = loss.core.view(1, -1)
    got = loss(fused, *mods)
    ref = transcribed_geodesic(fused, mods, 0.8, 1.2, c, tau, core)
    assert rel(got, ref) <= 1e-9  # geometry's artanh form vs Möbius-addition form
    ts = [*fused, *[t for s in mods for t in s]] + ([loss.core] if learned else [])
    assert rel(grads(got, ts), grads(ref, ts)) <= 1e-8


# --------------------------------------------------------------------------------------------
# invariants
# --------------------------------------------------------------------------------------------


@given(B=st.integers(1, 4), D=st.integers(2, 8), L=st.integers(2, 4), seed=st.integers(0, 2**16),
       mode=st.sampled_from(["paper", "geodesic"]))
def test_ordered_features_score_lower_than_reversed(B, D, L, seed, mode):
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(B, D, generator=g, dtype=F64), dim=1)
    # norms: fused levels shrink with depth; modalities sit outside their fused feature
    radii = torch.linspace(1.2, 0.2, L, dtype=F64)
    fused = [dirs * r for r in radii]
    mods = [[dirs * (r + 0.3 + 0.1 * k) for r in radii] for k in range(2)]
    loss = H2FRLoss(mode=mode, c=0.5)
    good = loss(fused, *mods)
    bad = loss(fused[::-1], *[m[::-1] for m in mods])
    swapped = loss(mods[0], fused, mods[1])  # a modality where the fused core should be
    assert good < bad and good < swapped


@given(cfg=config, mode=st.sampled_from(["paper", "geodesic"]), m=st.integers(2, 3))
def test_permuting_modalities_leaves_loss_unchanged(cfg, mode, m):
    L, B, D, scale, seed = cfg
    fused, mods = levels(L, B, D, scale, seed, M=m)
    loss = H2FRLoss(mode=mode)
    a = loss(fused, *mods)
    b = loss(fused, *mods[::-1])
    assert abs((a - b).item()) <= 1e-12 * max(1.0, abs(a.item()))


# --------------------------------------------------------------------------------------------
# learned core, learnable curvature, Riemannian optimisation
# --------------------------------------------------------------------------------------------


def test_learned_core_trains_on_the_ball_with_riemannian_adam():
    torch.manual_seed(0)
    loss = H2FRLoss(mode="geodesic", core="learned", core_dim=8, learn_c=True)
    assert isinstance(loss.core, geoopt.ManifoldParameter)
    assert loss.core.manifold is loss.ball
    fused = [to_ball(torch.randn(16, 8) + 2.0, loss.ball.c.detach()) for _ in range(3)]
    mods = [[to_ball(torch.randn(16, 8) - 2.0, loss.ball.c.detach()) for _ in range(3)]
            for _ in range(2)]
    opt = geoopt.optim.RiemannianAdam(loss.parameters(), lr=0.05)
    first = float(loss(fused, *mods))
    for _ in range(30):
        opt.zero_grad()
        value = loss(fused, *mods)
        value.backward()
        opt.step()
    last = float(loss(fused, *mods))
    assert last < first
    assert float(loss.core.norm()) > 0  # it moved away from the origin ...
    assert float(loss.core.norm()) < float(loss.ball.c.detach()) ** -0.5  # ... and is on the ball
    assert loss.ball.isp_c.grad is not None  # the curvature is trained too


def test_manifold_tensor_inputs_and_batch_mean_hook():
    fused, mods = levels(3, 4, 5, 1.0, 0)
    b = geometry.ball(0.5)
    mt = [geoopt.ManifoldTensor(t.detach(), manifold=b) for t in fused]
    for mode in ("paper", "geodesic"):
        loss = H2FRLoss(mode=mode)
        assert rel(loss(mt, *mods), loss([t.detach() for t in fused], *mods)) <= 1e-15
    calls = []

    def mean(x):
        calls.append(x.shape)
        return x.mean(0)

    H2FRLoss(mode="geodesic", batch_mean=mean)(fused, *mods)
    assert calls and all(s == (4,) for s in calls)


# --------------------------------------------------------------------------------------------
# to_ball, errors, exports
# --------------------------------------------------------------------------------------------


@given(c=st.floats(0.05, 4.0), r=st.sampled_from([None, 0.5, 1.0, 5.0]),
       scale=st.sampled_from([0.0, 1e-3, 1.0, 1e3]))
def test_to_ball(c, r, scale):
    x = torch.randn(3, 6, 4, 4, dtype=F64) * scale
    pts = to_ball(x, c, clip_r=r)
    pooled = x.mean(dim=(2, 3))
    clipped = pooled if r is None else pooled * torch.clamp(
        r / pooled.norm(dim=1, keepdim=True).clamp_min(1e-300), max=1.0)
    n = clipped.norm(dim=1, keepdim=True)
    expected = torch.where(n > 0, torch.tanh(math.sqrt(c) * n) * clipped
                           / (math.sqrt(c) * n).clamp_min(1e-300), clipped)
    assert pts.shape == (3, 6)
    assert rel(pts, expected) <= 1e-12
    assert bool((pts.norm(dim=1) < c ** -0.5).all())
    assert rel(to_ball(pooled, c, clip_r=r), pts) <= 1e-15


def test_bad_input_errors():
    fused, (m1, m2) = levels(3, 2, 4, 1.0, 0)
    loss = H2FRLoss(mode="geodesic", num_modalities=2)
    with pytest.raises(ValueError, match="at least 2 levels"):
        loss(fused[:1], m1[:1], m2[:1])
    with pytest.raises(TypeError, match="got 1 modality"):
        loss(fused, m1)
    with pytest.raises(TypeError, match="at least one modality"):
        H2FRLoss()(fused)
    with pytest.raises(ValueError, match=r"modality_levels\[1\] has 2 levels"):
        loss(fused, m1, m2[:2])
    with pytest.raises(ValueError, match=r"modality_levels\[0\]\[1\] has shape"):
        loss(fused, [m1[0], torch.zeros(2, 5, dtype=F64), m1[2]], m2)
    with pytest.raises(ValueError, match="batch size"):
        loss([fused[0], torch.zeros(3, 4, dtype=F64), fused[2]],
             [m1[0], torch.zeros(3, 4, dtype=F64), m1[2]], [m2[0], torch.zeros(3, 4, dtype=F64), m2[2]])
    with pytest.raises(TypeError, match="sequence"):
        loss(fused[0], m1, m2)
    with pytest.raises(ValueError, match="core_dim=5"):
        H2FRLoss(mode="geodesic", core="learned", core_dim=5)(fused, m1, m2)
    with pytest.raises(ValueError, match="core_dim"):
        H2FRLoss(mode="geodesic", core="learned")
    with pytest.raises(ValueError, match="geodesic"):
        H2FRLoss(mode="paper", temperature=2.0)
    with pytest.raises(ValueError, match="mode must be"):
        H2FRLoss(mode="euclid")
    with pytest.raises(ValueError, match="x must be"):
        to_ball(torch.zeros(3), 1.0)


def test_top_level_exports():
    assert hyperleaf.H2FRLoss is H2FRLoss and hyperleaf.nn.to_ball is to_ball


@pytest.mark.parametrize("doc", ["h2fr.md", "hdgfb.md"])
def test_docs_examples_run(doc, capsys):
    """The python blocks of the docs run as written (so they cannot rot)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / doc).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"no python example in docs/{doc}"
    for code in blocks:
        exec(compile(code, f"docs/{doc}", "exec"), {"__name__": "__doc_example__"})  # noqa: S102
    printed = capsys.readouterr().out.split("\n")
    losses = [float(line.split()[1]) for line in printed if line.strip()]
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses)
