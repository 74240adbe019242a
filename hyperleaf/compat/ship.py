"""Load the SHIP authors' released infrared-visible checkpoint into :class:`hyperleaf.models.SHIP`.

The checkpoint is a pickled dict ``{"params": {name: tensor}}`` (484 tensors). hyperleaf's
module tree uses the same names, so conversion is a strict one-to-one copy; the checks below
make every mismatch an error that names the tensor.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from hyperleaf.atomic import UnreadableFileError, safe_torch_load
from hyperleaf.models.ship import SHIP

__all__ = ["load_official_state_dict", "ship_from_official", "ShipCheckpointError"]

log = logging.getLogger(__name__)

_WHAT = "SHIP weights (a PyTorch file holding {'params': {name: tensor}})"


class ShipCheckpointError(ValueError):
    """A SHIP weights file is missing, damaged, refused as unsafe, or holds something else; the
    message names the file and what was expected."""


def load_official_state_dict(path_or_state_dict: str | os.PathLike | Mapping[str, Any]
                             ) -> dict[str, Tensor]:
    """The ``params`` dict of the authors' checkpoint (a path or an already loaded dict).

    Files are read with :func:`hyperleaf.atomic.safe_torch_load` (``weights_only=True``: only
    tensors and plain values are rebuilt, so a malicious pickle runs nothing and is refused with
    :class:`ShipCheckpointError`). A dict with a ``params`` key is unwrapped; a plain
    name -> tensor dict is used as is.
    """
    obj: Any = path_or_state_dict
    source = "path_or_state_dict"
    if isinstance(obj, (str, os.PathLike)):
        p = Path(obj)
        source = str(p)
        try:
            obj = safe_torch_load(p, what=_WHAT)
        except FileNotFoundError:
            raise FileNotFoundError(f"SHIP weights not found: {p}") from None
        except UnreadableFileError as exc:
            raise ShipCheckpointError(str(exc)) from exc
        if not isinstance(obj, Mapping):
            raise ShipCheckpointError(f"{p}: expected {_WHAT}, got a {type(obj).__name__}")
    if not isinstance(obj, Mapping):
        raise TypeError(f"path_or_state_dict: expected a path or a dict, got {type(obj).__name__}")
    if "params" in obj:
        obj = obj["params"]
        if not isinstance(obj, Mapping):
            raise ShipCheckpointError(f"{source}: 'params' holds a {type(obj).__name__}, "
                                      "expected a dict of tensors")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise ShipCheckpointError(f"{source}: entries that are not tensors: {bad[:5]} "
                                  f"(expected {_WHAT})")
    return dict(obj)


def ship_from_official(path_or_state_dict: str | os.PathLike | Mapping[str, Any],
                       **kwargs: Any) -> SHIP:
    """Build :class:`SHIP` and load the authors' weights, strictly; returns it in eval mode.

    Every tensor of the checkpoint must be used and every parameter and buffer of the released
    architecture must be present with the right shape. Keyword arguments go to :class:`SHIP`
    (``n_feat`` is inferred from the weights when not given). With ``hdgfb=True`` the HDGFB
    parts are freshly initialised: their names are logged and stored on the model as
    ``model.missing_keys`` (empty for the plain released network).

    Example::

        >>> net = ship_from_official("ship_irvis_official.pth")   # doctest: +SKIP
        >>> fused = net(vis, ir)                                   # doctest: +SKIP
    """
    sd = load_official_state_dict(path_or_state_dict)
    if "n_feat" not in kwargs and "vis.conv.weight" in sd:
        kwargs["n_feat"] = int(sd["vis.conv.weight"].shape[0])
    model = SHIP(**kwargs)
    own = model.state_dict()
    new = set(model.new_parameter_names())
    unexpected = sorted(k for k in sd if k not in own)
    missing = sorted(k for k in own if k not in sd and k not in new)
    if unexpected or missing:
        raise KeyError(
            "SHIP checkpoint does not match the released architecture: "
            f"{len(unexpected)} unexpected tensor(s) {unexpected[:5]}, "
            f"{len(missing)} missing {missing[:5]}"
        )
    for k, v in sd.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"SHIP checkpoint tensor {k}: shape {tuple(v.shape)}, expected "
                             f"{tuple(own[k].shape)}")
    result = model.load_state_dict(sd, strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) == new
    model.missing_keys = sorted(new)
    if new:
        log.info("SHIP: %d tensors freshly initialised (not in the checkpoint): %s",
                 len(new), ", ".join(sorted({k.split(".")[0] + "." + k.split(".")[1]
                                             for k in new})))
    return model.eval()
