"""Deprecated old path: LEAF's geometry diagnostics are in :mod:`hyperleaf.tasks.diagnostics`.
Each former name still resolves here, with a ``DeprecationWarning`` naming its new home.

Example::

    >>> import warnings
    >>> import hyperleaf.train.diagnostics as old
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     f = old.saturation_mask
    >>> f.__module__, w[0].category.__name__
    ('hyperleaf.tasks.diagnostics', 'DeprecationWarning')
"""

from __future__ import annotations

from typing import Any

from hyperleaf.deprecation import moved_name

#: Former names of this module -> the module that now holds each.
MOVED: dict[str, str] = dict.fromkeys(("STREAMS", "geometry_diagnostics", "saturation_mask"),
                                      "hyperleaf.tasks.diagnostics")

__all__ = sorted(MOVED)  # noqa: PLE0605 - resolved by __getattr__


def __getattr__(name: str) -> Any:
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from hyperleaf.tasks import diagnostics

    return moved_name(__name__, name, MOVED[name], getattr(diagnostics, name))
