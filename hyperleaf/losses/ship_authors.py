r"""The SHIP authors' infrared-visible training loss and the saliency mask it needs.

The authors trained SHIP with

.. math::

    L = 3\,L_{mask} + 10\,L_{max} + 10\,L_{grad}

on ``(B, 1, H, W)`` images in [0, 1], every :math:`|\cdot|_1` a *mean* absolute value over all
pixels of the batch (``torch.nn.L1Loss``'s default reduction):

* :math:`L_{max} = |F - \max(I_{vis}, I_{ir})|_1`;
* :math:`L_{grad} = |\,|\nabla F| - \max(|\nabla I_{vis}|, |\nabla I_{ir}|)\,|_1` with
  :math:`|\nabla I| = |S_x * I| + |S_y * I|` (Sobel, the sum of absolute responses, not the
  Euclidean magnitude; replicate padding, as :func:`hyperleaf.filters.sobel_magnitude`);
* :math:`L_{mask} = |M I_{vis} - F|_1 + |F - (1 - M) I_{ir}|_1` with ``M`` the binary visible
  mask of :func:`visible_mask`, taken literally as stated. Note what that formula asks: at a
  pixel with ``M = 1`` the two terms are :math:`|I_{vis} - F| + |F - 0|`, minimal (and flat) for
  any ``F`` in :math:`[0, I_{vis}]`; with ``M = 0`` for any ``F`` in :math:`[0, I_{ir}]`. It is
  a band below the selected source rather than a pull towards it (the masked form
  :math:`|M (I_{vis} - F)|_1 + |(1 - M)(F - I_{ir})|_1` would pull); :math:`L_{max}` supplies
  the pull upwards.

Visual saliency (Ma et al., "Infrared and visible image fusion based on visual saliency map and
weighted least square optimization", Infrared Physics & Technology 2017, after Zhai and Shah
2006): with the image quantised to 256 grey levels and :math:`h_j` the number of its pixels at
level ``j``,

.. math::

    V(p) = \sum_{j=0}^{255} h_j\, |I_p - j|,

then normalised to [0, 1] over the image's pixels (min-max). A pixel is salient when its level
is far from most of the image's levels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf.filters import sobel_magnitude

__all__ = ["saliency_map", "visible_mask", "ship_authors_loss", "ShipAuthorsLoss"]

_LEVELS = 256


def _check_images(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"{name}: expected shape (B, 1, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor in [0, 1], got {x.dtype}")


@torch.no_grad()
def saliency_map(img: Tensor) -> Tensor:
    r"""Histogram visual saliency of Ma et al. (2017), per image, normalised to [0, 1].

    Args:
        img: ``(B, 1, H, W)`` grey images in [0, 1] (values outside are clamped).

    Returns:
        ``(B, 1, H, W)`` float tensor (``img``'s dtype): :math:`V(p) = \sum_j h_j |q_p - j|`
        with :math:`q = \mathrm{round}(255\,\mathrm{clamp}(I, 0, 1))` and ``h`` the histogram of
        ``q``, min-max normalised over each image's pixels; an image whose pixels all have the
        same saliency (e.g. a constant image) maps to zeros.

    Example (hand-computed: levels 0, 51, 102, 255 give V = 408, 306, 306, 612)::

        >>> x = torch.tensor([0.0, 51.0, 102.0, 255.0]).view(1, 1, 2, 2) / 255
        >>> saliency_map(x).flatten().tolist()
        [0.3333333432674408, 0.0, 0.0, 1.0]
    """
    _check_images("img", img)
    b = img.shape[0]
    q = (img.clamp(0, 1) * (_LEVELS - 1)).round().long().view(b, -1)  # (B, N)
    hist = torch.zeros(b, _LEVELS, dtype=torch.float64, device=img.device)
    hist.scatter_add_(1, q, torch.ones_like(q, dtype=torch.float64))
    levels = torch.arange(_LEVELS, dtype=torch.float64, device=img.device)
    # table[b, j] = sum_k hist[b, k] |j - k|: the saliency of every level, one (256, 256) product.
    table = hist @ (levels[:, None] - levels[None, :]).abs()
    v = table.gather(1, q)  # (B, N), exact integers in float64
    lo, hi = v.min(1, keepdim=True).values, v.max(1, keepdim=True).values
    span = hi - lo
    v = torch.where(span > 0, (v - lo) / span.clamp_min(1.0), torch.zeros_like(v))
    return v.to(img.dtype).view_as(img)


@torch.no_grad()
def visible_mask(vis: Tensor, ir: Tensor) -> Tensor:
    """Binary visible mask ``M``: 1 where the visible image is the more salient, else 0.

    ``M = [V_vis > V_ir]`` with :func:`saliency_map` of each image; this is where the weight
    ``0.5 + (V_vis - V_ir) / 2`` that Ma et al. give their base layers exceeds 1/2. Ties
    (equal saliency, e.g. both images constant) go to the infrared image.

    Args:
        vis, ir: ``(B, 1, H, W)`` images in [0, 1].

    Returns:
        ``(B, 1, H, W)`` tensor of 0.0 / 1.0 in ``vis``'s dtype.

    Example::

        >>> vis = torch.tensor([0.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)
        >>> ir = torch.full((1, 1, 2, 2), 0.5)
        >>> visible_mask(vis, ir).flatten().tolist()
        [0.0, 0.0, 0.0, 1.0]
    """
    _check_images("vis", vis)
    _check_images("ir", ir)
    if vis.shape != ir.shape:
        raise ValueError(f"vis {tuple(vis.shape)} and ir {tuple(ir.shape)} must have one shape")
    return (saliency_map(vis) > saliency_map(ir)).to(vis.dtype)


def ship_authors_loss(fused: Tensor, vis: Tensor, ir: Tensor, mask: Tensor | None = None,
                      w_mask: float = 3.0, w_max: float = 10.0, w_grad: float = 10.0
                      ) -> tuple[Tensor, dict[str, Tensor]]:
    """``w_mask L_mask + w_max L_max + w_grad L_grad`` (module docstring); functional form.

    Args:
        fused, vis, ir: ``(B, 1, H, W)``; ``vis``/``ir`` in [0, 1].
        mask: ``(B, 1, H, W)`` binary visible mask; ``None`` computes :func:`visible_mask` of
            the inputs given (for training crops: the saliency of the crop).
        w_mask, w_max, w_grad: the weights (the authors': 3, 10, 10).

    Returns:
        ``(total, parts)``, ``parts`` = detached ``"mask"``, ``"max"``, ``"gradient"`` terms
        (unweighted).

    Example::

        >>> vis, ir = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
        >>> total, parts = ship_authors_loss(torch.maximum(vis, ir), vis, ir)
        >>> float(parts["max"])
        0.0
    """
    for name, t in (("fused", fused), ("vis", vis), ("ir", ir)):
        _check_images(name, t)
    if not (fused.shape == vis.shape == ir.shape):
        raise ValueError(f"fused {tuple(fused.shape)}, vis {tuple(vis.shape)} and ir "
                         f"{tuple(ir.shape)} must have one shape")
    if mask is None:
        mask = visible_mask(vis, ir)
    elif mask.shape != vis.shape:
        raise ValueError(f"mask: expected shape {tuple(vis.shape)}, got {tuple(mask.shape)}")
    mask = mask.to(fused.dtype)
    l_mask = (mask * vis - fused).abs().mean() + (fused - (1 - mask) * ir).abs().mean()
    l_max = (fused - torch.maximum(vis, ir)).abs().mean()
    g_target = torch.maximum(sobel_magnitude(vis), sobel_magnitude(ir))
    l_grad = (sobel_magnitude(fused) - g_target).abs().mean()
    total = w_mask * l_mask + w_max * l_max + w_grad * l_grad
    return total, {"mask": l_mask.detach(), "max": l_max.detach(), "gradient": l_grad.detach()}


class ShipAuthorsLoss(nn.Module):
    """:func:`ship_authors_loss` as a module, called ``loss(fused, vis, ir)`` like
    :class:`hyperleaf.train.FusionLoss`; returns ``(total, parts)``.

    Example::

        >>> loss = ShipAuthorsLoss()            # 3 L_mask + 10 L_max + 10 L_grad
        >>> vis, ir = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
        >>> total, parts = loss(vis, vis, ir)
        >>> sorted(parts)
        ['gradient', 'mask', 'max']
    """

    #: The task this loss trains (the loss registry lists losses by task).
    task = "fuse"

    @classmethod
    def from_config(cls, cfg: Any) -> ShipAuthorsLoss:
        """The loss a configuration describes: ``w_mask``; the authors' L_max and L_grad are
        the intensity and gradient terms (``w_intensity``, ``w_gradient``)."""
        return cls(cfg.w_mask, cfg.w_intensity, cfg.w_gradient)

    def __init__(self, w_mask: float = 3.0, w_max: float = 10.0, w_grad: float = 10.0):
        super().__init__()
        for name, w in (("w_mask", w_mask), ("w_max", w_max), ("w_grad", w_grad)):
            if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
                raise ValueError(f"{name}: expected a number >= 0, got {w!r}")
        self.w_mask, self.w_max, self.w_grad = float(w_mask), float(w_max), float(w_grad)

    def forward(self, fused: Tensor, vis: Tensor, ir: Tensor, mask: Tensor | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        return ship_authors_loss(fused, vis, ir, mask, self.w_mask, self.w_max, self.w_grad)
