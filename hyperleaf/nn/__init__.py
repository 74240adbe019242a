"""LEAF's two contributions as drop-in PyTorch modules.

* :class:`H2FRLoss` and :func:`to_ball` (:mod:`hyperleaf.nn.h2fr`): the Hyperbolic Hierarchical
  Fused-core Ranking loss over levels of fused and unimodal ``(B, D)`` features on the ball;
* :class:`HDGFB` and :class:`HDGFBExtension` (:mod:`hyperleaf.nn.hdgfb`): the Hyperbolic
  Distance-informed Gating Fusion Block for ``(B, C, *spatial)`` maps;
* :class:`HDGFB3DReference` (:mod:`hyperleaf.nn.hdgfb3d`): the LEAF authors' 3-D block
  (``HyperbolicAttentionFusion3D``) exactly, for ``(B, C, D, H, W)`` volumes of a size fixed up
  front, with ``mode="corrected"`` for its fixable quirks.

Both have ``mode="paper"`` (the seed's code, exactly) and ``mode="geodesic"`` (the geometry the
paper describes, through :mod:`hyperleaf.geometry`). See ``docs/h2fr.md`` and ``docs/hdgfb.md``.

:class:`LeafHead` (:mod:`hyperleaf.nn.heads`) maps a network's per-level feature maps to H2FR's
ball points.
"""

from hyperleaf.nn.h2fr import H2FRLoss, to_ball
from hyperleaf.nn.hdgfb import HDGFB, HDGFBExtension
from hyperleaf.nn.hdgfb3d import HDGFB3DReference
from hyperleaf.nn.heads import LeafHead, ordering

__all__ = ["H2FRLoss", "to_ball", "HDGFB", "HDGFBExtension", "HDGFB3DReference", "LeafHead",
           "ordering"]
