"""hyperleaf.models.SHIP and hyperleaf.compat.ship_from_official.

Without ../shared: random weights on small images (structure, paths agree, loading rules,
HDGFB extension, tiling). With --shared: the authors' checkpoint against their golden outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperleaf.compat import ship_from_official
from hyperleaf.models import SHIP, tiled_forward
from hyperleaf.models.ship import CDC

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SHIP().eval()


def _pair(h, w, seed=0, b=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, h, w, generator=g), torch.rand(b, 1, h, w, generator=g)


@pytest.mark.parametrize("h,w,b", [(17, 23, 1), (8, 8, 2), (1, 9, 1)])
def test_any_size_and_batch(net, h, w, b):
    vis, ir = _pair(h, w, b=b)
    with torch.no_grad():
        out = net(vis, ir)
    assert out.shape == (b, 1, h, w) and torch.isfinite(out).all()
    if b == 2:  # batch items are independent
        with torch.no_grad():
            one = net(vis[1:], ir[1:])
        torch.testing.assert_close(out[1:], one, atol=1e-5, rtol=0)


def test_fast_and_exact_paths_agree(net):
    vis, ir = _pair(20, 28, seed=1)
    with torch.no_grad():
        net.fast = True
        fast = net(vis, ir)
        net.fast = False
        exact = net(vis, ir)
        net.fast = True
    torch.testing.assert_close(fast, exact, atol=2e-5, rtol=0)


def test_matches_the_transcription_baseline(net):
    sys.path.insert(0, str(BENCH))
    try:
        from ship_transcription import ShipTranscription
    finally:
        sys.path.remove(str(BENCH))
    base = ShipTranscription()
    base.load_state_dict(net.state_dict(), strict=True)
    vis, ir = _pair(19, 21, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(net(vis, ir), base.eval()(vis, ir), atol=2e-5, rtol=0)


def test_cdc_folded_kernel_equals_spec_and_cache_invalidates():
    torch.manual_seed(3)
    cdc = CDC(4)
    with torch.no_grad():
        cdc.HP_branch.fill_(0.3)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    cdc.double()
    # spec, independently: place taps by hand, subtract theta * sum at the centre
    def spec(w, pos):
        k = torch.zeros(4, 4, 9, dtype=torch.float64)
        k[:, :, pos] = w[:, :, 0, :]
        k = k.view(4, 4, 3, 3)
        out = torch.nn.functional.conv2d(x, k, padding=1)
        return out - 0.8 * torch.nn.functional.conv2d(x, w.sum((2, 3))[:, :, None, None])

    def expected():
        s = torch.sigmoid(cdc.HP_branch)
        return (s * spec(cdc.h_conv.conv.weight, [1, 3, 4, 5, 7])
                + (1 - s) * spec(cdc.d_conv.conv.weight, [0, 2, 4, 6, 8]) + x)

    with torch.no_grad():
        for fast in (True, False):
            cdc.fast = fast
            torch.testing.assert_close(cdc(x), expected(), atol=1e-12, rtol=0)
        cdc.fast = True
        before = cdc(x)
        cdc.h_conv.conv.weight.mul_(2)  # in-place change must invalidate the cached kernel
        after = cdc(x)
        assert not torch.allclose(before, after)
        torch.testing.assert_close(after, expected(), atol=1e-12, rtol=0)


def test_gradients_flow_in_training(net):
    m = SHIP()
    vis, ir = _pair(12, 12, seed=4)
    m(vis, ir).square().mean().backward()
    assert m.vis.block1.CDC.h_conv.conv.weight.grad is not None
    assert m.interaction1.channel.postprocess[0].invconv.lower.grad is not None


def test_bad_inputs(net):
    with pytest.raises(ValueError, match="vis"):
        net(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        net(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(ValueError, match="n_feat"):
        SHIP(n_feat=10)


def _official_like(tmp_path, net):
    path = tmp_path / "w.pth"
    torch.save({"params": net.state_dict()}, path)
    return path


def test_ship_from_official_roundtrip(tmp_path, net):
    loaded = ship_from_official(_official_like(tmp_path, net))
    assert not loaded.training and loaded.missing_keys == []
    vis, ir = _pair(10, 13, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(vis, ir), net(vis, ir), atol=0, rtol=0)
    assert len(net.state_dict()) == 484  # the released checkpoint's tensor count


def test_ship_from_official_is_strict(net):
    sd = dict(net.state_dict())
    extra = {**sd, "extra.weight": torch.zeros(1)}
    with pytest.raises(KeyError, match="extra.weight"):
        ship_from_official({"params": extra})
    missing = {k: v for k, v in sd.items() if k != "reconstruction.conv_last.bias"}
    with pytest.raises(KeyError, match="reconstruction.conv_last.bias"):
        ship_from_official(missing)
    wrong = {**sd, "vis.block1.CDC.HP_branch": torch.zeros(2)}
    with pytest.raises(ValueError, match="HP_branch"):
        ship_from_official(wrong)
    with pytest.raises(FileNotFoundError):
        ship_from_official("/nonexistent/w.pth")


def _hdgfb_available() -> bool:
    try:
        from hyperleaf import HDGFB  # noqa: F401
    except ImportError:
        return False
    return True


needs_hdgfb = pytest.mark.skipif(not _hdgfb_available(), reason="hyperleaf.HDGFB not available")


@needs_hdgfb
def test_hdgfb_extension_starts_as_released_and_reports_new_keys(tmp_path, net):
    ext = ship_from_official(_official_like(tmp_path, net), hdgfb=True,
                             hdgfb_kwargs={"hidden": 32})
    assert ext.missing_keys and all(k.startswith(("hdgfb.", "hdgfb_proj."))
                                    for k in ext.missing_keys)
    vis, ir = _pair(12, 14, seed=6)
    with torch.no_grad():
        out, feats = ext(vis, ir, return_features=True)
        torch.testing.assert_close(out, net(vis, ir), atol=1e-6, rtol=0)
    assert len(feats.fused) == len(feats.vis) == len(feats.ir) == 3
    for t in (*feats.fused, *feats.vis, *feats.ir):
        assert t.shape == (1, 16, 12, 14)
    # once the zero projection moves, the HDGFB output changes the result
    with torch.no_grad():
        ext.hdgfb_proj[0].weight.normal_(0, 0.1)
        assert not torch.allclose(ext(vis, ir), out, atol=1e-4)
    ext.train()
    ext(vis, ir).mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ext.hdgfb.parameters())


def test_return_features_without_hdgfb(net):
    vis, ir = _pair(9, 11, seed=7)
    with torch.no_grad():
        out, feats = net(vis, ir, return_features=True)
        torch.testing.assert_close(out, net(vis, ir), atol=0, rtol=0)
    torch.testing.assert_close(feats.vis[1], feats.fused[0])  # stage 2's visible input


def test_tiled_forward(net):
    vis, ir = _pair(30, 40, seed=8)
    with torch.no_grad():
        whole = net(vis, ir)
        torch.testing.assert_close(tiled_forward(net, vis, ir, tile=64, overlap=8), whole, atol=0, rtol=0)
        tiled = tiled_forward(net, vis, ir, tile=24, overlap=4)
    assert tiled.shape == whole.shape and torch.isfinite(tiled).all()
    with pytest.raises(ValueError, match="overlap"):
        tiled_forward(net, vis, ir, tile=16, overlap=8)


# ----------------------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def official(shared_dir):
    return ship_from_official(shared_dir / "checkpoints" / "ship_irvis_official.pth")


@pytest.mark.shared
@pytest.mark.parametrize("k", [1, 8])
@pytest.mark.parametrize("fast", [True, False])
def test_golden_reproduction(shared_dir, official, k, fast):
    from hyperleaf.io import read_gray

    tno = shared_dir / "data" / "tno"
    golden = np.load(shared_dir / "golden" / f"ship_irvis_golden_{k}.npy")
    vis = torch.from_numpy(read_gray(tno / f"VIS{k}.png"))[None, None]
    ir = torch.from_numpy(read_gray(tno / f"IR{k}.png"))[None, None]
    official.fast = fast
    with torch.inference_mode():
        out = official(vis, ir)[0, 0].numpy()
    official.fast = True
    assert out.shape == golden.shape
    assert np.abs(out - golden).max() <= 2e-4


@pytest.mark.shared
def test_official_checkpoint_tensor_count(shared_dir):
    sd = torch.load(shared_dir / "checkpoints" / "ship_irvis_official.pth", map_location="cpu",
                    weights_only=True)["params"]
    assert len(sd) == 484 and sum(v.numel() for v in sd.values()) == 553029


def test_in_place_inference_equals_autograd_path():
    torch.manual_seed(9)
    m = SHIP().eval()
    vis, ir = _pair(13, 15, seed=9)
    with_grad = m(vis, ir)  # autograd on: out-of-place ReLU, cat-based half instance norm
    with torch.no_grad():
        no_grad = m(vis, ir)  # in-place variants
    # same arithmetic; a concatenation may change the memory layout, hence rounding-level
    torch.testing.assert_close(no_grad, with_grad.detach(), atol=1e-6, rtol=0)
