"""LEAFSegNet: the LEAF reference framework for multimodal segmentation.

:class:`LeafHead` lives in :mod:`hyperleaf.nn.heads` (re-exported here for old imports).

LEAFSegNet (two modalities ``a``, ``b``):

1. two encoders, one per modality, each giving L feature levels (a small built-in encoder by
   default; a ``timm`` or ``segmentation_models_pytorch`` encoder by name when that library is
   installed, never with downloaded weights);
2. per level, Euclidean fusion (1x1 convolution of the concatenated features) extended by an
   :class:`hyperleaf.HDGFB` (``fused = HDGFB(euclidean_fused, feat_a, feat_b)``);
3. :class:`LeafHead`: per level, the fused and both unimodal maps pooled and compressed to
   ``(B, D)`` vectors mapped to the Poincaré ball, on which H2FR ranks the levels;
4. a U-Net decoder from the deepest fused level up, each decoder input receiving that level's
   global fused vector (``log_0`` of the ball point, a linear map, added over all positions);
5. a 1x1 segmentation head.

The built-in encoder and decoder take 2-D images or, with ``spatial_dims=3``, 3-D volumes.
GroupNorm (never BatchNorm) keeps the network's output per sample independent of the batch, so
distributed training equals single-process training on the union batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hyperleaf import geometry
from hyperleaf.models.registry import register_model
from hyperleaf.nn import HDGFB
from hyperleaf.nn.heads import LeafHead

__all__ = ["LeafHead", "LEAFSegNet", "BuiltinEncoder"]


def _conv(dims: int):
    return nn.Conv2d if dims == 2 else nn.Conv3d


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int, dims: int, stride: int = 1):
        conv = _conv(dims)
        super().__init__(
            # No bias before GroupNorm: it would be removed by the normalisation anyway.
            conv(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.GroupNorm(min(8, cout), cout),
            nn.ReLU(inplace=True),
            conv(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(min(8, cout), cout),
            nn.ReLU(inplace=True))


class BuiltinEncoder(nn.Module):
    """A small conv encoder: level 0 at full resolution, each next level halves it."""

    def __init__(self, in_channels: int, widths: Sequence[int], spatial_dims: int = 2):
        super().__init__()
        self.channels = list(widths)
        self.stages = nn.ModuleList(
            _Block(in_channels if i == 0 else widths[i - 1], w, spatial_dims, 1 if i == 0 else 2)
            for i, w in enumerate(widths))

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for st in self.stages:
            x = st(x)
            feats.append(x)
        return feats


class _TimmEncoder(nn.Module):
    def __init__(self, name: str, in_channels: int, depth: int):
        super().__init__()
        import timm

        self.body = timm.create_model(name, pretrained=False, features_only=True,
                                      in_chans=in_channels, out_indices=tuple(range(depth)))
        self.channels = list(self.body.feature_info.channels())

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.body(x))


class _SmpEncoder(nn.Module):
    def __init__(self, name: str, in_channels: int, depth: int):
        super().__init__()
        from segmentation_models_pytorch.encoders import get_encoder

        self.body = get_encoder(name, in_channels=in_channels, depth=depth, weights=None)
        self.channels = list(self.body.out_channels[1:])

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.body(x))[1:]  # smp's first output is the input itself


def _make_encoder(spec: str, in_channels: int, widths: Sequence[int], dims: int) -> nn.Module:
    if spec == "builtin":
        return BuiltinEncoder(in_channels, widths, dims)
    lib, _, name = spec.partition(":")
    if dims != 2:
        raise ValueError(f"encoder={spec!r}: only the built-in encoder takes 3-D volumes")
    if lib == "timm" and name:
        return _TimmEncoder(name, in_channels, len(widths))
    if lib == "smp" and name:
        return _SmpEncoder(name, in_channels, len(widths))
    raise ValueError(f"encoder must be 'builtin', 'timm:<model>' or 'smp:<encoder>', got {spec!r}")


@register_model("leafseg")
class LEAFSegNet(nn.Module):
    """The LEAF segmentation framework (see the module docstring).

    Args:
        num_classes: segmentation classes.
        in_channels: channels of modality a and b.
        widths: channels of the built-in encoder's levels (L = ``len(widths)`` >= 2).
        encoder: ``"builtin"``, ``"timm:<model>"`` or ``"smp:<encoder>"`` (no weights loaded).
        spatial_dims: 2 (images) or 3 (volumes; built-in encoder only).
        ball_dim, c, learn_c, clip_r, h2fr_mode, h2fr_core: :class:`LeafHead` options.
        head_norm, head_radius: :class:`LeafHead`'s ``norm`` and ``radius``.
        hdgfb_mode, hdgfb_c, hdgfb_hidden: :class:`hyperleaf.HDGFB` options.

    ``forward(a, b)`` returns logits ``(B, num_classes, *spatial)``;
    ``forward(a, b, return_points=True)`` returns ``(logits, points)`` with ``points`` the
    :meth:`LeafHead.embed` output for :meth:`h2fr_loss`. ``forward_levels(a, b)`` returns
    ``(logits, levels)`` with ``levels[l] = (fused_l, a_l, b_l)`` feature maps
    (:class:`hyperleaf.models.registry.LevelFeatures`; ``level_channels`` their channels).

    Example::

        >>> net = LEAFSegNet(num_classes=4, widths=(8, 16, 32))
        >>> logits, pts = net(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32),
        ...                   return_points=True)
        >>> loss = F.cross_entropy(logits, mask) + 0.1 * net.h2fr_loss(pts)   # doctest: +SKIP
    """

    def __init__(self, num_classes: int, in_channels: tuple[int, int] = (1, 1),
                 widths: Sequence[int] = (16, 32, 64), encoder: str = "builtin",
                 spatial_dims: int = 2, ball_dim: int = 16, c: float = 0.5, learn_c: bool = True,
                 clip_r: float = 2.0, h2fr_mode: str = "geodesic", h2fr_core: str = "learned",
                 hdgfb_mode: str = "geodesic", hdgfb_c: float = 0.2, hdgfb_hidden: int = 64,
                 head_norm: str = "layer", head_radius: float = 1.5):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if len(widths) < 2:
            raise ValueError(f"widths: need at least 2 levels, got {tuple(widths)}")
        self.spatial_dims = spatial_dims
        conv = _conv(spatial_dims)
        self.enc_a = _make_encoder(encoder, in_channels[0], widths, spatial_dims)
        self.enc_b = _make_encoder(encoder, in_channels[1], widths, spatial_dims)
        ch = self.enc_a.channels
        self.fuse = nn.ModuleList(conv(2 * c_, c_, 1) for c_ in ch)

        self.hdgfb = nn.ModuleList(
            HDGFB(c_, c=hdgfb_c, hidden=hdgfb_hidden, mode=hdgfb_mode) for c_ in ch)
        self.head = LeafHead(ch, dim=ball_dim, c=c, learn_c=learn_c, clip_r=clip_r,
                             mode=h2fr_mode, core=h2fr_core, norm=head_norm,
                             radius=head_radius)
        # Decoder: level i (from the deepest) takes up(x) ++ fused_i.
        self.inject = nn.ModuleList(nn.Linear(ball_dim, c_) for c_ in ch)
        self.up = nn.ModuleList(conv(ch[i + 1], ch[i], 1) for i in range(len(ch) - 1))
        self.dec = nn.ModuleList(_Block(2 * ch[i], ch[i], spatial_dims) for i in range(len(ch) - 1))
        self.seg = conv(ch[0], num_classes, 1)

    def _inject(self, x: Tensor, i: int, g: Tensor) -> Tensor:
        v = self.inject[i](geometry.logmap0(g, self.head.ball, dim=-1))
        return x + v.view(*v.shape, *([1] * self.spatial_dims))

    @property
    def level_channels(self) -> list[int]:
        """Channels of each level's fused and unimodal maps, shallow to deep."""
        return list(self.enc_a.channels)

    def forward(self, a: Tensor, b: Tensor, return_points: bool = False):
        logits, points, _ = self._run(a, b)
        return (logits, points) if return_points else logits

    def forward_levels(self, a: Tensor, b: Tensor) -> tuple[Tensor, list[tuple[Tensor, ...]]]:
        """``(logits, levels)``: ``levels[l] = (fused_l, a_l, b_l)``, ``(B, C_l, *spatial_l)``."""
        logits, _, levels = self._run(a, b)
        return logits, levels

    def _run(self, a: Tensor, b: Tensor):
        if a.dim() != 2 + self.spatial_dims or b.shape[0] != a.shape[0] \
                or b.shape[2:] != a.shape[2:]:
            raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} must be (B, C, "
                             f"*spatial) with {self.spatial_dims} equal spatial dims")
        fa, fb = self.enc_a(a), self.enc_b(b)
        fused = [hd(fu(torch.cat([x, y], 1)), x, y)
                 for fu, hd, x, y in zip(self.fuse, self.hdgfb, fa, fb, strict=False)]
        levels = list(zip(fused, fa, fb, strict=True))
        points = self.head.embed(levels)
        g = points[0]
        x = self._inject(fused[-1], len(fused) - 1, g[-1])
        for i in range(len(fused) - 2, -1, -1):
            up = F.interpolate(self.up[i](x), size=fused[i].shape[2:], mode="nearest")
            x = self.dec[i](torch.cat([up, self._inject(fused[i], i, g[i])], 1))
        logits = self.seg(x)
        if logits.shape[2:] != a.shape[2:]:  # library encoders may start below full resolution
            mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
            logits = F.interpolate(logits, size=a.shape[2:], mode=mode, align_corners=False)
        return logits, points, levels

    def h2fr_loss(self, points) -> Tensor:
        """H2FR over the levels of ``forward(..., return_points=True)``'s points."""
        return self.head.loss(points)
