"""NumPy images in and out of a fusion network: :func:`fuse_arrays` (grey, or colour visible
images fused in YCrCb: the network fuses Y, Cr/Cb are kept)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hyperleaf.io import rgb_to_ycrcb, ycrcb_to_rgb
from hyperleaf.models.ship.tiling import DEFAULT_OVERLAP, tiled_forward

__all__ = ["fuse_arrays"]


def fuse_arrays(net: nn.Module, *, ir: np.ndarray, vis: np.ndarray,
                device: str | torch.device = "cpu", tile: int = 0, overlap: int | None = None
                ) -> np.ndarray:
    """Fuse one infrared-visible pair of NumPy images with a fusion network ``net(vis, ir)``.

    The modalities are keyword-only (``ir=``, ``vis=``): no positional order to swap.

    Args:
        net: a fusion network (e.g. :class:`SHIP`) taking ``(vis, ir)`` maps ``(1, 1, H, W)``.
        ir: ``(H, W)`` floats in [0, 1] (as :mod:`hyperleaf.io` reads them).
        vis: ``(H, W)`` grey or ``(H, W, 3)`` RGB floats in [0, 1]; a colour image is fused in
            YCrCb: the network fuses Y, Cr/Cb are kept, the result goes back to RGB.
        device: where the network runs.
        tile: > 0 fuses in ``tile`` x ``tile`` tiles (:func:`tiled_forward`); 0 fuses whole.
        overlap: the tiles' overlap; None picks ``min(DEFAULT_OVERLAP, tile // 4)``.

    Returns:
        ``(H, W)`` or ``(H, W, 3)`` float32 in [0, 1] (clamped), the shape of ``vis``.

    Example:

        >>> from hyperleaf.models.ship import SHIP
        >>> net = SHIP(n_feat=4).eval()
        >>> fused = fuse_arrays(net, ir=np.zeros((16, 16)), vis=np.full((16, 16, 3), 0.5))
        >>> fused.shape, bool(((0 <= fused) & (fused <= 1)).all())
        ((16, 16, 3), True)
    """
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, tile // 4)
    colour = vis.ndim == 3
    ycc = rgb_to_ycrcb(vis.astype(np.float32)) if colour else None
    y = ycc[..., 0] if colour else vis
    vt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None, None].to(device)
    it = torch.from_numpy(np.ascontiguousarray(ir, dtype=np.float32))[None, None].to(device)
    with torch.inference_mode():
        out = tiled_forward(net, vt, it, tile, overlap) if tile else net(vt, it)
    fused = out[0, 0].clamp(0, 1).float().cpu().numpy()
    if not colour:
        return fused
    ycc = ycc.copy()
    ycc[..., 0] = fused
    return np.clip(ycrcb_to_rgb(ycc), 0.0, 1.0)
