"""Training losses, one module per task family.

* :mod:`hyperleaf.losses.fusion` -- :class:`FusionLoss`, SHIP's unsupervised infrared-visible
  losses (intensity, Sobel gradient, SSIM).
* :mod:`hyperleaf.losses.segmentation`: the LEAF authors' segmentation recipe (CE, Dice, Focal,
  and :class:`LeafSegmentationLoss` = CE + 0.5·(Dice + 1.2·Focal) + 0.5·H2FR).
* :mod:`hyperleaf.losses.ship_authors`: the SHIP authors' infrared-visible recipe
  (``3 L_mask + 10 L_max + 10 L_grad``) and the visual-saliency mask of Ma et al. (2017) it
  needs.

A new loss goes into the module of its task family, is re-exported here and registered in
:data:`LOSSES` under the name a configuration's ``loss`` / ``seg_loss`` key gives, with a
``from_config(cfg)`` constructor reading its weights (attribute access only), and its task. Losses may import
``geometry``, ``paper``, ``nn``, ``filters`` and ``metrics``; never ``models``, ``tasks``,
``train`` or ``cli``.
"""

from typing import Any

from hyperleaf.losses.fusion import FusionLoss
from hyperleaf.losses.segmentation import LeafSegmentationLoss, dice_loss, focal_loss
from hyperleaf.losses.ship_authors import (
    ShipAuthorsLoss,
    saliency_map,
    ship_authors_loss,
    visible_mask,
)
from hyperleaf.registry import Registry

#: The loss registry: configuration name -> loss class (with ``task`` and ``from_config``).
LOSSES: Registry[Any] = Registry("loss")
LOSSES.add("hyperleaf", FusionLoss)
LOSSES.add("ship-authors", ShipAuthorsLoss)
LOSSES.add("leaf-authors", LeafSegmentationLoss)


def get_loss(name: str) -> Any:
    """The loss class registered as ``name`` (``ValueError`` lists the known names)."""
    return LOSSES.get(name)


def list_losses(task: str | None = None) -> list[str]:
    """Names of the registered losses (of ``task`` only, when given).

    >>> list_losses("fuse")
    ['hyperleaf', 'ship-authors']
    """
    return [n for n in LOSSES.names() if task is None or LOSSES.get(n).task == task]


__all__ = ["LOSSES", "get_loss", "list_losses", "FusionLoss", "LeafSegmentationLoss", "dice_loss", "focal_loss", "ShipAuthorsLoss",
           "ship_authors_loss", "saliency_map", "visible_mask"]
