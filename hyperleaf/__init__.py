"""hyperleaf: hyperbolic geometry for multimodal image fusion, on geoopt.

Layers (imports point one way): ``geometry`` (geoopt adapters) <- ``paper`` (the LEAF seed's
formulas) <- ``nn`` (H2FR, HDGFB) <- ``models`` (SHIP, LEAF nets) <- ``train``, ``cli``.
"""

from hyperleaf import compat, geometry, nn, paper
from hyperleaf.geometry import (
    ball,
    clip_features,
    dist,
    dist0,
    expmap0,
    logmap0,
    mobius_add,
    project,
)
from hyperleaf.nn import HDGFB, H2FRLoss

__version__ = "0.1.0"

__all__ = [
    "geometry",
    "paper",
    "nn",
    "compat",
    "H2FRLoss",
    "HDGFB",
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
