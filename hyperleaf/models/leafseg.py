"""LEAFSegNet: the LEAF reference framework for multimodal segmentation, and :class:`LeafHead`.

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

import hyperleaf

__all__ = ["LeafHead", "LEAFSegNet", "BuiltinEncoder"]


class LeafHead(nn.Module):
    """Per-level compressors to the ball and the H2FR loss that ranks their outputs.

    Each level's maps (fused and unimodal alike, through the same layer, so their distances are
    comparable) are average-pooled to ``(B, C_l)``, linearly compressed to ``(B, D)`` and mapped
    to the ball with :func:`hyperleaf.nn.to_ball` (clip to ``clip_r``, ``expmap0``). The ball
    is a geoopt ``PoincareBall`` whose curvature is learnable when ``learn_c``; H2FR uses the
    same ball, and with ``core="learned"`` its fused core is a ``geoopt.ManifoldParameter`` on it.

    Args:
        channels: channels of each level (L >= 2).
        dim: ball dimension D.
        c: initial curvature magnitude.
        learn_c: train the curvature.
        clip_r: clipping radius before ``expmap0``.
        mode, core, alpha, beta: :class:`hyperleaf.H2FRLoss` options.
    """

    def __init__(self, channels: Sequence[int], dim: int = 16, c: float = 0.5,
                 learn_c: bool = True, clip_r: float = 2.0, mode: str = "geodesic",
                 core: str = "learned", alpha: float = 1.0, beta: float = 1.0):
        super().__init__()
        channels = [int(ch) for ch in channels]
        if len(channels) < 2:
            raise ValueError(f"channels: H2FR needs at least 2 levels, got {channels}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.clip_r = int(dim), float(clip_r)
        self.ball = hyperleaf.ball(float(c), learnable=learn_c)
        self.compress = nn.ModuleList(nn.Linear(ch, dim) for ch in channels)
        from hyperleaf.nn import H2FRLoss

        if mode == "paper" and core != "origin":
            raise ValueError("mode='paper' (the seed's H2FR) has its core at the origin: "
                             "pass core='origin' or use mode='geodesic'")
        # H2FR shares this ball (geometry.ball returns a ball unchanged): one curvature.
        self.h2fr = H2FRLoss(alpha=alpha, beta=beta, c=self.ball, mode=mode, core=core,
                             core_dim=dim if core == "learned" else None)

    @property
    def curvature(self) -> Tensor:
        """The current curvature magnitude (a 0-d tensor in the autograd graph)."""
        return self.ball.c

    def core(self) -> Tensor:
        """The fused core ``(D,)``: H2FR's learned ManifoldParameter, or the origin."""
        core = getattr(self.h2fr, "core", None)
        if isinstance(core, Tensor):
            return core
        w = self.compress[0].weight
        return torch.zeros(self.dim, dtype=w.dtype, device=w.device)

    def embed(self, levels: Sequence[Sequence[Tensor]]) -> tuple[list[Tensor], ...]:
        """``levels[l] = (fused_map, map_1, ..., map_M)`` -> ``(fused_pts, pts_1, ..., pts_M)``,
        each a list over levels of ``(B, D)`` ball points."""
        from hyperleaf.nn import to_ball

        if len(levels) != len(self.compress):
            raise ValueError(f"expected {len(self.compress)} levels, got {len(levels)}")
        out: list[list[Tensor]] = [[] for _ in range(len(levels[0]))]
        for comp, maps in zip(self.compress, levels, strict=False):
            for s, m in enumerate(maps):
                v = comp(m.flatten(2).mean(-1))
                out[s].append(to_ball(v, self.ball, clip_r=self.clip_r))
        return tuple(out)

    def loss(self, points: Sequence[Sequence[Tensor]]) -> Tensor:
        """H2FR on :meth:`embed` output."""
        return self.h2fr(points[0], *points[1:])


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


class LEAFSegNet(nn.Module):
    """The LEAF segmentation framework (see the module docstring).

    Args:
        num_classes: segmentation classes.
        in_channels: channels of modality a and b.
        widths: channels of the built-in encoder's levels (L = ``len(widths)`` >= 2).
        encoder: ``"builtin"``, ``"timm:<model>"`` or ``"smp:<encoder>"`` (no weights loaded).
        spatial_dims: 2 (images) or 3 (volumes; built-in encoder only).
        ball_dim, c, learn_c, clip_r, h2fr_mode, h2fr_core: :class:`LeafHead` options.
        hdgfb_mode, hdgfb_c, hdgfb_hidden: :class:`hyperleaf.HDGFB` options.

    ``forward(a, b)`` returns logits ``(B, num_classes, *spatial)``;
    ``forward(a, b, return_points=True)`` returns ``(logits, points)`` with ``points`` the
    :meth:`LeafHead.embed` output for :meth:`h2fr_loss`.

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
                 hdgfb_mode: str = "geodesic", hdgfb_c: float = 0.2, hdgfb_hidden: int = 64):
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
        from hyperleaf.nn import HDGFB

        self.hdgfb = nn.ModuleList(
            HDGFB(c_, c=hdgfb_c, hidden=hdgfb_hidden, mode=hdgfb_mode) for c_ in ch)
        self.head = LeafHead(ch, dim=ball_dim, c=c, learn_c=learn_c, clip_r=clip_r,
                             mode=h2fr_mode, core=h2fr_core)
        # Decoder: level i (from the deepest) takes up(x) ++ fused_i.
        self.inject = nn.ModuleList(nn.Linear(ball_dim, c_) for c_ in ch)
        self.up = nn.ModuleList(conv(ch[i + 1], ch[i], 1) for i in range(len(ch) - 1))
        self.dec = nn.ModuleList(_Block(2 * ch[i], ch[i], spatial_dims) for i in range(len(ch) - 1))
        self.seg = conv(ch[0], num_classes, 1)

    def _inject(self, x: Tensor, i: int, g: Tensor) -> Tensor:
        v = self.inject[i](hyperleaf.logmap0(g, self.head.ball, dim=-1))
        return x + v.view(*v.shape, *([1] * self.spatial_dims))

    def forward(self, a: Tensor, b: Tensor, return_points: bool = False):
        if a.dim() != 2 + self.spatial_dims or b.shape[0] != a.shape[0] \
                or b.shape[2:] != a.shape[2:]:
            raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} must be (B, C, "
                             f"*spatial) with {self.spatial_dims} equal spatial dims")
        fa, fb = self.enc_a(a), self.enc_b(b)
        fused = [hd(fu(torch.cat([x, y], 1)), x, y)
                 for fu, hd, x, y in zip(self.fuse, self.hdgfb, fa, fb, strict=False)]
        points = self.head.embed([(f, x, y) for f, x, y in zip(fused, fa, fb, strict=False)])
        g = points[0]
        x = self._inject(fused[-1], len(fused) - 1, g[-1])
        for i in range(len(fused) - 2, -1, -1):
            up = F.interpolate(self.up[i](x), size=fused[i].shape[2:], mode="nearest")
            x = self.dec[i](torch.cat([up, self._inject(fused[i], i, g[i])], 1))
        logits = self.seg(x)
        if logits.shape[2:] != a.shape[2:]:  # library encoders may start below full resolution
            mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
            logits = F.interpolate(logits, size=a.shape[2:], mode=mode, align_corners=False)
        return (logits, points) if return_points else logits

    def h2fr_loss(self, points) -> Tensor:
        """H2FR over the levels of ``forward(..., return_points=True)``'s points."""
        return self.head.loss(points)
