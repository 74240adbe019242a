"""Deprecated old path: the segment task's objective is in :mod:`hyperleaf.tasks.segment`.
Each former name still resolves here, with a ``DeprecationWarning`` naming its new home.

Example::

    >>> import warnings
    >>> import hyperleaf.train.segment as old
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     obj = old.SegmentObjective
    >>> obj.__module__, w[0].category.__name__
    ('hyperleaf.tasks.segment', 'DeprecationWarning')
"""

from __future__ import annotations

from typing import Any

from hyperleaf.deprecation import moved_name

#: Former names of this module -> the module that now holds each.
MOVED: dict[str, str] = dict.fromkeys(("SegmentObjective", "build_segment_objective"),
                                      "hyperleaf.tasks.segment")

__all__ = sorted(MOVED)  # noqa: PLE0605 - resolved by __getattr__


def __getattr__(name: str) -> Any:
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from hyperleaf.tasks import segment

    return moved_name(__name__, name, MOVED[name], getattr(segment, name))
