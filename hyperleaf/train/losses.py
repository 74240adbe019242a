"""Deprecated old path: the fusion losses are in :mod:`hyperleaf.losses.fusion`, the Sobel
filter in :mod:`hyperleaf.filters`, the segmentation scores :func:`confusion_matrix` /
:func:`miou` in :mod:`hyperleaf.metrics.segmentation`. Each former name still resolves here,
with a ``DeprecationWarning`` naming its new home.

Example::

    >>> import warnings
    >>> import hyperleaf.train.losses as old
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     loss = old.FusionLoss
    >>> loss.__module__, w[0].category.__name__
    ('hyperleaf.losses.fusion', 'DeprecationWarning')
"""

from __future__ import annotations

from typing import Any

from hyperleaf.deprecation import moved_name

#: Former names of this module -> the module that now holds each.
MOVED: dict[str, str] = {"sobel_magnitude": "hyperleaf.filters",
                         "FusionLoss": "hyperleaf.losses.fusion",
                         "confusion_matrix": "hyperleaf.metrics.segmentation",
                         "miou": "hyperleaf.metrics.segmentation"}

__all__ = sorted(MOVED)  # noqa: PLE0605 - resolved by __getattr__


def __getattr__(name: str) -> Any:
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from hyperleaf import filters
    from hyperleaf.losses import fusion
    from hyperleaf.metrics import segmentation

    module = {"hyperleaf.filters": filters, "hyperleaf.losses.fusion": fusion,
              "hyperleaf.metrics.segmentation": segmentation}[MOVED[name]]
    return moved_name(__name__, name, MOVED[name], getattr(module, name))
