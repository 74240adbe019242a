"""Unsupervised infrared-visible fusion losses (the ones SHIP trains with) and mIoU.

* intensity: :math:`\\operatorname{mean}|F - \\max(I_{ir}, I_{vis})|`
* gradient: :math:`\\operatorname{mean}\\big||\\nabla F|
  - \\max(|\\nabla I_{ir}|, |\\nabla I_{vis}|)\\big|`
  with :math:`|\\nabla I| = |S_x * I| + |S_y * I|` (Sobel, replicate padding)
* SSIM (optional): :math:`1 - \\tfrac12(\\mathrm{SSIM}(F, I_{ir}) + \\mathrm{SSIM}(F, I_{vis}))`,
  computed by :func:`torchmetrics.functional.structural_similarity_index_measure`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["sobel_magnitude", "FusionLoss", "confusion_matrix", "miou"]

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: Tensor) -> Tensor:
    """``|S_x * x| + |S_y * x|`` per channel of a ``(B, C, H, W)`` tensor, same shape."""
    if x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    c = x.shape[1]
    kx = _SOBEL_X.to(x)
    k = torch.stack([kx, kx.t()])[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=c)
    g = g.view(x.shape[0], c, 2, *x.shape[2:])
    return g.abs().sum(dim=2)


class FusionLoss(nn.Module):
    """Weighted sum of the intensity, gradient and (optional) SSIM fusion losses.

    Called as ``loss(fused, vis, ir)`` on ``(B, 1, H, W)`` tensors in [0, 1]; returns
    ``(total, parts)`` where ``parts`` maps ``"intensity"``, ``"gradient"`` (and ``"ssim"``) to
    detached scalars.
    """

    def __init__(self, intensity: float = 1.0, gradient: float = 1.0, ssim: float = 0.0):
        super().__init__()
        for name, w in (("intensity", intensity), ("gradient", gradient), ("ssim", ssim)):
            if not (isinstance(w, (int, float)) and w >= 0):
                raise ValueError(f"{name} weight must be a float >= 0, got {w!r}")
        self.w_int, self.w_grad, self.w_ssim = float(intensity), float(gradient), float(ssim)

    def forward(self, fused: Tensor, vis: Tensor, ir: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if not (fused.shape == vis.shape == ir.shape) or fused.dim() != 4:
            raise ValueError(f"fused {tuple(fused.shape)}, vis {tuple(vis.shape)} and ir "
                             f"{tuple(ir.shape)} must be equal (B, C, H, W) shapes")
        l_int = (fused - torch.maximum(vis, ir)).abs().mean()
        g_target = torch.maximum(sobel_magnitude(vis), sobel_magnitude(ir))
        l_grad = (sobel_magnitude(fused) - g_target).abs().mean()
        total = self.w_int * l_int + self.w_grad * l_grad
        parts = {"intensity": l_int.detach(), "gradient": l_grad.detach()}
        if self.w_ssim > 0:
            from torchmetrics.functional.image import structural_similarity_index_measure as ssim

            s = 0.5 * (ssim(fused, ir, data_range=1.0) + ssim(fused, vis, data_range=1.0))
            l_ssim = 1.0 - s
            total = total + self.w_ssim * l_ssim
            parts["ssim"] = l_ssim.detach()
        return total, parts


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """``(K, K)`` int64 counts, rows = target class, columns = predicted class."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def miou(conf: Tensor) -> float:
    """Mean intersection-over-union over the classes present in target or prediction."""
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    if not present.any():
        raise ValueError("miou: the confusion matrix is empty")
    return float((inter[present] / union[present]).mean())
