"""hyperleaf: hyperbolic geometry for multimodal image fusion, on geoopt.

Layers (imports point one way): ``geometry`` (geoopt adapters) <- ``paper`` (the LEAF seed's
formulas) <- ``nn`` (H2FR, HDGFB) <- ``models`` (SHIP, LEAF nets) <- ``train``, ``cli``.

The public names below are imported on first use (PEP 562 module ``__getattr__``): importing
``hyperleaf`` itself, or ``hyperleaf.cli``, does not import torch or geoopt, so that
``hyperleaf --help`` answers at once. ``hyperleaf.expmap0`` etc. behave exactly as eager
imports would (the first access imports :mod:`hyperleaf.geometry`, later ones find it bound).

Example::

    >>> import hyperleaf as hl
    >>> hl.expmap0 is hl.geometry.expmap0
    True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (a submodule maps to itself)
_WHERE = {
    "geometry": "hyperleaf.geometry",
    "paper": "hyperleaf.paper",
    "nn": "hyperleaf.nn",
    "compat": "hyperleaf.compat",
    "H2FRLoss": "hyperleaf.nn",
    "HDGFB": "hyperleaf.nn",
    "ball": "hyperleaf.geometry",
    "clip_features": "hyperleaf.geometry",
    "dist": "hyperleaf.geometry",
    "dist0": "hyperleaf.geometry",
    "expmap0": "hyperleaf.geometry",
    "logmap0": "hyperleaf.geometry",
    "mobius_add": "hyperleaf.geometry",
    "project": "hyperleaf.geometry",
}

# written out (not derived from _WHERE) so that linters see the names the block below imports
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

if TYPE_CHECKING:  # static analysers and IDEs see ordinary imports
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


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'hyperleaf' has no attribute {name!r}")
    module = importlib.import_module(where)
    value = module if where == f"hyperleaf.{name}" else getattr(module, name)
    globals()[name] = value  # bind it: later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
