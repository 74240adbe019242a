r"""``LEAFUNet3D``: a 3-D dual-encoder LEAF network of hyperleaf's design, from the authors' blocks.

The authors' 3-D network cannot be rebuilt: its backbone (``model_3Dunet.UNet``) is not public
(spec §6). This network keeps everything else of their 3-D file around a small plain 3-D UNet
backbone of hyperleaf's own:

* two encoders, each ``L - 1`` stages of ``[2x2x2 max-pool (not in stage 1)] + 2 x (Conv3d 3x3x3 -
  BatchNorm - ReLU)``; level 0 is the raw input, as in the authors' networks;
* per level: ``ShallowAttentionFusion(dims=3)`` (``DeepAttentionFusion`` at the deepest level),
  :class:`hyperleaf.nn.HDGFB3DReference`, three ``FeatureCompressor``\ s and a LayerNorm
  injector, exactly the authors' 3-D data flow (§4.9, §4.11 with 5-D tensors, c = 0.5);
* a UNet decoder over levels ``L-1 .. 1`` (nearest 2x upsampling, concatenation with the skip,
  2 x conv-BN-ReLU; a last block without skip back to full size, as UNet++'s ``x_0_4``) and a
  3x3x3 convolution head.

``mode="paper"`` uses the authors' 3-D blocks exactly, including Q11: their 3-D compressor maps
every vector to ``(x/|x| + 1)/2``, whose norm is at least ``(sqrt(512) - 1)/2 > 1/sqrt(0.5)``,
so every ball point saturates and **H2FR is a constant with zero gradient**
(``ln(L!)/L + L ln 3``; ``tests/test_seg_leafunet3d.py`` shows it). ``mode="corrected"`` fixes
Q1, Q2, Q8-Q11 (plain compressor as in 2-D, per-voxel LayerNorm, true distance, log map of the
ball points) and then H2FR trains. The volume ``(D, H, W)`` is fixed up front in paper mode
(Q8's LayerNorm over ``(C, D, H, W)`` per level) and free in corrected mode.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch  # noqa: F401  (the docstring examples use it)
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from hyperleaf import paper
from hyperleaf.models.leafunet.blocks import (
    DeepAttentionFusion,
    FeatureCompressor,
    ShallowAttentionFusion,
    _check_mode,
)
from hyperleaf.models.registry import register_model
from hyperleaf.nn.hdgfb3d import HDGFB3DReference

__all__ = ["LEAFUNet3D"]


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout),
                         nn.ReLU(inplace=True))


class _Encoder3D(nn.Module):
    """``x -> [x, f1, ..., f_{L-1}]``; ``f_k`` has ``widths[k-1]`` channels at ``1/2^(k-1)``."""

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        self.stages = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.stages.append(nn.Sequential(_conv_bn_relu(cin, w), _conv_bn_relu(w, w)))
            cin = w
        self.out_channels = (in_channels, *widths)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = [x]
        f = x
        for i, stage in enumerate(self.stages):
            f = stage(f if i == 0 else F.max_pool3d(f, 2))
            feats.append(f)
        return feats


class _DecoderBlock3D(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv1 = _conv_bn_relu(cin + cskip, cout)
        self.conv2 = _conv_bn_relu(cout, cout)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        if skip is not None:
            x = F.interpolate(x, size=skip.shape[2:], mode="nearest")
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


@register_model("leaf-unet3d")
class LEAFUNet3D(nn.Module):
    r"""Dual-encoder 3-D LEAF segmentation network (see the module docstring).

    Args:
        num_classes: output classes.
        in_channels: channels of ``x1`` and ``x2`` (equal; level 0 fuses the raw inputs).
        widths: encoder widths of levels 1..L-1 (default ``(16, 32, 64, 128)``: ``L = 5``).
        volume: ``(D, H, W)`` of the inputs; required in paper mode (the authors' LayerNorm over
            ``(C, D, H, W)``), each divisible by ``2^(L-2)``.
        c: curvature magnitude (the authors' 3-D file: 0.5).
        feature_dim: width of the compressed vectors (512).
        mode: ``"paper"`` (the authors' 3-D blocks, Q8-Q11 kept) or ``"corrected"``.
        hdgfb: ``False`` replaces the HDGFBs by the identity (an ablation).
        hdgfb_hidden, heads, mlp_dim, dropout: as in :class:`LEAFUNet`.

    ``forward(x1, x2)``: ``(B, in, D, H, W)`` each -> ``(logits (B, num_classes, D, H, W),
    h2fr ())``.

    Example::

        >>> net = LEAFUNet3D(2, widths=(4, 8), volume=(4, 8, 8), feature_dim=16, hdgfb_hidden=8,
        ...                  heads=2, mlp_dim=8).eval()
        >>> logits, h2fr = net(torch.rand(1, 1, 4, 8, 8), torch.rand(1, 1, 4, 8, 8))
        >>> logits.shape
        torch.Size([1, 2, 4, 8, 8])
    """

    def __init__(self, num_classes: int, in_channels: Sequence[int] = (1, 1),
                 widths: Sequence[int] = (16, 32, 64, 128),
                 volume: Sequence[int] | None = None, c: float = 0.5, feature_dim: int = 512,
                 mode: str = "paper", *, hdgfb: bool = True, hdgfb_hidden: int = 512,
                 heads: int = 8, mlp_dim: int = 2048, dropout: float = 0.1):
        super().__init__()
        self.mode = _check_mode(mode)
        for name, v in (("num_classes", num_classes), ("feature_dim", feature_dim)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        ins = tuple(in_channels)
        if len(ins) != 2 or ins[0] != ins[1] or not all(isinstance(v, int) and v >= 1
                                                        for v in ins):
            raise ValueError(f"in_channels must be two equal ints >= 1, got {in_channels!r}")
        widths = tuple(widths)
        if not widths or not all(isinstance(w, int) and w >= 1 for w in widths):
            raise ValueError(f"widths must be a non-empty sequence of ints >= 1, got {widths!r}")
        step = 2 ** (len(widths) - 1)
        if volume is not None:
            volume = tuple(volume)
            if len(volume) != 3 or not all(isinstance(s, int) and s >= 1 and s % step == 0
                                           for s in volume):
                raise ValueError(f"volume must be (D, H, W), each divisible by {step}, got "
                                 f"{volume!r}")
        elif mode == "paper":
            raise ValueError("volume=(D, H, W) is required in mode='paper' (the authors' 3-D "
                             "HDGFB normalises over (C, D, H, W) of a fixed volume)")
        self.num_classes, self.in_channels, self.volume = int(num_classes), ins, volume
        self.c, self.feature_dim, self.use_hdgfb = float(c), int(feature_dim), bool(hdgfb)
        self.encoder1 = _Encoder3D(ins[0], widths)
        self.encoder2 = _Encoder3D(ins[1], widths)
        chans = self.encoder1.out_channels
        self.channels = chans
        L = len(chans)
        self.fusion_blocks = nn.ModuleList(ShallowAttentionFusion(ch, dims=3) for ch in chans[:-1])
        self.mbafusion = DeepAttentionFusion(chans[-1], num_heads=heads, mlp_dim=mlp_dim,
                                             dropout=dropout)
        if self.use_hdgfb:
            vols = [None] * L if volume is None else [
                tuple(s // 2 ** max(0, i - 1) for s in volume) for i in range(L)]
            self.hyperbolic_fusion_blocks = nn.ModuleList(
                HDGFB3DReference(ch, volume=v, c=c, hidden=hdgfb_hidden, mode=mode)
                for ch, v in zip(chans, vols))
        shift = mode == "paper"  # Q11: the authors' 3-D compressor
        self.feature_compressors1 = nn.ModuleList(
            FeatureCompressor(ch, feature_dim, unit_shift=shift) for ch in chans)
        self.feature_compressors2 = nn.ModuleList(
            FeatureCompressor(ch, feature_dim, unit_shift=shift) for ch in chans)
        self.feature_compressors_fused = nn.ModuleList(
            FeatureCompressor(ch, feature_dim, unit_shift=shift) for ch in chans)
        self.hyper_utils = paper.HyperbolicUtils(c)
        self.geometry_loss_fn = paper.RankingBasedGeometryLoss(c=c)
        self.compress_injectors = nn.ModuleList(
            nn.Sequential(nn.Linear(feature_dim, ch), nn.LayerNorm(ch)) for ch in chans)
        # decoder over levels L-1 .. 1, then a last block without skip
        blocks, cin = [], chans[-1]
        for skip in reversed(chans[1:-1]):
            blocks.append(_DecoderBlock3D(cin, skip, skip))
            cin = skip
        blocks.append(_DecoderBlock3D(cin, 0, cin))
        self.decoder = nn.ModuleList(blocks)
        self.segmentation_head = nn.Conv3d(cin, num_classes, 3, padding=1)

    def _check_inputs(self, x1: Tensor, x2: Tensor) -> None:
        step = 2 ** (len(self.channels) - 2)
        for name, x, cin in (("x1", x1, self.in_channels[0]), ("x2", x2, self.in_channels[1])):
            if not isinstance(x, Tensor) or x.dim() != 5 or x.shape[1] != cin:
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"{name} must be a (B, {cin}, D, H, W) tensor, got {got}")
            if any(s % step for s in x.shape[2:]):
                raise ValueError(f"{name}: D, H, W must be divisible by {step}, got "
                                 f"{tuple(x.shape[2:])}")
            if self.volume is not None and self.mode == "paper" \
                    and tuple(x.shape[2:]) != self.volume:
                raise ValueError(f"{name}: volume {tuple(x.shape[2:])} differs from "
                                 f"volume={self.volume} (fixed in mode='paper')")
        if x1.shape != x2.shape:
            raise ValueError(f"x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must match")

    def forward(self, x1: Tensor, x2: Tensor):
        self._check_inputs(x1, x2)
        f1, f2 = self.encoder1(x1), self.encoder2(x2)
        last = len(f1) - 1
        fused = [self.fusion_blocks[i](f1[i], f2[i]) for i in range(last)]
        fused.append(self.mbafusion(f1[last], f2[last]))
        if self.use_hdgfb:
            fused = [b(e, a, v) for b, e, a, v in zip(self.hyperbolic_fusion_blocks, fused, f1,
                                                      f2)]
        c1 = [m(f) for m, f in zip(self.feature_compressors1, f1)]
        c2 = [m(f) for m, f in zip(self.feature_compressors2, f2)]
        cf = [m(z) for m, z in zip(self.feature_compressors_fused, fused)]
        exp = self.hyper_utils.euclid_to_hyper
        levels = [z + self.compress_injectors[i](((c1[i] + c2[i]) + cf[i]) / 3)[
            :, :, None, None, None] for i, z in enumerate(fused)]
        x = levels[-1]
        for block, skip in zip(self.decoder[:-1], reversed(levels[1:-1])):
            x = block(x, skip)
        x = F.interpolate(x, size=x1.shape[2:], mode="nearest")
        x = self.decoder[-1](x, None)
        geom = self.geometry_loss_fn([exp(v) for v in cf], [exp(v) for v in c1],
                                     [exp(v) for v in c2])
        return self.segmentation_head(x), geom
