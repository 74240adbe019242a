"""The LEAF authors' segmentation networks (``shared/specs/leaf_authors_net.md``).

* :class:`LEAFUNet`: their 2-D ``DualInputHyperbolicUNet`` exactly (state dict, forward, gradients);
  load their checkpoints with :func:`hyperleaf.compat.leaf_from_reference`.
* :class:`LEAFUNet3D`: a 3-D dual-encoder LEAF network of hyperleaf's design built from their
  3-D blocks (their own 3-D backbone is not public).
* The blocks: :class:`ShallowAttentionFusion`, :class:`DeepAttentionFusion`,
  :class:`FeatureCompressor`, :class:`LeafHDGFB2D`.

``LEAFUNet`` needs the optional extra ``hyperleaf[seg]`` (segmentation-models-pytorch).
"""

from hyperleaf.models.leafunet.blocks import (
    DeepAttentionFusion,
    FeatureCompressor,
    LeafHDGFB2D,
    ShallowAttentionFusion,
)
from hyperleaf.models.leafunet.net import LEAFUNet
from hyperleaf.models.leafunet.net3d import LEAFUNet3D

__all__ = ["LEAFUNet", "LEAFUNet3D", "ShallowAttentionFusion", "DeepAttentionFusion", "FeatureCompressor",
           "LeafHDGFB2D"]
