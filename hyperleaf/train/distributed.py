"""Deprecated old path: the process-group helpers are :mod:`hyperleaf.distributed`. Each former
name still resolves here, with a ``DeprecationWarning`` naming its new home.

Example::

    >>> import warnings
    >>> import hyperleaf.train.distributed as old
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     f = old.world_size
    >>> f.__module__, w[0].category.__name__
    ('hyperleaf.distributed', 'DeprecationWarning')
"""

from __future__ import annotations

from typing import Any

from hyperleaf.deprecation import moved_name

#: Former names of this module -> the module that now holds each.
MOVED: dict[str, str] = dict.fromkeys(
    ("world_size", "rank", "is_distributed", "init_from_env", "gather_batch", "gather_levels",
     "all_reduce_mean", "any_true", "barrier"), "hyperleaf.distributed")

__all__ = sorted(MOVED)  # noqa: PLE0605 - resolved by __getattr__


def __getattr__(name: str) -> Any:
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from hyperleaf import distributed

    return moved_name(__name__, name, MOVED[name], getattr(distributed, name))
