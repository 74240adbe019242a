"""Running a pan-sharpening network: :class:`Standardised` (per-band standardised inputs) and
:func:`sharpen` (float32 compute on (C, H, W) or (N, C, H, W) inputs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ["Standardised", "sharpen"]


class Standardised(nn.Module):
    r"""Runs a pan-sharpening network on standardised inputs and maps its output back.

    With per-band training statistics :math:`\mu_c, \sigma_c` of ``lms`` and
    :math:`\mu_p, \sigma_p` of ``pan``::

        out = sigma * net((pan - mu_p) / sigma_p, (lms - mu) / sigma) + mu

    For a residual network (``net(p, m) = m + r``) this is ``lms + sigma * r``: the residual is
    learnt in units of each band's spread, so bands with small dynamic range (Landsat's
    blue, sigma 0.04 of full scale) get gradients as large as the others.

    Shapes: ``pan`` (B, 1, H, W), ``lms`` (B, C, H, W) -> (B, C, H, W).

    >>> import torch
    >>> class Residual(torch.nn.Module):
    ...     def forward(self, pan, lms):
    ...         return lms + pan
    >>> net = Standardised(Residual(), [0.5], [2.0], [1.0, 1.0], [4.0, 1.0])
    >>> net(torch.full((1, 1, 1, 1), 2.5), torch.zeros(1, 2, 1, 1)).flatten().tolist()
    [4.0, 1.0]
    """

    def __init__(self, net: nn.Module, pan_mean: Sequence[float], pan_std: Sequence[float],
                 ms_mean: Sequence[float], ms_std: Sequence[float]) -> None:
        super().__init__()
        stats = {"pan_mean": pan_mean, "pan_std": pan_std, "ms_mean": ms_mean,
                 "ms_std": ms_std}
        for name, v in stats.items():
            t = torch.as_tensor(v, dtype=torch.float32).flatten()
            if not bool(torch.isfinite(t).all()) or (name.endswith("std") and
                                                      not bool((t > 0).all())):
                raise ValueError(f"{name}: expected finite values (std > 0), got {t.tolist()}")
            self.register_buffer(name, t.view(1, -1, 1, 1))
        if self.pan_mean.numel() != 1 or self.pan_std.numel() != 1:
            raise ValueError("pan_mean/pan_std: expected one value each (PAN has one band)")
        if self.ms_mean.numel() != self.ms_std.numel():
            raise ValueError(f"ms_mean/ms_std: expected one value per band each, got "
                             f"{self.ms_mean.numel()} and {self.ms_std.numel()}")
        self.net = net

    def _inputs(self, pan: Tensor, lms: Tensor) -> tuple[Tensor, Tensor]:
        if lms.ndim != 4 or lms.shape[1] != self.ms_mean.shape[1]:
            raise ValueError(f"lms: expected shape (B, {self.ms_mean.shape[1]}, H, W), got "
                             f"{tuple(lms.shape)}")
        return (pan - self.pan_mean) / self.pan_std, (lms - self.ms_mean) / self.ms_std

    def forward(self, pan: Tensor, lms: Tensor, return_features: bool = False):
        """``pan`` (B, 1, H, W), ``lms`` (B, C, H, W) -> (B, C, H, W) (and the network's
        features with ``return_features=True``)."""
        p, m = self._inputs(pan, lms)
        if return_features:
            out, feats = self.net(p, m, return_features=True)
            return out * self.ms_std + self.ms_mean, feats
        return self.net(p, m) * self.ms_std + self.ms_mean

    @property
    def level_channels(self) -> list[int]:
        """The wrapped network's per-level channels (:meth:`forward_levels`)."""
        return list(self.net.level_channels)

    def forward_levels(self, pan: Tensor, lms: Tensor) -> tuple[Tensor, list[tuple[Tensor, ...]]]:
        """``(output, levels)``: the output mapped back, and the wrapped network's per-level
        maps (of the standardised inputs), as ``net.forward_levels``."""
        p, m = self._inputs(pan, lms)
        out, levels = self.net.forward_levels(p, m)
        return out * self.ms_std + self.ms_mean, levels


@torch.no_grad()
def sharpen(net: nn.Module, pan: Tensor, lms: Tensor) -> Tensor:
    """``net(pan, lms)`` for (C, H, W) or (N, C, H, W) inputs, float32 compute, input dtype out."""
    squeeze = lms.ndim == 3
    p, m = (pan[None], lms[None]) if squeeze else (pan, lms)
    out = net(p.float(), m.float()).to(lms.dtype)
    return out[0] if squeeze else out
