"""LEAFSegNet: shapes (2-D and 3-D), the H2FR path, encoders, bad input."""

from __future__ import annotations

import importlib.util

import geoopt
import pytest
import torch

from hyperleaf.models.leafseg import LeafHead, LEAFSegNet


def _net(**kw):
    torch.manual_seed(0)
    return LEAFSegNet(num_classes=3, widths=(4, 8, 16), ball_dim=8, hdgfb_hidden=16, **kw)


def test_forward_shapes_points_on_ball_and_gradients():
    net = _net()
    a, b = torch.rand(2, 1, 20, 24), torch.rand(2, 1, 20, 24)
    logits, pts = net(a, b, return_points=True)
    assert logits.shape == (2, 3, 20, 24)
    assert len(pts) == 3 and all(len(p) == 3 for p in pts)  # fused, a, b x 3 levels
    c = float(net.head.curvature.detach())
    for stream in pts:
        for x in stream:
            assert x.shape == (2, 8)
            assert bool((x.norm(dim=1) < c ** -0.5).all())
    loss = logits.logsumexp(1).mean() + net.h2fr_loss(pts)
    loss.backward()
    core = net.head.h2fr.core
    assert isinstance(core, geoopt.ManifoldParameter)
    assert net.head.ball.isp_c.grad is not None and core.grad is not None
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_volumes():
    net = LEAFSegNet(num_classes=2, widths=(4, 8), spatial_dims=3, hdgfb_hidden=8, ball_dim=4)
    out = net(torch.rand(1, 1, 8, 10, 12), torch.rand(1, 1, 8, 10, 12))
    assert out.shape == (1, 2, 8, 10, 12)


def test_injection_uses_global_vectors():
    """Changing a level's global ball vector changes the logits (it is injected)."""
    net = _net().eval()
    a, b = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    base = net(a, b)
    with torch.no_grad():
        net.inject[1].bias.add_(1.0)
    assert not torch.allclose(base, net(a, b))


def test_per_sample_independence():
    """GroupNorm, not BatchNorm: a sample's logits do not depend on its batch mates."""
    net = _net().double().eval()
    a, b = torch.rand(3, 1, 16, 16).double(), torch.rand(3, 1, 16, 16).double()
    with torch.no_grad():
        full = net(a, b)
        one = net(a[1:2], b[1:2])
    torch.testing.assert_close(full[1:2], one, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kwargs,msg", [
    ({"spatial_dims": 1}, "spatial_dims"),
    ({"encoder": "resnet18"}, "encoder must be"),
    ({"encoder": "timm:resnet18", "spatial_dims": 3}, "built-in encoder"),
])
def test_bad_construction(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        _net(**kwargs)


def test_bad_inputs():
    net = _net()
    with pytest.raises(ValueError, match="spatial"):
        net(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 12))
    with pytest.raises(ValueError, match="at least 2 levels"):
        LeafHead([4])
    with pytest.raises(ValueError, match="core='origin'"):
        LeafHead([4, 4], mode="paper", core="learned")


@pytest.mark.skipif(importlib.util.find_spec("timm") is None,
                    reason="timm is not installed (optional; encoders are used without weights)")
def test_timm_encoder():
    net = LEAFSegNet(num_classes=2, encoder="timm:resnet18", hdgfb_hidden=8, ball_dim=4)
    assert net(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)).shape == (1, 2, 64, 64)


@pytest.mark.skipif(importlib.util.find_spec("segmentation_models_pytorch") is None,
                    reason="segmentation_models_pytorch is not installed (optional)")
def test_smp_encoder():
    net = LEAFSegNet(num_classes=2, encoder="smp:resnet18", widths=(1, 2, 3), hdgfb_hidden=8,
                     ball_dim=4)
    assert net(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)).shape == (1, 2, 64, 64)
