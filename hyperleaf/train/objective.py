"""Deprecated old path: the fusion objective is in :mod:`hyperleaf.tasks.fuse`, LEAF's head in
:mod:`hyperleaf.nn.heads`. Each former name still resolves here, with a ``DeprecationWarning``
naming its new home.

Example::

    >>> import warnings
    >>> import hyperleaf.train.objective as old
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     head = old.LeafHead
    >>> head.__module__, w[0].category.__name__
    ('hyperleaf.nn.heads', 'DeprecationWarning')
"""

from __future__ import annotations

from typing import Any

from hyperleaf.deprecation import moved_name

#: Former names of this module -> the module that now holds each.
MOVED: dict[str, str] = {"LeafHead": "hyperleaf.nn.heads", "Levels": "hyperleaf.nn.heads",
                         "ordering": "hyperleaf.nn.heads",
                         "FusionObjective": "hyperleaf.tasks.fuse"}

__all__ = sorted(MOVED)  # noqa: PLE0605 - resolved by __getattr__


def __getattr__(name: str) -> Any:
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from hyperleaf.nn import heads
    from hyperleaf.tasks import fuse

    module = heads if MOVED[name] == "hyperleaf.nn.heads" else fuse
    return moved_name(__name__, name, MOVED[name], getattr(module, name))
