"""hyperleaf: hyperbolic geometry for multimodal image fusion, on geoopt.

Layers (imports point one way): ``geometry`` (geoopt adapters) <- ``paper`` (the LEAF seed's
formulas) <- ``nn`` (H2FR, HDGFB) <- ``models`` (SHIP, LEAF nets) <- ``train``, ``cli``.
"""

from hyperleaf import geometry, paper
from hyperleaf.geometry import ball, clip_features, dist, dist0, expmap0, logmap0, mobius_add, project

__version__ = "0.1.0"

__all__ = [
    "geometry",
    "paper",
    "ball",
    "clip_features",
    "dist",
    "dist0",
    "expmap0",
    "logmap0",
    "mobius_add",
    "project",
    "__version__",
]
