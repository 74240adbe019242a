"""Fusion networks built on hyperleaf's layers.

* :class:`SHIP` -- the SHIP infrared-visible network (released architecture; ``hdgfb=True``
  adds LEAF's hyperbolic fusion block at each interaction stage). Load the authors' weights
  with :func:`hyperleaf.compat.ship_from_official`.
* :class:`LEAFUNet` -- the LEAF authors' 2-D segmentation network (needs ``hyperleaf[seg]``);
  load their checkpoints with :func:`hyperleaf.compat.leaf_from_reference`.
"""

from hyperleaf.models.leafseg import LeafHead, LEAFSegNet
from hyperleaf.models.leafunet import LEAFUNet, LEAFUNet3D
from hyperleaf.models.ship import SHIP, ShipFeatures, tiled_forward

__all__ = ["SHIP", "ShipFeatures", "tiled_forward", "LEAFSegNet", "LeafHead", "LEAFUNet", "LEAFUNet3D"]
