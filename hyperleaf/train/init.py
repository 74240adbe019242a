"""Initial weights for a training run (``hyperleaf train --init PATH``): fine-tuning.

``PATH`` is either the SHIP authors' released checkpoint (a ``.pth``/``.pt`` file, read by
:func:`hyperleaf.compat.ship.ship_from_official`: ``torch.load(weights_only=True)`` and strict
name/shape checks) or a finished hyperleaf run (its folder, or its ``model.safetensors``).

Parts the source does not have keep their fresh initialisation; only LEAF's additions may be
missing (``net.hdgfb*`` and the ``head``). SHIP adds each HDGFB's output through a 1x1
convolution initialised to zero, so a LEAF model started from plain SHIP weights computes
exactly the plain network (tested bit for bit against the authors' model) until training moves
those projections.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file

from hyperleaf.compat.ship import load_official_state_dict, ship_from_official
from hyperleaf.train.config import ConfigError

__all__ = ["init_objective"]

#: State-dict prefixes (of the training objective) that a source may lack: LEAF's additions.
_LEAF_PREFIXES = ("net.hdgfb.", "net.hdgfb_proj.", "head.")


def init_objective(objective: nn.Module, path: str | Path) -> list[str]:
    """Load initial weights into ``objective`` (a fusion objective: ``objective.net`` is SHIP).

    Args:
        objective: the module :func:`hyperleaf.train.build_objective` returns for the fusion
            task.
        path: the authors' SHIP checkpoint (file ending in ``.pth``/``.pt``), a hyperleaf run
            folder, or a ``model.safetensors`` file.

    Returns:
        The sorted state-dict keys of ``objective`` that were left at their initialisation.

    Raises:
        ConfigError: the path does not exist, is of an unknown kind, or its tensors do not fit
            the configured model (the message names ``init`` and the mismatch).

    Example::

        >>> obj = build_objective(TrainConfig(n_feat=16))                     # doctest: +SKIP
        >>> init_objective(obj, "../shared/checkpoints/ship_irvis_official.pth")  # doctest: +SKIP
    """
    p = Path(path)
    net = getattr(objective, "net", None)
    if net is None or not hasattr(net, "new_parameter_names"):
        raise ConfigError("init: initial weights apply to the fusion task (a SHIP network)")
    if p.is_file() and p.suffix in (".pth", ".pt"):
        source = _official(net, p)
    elif p.is_dir() or (p.is_file() and p.suffix == ".safetensors"):
        source = _run_weights(p)
    elif not p.exists():
        raise ConfigError(f"init: {p} does not exist")
    else:
        raise ConfigError(f"init: {p} is neither the SHIP authors' checkpoint (.pth/.pt) nor a "
                          "hyperleaf run folder or model.safetensors")
    own = objective.state_dict()
    extra = sorted(k for k in source if k not in own)
    if extra:
        raise ConfigError(f"init: {p} has {len(extra)} tensor(s) this model lacks, e.g. "
                          f"{extra[:3]} (a LEAF run into a model with leaf: false, or another "
                          "task?)")
    for k, v in source.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ConfigError(f"init: {p}: tensor {k} has shape {tuple(v.shape)}, the model "
                              f"{tuple(own[k].shape)} (set n_feat / ball_dim / hdgfb_hidden "
                              "as in the source)")
    missing = sorted(k for k in own if k not in source)
    not_leaf = [k for k in missing if not k.startswith(_LEAF_PREFIXES)]
    if not_leaf:
        raise ConfigError(f"init: {p} lacks {len(not_leaf)} tensor(s) of the network, e.g. "
                          f"{not_leaf[:3]}")
    result = objective.load_state_dict(source, strict=False)
    if result.unexpected_keys or not set(result.missing_keys) <= set(missing):
        raise ConfigError(f"init: {p}: unexpected load result {result}")
    return missing


def _official(net: nn.Module, p: Path) -> dict[str, torch.Tensor]:
    try:
        sd = load_official_state_dict(p)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise ConfigError(f"init: {exc}") from exc
    if "vis.conv.weight" in sd:
        n = int(sd["vis.conv.weight"].shape[0])
        if n != net.n_feat:
            raise ConfigError(f"init: {p} holds SHIP with n_feat {n}, the configured model has "
                              f"n_feat {net.n_feat}; set n_feat: {n}")
    # The strict checks of the released architecture; the throw-away SHIP draws random
    # initial values, which must not shift this run's random streams.
    with torch.random.fork_rng(devices=[]):
        try:
            plain = ship_from_official(sd, n_feat=net.n_feat)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"init: {p}: {exc}") from exc
    return {f"net.{k}": v for k, v in plain.state_dict().items()}


def _run_weights(p: Path) -> dict[str, torch.Tensor]:
    f = p / "model.safetensors" if p.is_dir() else p
    if not f.is_file():
        raise ConfigError(f"init: {p} holds no model.safetensors (is it a finished hyperleaf "
                          "train run?)")
    try:
        return load_file(str(f), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"init: cannot read {f}: {exc}") from exc
