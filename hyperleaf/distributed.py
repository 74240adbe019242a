"""Process-group helpers for ``torchrun`` training (gloo on CPU, nccl on GPU).

Below the tasks and the engine: objectives call :func:`gather_levels` inside their forward.

:func:`gather_batch` concatenates a ``(b, ...)`` tensor from every rank into the ``(N b, ...)``
union batch, differentiably: its backward sums the incoming gradient over ranks and keeps this
rank's slice. With it, H2FR (whose batch statistics couple samples) is evaluated on the union
batch on every rank, so the loss on N ranks with batch b equals the single-process loss on the
union batch, and DDP's gradient averaging gives the single-process gradient.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["world_size", "rank", "is_distributed", "init_from_env", "gather_batch", "gather_levels",
           "all_reduce_mean", "any_true", "barrier"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_from_env(device_type: str) -> bool:
    """Join the process group described by torchrun's environment (``WORLD_SIZE`` > 1).
    Returns True when this call initialised it."""
    if dist.is_available() and dist.is_initialized():
        return False
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return True


class _GatherCat(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        n = dist.get_world_size()
        ctx.rank, ctx.b = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(n)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        g = g.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        return g[ctx.rank * ctx.b:(ctx.rank + 1) * ctx.b]


def gather_batch(x: Tensor) -> Tensor:
    """The union batch over ranks (identity when not distributed). Every rank must pass the
    same batch size."""
    if not is_distributed():
        return x
    return _GatherCat.apply(x)


def gather_levels(levels):
    """:func:`gather_batch` of every tensor of a tuple of per-level lists (H2FR's inputs)."""
    return tuple([gather_batch(x) for x in lv] for lv in levels)


def all_reduce_mean(x: Tensor) -> Tensor:
    """Mean of a tensor over ranks (a detached copy; identity when not distributed)."""
    x = x.detach().clone()
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        x /= dist.get_world_size()
    return x


def any_true(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True if ``flag`` is True on any rank (keeps skip decisions identical across ranks)."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()
