r"""SHIP, the infrared-visible fusion network of "Probing Synergistic High-Order Interaction for
Multi-Modal Image Fusion", rebuilt from its specification so that the authors' released weights
load unchanged (parameter names follow their checkpoint; see :mod:`hyperleaf.compat.ship`).

Structure (``n = n_feat``)::

    v0 = FeatureExtract_vis(vis); i0 = FeatureExtract_inf(ir)       # 1 -> n, edge blocks + CDC
    (v_k, i_k) = Interaction_k(v_{k-1}, i_{k-1}),  k = 1, 2, 3       # spatial (FFT) + channel
    out = Refine(Post(cat(v1, v2, v3)))                              # InvBlock, 1x1, CA layers

Two numerically equivalent execution paths (``SHIP.fast``):

* ``fast=True`` (default): channels-last tensors (oneDNN convolutions run ~3x faster on them
  than on NCHW at 16 channels), each central-difference block (CDC) folded into a single 3x3
  kernel, folded kernels cached between calls while the weights do not change.
* ``fast=False``: the specification term by term (every CDC as two 3x3 and two 1x1 convs).

Both reproduce the authors' golden outputs within ~6e-5 (``results/ship_golden.json``, written by
``benchmarks/ship_results.py``). The network is ill-conditioned in one place: the first UNet
block of each interaction InvBlock's ``F`` branch sees an input whose channels are nearly
constant (mean/std ~ 100 after three softmax gatings), so float32 convolution rounding there is
amplified at the output and depends on the convolution back-end and the number of threads.
Those blocks convolve the mean-removed input and add the (exactly constant) convolution of the
mean back: the same linear map with less rounding inside. With torch 2.13 on this CPU the plain
transcription without it is as close to the goldens (0 with 2 threads, 4.5e-5 with 1), so the
centring buys no measured accuracy here (an earlier measurement, not on file, found the
transcription ~5e-4 off; it is kept against back-ends that round that way).

``hdgfb=True`` adds LEAF's hyperbolic fusion block at each interaction stage; see :class:`SHIP`.

The package, by concern: :mod:`~hyperleaf.models.ship.blocks` (the blocks),
:mod:`~hyperleaf.models.ship.network` (:class:`SHIP`, both task variants),
:mod:`~hyperleaf.models.ship.tiling` (:func:`tiled_forward`) and
:mod:`~hyperleaf.models.ship.colour` (:func:`fuse_arrays`: NumPy images, YCrCb). Every name is
importable from here (``from hyperleaf.models.ship import SHIP, CDC, fuse_arrays``).
"""

from hyperleaf.models.ship.blocks import (
    CDC,
    CALayer,
    ChannelInteraction,
    ChannelLayerNorm,
    DenseBlock,
    EdgeBlock,
    FeatureExtract,
    Interaction,
    InvBlock,
    InvertibleConv1x1,
    Refine,
    SpatialInteraction,
    UNetConvBlock,
    same_conv,
)
from hyperleaf.models.ship.colour import fuse_arrays
from hyperleaf.models.ship.network import (
    SHIP,
    ShipFeatures,
    check_fusion_inputs,
    check_pansharpen_inputs,
)
from hyperleaf.models.ship.tiling import DEFAULT_OVERLAP, tiled_forward

__all__ = ["SHIP", "ShipFeatures", "tiled_forward", "fuse_arrays", "DEFAULT_OVERLAP",
           "check_fusion_inputs", "check_pansharpen_inputs", "same_conv", "CDC", "EdgeBlock", "FeatureExtract", "ChannelLayerNorm", "SpatialInteraction", "UNetConvBlock", "DenseBlock", "InvertibleConv1x1", "InvBlock", "ChannelInteraction", "Interaction", "CALayer", "Refine"]
