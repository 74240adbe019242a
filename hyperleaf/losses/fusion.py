"""Unsupervised infrared-visible fusion losses (the ones SHIP trains with).

* intensity: :math:`\\operatorname{mean}|F - \\max(I_{ir}, I_{vis})|`
* gradient: :math:`\\operatorname{mean}\\big||\\nabla F|
  - \\max(|\\nabla I_{ir}|, |\\nabla I_{vis}|)\\big|`
  with :math:`|\\nabla I| = |S_x * I| + |S_y * I|` (:func:`hyperleaf.filters.sobel_magnitude`,
  replicate padding)
* SSIM (optional): :math:`1 - \\tfrac12(\\mathrm{SSIM}(F, I_{ir}) + \\mathrm{SSIM}(F, I_{vis}))`,
  computed by :func:`torchmetrics.functional.structural_similarity_index_measure`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf.filters import sobel_magnitude

__all__ = ["FusionLoss", "sobel_magnitude"]


class FusionLoss(nn.Module):
    """Weighted sum of the intensity, gradient and (optional) SSIM fusion losses.

    Called as ``loss(fused, vis, ir)`` on ``(B, 1, H, W)`` tensors in [0, 1] (the modalities in
    SHIP's order: visible, then infrared); returns ``(total, parts)`` where ``parts`` maps
    ``"intensity"``, ``"gradient"`` (and ``"ssim"``) to detached scalars.

    Example (a fused image equal to the pixelwise maximum has zero intensity loss):

        >>> vis, ir = torch.rand(2, 1, 1, 8, 8)
        >>> total, parts = FusionLoss(gradient=0.0)(torch.maximum(vis, ir), vis, ir)
        >>> float(total), sorted(parts)
        (0.0, ['gradient', 'intensity'])
    """

    #: The task this loss trains (the loss registry lists losses by task).
    task = "fuse"

    @classmethod
    def from_config(cls, cfg: Any) -> FusionLoss:
        """The loss a configuration describes (``w_intensity``, ``w_gradient``, ``w_ssim``)."""
        return cls(cfg.w_intensity, cfg.w_gradient, cfg.w_ssim)

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
            # lazy: importing torchmetrics takes ~2.7 s here, only SSIM-weighted losses need it
            from torchmetrics.functional.image import structural_similarity_index_measure as ssim

            s = 0.5 * (ssim(fused, ir, data_range=1.0) + ssim(fused, vis, data_range=1.0))
            l_ssim = 1.0 - s
            total = total + self.w_ssim * l_ssim
            parts["ssim"] = l_ssim.detach()
        return total, parts
