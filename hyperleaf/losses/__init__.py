"""Training losses.

* :mod:`hyperleaf.losses.segmentation`: the LEAF authors' segmentation recipe (CE, Dice, Focal,
  and :class:`LeafSegmentationLoss` = CE + 0.5·(Dice + 1.2·Focal) + 0.5·H2FR).
"""

from hyperleaf.losses.segmentation import LeafSegmentationLoss, dice_loss, focal_loss

__all__ = ["LeafSegmentationLoss", "dice_loss", "focal_loss"]
