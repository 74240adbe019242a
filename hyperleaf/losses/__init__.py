"""Training losses, one module per task family.

* :mod:`hyperleaf.losses.fusion` -- :class:`FusionLoss`, SHIP's unsupervised infrared-visible
  losses (intensity, Sobel gradient, SSIM).
* :mod:`hyperleaf.losses.segmentation`: the LEAF authors' segmentation recipe (CE, Dice, Focal,
  and :class:`LeafSegmentationLoss` = CE + 0.5·(Dice + 1.2·Focal) + 0.5·H2FR).
* :mod:`hyperleaf.losses.ship_authors`: the SHIP authors' infrared-visible recipe
  (``3 L_mask + 10 L_max + 10 L_grad``) and the visual-saliency mask of Ma et al. (2017) it
  needs.

A new loss goes into the module of its task family and is re-exported here. Losses may import
``geometry``, ``paper``, ``nn``, ``filters`` and ``metrics``; never ``models``, ``tasks``,
``train`` or ``cli``.
"""

from hyperleaf.losses.fusion import FusionLoss
from hyperleaf.losses.segmentation import LeafSegmentationLoss, dice_loss, focal_loss
from hyperleaf.losses.ship_authors import (
    ShipAuthorsLoss,
    saliency_map,
    ship_authors_loss,
    visible_mask,
)

__all__ = ["FusionLoss", "LeafSegmentationLoss", "dice_loss", "focal_loss", "ShipAuthorsLoss",
           "ship_authors_loss", "saliency_map", "visible_mask"]
