"""SHIP(task="pansharpen"): shapes, the residual design, HDGFB, gradients, input checks.

The infrared-visible SHIP is unchanged: tests/test_ship.py's golden tests cover it."""

from __future__ import annotations

import pytest
import torch

from hyperleaf.models import SHIP


def _inputs(b=2, c=4, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, size, size, generator=g), torch.rand(b, c, size, size, generator=g)


def test_untrained_model_returns_lms_and_shapes():
    net = SHIP(task="pansharpen", ms_bands=4, ratio=4).eval()
    pan, lms = _inputs()
    with torch.no_grad():
        out = net(pan, lms)
    assert out.shape == lms.shape and torch.equal(out, lms)
    assert net.ms.conv.in_channels == 4 and net.pan.conv.in_channels == 1
    assert net.reconstruction.conv_last.out_channels == 4 and net.ratio == 4


def test_fuse_task_state_dict_keys_are_unchanged():
    keys = list(SHIP().state_dict())
    assert keys[0].startswith("vis.") and not any(k.startswith(("ms.", "pan.")) for k in keys)
    ps = list(SHIP(task="pansharpen", ms_bands=8).state_dict())
    assert len(ps) == len(keys)  # the same modules, the streams renamed


def test_gradients_reach_every_parameter_after_one_step():
    torch.manual_seed(0)
    net = SHIP(n_feat=8, task="pansharpen", ms_bands=3)
    pan, lms = _inputs(c=3, size=16)
    gt = lms + 0.1 * pan
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(2):
        opt.zero_grad()
        loss = (net(pan, lms) - gt).abs().mean()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[1] < losses[0]
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing


def test_hdgfb_and_features():
    torch.manual_seed(0)
    net = SHIP(n_feat=8, task="pansharpen", ms_bands=4, hdgfb=True).eval()
    pan, lms = _inputs(b=1, size=16)
    with torch.no_grad():
        out, feats = net(pan, lms, return_features=True)
    assert out.shape == lms.shape
    assert len(feats.fused) == len(feats.vis) == len(feats.ir) == 3
    assert feats.vis[0].shape == (1, 8, 16, 16)
    assert net.new_parameter_names()


def test_fast_and_reference_paths_agree():
    torch.manual_seed(1)
    net = SHIP(n_feat=8, task="pansharpen", ms_bands=4).eval()
    torch.nn.init.normal_(net.reconstruction.conv_last.weight, std=0.1)
    pan, lms = _inputs(b=1, size=16)
    with torch.no_grad():
        fast = net(pan, lms)
        net.fast = False
        slow = net(pan, lms)
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)  # float32, as for fusion


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="task: expected 'fuse' or 'pansharpen'"):
        SHIP(task="segment")
    with pytest.raises(ValueError, match="ms_bands: expected a positive number"):
        SHIP(task="pansharpen")
    with pytest.raises(ValueError, match="only for task='pansharpen'"):
        SHIP(ms_bands=4)
    with pytest.raises(ValueError, match="ratio"):
        SHIP(task="pansharpen", ms_bands=4, ratio=0)
    net = SHIP(n_feat=8, task="pansharpen", ms_bands=4)
    pan, lms = _inputs()
    with pytest.raises(ValueError, match=r"lms: expected shape \(B, 4, H, W\)"):
        net(pan, lms[:, :3])
    with pytest.raises(ValueError, match="interpolate the MS to the PAN grid"):
        net(pan, lms[..., :12, :12])
