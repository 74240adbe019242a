"""The model registry: networks by name, so configurations and tasks never import a class.

A network is registered where it is defined::

    @register_model("ship")
    class SHIP(nn.Module): ...

and built by name with :func:`create_model`. Built-in networks are listed in
``_BUILTIN`` (name -> defining module) and imported on first use, so looking a name up does
not import every network.

Networks whose intermediate levels feed LEAF's H2FR loss implement :class:`LevelFeatures`.

Example:

    >>> from hyperleaf.models.registry import create_model, list_models
    >>> "ship" in list_models()
    True
    >>> create_model("ship", n_feat=8).n_feat
    8
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch.nn as nn
from torch import Tensor

from hyperleaf.registry import Registry

__all__ = ["register_model", "create_model", "get_model", "list_models", "LevelFeatures"]

#: Built-in networks: name -> module whose import registers it (add a line for a new network).
_BUILTIN: dict[str, str] = {
    "ship": "hyperleaf.models.ship",
    "leafseg": "hyperleaf.models.leafseg",
    "leaf-unet": "hyperleaf.models.leafunet",    # needs the seg extra (smp) to build
    "leaf-unet3d": "hyperleaf.models.leafunet",
}

#: The model registry (:class:`hyperleaf.registry.Registry`, shared by every kind of entry).
MODELS: Registry[Callable[..., nn.Module]] = Registry("model", _BUILTIN)

T = TypeVar("T", bound=Callable[..., nn.Module])


@runtime_checkable
class LevelFeatures(Protocol):
    """A network that exposes its per-level features (what LEAF's H2FR ranks).

    * ``level_channels``: channel count ``C_l`` of each level, shallow to deep (L >= 2 for H2FR);
    * ``forward_levels(*inputs) -> (output, levels)``: the ordinary output and, per level ``l``,
      a tuple ``(fused_l, modality_1_l, ..., modality_M_l)`` of ``(B, C_l, *spatial_l)`` maps
      (the fused map first, then one map per input modality in the order of ``inputs``).

    :class:`hyperleaf.nn.heads.LeafHead` turns ``levels`` into H2FR's ball points.
    """

    level_channels: Sequence[int]

    def forward_levels(self, *inputs: Tensor) -> tuple[Tensor, list[tuple[Tensor, ...]]]: ...


def register_model(name: str) -> Callable[[T], T]:
    """Class (or factory) decorator: make ``create_model(name, **kw)`` call it.

    Raises ``ValueError`` when ``name`` is already taken by another callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")

    def deco(factory: T) -> T:
        MODELS.add(name, factory, same=lambda a, b: a is b or getattr(a, "__qualname__", None)
                   == getattr(b, "__qualname__", None))
        return factory

    return deco


def get_model(name: str) -> Callable[..., nn.Module]:
    """The class (or factory) registered as ``name``; ``ValueError`` lists the known names."""
    return MODELS.get(name)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the network registered as ``name`` with keyword arguments ``kwargs``."""
    return get_model(name)(**kwargs)


def list_models() -> list[str]:
    """Sorted names of the registered and built-in networks."""
    return MODELS.names()
