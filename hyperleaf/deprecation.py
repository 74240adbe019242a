"""One helper for renamed keyword arguments (old name accepted with a DeprecationWarning)."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["renamed_kwarg"]


def renamed_kwarg(where: str, new: str, new_value: Any, old: str, old_value: Any,
                  default: Any = False) -> Any:
    """The value of ``new``; ``old`` (passed when ``old_value is not None``) is its former name:
    accepted with a ``DeprecationWarning``, an error when both are given differently.

    >>> renamed_kwarg("ball", "learn_c", True, "learnable", None)
    True
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     renamed_kwarg("ball", "learn_c", False, "learnable", True), w[0].category.__name__
    (True, 'DeprecationWarning')
    """
    if old_value is None:
        return new_value
    warnings.warn(f"{where}: {old}= is deprecated, use {new}=", DeprecationWarning, stacklevel=3)
    if new_value != default and new_value != old_value:
        raise TypeError(f"{where}: got both {new}={new_value!r} and its old name "
                        f"{old}={old_value!r}")
    return old_value
