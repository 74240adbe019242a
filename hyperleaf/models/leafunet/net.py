r"""``LEAFUNet``: the LEAF authors' 2-D network (``DualInputHyperbolicUNet``), module for module.

Written from ``shared/specs/leaf_authors_net.md`` §4. Two segmentation-models-pytorch
``UnetPlusPlus`` models give the two encoders (and the decoder and head of the first); at every
level ``i`` of the ``L = 6`` encoder outputs (level 0 = the raw input):

.. math::
    E_i = \mathrm{Shallow}_i(X1_i, X2_i)\ (i < L-1),\quad E_{L-1} = \mathrm{Deep}(X1_{L-1},
    X2_{L-1}),\quad Z_i = \mathrm{HDGFB}_i(E_i, X1_i, X2_i),

    c1_i, c2_i, cf_i = \mathrm{Comp1}_i(X1_i), \mathrm{Comp2}_i(X2_i), \mathrm{Compf}_i(Z_i),\quad
    D_i = Z_i + \mathrm{LN}(\mathrm{Linear}(((c1_i + c2_i) + cf_i)/3)),

    \text{logits} = \mathrm{head}(\mathrm{decoder}([D_0..D_{L-1}])),\quad
    \text{H2FR} = \mathcal L([\mathrm{Exp}(cf_i)], [\mathrm{Exp}(c1_i)], [\mathrm{Exp}(c2_i)])

(the decoder ignores ``D_0``). The state dict is the authors' exactly, aliases included: the
same submodules are registered as ``model1.encoder`` and ``encoder1``, ``model2.encoder`` and
``encoder2``, ``model1.decoder`` and ``decoder``, ``model1.segmentation_head`` and
``segmentation_head`` (1914 entries for ResNet-50 and 8 classes; ``parameters()`` lists each
tensor once). ``fusion_blocks[L-1]``, ``model2.decoder``, ``model2.segmentation_head`` and
``compress_injectors.0`` are kept for a strict load and never get a gradient (spec Q5, Q6).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch  # noqa: F401  (the docstring examples use it)
import torch.nn as nn
from torch import Tensor

from hyperleaf import paper
from hyperleaf.models.leafunet.blocks import (
    DeepAttentionFusion,
    FeatureCompressor,
    LeafHDGFB2D,
    ShallowAttentionFusion,
    _check_mode,
)
from hyperleaf.models.registry import register_model

__all__ = ["LEAFUNet", "require_smp", "SEG_EXTRA_HINT"]

SEG_EXTRA_HINT = ("install the optional extra: pip install \"hyperleaf[seg]\" (with a torchvision "
                  "that matches your torch)")


def require_smp():
    """Import ``segmentation_models_pytorch`` or raise an ImportError that says how to get it."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError as exc:  # also torchvision/torch mismatches, which fail inside smp
        raise ImportError(f"LEAFUNet needs segmentation-models-pytorch: {SEG_EXTRA_HINT} "
                          f"({type(exc).__name__}: {exc})") from exc
    return smp


def _int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a float > 0, got {value!r}")
    return float(value)


@register_model("leaf-unet")
class LEAFUNet(nn.Module):
    r"""The LEAF authors' dual-encoder UNet++ with hyperbolic fusion at every level.

    Args:
        num_classes: output classes (the authors: 8 for WHU-OPT-SAR, 9 for MSRS).
        encoder: any segmentation-models-pytorch encoder name (the authors: ``"resnet50"``).
        c: curvature magnitude of HDGFB, the exp maps and H2FR (the authors: 0.1).
        feature_dim: width of the compressed global vectors (512).
        in_channels: channels of ``x1`` and ``x2``; they must be equal, since level 0 fuses the
            raw inputs channel by channel (the authors: ``(3, 3)``; a grey SAR/IR image is
            repeated to 3 channels).
        mode: ``"paper"`` (the authors' code, quirks kept) or ``"corrected"`` (spec Q1, Q2 fixed in
            every HDGFB; the same weights load). See ``docs/segmentation.md``.
        encoder_weights: passed to smp (``None``: random init; the authors: ``"imagenet"``, which
            smp downloads).
        hdgfb: ``False`` replaces every HDGFB by the identity (``Z_i = E_i``; an ablation, not the
            authors' network: its state dict lacks ``hyperbolic_fusion_blocks``).
        hdgfb_hidden, heads, mlp_dim, dropout: HDGFB feed-forward width (512) and the deep
            fusion's heads (8), MLP width (2048) and dropout (0.1).

    ``forward(x1, x2)``: ``(B, in, H, W)`` each, ``H, W`` divisible by 32 -> ``(logits (B,
    num_classes, H, W), h2fr ())``; with ``return_points=True`` a third item, the 18 ball points
    ``H1_0..H1_5 + H2_0..H2_5 + Hf_0..Hf_5`` ``(B, feature_dim)`` (the authors' inference forward).

    Example (needs the ``seg`` extra, so ``make doctest`` skips it; ``make test-seg`` runs
    ``tests/test_leafunet*.py``, which build and run the network)::

        >>> net = LEAFUNet(num_classes=3, encoder="resnet18").eval()  # doctest: +SKIP
        >>> logits, h2fr = net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))  # doctest: +SKIP
        >>> logits.shape, h2fr.shape  # doctest: +SKIP
        (torch.Size([1, 3, 64, 64]), torch.Size([]))
    """

    def __init__(self, num_classes: int, encoder: str = "resnet50", c: float = 0.1,
                 feature_dim: int = 512, in_channels: Sequence[int] = (3, 3),
                 mode: str = "paper", *, encoder_weights: str | None = None, hdgfb: bool = True,
                 hdgfb_hidden: int = 512, heads: int = 8, mlp_dim: int = 2048,
                 dropout: float = 0.1):
        super().__init__()
        smp = require_smp()
        num_classes = _int(num_classes, "num_classes")
        c = _positive(c, "c")
        feature_dim = _int(feature_dim, "feature_dim")
        self.mode = _check_mode(mode)
        if not isinstance(encoder, str) or not encoder:
            raise ValueError(f"encoder must be an smp encoder name, got {encoder!r}")
        try:
            ins = tuple(_int(v, "in_channels[i]") for v in in_channels)
        except TypeError:
            raise ValueError(f"in_channels must be a pair of ints, got {in_channels!r}") from None
        if len(ins) != 2 or ins[0] != ins[1]:
            raise ValueError(f"in_channels must be two equal ints (level 0 fuses the raw inputs "
                             f"channel by channel), got {in_channels!r}")
        self.num_classes, self.c, self.feature_dim, self.in_channels = (num_classes, c,
                                                                        feature_dim, ins)
        self.encoder_name, self.use_hdgfb = encoder, bool(hdgfb)

        def unetpp(cin: int):
            try:
                return smp.UnetPlusPlus(encoder_name=encoder, encoder_weights=encoder_weights,
                                        in_channels=cin, classes=num_classes)
            except KeyError as exc:
                raise ValueError(f"encoder {encoder!r} is not a segmentation-models-pytorch "
                                 f"encoder ({exc})") from None

        # Registration order = the authors' state-dict order (and their init order, §4.14).
        self.model1 = unetpp(ins[0])
        self.model2 = unetpp(ins[1])
        self.encoder1 = self.model1.encoder
        self.encoder2 = self.model2.encoder
        self.decoder = self.model1.decoder
        self.segmentation_head = self.model1.segmentation_head
        chans = tuple(int(ch) for ch in self.model1.encoder.out_channels)
        self.channels = chans
        self.fusion_blocks = nn.ModuleList(ShallowAttentionFusion(ch) for ch in chans)
        self.mbafusion = DeepAttentionFusion(chans[-1], num_heads=heads, mlp_dim=mlp_dim,
                                             dropout=dropout)
        if self.use_hdgfb:
            self.hyperbolic_fusion_blocks = nn.ModuleList(
                LeafHDGFB2D(ch, hyper_c=c, hidden_dim=hdgfb_hidden, mode=mode) for ch in chans)
        self.feature_compressors1 = nn.ModuleList(FeatureCompressor(ch, feature_dim)
                                                  for ch in chans)
        self.feature_compressors2 = nn.ModuleList(FeatureCompressor(ch, feature_dim)
                                                  for ch in chans)
        self.feature_compressors_fused = nn.ModuleList(FeatureCompressor(ch, feature_dim)
                                                       for ch in chans)
        self.hyper_utils = paper.HyperbolicUtils(c)
        self.geometry_loss_fn = paper.RankingBasedGeometryLoss(c=c)
        self.compress_injectors = nn.ModuleList(
            nn.Sequential(nn.Linear(feature_dim, ch), nn.LayerNorm(ch)) for ch in chans)

    def _check_inputs(self, x1: Tensor, x2: Tensor) -> None:
        for name, x, cin in (("x1", x1, self.in_channels[0]), ("x2", x2, self.in_channels[1])):
            if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != cin:
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"{name} must be a (B, {cin}, H, W) tensor, got {got}")
            if x.shape[2] % 32 or x.shape[3] % 32:
                raise ValueError(f"{name}: H and W must be divisible by 32 (five 2x "
                                 f"down-samplings), got {tuple(x.shape[2:])}")
        if x1.shape[0] != x2.shape[0] or x1.shape[2:] != x2.shape[2:]:
            raise ValueError(f"x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} must have the same "
                             "batch size and H, W")

    def forward(self, x1: Tensor, x2: Tensor, return_points: bool = False):
        self._check_inputs(x1, x2)
        feats1, feats2 = self.encoder1(x1), self.encoder2(x2)
        last = len(feats1) - 1
        fused = [self.fusion_blocks[i](feats1[i], feats2[i]) for i in range(last)]
        fused.append(self.mbafusion(feats1[last], feats2[last]))
        if self.use_hdgfb:
            fused = [blk(e, a, b) for blk, e, a, b in zip(self.hyperbolic_fusion_blocks, fused,
                                                          feats1, feats2)]
        c1 = [comp(f) for comp, f in zip(self.feature_compressors1, feats1)]
        c2 = [comp(f) for comp, f in zip(self.feature_compressors2, feats2)]
        cf = [comp(z) for comp, z in zip(self.feature_compressors_fused, fused)]
        exp = self.hyper_utils.euclid_to_hyper
        h1, h2, hf = [exp(v) for v in c1], [exp(v) for v in c2], [exp(v) for v in cf]
        injected = []
        for i, z in enumerate(fused):
            g = self.compress_injectors[i](((c1[i] + c2[i]) + cf[i]) / 3)
            injected.append(z + g[:, :, None, None])
        mask = self.segmentation_head(self.decoder(injected))
        geom = self.geometry_loss_fn(hf, h1, h2)
        if return_points:
            return mask, geom, h1 + h2 + hf
        return mask, geom
