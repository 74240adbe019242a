"""Small image filters shared by losses and metrics (one definition of each kernel).

Sobel kernels are applied by *correlation* (``F.conv2d``, no flip) to ``(B, C, H, W)`` images
whose row index grows downwards:

* :data:`SOBEL_X` ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]``: positive where intensity grows to
  the right (+x, column index up);
* :data:`SOBEL_Y` ``= SOBEL_X^T``: positive where intensity grows downwards (+y, row index up).

(The textbook "upwards" y kernel is ``-SOBEL_Y``; magnitudes and the absolute orientation
differences that Qabf uses do not depend on that sign.)

Example (a ramp growing to the right by 1 per column: Sobel x response 8, y response 0):

    >>> import torch
    >>> ramp = torch.arange(5.0).repeat(5, 1)[None, None]
    >>> gx, gy = sobel(ramp)[0, 0, :, 2, 2]
    >>> float(gx), float(gy)
    (8.0, 0.0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SOBEL_X", "SOBEL_Y", "sobel", "sobel_magnitude"]

SOBEL_X: tuple[tuple[float, ...], ...] = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_Y: tuple[tuple[float, ...], ...] = tuple(zip(*SOBEL_X, strict=True))


def _sobel_kernels(dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(2, 3, 3)``: :data:`SOBEL_X` and :data:`SOBEL_Y`, made on ``device`` from ``arange``
    (no host-to-device copy per call): ``SOBEL_X = [1, 2, 1]^T [-1, 0, 1]``."""
    d = torch.arange(-1, 2, dtype=dtype, device=device)  # [-1, 0, 1]
    kx = (2 - d.abs())[:, None] * d[None, :]
    return torch.stack([kx, kx.t()])


def sobel(x: Tensor, padding: str = "replicate") -> Tensor:
    """``(B, C, 2, H, W)``: the x and y Sobel responses (see the module docstring for signs)
    of every channel of ``x`` ``(B, C, H, W)``, same size (1-pixel ``padding``: any
    :func:`torch.nn.functional.pad` mode, or ``"zeros"``)."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a (B, C, H, W) tensor, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    c = x.shape[1]
    k = _sobel_kernels(x.dtype, x.device)[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3)
    if padding == "zeros":
        xp = F.pad(x, (1, 1, 1, 1))
    else:
        xp = F.pad(x, (1, 1, 1, 1), mode=padding)
    return F.conv2d(xp, k, groups=c).view(x.shape[0], c, 2, *x.shape[2:])


def sobel_magnitude(x: Tensor) -> Tensor:
    """``|S_x * x| + |S_y * x|`` per channel of a ``(B, C, H, W)`` tensor (replicate padding),
    same shape (the L1 gradient magnitude SHIP's gradient loss uses)."""
    return sobel(x).abs().sum(dim=2)
