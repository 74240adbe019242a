"""Converters between other code's weights and hyperleaf's modules.

* ``hdgfb_from_reference(state_dict)``: the LEAF seed's ``HyperbolicAttentionFusion`` -> ``HDGFB``
  (:mod:`hyperleaf.compat.hdgfb`);
* ``ship_from_official(path_or_state_dict)``: the SHIP authors' infrared-visible checkpoint ->
  ``hyperleaf.models.SHIP`` (:mod:`hyperleaf.compat.ship`);
* ``leaf_from_reference(path_or_state_dict, num_classes=...)`` / ``save_leaf_reference(net, path)``:
  the LEAF authors' ``DualInputHyperbolicUNet`` checkpoints <-> ``hyperleaf.models.LEAFUNet``, and
  ``hdgfb3d_from_reference(state_dict)``: their ``HyperbolicAttentionFusion3D`` ->
  ``hyperleaf.nn.HDGFB3DReference`` (:mod:`hyperleaf.compat.leaf`).

Each lives in its own module and is imported on first use, so that importing one converter does
not import every model.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "hdgfb_from_reference": "hyperleaf.compat.hdgfb",
    "ship_from_official": "hyperleaf.compat.ship",
    "ShipCheckpointError": "hyperleaf.compat.ship",
    "leaf_from_reference": "hyperleaf.compat.leaf",
    "save_leaf_reference": "hyperleaf.compat.leaf",
    "hdgfb3d_from_reference": "hyperleaf.compat.leaf",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'hyperleaf.compat' has no attribute {name!r}")
