"""SHIP on large images: :func:`tiled_forward` runs a fusion network on overlapping tiles and
blends them (bounded memory, slightly different results; see docs/ship.md)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hyperleaf.models.ship.network import check_fusion_inputs

__all__ = ["DEFAULT_OVERLAP", "tiled_forward"]

#: Tile overlap when tiling is asked for without one: ``min(DEFAULT_OVERLAP, tile // 4)``.
DEFAULT_OVERLAP = 32


def tiled_forward(net: nn.Module, vis: Tensor, ir: Tensor, tile: int, overlap: int = 32
                  ) -> Tensor:
    """Run ``net(vis, ir)`` on overlapping ``tile`` x ``tile`` windows and blend them.

    Bounds memory for very large images. Not identical to a whole-image pass: SHIP's spatial
    interaction multiplies full-image FFTs (a circular convolution over the whole image) and
    its channel attention and CA layers pool over the whole image, so each tile sees only its
    own context. Overlapping windows are blended with a linear ramp over ``overlap`` pixels to
    hide seams. ``vis``/``ir``: (B, 1, H, W); returns (B, 1, H, W).

    Example::

        >>> out = tiled_forward(SHIP().eval(), vis, ir, tile=512, overlap=64)  # doctest: +SKIP
    """
    check_fusion_inputs(vis, ir)
    if tile < 8:
        raise ValueError(f"tile: expected at least 8 pixels, got {tile}")
    if overlap < 0 or 2 * overlap >= tile:
        raise ValueError(f"overlap: expected 0 <= overlap < tile/2, got {overlap} (tile {tile})")
    b, _, h, w = vis.shape
    if h <= tile and w <= tile:
        return net(vis, ir)
    out = torch.zeros(b, 1, h, w, dtype=vis.dtype, device=vis.device)
    weight = torch.zeros(1, 1, h, w, dtype=vis.dtype, device=vis.device)
    for y0 in _starts(h, tile, overlap):
        for x0 in _starts(w, tile, overlap):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            piece = net(vis[:, :, y0:y1, x0:x1], ir[:, :, y0:y1, x0:x1])
            ramp = _ramp(y1 - y0, y0 > 0, y1 < h, overlap, vis)[:, None] * \
                _ramp(x1 - x0, x0 > 0, x1 < w, overlap, vis)[None, :]
            out[:, :, y0:y1, x0:x1] += piece * ramp
            weight[:, :, y0:y1, x0:x1] += ramp
    return out / weight


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    n = math.ceil((size - tile) / step) + 1
    starts = [min(k * step, size - tile) for k in range(n)]
    return sorted(set(starts))


def _ramp(length: int, ramp_start: bool, ramp_end: bool, overlap: int, like: Tensor) -> Tensor:
    r = torch.ones(length, dtype=like.dtype, device=like.device)
    if overlap > 0:
        edge = (torch.arange(overlap, dtype=like.dtype, device=like.device) + 1) / (overlap + 1)
        if ramp_start:
            r[:overlap] = torch.minimum(r[:overlap], edge)
        if ramp_end:
            r[-overlap:] = torch.minimum(r[-overlap:], edge.flip(0))
    return r
