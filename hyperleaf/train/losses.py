"""Old home of the fusion losses (now :mod:`hyperleaf.losses.fusion`) and of the segmentation
scores :func:`confusion_matrix` / :func:`miou` (now :mod:`hyperleaf.metrics.segmentation`);
re-exported.
"""

from __future__ import annotations

from hyperleaf.filters import sobel_magnitude
from hyperleaf.losses.fusion import FusionLoss
from hyperleaf.metrics.segmentation import confusion_matrix, miou

__all__ = ["sobel_magnitude", "FusionLoss", "confusion_matrix", "miou"]
