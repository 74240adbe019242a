r"""The LEAF authors' fusion blocks, 2-D and 3-D, with their state-dict layout.

Written from ``shared/specs/leaf_authors_net.md`` (§4.5-4.9, §6). Every class keeps the authors'
submodule names and registration order, so ``state_dict()`` keys equal theirs.

* :class:`ShallowAttentionFusion` (levels 0-4): channel attention on ``GAP(cat[f1, f2])``, a
  spatial attention ``sw`` on the two channel means, ``out = W_f * cat[f1 cw sw, f2 cw (1 - sw)]``.
* :class:`DeepAttentionFusion` (the deepest level, ``mbafusion``): two-stream self and cross
  multi-head attention over the ``H*W`` tokens, ``w11..w22``-weighted residuals, LN + MLP.
* :class:`FeatureCompressor`: ``Linear-GELU-Linear(GAP(x))``; the authors' 3-D variant then maps
  ``x -> (x/(|x| + 1e-8) + 1)/2`` (``unit_shift=True``; spec Q11).
* :class:`LeafHDGFB2D`: the authors' 2-D ``HyperbolicAttentionFusion`` (= the seed's,
  :class:`hyperleaf.paper.HyperbolicAttentionFusion`) with ``mode="corrected"`` fixing Q1 (the
  true Poincaré distance) and Q2 (the log map clamps the norm at the ball radius of ``c``).

``dims`` selects 2-D (``Conv2d``, ``(B, C, H, W)``) or 3-D (``Conv3d``, ``(B, C, D, H, W)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf import paper
from hyperleaf.nn.hdgfb3d import authors_distance_map, authors_log_map

__all__ = ["ShallowAttentionFusion", "DeepAttentionFusion", "FeatureCompressor", "LeafHDGFB2D",
           "MODES"]

#: ``"paper"`` (the authors' code, quirks kept) or ``"corrected"`` (the fixable quirks fixed).
MODES = ("paper", "corrected")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def _conv(dims: int):
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _pool(dims: int):
    return nn.AdaptiveAvgPool2d if dims == 2 else nn.AdaptiveAvgPool3d


class ShallowAttentionFusion(nn.Module):
    r"""Channel x spatial attention fusion of two ``(B, C, *spatial)`` maps (spec §4.5).

    .. math::
        cw = \sigma(W_{c2} \mathrm{ReLU}(W_{c1} \mathrm{GAP}([f_1, f_2]))),\quad
        sw = \sigma(W_s * [\bar f_1, \bar f_2]),\quad
        \text{out} = W_f [f_1\, cw\, sw,\ f_2\, cw\,(1 - sw)]

    (``\bar f`` = mean over channels; ``W_s`` a 3x3(x3) convolution with zero padding 1; no
    convolution has a bias). Example::

        >>> block = ShallowAttentionFusion(8)
        >>> block(torch.rand(2, 8, 5, 5), torch.rand(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, channels: int, dims: int = 2):
        super().__init__()
        conv = _conv(dims)
        self.channel_att = nn.Sequential(
            _pool(dims)(1),
            conv(2 * channels, channels, 1, bias=False),
            nn.ReLU(inplace=False),
            conv(channels, channels, 1, bias=False),
            nn.Sigmoid(),
        )
        self.spatial_att = nn.Sequential(conv(2, 1, 3, padding=1, bias=False), nn.Sigmoid())
        self.fusion_conv = conv(2 * channels, channels, 1, bias=False)

    def forward(self, feat1: Tensor, feat2: Tensor) -> Tensor:
        cw = self.channel_att(torch.cat([feat1, feat2], dim=1))
        sw = self.spatial_att(torch.cat([feat1.mean(dim=1, keepdim=True),
                                         feat2.mean(dim=1, keepdim=True)], dim=1))
        a = (feat1 * cw) * sw
        b = (feat2 * cw) * (1 - sw)
        return self.fusion_conv(torch.cat([a, b], dim=1))


class DeepAttentionFusion(nn.Module):
    r"""Two-stream self + cross attention over the tokens of two ``(B, C, *spatial)`` maps
    (spec §4.6; the authors' ``mbafusion``), returning ``(B, C, *spatial)``.

    With tokens ``X, Y`` ``(B, N, C)`` (``N`` = prod(spatial), row-major), ``Att(Q, K, V) =
    drop(softmax(QK^T/\sqrt{d}))V`` per head (``d = C / heads``):

    .. math::
        X_a = w_{11} P(X X) + w_{12} P(X Y) + X,\quad Y_a = w_{21} P(Y Y) + w_{22} P(Y X) + Y,

        \text{out} = \mathrm{MLP}_x(\mathrm{LN}(X_a)) + X_a + \mathrm{MLP}_y(\mathrm{LN}(Y_a)) + Y_a

    where ``P(XY)`` = out-projection of the attention with queries of X and keys/values of Y.

    Example::

        >>> block = DeepAttentionFusion(16, num_heads=4, mlp_dim=32).eval()
        >>> block(torch.rand(2, 16, 3, 3), torch.rand(2, 16, 3, 3)).shape
        torch.Size([2, 16, 3, 3])
    """

    def __init__(self, hidden_size: int, num_heads: int = 8, mlp_dim: int = 2048,
                 dropout: float = 0.1):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads "
                             f"({num_heads})")
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        # The four residual weights come first in the authors' state dict.
        self.w11 = nn.Parameter(torch.tensor(0.5))
        self.w12 = nn.Parameter(torch.tensor(0.5))
        self.w21 = nn.Parameter(torch.tensor(0.5))
        self.w22 = nn.Parameter(torch.tensor(0.5))
        for name in ("query_x", "key_x", "value_x", "query_y", "key_y", "value_y", "out_x",
                     "out_y"):
            setattr(self, name, nn.Linear(hidden_size, hidden_size))
        for name in ("norm_x1", "norm_y1", "norm_x2", "norm_y2"):
            setattr(self, name, nn.LayerNorm(hidden_size))
        self.mlp_x = self._mlp(hidden_size, mlp_dim, dropout)
        self.mlp_y = self._mlp(hidden_size, mlp_dim, dropout)
        self.attn_dropout = nn.Dropout(dropout)
        self.proj_dropout = nn.Dropout(dropout)

    @staticmethod
    def _mlp(hidden: int, mlp_dim: int, dropout: float) -> nn.Sequential:
        return nn.Sequential(nn.Linear(hidden, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                             nn.Linear(mlp_dim, hidden), nn.Dropout(dropout))

    def _heads(self, t: Tensor) -> Tensor:  # (B, N, C) -> (B, h, N, d)
        B, N, _ = t.shape
        return t.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:  # -> (B, N, C)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        out = torch.matmul(self.attn_dropout(torch.softmax(scores, dim=-1)), v)
        B, _, N, _ = out.shape
        return out.transpose(1, 2).reshape(B, N, -1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        shape = x.shape
        X = x.flatten(2).transpose(1, 2)
        Y = y.flatten(2).transpose(1, 2)
        xn, yn = self.norm_x1(X), self.norm_y1(Y)
        qx, kx, vx = (self._heads(f(xn)) for f in (self.query_x, self.key_x, self.value_x))
        qy, ky, vy = (self._heads(f(yn)) for f in (self.query_y, self.key_y, self.value_y))
        pxx = self.proj_dropout(self.out_x(self._attend(qx, kx, vx)))
        pyy = self.proj_dropout(self.out_y(self._attend(qy, ky, vy)))
        pxy = self.proj_dropout(self.out_x(self._attend(qx, ky, vy)))
        pyx = self.proj_dropout(self.out_y(self._attend(qy, kx, vx)))
        xa = self.w11 * pxx + self.w12 * pxy + X
        ya = self.w21 * pyy + self.w22 * pyx + Y
        xf = self.mlp_x(self.norm_x2(xa)) + xa
        yf = self.mlp_y(self.norm_y2(ya)) + ya
        return (xf + yf).transpose(1, 2).reshape(shape)


class FeatureCompressor(nn.Module):
    r"""``(B, C, *spatial) -> (B, out_dim)``: ``Linear_{C->out} - GELU - Linear_{out->out}`` of
    the global average (spec §4.8). ``unit_shift=True`` is the authors' 3-D variant (Q11): then
    ``x -> (x / (|x| + 10^{-8}) + 1) / 2``, whose norm is at least ``(\sqrt{out} - 1)/2``.

    Example::

        >>> FeatureCompressor(8, 16)(torch.rand(2, 8, 4, 4)).shape
        torch.Size([2, 16])
    """

    def __init__(self, in_channels: int, out_dim: int = 512, unit_shift: bool = False):
        super().__init__()
        self.unit_shift = bool(unit_shift)
        self.projection = nn.Sequential(nn.Linear(in_channels, out_dim), nn.GELU(),
                                        nn.Linear(out_dim, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        out = self.projection(x.flatten(2).mean(dim=2))
        if self.unit_shift:
            out = out / (torch.linalg.vector_norm(out, dim=1, keepdim=True) + 1e-8)
            out = (out + 1) / 2
        return out


class LeafHDGFB2D(paper.HyperbolicAttentionFusion):
    r"""The authors' 2-D HDGFB (``HyperbolicAttentionFusion(C, hyper_c, hidden_dim)``, spec §4.7).

    ``mode="paper"`` is :class:`hyperleaf.paper.HyperbolicAttentionFusion` unchanged (the
    authors' network uses exactly the seed's block); ``mode="corrected"`` uses the true Poincaré
    distance (Q1) and a log map clamped from ``c`` (Q2), with the same parameters. Called as
    ``block(E, X1, X2)`` on ``(B, C, H, W)`` maps; returns ``(B, C, H, W)``.

    Example::

        >>> block = LeafHDGFB2D(4, hyper_c=0.1, hidden_dim=8, mode="corrected")
        >>> block(*[torch.rand(1, 4, 3, 3) for _ in range(3)]).shape
        torch.Size([1, 4, 3, 3])
    """

    def __init__(self, in_channels: int, hyper_c: float = 0.2, hidden_dim: int = 512,
                 mode: str = "paper"):
        super().__init__(in_channels, hyper_c=hyper_c, hidden_dim=hidden_dim)
        self.mode = _check_mode(mode)
        if self.mode == "corrected":
            # The inherited forward calls hyper_utils.hyper_to_euclid: swap in the fixed log map.
            self.hyper_utils = _CorrectedUtils(hyper_c)

    def hyper_distance_map(self, u: Tensor, v: Tensor) -> Tensor:
        if self.mode == "paper":
            return super().hyper_distance_map(u, v)
        return authors_distance_map(u, v, self.hyper_utils.c, corrected=True)


class _CorrectedUtils(paper.HyperbolicUtils):
    """The authors' ``HyperbolicUtils`` with the log map clamped from ``c`` (Q2 fixed)."""

    def hyper_to_euclid(self, x: Tensor) -> Tensor:
        return authors_log_map(x, self.c, corrected=True)
