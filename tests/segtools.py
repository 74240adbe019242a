"""Helpers of the segmentation tests: the smp gate and weight randomisation."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn as nn

REQUIRE_ENV = "HYPERLEAF_REQUIRE_SEG"

#: spec §4.13: the LEAFUNet parameters that never get a gradient (name prefixes)
NO_GRAD_PREFIXES = ("model2.decoder.", "model2.segmentation_head.", "fusion_blocks.5.",
                    "compress_injectors.0.")


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


def params_and_buffers(net: nn.Module, clone_buffers: bool) -> tuple[dict, dict]:
    """``net``'s parameters as fresh leaf tensors (the transcription's weights, with their own
    gradients) and its buffers (cloned: the transcription's BatchNorm updates its own copy)."""
    params = {k: v.detach().clone().requires_grad_() for k, v in net.named_parameters()}
    buffers = {k: (v.detach().clone() if clone_buffers else v) for k, v in net.named_buffers()}
    return params, buffers


def eval_against_transcription(net: nn.Module, seed: int = 2) -> dict[str, torch.Tensor]:
    """``net`` (float64, eval mode) and ``tests/leaf_transcription`` on the same two 2x3x64x64
    inputs in [0, 1] (from ``seed``), curvature 0.1: ``logits``, ``geom`` and their ``ref_``
    counterparts (what ``tests/test_leafunet.py`` asserts and
    ``benchmarks/leafunet_transcription.py`` records)."""
    from tests import leaf_transcription as T

    g = torch.Generator().manual_seed(seed)
    x1 = torch.rand(2, 3, 64, 64, generator=g, dtype=torch.float64)
    x2 = torch.rand(2, 3, 64, 64, generator=g, dtype=torch.float64)
    with torch.no_grad():
        logits, geom = net(x1, x2)
        params, buffers = params_and_buffers(net, clone_buffers=False)
        ref_logits, ref_geom = T.forward(T.Weights(params, buffers, training=False), x1, x2,
                                         c=0.1)
    return {"logits": logits, "geom": geom, "ref_logits": ref_logits, "ref_geom": ref_geom}


def train_step_against_transcription(net: nn.Module, seed: int = 3, num_classes: int = 3
                                     ) -> dict[str, object]:
    """One training step of ``net`` (float64; every dropout set to p = 0, train mode) and of the
    transcription on the same inputs and labels (from ``seed``), the full training loss
    (``LeafSegmentationLoss``) backpropagated on both sides: ``logits``, ``geom``, ``loss``,
    their ``ref_`` counterparts, and the transcription's ``params`` (with their gradients) and
    ``buffers`` (after its BatchNorm updates); ``net`` keeps its own gradients and buffers."""
    from hyperleaf.losses import LeafSegmentationLoss
    from tests import leaf_transcription as T

    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    net.train()
    params, buffers = params_and_buffers(net, clone_buffers=True)
    g = torch.Generator().manual_seed(seed)
    x1 = torch.rand(2, 3, 64, 64, generator=g, dtype=torch.float64)
    x2 = torch.rand(2, 3, 64, 64, generator=g, dtype=torch.float64)
    y = torch.randint(0, num_classes, (2, 64, 64), generator=g)
    net.zero_grad(set_to_none=True)
    logits, geom = net(x1, x2)
    loss, _ = LeafSegmentationLoss()(logits, y, geom)
    loss.backward()
    ref_logits, ref_geom = T.forward(T.Weights(params, buffers, training=True), x1, x2, c=0.1)
    ref_loss = T.training_loss(ref_logits, y, ref_geom)
    ref_loss.backward()
    return {"logits": logits.detach(), "geom": geom.detach(), "loss": loss.detach(),
            "ref_logits": ref_logits.detach(), "ref_geom": ref_geom.detach(),
            "ref_loss": ref_loss.detach(), "params": params, "buffers": buffers}
