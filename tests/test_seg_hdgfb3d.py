"""HDGFB3DReference = the LEAF authors' HyperbolicAttentionFusion3D (spec §6, Q8-Q10), against the
independent transcription in tests/leaf_transcription.py; hdgfb3d_from_reference; corrected mode.
Runs without segmentation-models-pytorch."""

from __future__ import annotations

import math

import pytest
import torch

from hyperleaf import paper
from hyperleaf.compat import hdgfb3d_from_reference
from hyperleaf.nn import HDGFB3DReference
from hyperleaf.nn.hdgfb3d import authors_distance_map, authors_log_map
from tests import leaf_transcription as T
from tests.segtools import randomize, rel_err

TOL = 1e-10


def _volumes(B, C, vol, seed, scale):
    g = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(B, C, *vol, generator=g, dtype=torch.float64)).requires_grad_()
            for _ in range(3)]


@pytest.mark.parametrize("C, vol, scale", [(2, (2, 3, 4), 1.0), (8, (4, 6, 5), 3.0),
                                           (16, (3, 2, 2), 0.3)])
def test_equals_the_transcription_float64(C, vol, scale):
    """Output, input gradients and parameter gradients <= 1e-10 relative (c = 0.5, random LN)."""
    torch.manual_seed(C)
    block = randomize(HDGFB3DReference(C, volume=vol, c=0.5, hidden=32), seed=C).double()
    with torch.no_grad():  # the lazy LN's weight is (C, D, H, W): move it off 1/0 everywhere
        block.tangent_norm.weight.add_(0.2 * torch.randn_like(block.tangent_norm.weight))
        block.tangent_norm.bias.add_(0.1 * torch.randn_like(block.tangent_norm.bias))
    xs = _volumes(2, C, vol, seed=C + 1, scale=scale)
    out = block(*xs)
    w = torch.randn_like(out)
    grads = torch.autograd.grad((out * w).sum(), [*xs, *block.parameters()])

    params = {k: v.detach().clone().requires_grad_() for k, v in block.named_parameters()}
    xr = [x.detach().clone().requires_grad_() for x in xs]
    ref = T.hdgfb3d(T.Weights(params, {}, training=False), *xr, c=0.5)
    ref_grads = torch.autograd.grad((ref * w).sum(), [*xr, *params.values()])

    assert out.shape == (2, C, *vol) and out.dtype == torch.float64
    assert rel_err(out, ref) <= TOL
    for name, a, b in zip(["E", "X1", "X2", *params], grads, ref_grads):
        assert rel_err(a, b) <= TOL, name


def test_state_dict_keys_are_the_authors_after_their_first_forward():
    block = HDGFB3DReference(8, volume=(4, 6, 5), c=0.5)
    assert [(k, tuple(v.shape)) for k, v in block.state_dict().items()] == [
        ("to_hyperbolic1.0.weight", (8, 8, 1, 1, 1)), ("to_hyperbolic1.0.bias", (8,)),
        ("to_hyperbolic2.0.weight", (8, 8, 1, 1, 1)), ("to_hyperbolic2.0.bias", (8,)),
        ("to_hyperbolic3.0.weight", (8, 8, 1, 1, 1)), ("to_hyperbolic3.0.bias", (8,)),
        ("distance_mlp.0.weight", (2, 2, 1, 1, 1)), ("distance_mlp.0.bias", (2,)),
        ("ff.0.weight", (512, 16, 1, 1, 1)), ("ff.0.bias", (512,)),
        ("ff.2.weight", (8, 512, 1, 1, 1)), ("ff.2.bias", (8,)),
        ("tangent_norm.weight", (8, 4, 6, 5)), ("tangent_norm.bias", (8, 4, 6, 5))]


def test_from_reference_with_and_without_the_lazy_norm():
    src = randomize(HDGFB3DReference(4, volume=(2, 2, 3), c=0.5, hidden=16), seed=3)
    sd = src.state_dict()
    loaded = hdgfb3d_from_reference(sd)
    assert loaded.volume == (2, 2, 3)
    x = [torch.randn(1, 4, 2, 2, 3) for _ in range(3)]
    assert torch.equal(loaded(*x), src(*x))
    before_forward = {k: v for k, v in sd.items() if not k.startswith("tangent_norm")}
    with pytest.raises(ValueError, match="volume"):
        hdgfb3d_from_reference(before_forward)
    fresh = hdgfb3d_from_reference(before_forward, volume=(2, 2, 3))
    assert torch.equal(fresh.tangent_norm.weight, torch.ones(4, 2, 2, 3))
    with pytest.raises(ValueError, match="differs"):
        fresh(*[torch.randn(1, 4, 2, 2, 4) for _ in range(3)])
    with pytest.raises(ValueError, match="not a HyperbolicAttentionFusion3D"):
        hdgfb3d_from_reference({"ff.0.weight": torch.zeros(1)})


def test_paper_mode_needs_the_volume_and_corrected_mode_does_not():
    with pytest.raises(ValueError, match="volume"):
        HDGFB3DReference(4, c=0.5)
    block = HDGFB3DReference(4, c=0.5, hidden=8, mode="corrected")
    assert block.tangent_norm.weight.shape == (4,)
    for vol in [(2, 2, 2), (3, 5, 4)]:
        assert block(*[torch.randn(1, 4, *vol) for _ in range(3)]).shape == (1, 4, *vol)


def test_quirks_and_their_corrections():
    c = 0.5
    u = 0.9 * torch.nn.functional.normalize(torch.randn(5, 6, dtype=torch.float64), dim=1)
    # Q1: the authors' distance of a point to itself is acosh(1/((1 - c|u|^2)^2 + 1e-6))/sqrt(c) > 0
    paper_d = authors_distance_map(u, u, c, den_eps=1e-6).squeeze(1)
    want = math.acosh(1 / ((1 - c * 0.81) ** 2 + 1e-6)) / math.sqrt(c)
    assert torch.allclose(paper_d, torch.full_like(paper_d, float(want)), rtol=1e-12)
    assert float(authors_distance_map(u, u, c, corrected=True).abs().max()) == 0.0
    # corrected distance = the closed form 2 artanh(sqrt(c)|(-u) (+) v|)/sqrt(c); for v = 0
    # it is 2 artanh(sqrt(c)|u|)/sqrt(c)
    d0 = authors_distance_map(u, torch.zeros_like(u), c, corrected=True).squeeze(1)
    assert torch.allclose(d0, torch.full_like(d0, 2 * math.atanh(math.sqrt(c) * 0.9)
                                              / math.sqrt(c)), rtol=1e-12)
    # Q2: for |x| > 1 the authors' log map is a fixed gain of the point; corrected inverts Exp
    x = 1.2 * torch.nn.functional.normalize(torch.randn(4, 3, dtype=torch.float64), dim=1)
    gain = math.atanh(math.sqrt(c) * (1 - 1e-8)) / math.sqrt(c) / (1 - 1e-8)
    assert torch.allclose(authors_log_map(x, c), gain * x, rtol=1e-12)
    # (inside the clip radius; the exp map's +1e-8 in its denominator bounds the match at ~1e-8)
    v = 0.3 * torch.randn(4, 3, dtype=torch.float64)
    back = authors_log_map(paper.euclid_to_hyper(v, c), c, corrected=True)
    assert torch.allclose(back, v, rtol=1e-6, atol=0)
