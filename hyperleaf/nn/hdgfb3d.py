r"""The LEAF authors' 3-D HDGFB (``HyperbolicAttentionFusion3D``), with the volume size given up
front, and the distance / log maps shared with their 2-D block.

Written from ``shared/specs/leaf_authors_net.md`` §3, §4.7 and §6. On ``(B, C, D, H, W)`` volumes,
per voxel (``Exp`` = :func:`hyperleaf.paper.euclid_to_hyper`, ``Log`` =
:func:`hyperleaf.paper.hyper_to_euclid`, all 1x1x1 convolutions with bias):

.. math::
    Q = \mathrm{Exp}(W_1 E),\ \tilde F_k = W_{k+1} X_k,\ P_k = \mathrm{Exp}(\tilde F_k),\quad
    d_k = \mathrm{dist}(Q, P_k),\quad \rho_k = d_k / (d_1 + d_2 + 10^{-8}),

    [g_1, g_2] = \operatorname{softmax}(G[-\rho_1, -\rho_2] + g),\quad
    T = g_1 \mathrm{Log}(\tilde F_1) + g_2 \mathrm{Log}(\tilde F_2),

    \text{out} = \mathrm{FF}([\mathrm{LN}_{[C, D, H, W]}(T),\ E])

with the authors' distance ``acosh((1 + 2c|u-v|^2) / ((1-c|u|^2)(1-c|v|^2) + 10^{-6}))/sqrt(c)``.

Differences from the 2-D block (the spec's quirks): Q8 the LayerNorm normalises each sample
jointly over ``C, D, H, W`` (the authors create it lazily at the first forward; here ``volume``
gives ``(D, H, W)`` up front, so it is an ordinary parameter of the dtype the module is cast to);
Q9 the ``+1e-6`` in the denominator; Q10 the log map is applied to the Euclidean projections
``\tilde F_k``, not to the ball points. ``mode="corrected"`` fixes Q1, Q2, Q8, Q9 and Q10: the
true Poincaré distance, a log map clamped from ``c``, applied to the ball points, and a per-voxel
LayerNorm over ``C`` (then ``volume`` is not needed and any volume size works).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf import paper

__all__ = ["HDGFB3DReference", "authors_distance_map", "authors_log_map"]

_MODES = ("paper", "corrected")
#: Corrected log map: the ball norm is clamped at ``(1 - 1e-7)/sqrt(c)`` (artanh stays finite).
LOG_CLAMP = 1.0 - 1e-7


def authors_distance_map(u: Tensor, v: Tensor, c: float, *, corrected: bool = False,
                         den_eps: float = 0.0) -> Tensor:
    r"""The authors' per-position distance of ``(B, C, *spatial)`` ball points -> ``(B, 1,
    *spatial)`` (spec §3), along dim 1.

    Both points are first rescaled to norm ``<= r = 1/sqrt(c) - 1e-6``; then
    ``num = 1 + 2c|u - v|^2``, ``den = (1 - c|u|^2)(1 - c|v|^2) + den_eps`` (``den_eps`` = 1e-6 in
    their 3-D block, Q9) and ``d = acosh(max(num/den, 1 + 1e-6))/sqrt(c)`` (Q1: ``d(u, u) > 0``).
    ``corrected=True`` computes the true Poincaré distance ``acosh(1 + 2c|u-v|^2/den)/sqrt(c)``
    (as ``2 asinh(sqrt(c)|u-v|/sqrt(den))/sqrt(c)``, no clamp: ``d(u, u) = 0``).

    Example::

        >>> u, o = torch.tensor([[0.5, 0.0]]), torch.zeros(1, 2)
        >>> round(float(authors_distance_map(u, o, 1.0, corrected=True)), 4)  # 2 artanh(1/2)
        1.0986
    """
    eps = paper.MAP_EPS
    r = 1.0 / math.sqrt(c) - eps
    us, vs = (paper._scale_to_ball(t, r, eps, 1) for t in (u, v))
    nu = torch.norm(us, dim=1, keepdim=True).clamp(max=r)
    nv = torch.norm(vs, dim=1, keepdim=True).clamp(max=r)
    den = (1 - c * nu**2) * (1 - c * nv**2) + den_eps
    if corrected:
        # acosh(1 + 2y^2) = 2 asinh(y), y = sqrt(c)|u - v|/sqrt(den): exact 0 at u = v, and a
        # finite gradient there (vector_norm's is 0 at the zero vector; acosh's would be inf).
        y = math.sqrt(c) * torch.linalg.vector_norm(us - vs, dim=1, keepdim=True) / den.sqrt()
        return (2 / math.sqrt(c)) * torch.asinh(y)
    sq = torch.sum((us - vs) ** 2, dim=1, keepdim=True)
    return (1 / math.sqrt(c)) * torch.acosh(((1 + 2 * c * sq) / den).clamp(min=1 + eps))


def authors_log_map(x: Tensor, c: float, *, corrected: bool = False) -> Tensor:
    r"""``log_0`` along dim 1. The authors' (``corrected=False``, Q2) clamps ``|x|`` to
    ``[1e-8, 1 - 1e-8]`` whatever ``c``; the corrected one to ``[1e-8, (1 - 1e-7)/sqrt(c)]``.

    Example::

        >>> x = torch.tensor([[2.0, 0.0]])   # inside the ball of c = 0.1 (radius 3.16)
        >>> authors_log_map(x, 0.1, corrected=True)[0, 0] > authors_log_map(x, 0.1)[0, 0]
        tensor(True)
    """
    if not corrected:
        return paper.hyper_to_euclid(x, c)
    sc = math.sqrt(c)
    n = torch.norm(x, dim=1, keepdim=True).clamp(min=paper.EPS, max=LOG_CLAMP / sc)
    return (1 / sc) * torch.atanh(sc * n) * (x / n)


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, kernel_size=1))


class HDGFB3DReference(nn.Module):
    r"""The authors' ``HyperbolicAttentionFusion3D(C, hyper_c, hidden_dim)`` on ``(B, C, D, H,
    W)`` volumes, its lazy LayerNorm made eager (see the module docstring).

    Args:
        channels: ``C``.
        volume: ``(D, H, W)`` of every input (paper mode: the LayerNorm's shape is ``(C, D, H,
            W)``); ``None`` is allowed in corrected mode only.
        c: curvature magnitude (the authors' 3-D network uses 0.5).
        hidden: width of the feed-forward (512 in the authors' code).
        mode: ``"paper"`` (the authors' code exactly) or ``"corrected"``.

    State-dict keys equal the authors' after their first forward (``to_hyperbolic{1,2,3}.0``,
    ``distance_mlp.0``, ``ff.0``, ``ff.2``, ``tangent_norm``); load theirs with
    :func:`hyperleaf.compat.hdgfb3d_from_reference`. ``forward(E, X1, X2)`` -> ``(B, C, D, H, W)``.

    Example::

        >>> block = HDGFB3DReference(4, volume=(2, 3, 3), c=0.5, hidden=8)
        >>> block(*[torch.rand(1, 4, 2, 3, 3) for _ in range(3)]).shape
        torch.Size([1, 4, 2, 3, 3])
    """

    def __init__(self, channels: int, volume: Sequence[int] | None = None, c: float = 0.5,
                 hidden: int = 512, mode: str = "paper"):
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"channels must be an int >= 1, got {channels!r}")
        if volume is not None:
            volume = tuple(volume)
            if len(volume) != 3 or not all(isinstance(s, int) and s >= 1 for s in volume):
                raise ValueError(f"volume must be (D, H, W) of ints >= 1, got {volume!r}")
        elif mode == "paper":
            raise ValueError("volume=(D, H, W) is required in mode='paper': the authors' "
                             "LayerNorm normalises over (C, D, H, W) of one fixed volume size")
        self.mode, self.channels, self.volume = mode, channels, volume
        self.hyper_utils = paper.HyperbolicUtils(c)
        self.c = self.hyper_utils.c
        self.to_hyperbolic1 = _conv(channels, channels)
        self.to_hyperbolic2 = _conv(channels, channels)
        self.to_hyperbolic3 = _conv(channels, channels)
        self.distance_mlp = _conv(2, 2)
        self.ff = nn.Sequential(nn.Conv3d(2 * channels, hidden, 1), nn.GELU(),
                                nn.Conv3d(hidden, channels, 1))
        norm_shape = [channels, *volume] if mode == "paper" else [channels]
        self.tangent_norm = nn.LayerNorm(norm_shape)

    def forward(self, fused: Tensor, feat1: Tensor, feat2: Tensor) -> Tensor:
        for name, t in (("fused", fused), ("feat1", feat1), ("feat2", feat2)):
            if not isinstance(t, Tensor) or t.dim() != 5 or t.shape[1] != self.channels:
                raise ValueError(f"{name} must be a (B, {self.channels}, D, H, W) tensor, got "
                                 f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}")
            if self.mode == "paper" and tuple(t.shape[2:]) != self.volume:
                raise ValueError(f"{name}: volume {tuple(t.shape[2:])} differs from the volume "
                                 f"{self.volume} this block's LayerNorm was built for")
        corrected, c = self.mode == "corrected", self.c
        q = paper.euclid_to_hyper(self.to_hyperbolic1(fused), c)
        e1, e2 = self.to_hyperbolic2(feat1), self.to_hyperbolic3(feat2)
        p1, p2 = paper.euclid_to_hyper(e1, c), paper.euclid_to_hyper(e2, c)
        den_eps = 0.0 if corrected else 1e-6
        d1 = authors_distance_map(q, p1, c, corrected=corrected, den_eps=den_eps)
        d2 = authors_distance_map(q, p2, c, corrected=corrected, den_eps=den_eps)
        s = d1 + d2 + 1e-8
        gates = torch.softmax(self.distance_mlp(torch.cat([-(d1 / s), -(d2 / s)], dim=1)), dim=1)
        # Q10: the authors take the log map of the Euclidean projections; corrected: ball points.
        t1, t2 = (p1, p2) if corrected else (e1, e2)
        tangent = (gates[:, :1] * authors_log_map(t1, c, corrected=corrected)
                   + gates[:, 1:2] * authors_log_map(t2, c, corrected=corrected))
        if corrected:  # per-voxel LayerNorm over C
            normed = self.tangent_norm(tangent.movedim(1, -1)).movedim(-1, 1)
        else:  # Q8: one LayerNorm over (C, D, H, W) per sample
            normed = self.tangent_norm(tangent)
        return self.ff(torch.cat([normed, fused], dim=1))
