"""Compile-clean (issue 25): ``torch._dynamo.explain`` finds no graph break in any geometry
function, LeafHead + H2FR, HDGFB (every impl, with and without grad), the training objective
(SHIP + HDGFB + LeafHead) and SHIP's inference; ``compile`` in ``hyperleaf train`` and
``hyperleaf fuse`` runs the model through ``torch.compile``.

Explain traces with Dynamo only (no code generation), so these run in seconds on CPU; the
``compile`` plumbing tests swap inductor for Dynamo's ``eager`` backend for the same reason.
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo as dynamo

from hyperleaf import geometry as G
from hyperleaf.models import SHIP
from hyperleaf.nn.hdgfb import HDGFB
from hyperleaf.nn.heads import LeafHead
from hyperleaf.tasks.fuse import build_fusion_objective
from hyperleaf.train.config import TrainConfig


def breaks(fn, *args) -> tuple[int, list[str]]:
    dynamo.reset()
    out = dynamo.explain(fn)(*args)
    return out.graph_break_count, [str(b.reason).splitlines()[0] for b in out.break_reasons]


X = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(0))
Y = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(1)) * 0.1
C_LEARNED = torch.tensor(0.5, requires_grad=True)

GEOMETRY = {
    "expmap0": lambda x, y, c: G.expmap0(x, c),
    "logmap0": lambda x, y, c: G.logmap0(y, c),
    "dist0": lambda x, y, c: G.dist0(y, c),
    "dist": lambda x, y, c: G.dist(x, y, c),
    "mobius_add": lambda x, y, c: G.mobius_add(x, y, c),
    "project": lambda x, y, c: G.project(x, c),
    "clip_features": lambda x, y, c: G.clip_features(x, 1.0),
    "rows_dist": lambda x, y, c: G.dist(x.flatten(1), y.flatten(1), c, dim=-1),
}


@pytest.mark.parametrize("c", [0.5, C_LEARNED, G.ball(0.5, learn_c=True)],
                         ids=["float", "tensor", "ball"])
@pytest.mark.parametrize("name", sorted(GEOMETRY))
def test_geometry_functions_have_no_graph_break(name, c):
    fn = GEOMETRY[name]
    assert breaks(lambda x, y: fn(x, y, c), X, Y) == (0, [])
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the float32 island too
        assert breaks(lambda x, y: fn(x, y, c), X, Y) == (0, [])


def test_leaf_head_and_h2fr_have_no_graph_break():
    head = LeafHead([8, 8, 8], dim=5)
    levels = [tuple(torch.rand(4, 8, 6, 6) for _ in range(3)) for _ in range(3)]
    assert breaks(lambda lv: head.loss(head.embed(lv)), levels) == (0, [])


@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("impl", ["auto", "fused", "autograd", "reference"])
@pytest.mark.parametrize("mode", ["geodesic", "paper"])
def test_hdgfb_has_no_graph_break(mode, impl, grad):
    if mode == "paper" and impl == "reference":
        pytest.skip("paper mode's reference is the seed's frozen code (hyperleaf.paper)")
    block = HDGFB(8, hidden=16, mode=mode, impl=impl)
    with torch.set_grad_enabled(grad):
        assert breaks(lambda a, b, c: block(a, b, c), X, X, Y) == (0, [])


def test_training_objective_has_no_graph_break():
    torch.manual_seed(0)
    obj = build_fusion_objective(TrainConfig(n_feat=8, hdgfb_hidden=16)).train()
    vis, ir = torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24)
    assert breaks(lambda a, b: obj(a, b)[0], vis, ir) == (0, [])


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("hdgfb", [False, True])
def test_ship_inference_has_no_graph_break(context, hdgfb):
    torch.manual_seed(0)
    net = SHIP(8, hdgfb=hdgfb).eval()
    vis, ir = torch.rand(1, 1, 24, 24), torch.rand(1, 1, 24, 24)
    ctx = torch.no_grad() if context == "no_grad" else torch.inference_mode()
    with ctx:
        assert breaks(lambda a, b: net(a, b), vis, ir) == (0, [])
        # and compiled (Dynamo, eager backend) it computes what eager does
        dynamo.reset()
        compiled = torch.compile(net, backend="eager")
        torch.testing.assert_close(compiled(vis, ir), net(vis, ir), rtol=0, atol=1e-6)


@pytest.fixture
def eager_backend_compile(monkeypatch):
    """``torch.compile`` with Dynamo's eager backend (no inductor code generation); records
    the compiled modules."""
    compiled = []
    real = torch.compile

    def compile_(model, *args, **kwargs):
        compiled.append(model)
        kwargs["backend"] = "eager"
        return real(model, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", compile_)
    dynamo.reset()
    return compiled


def test_train_compile_runs_the_objective_compiled(tmp_path, eager_backend_compile):
    from hyperleaf.train.trainer import train
    from tests.test_train import tiny

    plain = train(tiny(tmp_path / "plain", steps=2), progress=False)
    res = train(tiny(tmp_path / "compiled", steps=2, compile=True), progress=False)
    assert len(eager_backend_compile) == 1
    assert res.skipped_nonfinite == 0
    # Dynamo with the eager backend runs the same kernels: the same losses
    assert res.first_loss == pytest.approx(plain.first_loss, rel=1e-5)
    assert res.last_loss == pytest.approx(plain.last_loss, rel=1e-5)


def test_fuse_compile_and_threads(tmp_path, eager_backend_compile, monkeypatch):
    import numpy as np
    from PIL import Image

    from hyperleaf.cli import main

    torch.manual_seed(0)
    weights = tmp_path / "ship.pth"
    torch.save({"params": SHIP().state_dict()}, weights)
    rng = np.random.default_rng(0)
    for name in ("ir", "vis"):
        Image.fromarray(rng.integers(0, 256, (20, 24)).astype(np.uint8)).save(tmp_path / f"{name}.png")
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    outs = {}
    for extra in ([], ["--compile"]):
        out = tmp_path / f"out{len(extra)}.png"
        assert main(["fuse", "--weights", str(weights), "--ir", str(tmp_path / "ir.png"),
                     "--vis", str(tmp_path / "vis.png"), "--out", str(out), "--no-progress",
                     *extra]) == 0
        outs[bool(extra)] = np.asarray(Image.open(out))
    assert len(eager_backend_compile) == 1  # only the --compile run compiled the network
    assert np.abs(outs[True].astype(int) - outs[False].astype(int)).max() <= 1
    # fuse and evaluate default to one thread, as train (never torch's default)
    assert threads == [1, 1]
    main(["evaluate", "--fused", str(tmp_path / "missing")])
    assert threads == [1, 1, 1]
