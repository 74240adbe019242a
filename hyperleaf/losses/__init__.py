"""Training losses.

* :mod:`hyperleaf.losses.segmentation`: the LEAF authors' segmentation recipe (CE, Dice, Focal,
  and :class:`LeafSegmentationLoss` = CE + 0.5·(Dice + 1.2·Focal) + 0.5·H2FR).
* :mod:`hyperleaf.losses.ship_authors`: the SHIP authors' infrared-visible recipe
  (``3 L_mask + 10 L_max + 10 L_grad``) and the visual-saliency mask of Ma et al. (2017) it
  needs.
"""

from hyperleaf.losses.segmentation import LeafSegmentationLoss, dice_loss, focal_loss
from hyperleaf.losses.ship_authors import (
    ShipAuthorsLoss,
    saliency_map,
    ship_authors_loss,
    visible_mask,
)

__all__ = ["LeafSegmentationLoss", "dice_loss", "focal_loss", "ShipAuthorsLoss",
           "ship_authors_loss", "saliency_map", "visible_mask"]
