"""Networks built on hyperleaf's layers, by name through :mod:`hyperleaf.models.registry`.

* :class:`SHIP` (``"ship"``) -- the SHIP infrared-visible network (released architecture;
  ``hdgfb=True`` adds LEAF's hyperbolic fusion block at each interaction stage). Load the
  authors' weights with :func:`hyperleaf.compat.ship_from_official`.
* :class:`LEAFSegNet` (``"leafseg"``) -- the LEAF reference segmentation framework.
* :class:`LEAFUNet` -- the LEAF authors' 2-D segmentation network (needs ``hyperleaf[seg]``);
  load their checkpoints with :func:`hyperleaf.compat.leaf_from_reference`.

:func:`create_model` builds a registered network by name; :func:`register_model` adds one.
``LeafHead`` lives in :mod:`hyperleaf.nn.heads` (re-exported here for old imports).
"""

from hyperleaf.models.leafseg import LEAFSegNet
from hyperleaf.models.leafunet import LEAFUNet, LEAFUNet3D
from hyperleaf.models.registry import LevelFeatures, create_model, list_models, register_model
from hyperleaf.models.ship import SHIP, ShipFeatures, fuse_arrays, tiled_forward
from hyperleaf.nn.heads import LeafHead

__all__ = ["SHIP", "ShipFeatures", "tiled_forward", "fuse_arrays", "LEAFSegNet", "LeafHead", "LEAFUNet",
           "LEAFUNet3D", "create_model", "register_model", "list_models", "LevelFeatures"]
