"""Helpers of the segmentation tests: the smp gate and weight randomisation."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn as nn

REQUIRE_ENV = "HYPERLEAF_REQUIRE_SEG"


def require_smp():
    """Import segmentation_models_pytorch, or skip (plain ``make test``) / fail (``make test-seg``
    sets HYPERLEAF_REQUIRE_SEG=1) with the reason."""
    try:
        import segmentation_models_pytorch as smp
    except Exception as exc:  # ImportError, or a torch/torchvision mismatch inside smp
        msg = (f"needs segmentation-models-pytorch, the optional extra hyperleaf[seg] "
               f"({type(exc).__name__}: {exc}); `make test-seg` runs these tests")
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {msg}", pytrace=False)
        pytest.skip(msg, allow_module_level=True)
    return smp


def randomize(net: nn.Module, seed: int = 0) -> nn.Module:
    """Move every norm / bias / scalar away from its default (LN/BN weights 1 and biases 0 hide
    bugs): 1-D weights 1 + 0.2 N(0, 1), biases 0.1 N(0, 1), 0-d scalars U(0.2, 0.8), BN running
    means 0.1 N(0, 1) and variances U(0.5, 1.5). Matrices and kernels keep their random init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            if p.dim() == 0:
                p.copy_(0.2 + 0.6 * torch.rand((), generator=g, dtype=torch.float64))
            elif p.dim() == 1 and name.endswith("weight"):
                p.copy_(1 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g, dtype=torch.float64))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g, dtype=torch.float64))
    return net


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (0 when both are 0)."""
    a, b = a.detach(), b.detach()
    scale = b.abs().max()
    diff = (a - b).abs().max()
    return float(diff / scale) if scale > 0 else float(diff)
