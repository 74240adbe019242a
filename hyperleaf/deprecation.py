"""One helper for renamed keyword arguments (old name accepted with a DeprecationWarning)."""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["renamed_kwarg", "positional_to_keywords", "moved_name"]


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


def positional_to_keywords(where: str, new_form: str, names: tuple[str, ...],
                           args: tuple[Any, ...], given: dict[str, Any],
                           defaults: dict[str, Any]) -> dict[str, Any]:
    """Map ``args`` (a former positional call) onto ``names``, with a ``DeprecationWarning``
    naming ``new_form``; ``given`` holds the keyword values (``defaults[name]`` when not
    passed). Returns ``given`` updated; ``TypeError`` for too many arguments or one passed
    both ways.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     out = positional_to_keywords("f", "f(x, a=..., b=...)", ("a", "b"), (1, 2),
    ...                                  {"a": None, "b": None}, {"a": None, "b": None})
    >>> out, str(w[0].message)
    ({'a': 1, 'b': 2}, 'f: passing a, b by position is deprecated; use f(x, a=..., b=...)')
    """
    if len(args) > len(names):
        raise TypeError(f"{where}: takes at most {len(names)} arguments after the first, got "
                        f"{len(args)}; use {new_form}")
    passed = names[:len(args)]
    warnings.warn(f"{where}: passing {', '.join(passed)} by position is deprecated; use "
                  f"{new_form}", DeprecationWarning, stacklevel=3)
    out = dict(given)
    for name, value in zip(passed, args, strict=True):
        if given[name] is not defaults[name]:
            raise TypeError(f"{where}: got {name} both by position and by keyword")
        out[name] = value
    return out


def moved_name(old_module: str, name: str, new_home: str, value: Any) -> Any:
    """``value`` (the object ``old_module.name`` now is), with a ``DeprecationWarning`` naming
    ``new_home`` (where to import it from): what the module-level ``__getattr__`` of an old
    import path returns (``hyperleaf.train.losses``, ``hyperleaf.train.objective``, ...).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     moved_name("old.place", "f", "new.place", len)([1, 2]), str(w[0].message)
    (2, 'old.place.f is deprecated; import it from new.place')
    """
    warnings.warn(f"{old_module}.{name} is deprecated; import it from {new_home}",
                  DeprecationWarning, stacklevel=3)
    return value
