r"""Wald's protocol: reduced-resolution pairs with ground truth from full-resolution data.

Given a PAN image at resolution ``r`` and an MS image at ``ratio * r``, degrade both by
``ratio`` (:func:`degrade`). The degraded pair is the network's input; the original MS is the
ground truth at the degraded PAN's resolution. Two conventions
(:data:`~hyperleaf.pansharpen.filters.CONVENTIONS`):

* ``"toolbox"`` (default): the toolbox's ``resize_images``. The MS is filtered by the
  ``genMTF`` kernels of the sensor (:func:`~hyperleaf.pansharpen.filters.toolbox_mtf_kernel`,
  replicated borders) and decimated as ``imresize(.., 1/ratio, 'nearest')`` (every ``ratio``-th
  pixel from ``ratio // 2``, :func:`degrade_ms`); the PAN is shrunk by MATLAB's bicubic
  ``imresize`` with antialiasing (:func:`~hyperleaf.pansharpen.filters.bicubic`). The
  PanCollection / CDIF ``lrms`` files are made this way (the Pleiades test scene's ``lrms`` is
  regenerated from its ``gt`` to 3e-15, tests/test_pansharpen_toolbox.py).
* ``"legacy"``: hyperleaf before issue 24. Both images low-passed by separable sampled
  Gaussians meeting the gain at Nyquist (:func:`~hyperleaf.pansharpen.filters.mtf_kernel`),
  the PAN with its own MTF gain, then decimated.

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

from hyperleaf.pansharpen.filters import (
    bicubic,
    check_convention,
    decimate,
    interpolate,
    mtf_filter,
)
from hyperleaf.pansharpen.sensors import Sensor, get_sensor

__all__ = ["degrade", "degrade_ms", "reduced_resolution"]


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


def degrade_ms(ms: Tensor, ratio: int, sensor: str | Sensor | None = None,
               convention: str = "toolbox") -> Tensor:
    """The MS alone degraded: ``(..., C, H, W)`` -> ``(..., C, H/ratio, W/ratio)``.

    MTF filter of ``sensor``'s gains (``None``: the toolbox's generic 0.3) under
    ``convention``, then every ``ratio``-th pixel from ``ratio // 2``. H and W must be
    multiples of ``ratio``; same dtype as ``ms``.

    >>> import torch
    >>> ms = torch.rand(2, 4, 32, 32, dtype=torch.float64)
    >>> tuple(degrade_ms(ms, 4).shape)
    (2, 4, 8, 8)
    """
    if not isinstance(ms, Tensor):
        raise TypeError(f"ms: expected a torch.Tensor, got {type(ms).__name__}")
    if ms.ndim < 3 or not ms.is_floating_point():
        raise ValueError(f"ms: expected a floating-point (..., C, H, W) tensor, got "
                         f"{ms.dtype} {tuple(ms.shape)}")
    check_convention(convention)
    s = get_sensor(sensor, bands=ms.shape[-3])
    return decimate(mtf_filter(ms, s.gains_for(ms.shape[-3]), ratio, convention=convention),
                    ratio)


def degrade(pan: Tensor, ms: Tensor, ratio: int, sensor: str | Sensor | None,
            convention: str = "toolbox") -> tuple[Tensor, Tensor]:
    """``(pan_lr, ms_lr)``: the pair degraded by ``ratio`` (Wald's protocol).

    ``pan`` (..., 1, H, W), ``ms`` (..., C, H/ratio, W/ratio); ``H/ratio`` must again be a
    multiple of ``ratio``. ``sensor`` names the gains (``None``: generic gains). ``ms_lr`` is
    :func:`degrade_ms`; ``pan_lr`` is MATLAB-bicubic ``imresize(pan, 1/ratio)`` under
    ``"toolbox"``, the PAN's MTF filter and decimation under ``"legacy"``.
    """
    _check_pair(pan, ms, ratio)
    check_convention(convention)
    s = get_sensor(sensor, bands=ms.shape[-3])
    ms_lr = degrade_ms(ms, ratio, s, convention)
    if convention == "toolbox":
        h, w = pan.shape[-2:]
        pan_lr = bicubic(pan, size=(h // ratio, w // ratio))
    else:
        pan_lr = decimate(mtf_filter(pan, s.pan_gain, ratio, convention="legacy"), ratio)
    return pan_lr, ms_lr


def reduced_resolution(pan: Tensor, ms: Tensor, ratio: int, sensor: str | Sensor | None,
                       interpolation: str = "23tap", convention: str = "toolbox"
                       ) -> dict[str, Tensor]:
    """A PanCollection-style sample from a full-resolution pair by Wald's protocol.

    Returns ``{"gt": ms, "ms": ms_lr, "lms": ms_lr interpolated to pan_lr's size, "pan": pan_lr}``
    (:func:`degrade` under ``convention``).
    """
    pan_lr, ms_lr = degrade(pan, ms, ratio, sensor, convention)
    return {"gt": ms, "ms": ms_lr, "lms": interpolate(ms_lr, ratio, interpolation),
            "pan": pan_lr}
