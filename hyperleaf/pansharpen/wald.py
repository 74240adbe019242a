r"""Wald's protocol: reduced-resolution pairs with ground truth from full-resolution data.

Given a PAN image at resolution ``r`` and an MS image at ``ratio * r``, low-pass each with its
sensor's MTF Gaussian and decimate by ``ratio`` (:func:`degrade`). The degraded pair is the
network's input; the original MS is the ground truth at the degraded PAN's resolution. This is
the toolbox's ``resize_images`` with the PAN degraded like the MS (MTF filter + decimation, the
2021 benchmark's choice) rather than with ``imresize``.

Example::

    >>> import torch
    >>> pan = torch.rand(1, 1, 64, 64, dtype=torch.float64)
    >>> ms = torch.rand(1, 4, 16, 16, dtype=torch.float64)
    >>> pan_lr, ms_lr = degrade(pan, ms, 4, "QB")
    >>> tuple(pan_lr.shape), tuple(ms_lr.shape)
    ((1, 1, 16, 16), (1, 4, 4, 4))
"""

from __future__ import annotations

from torch import Tensor

from hyperleaf.pansharpen.filters import decimate, interpolate, mtf_filter
from hyperleaf.pansharpen.sensors import Sensor, get_sensor

__all__ = ["degrade", "reduced_resolution"]


def _check_pair(pan: Tensor, ms: Tensor, ratio: int) -> None:
    for name, t in (("pan", pan), ("ms", ms)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.ndim < 3 or not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point (..., C, H, W) tensor, got "
                             f"{t.dtype} {tuple(t.shape)}")
    if pan.shape[-3] != 1:
        raise ValueError(f"pan: expected one band, got {pan.shape[-3]} ({tuple(pan.shape)})")
    if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
        raise ValueError(f"ratio: expected a positive integer, got {ratio!r}")
    h, w = pan.shape[-2:]
    if (ms.shape[-2] * ratio, ms.shape[-1] * ratio) != (h, w):
        raise ValueError(f"pan {h}x{w} and ms {ms.shape[-2]}x{ms.shape[-1]} do not differ by "
                         f"ratio {ratio}")


def degrade(pan: Tensor, ms: Tensor, ratio: int, sensor: str | Sensor | None
            ) -> tuple[Tensor, Tensor]:
    """``(pan_lr, ms_lr)``: both images MTF-filtered and decimated by ``ratio``.

    ``pan`` (..., 1, H, W), ``ms`` (..., C, H/ratio, W/ratio); ``H/ratio`` must again be a
    multiple of ``ratio``. ``sensor`` names the gains (``None``: generic gains).
    """
    _check_pair(pan, ms, ratio)
    s = get_sensor(sensor, bands=ms.shape[-3])
    ms_lr = decimate(mtf_filter(ms, s.gains_for(ms.shape[-3]), ratio), ratio)
    pan_lr = decimate(mtf_filter(pan, s.pan_gain, ratio), ratio)
    return pan_lr, ms_lr


def reduced_resolution(pan: Tensor, ms: Tensor, ratio: int, sensor: str | Sensor | None,
                       interpolation: str = "23tap") -> dict[str, Tensor]:
    """A PanCollection-style sample from a full-resolution pair by Wald's protocol.

    Returns ``{"gt": ms, "ms": ms_lr, "lms": ms_lr interpolated to pan_lr's size, "pan": pan_lr}``.
    """
    pan_lr, ms_lr = degrade(pan, ms, ratio, sensor)
    return {"gt": ms, "ms": ms_lr, "lms": interpolate(ms_lr, ratio, interpolation),
            "pan": pan_lr}
