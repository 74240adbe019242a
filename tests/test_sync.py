"""Host synchronisations: the geometry, the LEAF head, HDGFB and a whole training step read no
tensor value on the host except the step's one finite check (issue 25).

A host synchronisation is counted as any call of ``Tensor.item``, ``__float__``, ``__int__``,
``__bool__``, ``__index__``, ``tolist``, ``cpu`` or ``numpy`` (on a GPU each waits for the
device); the counter patches those methods for the duration of the measured code.
"""

from __future__ import annotations

import contextlib
import traceback

import pytest
import torch

from hyperleaf import geometry as G
from hyperleaf.nn.hdgfb import HDGFB
from hyperleaf.nn.heads import LeafHead
from hyperleaf.train.trainer import Trainer, nonfinite
from tests.test_train import tiny

SYNC_METHODS = ("item", "__float__", "__int__", "__bool__", "__index__", "tolist", "cpu",
                "numpy")


@contextlib.contextmanager
def count_host_syncs():
    """Yields a list that receives ``(method, caller)`` for every host read of a tensor."""
    calls: list[tuple[str, str]] = []
    saved = {name: getattr(torch.Tensor, name) for name in SYNC_METHODS}

    def patched(name, real):
        def method(self, *args, **kwargs):
            frame = traceback.extract_stack(limit=3)[0]
            calls.append((name, f"{frame.filename}:{frame.lineno}"))
            return real(self, *args, **kwargs)
        return method

    for name, real in saved.items():
        setattr(torch.Tensor, name, patched(name, real))
    try:
        yield calls
    finally:
        for name, real in saved.items():
            setattr(torch.Tensor, name, real)


def test_counter_counts():
    with count_host_syncs() as calls:
        t = torch.tensor([1.5])
        float(t), t.item(), bool(t), t.tolist(), t.cpu()
    assert [c[0] for c in calls] == ["__float__", "item", "__bool__", "tolist", "cpu"]


def test_geometry_head_and_hdgfb_make_no_host_sync():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 5, 5, generator=g)
    y = torch.randn(2, 8, 5, 5, generator=g) * 0.1
    c = torch.tensor(0.5, requires_grad=True)
    head = LeafHead([8, 8], dim=4)
    block = HDGFB(8, hidden=16, mode="geodesic")
    levels = [tuple(torch.rand(2, 8, 5, 5, generator=g) for _ in range(3)) for _ in range(2)]
    x.requires_grad_(True)
    with count_host_syncs() as calls:
        outs = [G.expmap0(x, c), G.logmap0(y, c), G.dist0(y, c), G.dist(x, y, c),
                G.mobius_add(x, y, c), G.project(x, c), G.clip_features(x, 1.0),
                head.loss(head.embed(levels)), block(x, x, y)]
        sum(o.sum() for o in outs).backward()
    assert calls == []


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_step_makes_at_most_three_host_syncs(tmp_path, precision):
    counts: list[list[tuple[str, str]]] = []

    class Counting(Trainer):
        def _step(self, model, batch, step):
            if step < 3:  # warm-up steps (lazy optimizer state)
                return super()._step(model, batch, step)
            with count_host_syncs() as calls:
                out = super()._step(model, batch, step)
            counts.append(calls)
            return out

    Counting(tiny(tmp_path / "run", steps=6, precision=precision), progress=False).run()
    assert len(counts) == 4
    worst = max(counts, key=len)
    assert len(worst) <= 3, worst
    # the finite check is the one sync of an ordinary step
    assert len(worst) == 1 and worst[0][0] == "__bool__", worst


def test_nonfinite_is_one_fused_check():
    grads = [torch.ones(4), torch.zeros(2, 3)]
    with count_host_syncs() as calls:
        flag = nonfinite(torch.tensor(1.0), grads)
    assert calls == [] and flag.dim() == 0 and not bool(flag)
    grads[1][1, 2] = float("nan")
    assert bool(nonfinite(torch.tensor(1.0), grads))
    assert bool(nonfinite(torch.tensor(float("inf")), grads[:1]))


def test_sobel_kernels_need_no_host_copy(monkeypatch):
    # made on the device from arange (no torch.tensor of Python lists per call), equal to the
    # published constants
    from hyperleaf import filters

    for dtype in (torch.float32, torch.float64):
        want = torch.tensor([filters.SOBEL_X, filters.SOBEL_Y], dtype=dtype)
        assert torch.equal(filters._sobel_kernels(dtype, torch.device("cpu")), want)
    made = []
    real = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or real(*a, **k))
    filters.sobel_magnitude(torch.rand(2, 3, 8, 8))
    assert made == []
