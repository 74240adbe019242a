"""Distributed training on CPU (gloo, 2 processes spawned on localhost).

* H2FR on N ranks with batch b (through ``gather_batch``) equals H2FR on the union batch in a
  single process, value and (DDP-averaged) gradients, in both modes;
* ``hyperleaf train`` on 2 ranks x batch b ends at the weights of a single-process run with batch
  2b (same seed), up to float32 summation order.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))


def _union_data(b_total: int, levels: int = 3):
    g = torch.Generator().manual_seed(123)
    # (stream, level) maps (B, C, H, W), C = 6; fixed, shared by every process.
    return [[torch.randn(b_total, 6, 4, 4, generator=g, dtype=torch.float64)
             for _ in range(levels)] for _ in range(3)]


def _head(mode: str):
    from hyperleaf.models.leafseg import LeafHead

    torch.manual_seed(0)
    core = "learned" if mode == "geodesic" else "origin"
    head = LeafHead([6, 6, 6], dim=5, c=0.7, learn_c=True, clip_r=1.5, mode=mode, core=core)
    head.double()
    if head.h2fr.core is not None:
        with torch.no_grad():  # a non-trivial core, on the ball
            head.h2fr.core.copy_(head.ball.projx(0.1 * torch.arange(5, dtype=torch.float64)))
    return head


def _h2fr_loss(head, maps):
    pts = head.embed([tuple(maps[s][lv] for s in range(3)) for lv in range(3)])
    from hyperleaf.distributed import gather_batch

    pts = tuple([gather_batch(x) for x in lv] for lv in pts)
    return head.loss(pts)


def _h2fr_worker(rank, world, port, mode, out):
    _env(rank, world, port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        head = _head(mode)
        data = _union_data(4 * world)
        b = 4
        local = [[x[rank * b:(rank + 1) * b] for x in s] for s in data]
        loss = _h2fr_loss(head, local)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None}
        for g in grads.values():  # what DDP does with parameter gradients
            dist.all_reduce(g)
            g /= world
        torch.save({"loss": loss.detach(), "grads": grads}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("mode", ["paper", "geodesic"])
def test_h2fr_on_two_ranks_equals_union_batch(mode, tmp_path):
    world = 2
    mp.spawn(_h2fr_worker, args=(world, _free_port(), mode, str(tmp_path)), nprocs=world,
             join=True)
    head = _head(mode)
    loss = _h2fr_loss(head, _union_data(4 * world))
    loss.backward()
    ref = {n: p.grad for n, p in head.named_parameters() if p.grad is not None}
    assert set(ref) >= {"ball.isp_c", "compress.0.weight"}
    for r in range(world):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-12, atol=1e-14)
        assert set(got["grads"]) == set(ref)
        for n, g in ref.items():
            torch.testing.assert_close(got["grads"][n], g, rtol=1e-10, atol=1e-13, msg=n)


def _train_worker(rank, world, port, cfg_dict):
    _env(rank, world, port)
    torch.set_num_threads(1)
    from hyperleaf.train import TrainConfig, train

    train(TrainConfig.from_dict(cfg_dict), progress=False)


def _tiny_segment(out, batch_size):
    return {"task": "segment", "steps": 3, "batch_size": batch_size, "crop": 16, "val_crop": 16,
            "val_size": 2, "train_size": 16, "seg_width": 4, "hdgfb_hidden": 8, "ball_dim": 4,
            "save_every": 2, "eval_every": 100, "log_every": 1, "out": str(out), "seed": 5,
            # RiemannianSGD: Adam's first steps turn round-off-sized gradients (the curvature's
            # is ~1e-9 while the core sits at the origin, where distances do not depend on c)
            # into full +-lr steps, so its trajectories amplify summation-order differences.
            "optimizer": "rsgd", "lr": 0.05}


def test_ddp_training_equals_single_process_on_union_batch(tmp_path):
    from safetensors.torch import load_file

    from hyperleaf.train import TrainConfig, train

    world = 2
    mp.spawn(_train_worker, args=(world, _free_port(), _tiny_segment(tmp_path / "ddp", 2)),
             nprocs=world, join=True)
    single = train(TrainConfig.from_dict(_tiny_segment(tmp_path / "one", 4)), progress=False)
    a = load_file(tmp_path / "ddp" / "model.safetensors")
    b = load_file(single.out / "model.safetensors")
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5, msg=k)
    # The runs moved the weights (the comparison is not between two untouched inits).
    torch.manual_seed(5)
    from hyperleaf.train.build import build_objective

    init = build_objective(TrainConfig.from_dict(_tiny_segment(tmp_path / "x", 4))).state_dict()
    moved = max(float((b[k] - init[k]).abs().max()) for k in b if k in init)
    assert moved > 1e-3
    # Only rank 0 wrote checkpoints, in the DDP run's folder.
    ck = sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir())
    assert ck == ["step_00000002.pt", "step_00000003.pt"]
    st = torch.load(tmp_path / "ddp" / "checkpoints" / ck[-1], weights_only=True)
    assert st["world_size"] == 2 and len(st["rng"]) == 2
