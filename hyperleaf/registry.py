"""One registry class for everything hyperleaf looks up by name: tasks, models, metrics, losses.

A :class:`Registry` maps names to objects (a class, a factory, an instance). Built-in entries
are registered by importing their module on first use (``builtin``: name -> module), so that
looking a name up never imports more than it needs and a new entry is one decorated definition
plus one line there. Unknown names raise ``ValueError`` naming the kind and the known names.

A utility: it imports no hyperleaf layer (the import contract checks it).

>>> colours = Registry("colour")
>>> @colours.register("red")
... def red():
...     return (255, 0, 0)
>>> colours.get("red")(), colours.names()
((255, 0, 0), ['red'])
>>> colours.get("blue")
Traceback (most recent call last):
...
ValueError: colour: unknown name 'blue' (known: red)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")
F = TypeVar("F")


class Registry(Generic[T]):
    """Named entries of one ``kind`` (``"task"``, ``"model"``, ...), with lazily imported
    ``builtin`` modules (name -> the module whose import registers it)."""

    def __init__(self, kind: str, builtin: Mapping[str, str] | None = None):
        self.kind = kind
        self.builtin: dict[str, str] = dict(builtin or {})
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, same: Callable[[T, T], bool] | None = None) -> T:
        """Register ``entry`` as ``name``. Registering a name again is allowed only for the same
        entry (``same(old, new)``, default identity: a module imported twice); otherwise
        ``ValueError``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        old = self._entries.get(name)
        if old is not None and not (same or (lambda a, b: a is b))(old, entry):
            raise ValueError(f"{self.kind} {name!r} is already registered ({old!r})")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: register the decorated object as ``name`` and return it unchanged."""
        def deco(obj: F) -> F:
            self.add(name, obj)  # type: ignore[arg-type]
            return obj

        return deco

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plugin's or a test's entry; a built-in one comes back on its next
        :meth:`get`). ``KeyError`` when it is not registered."""
        if name not in self._entries:
            raise KeyError(f"name: no {self.kind} registered as {name!r}")
        del self._entries[name]

    def get(self, name: str) -> T:
        """The entry registered as ``name`` (importing its built-in module on first use)."""
        if name not in self._entries and name in self.builtin:
            importlib.import_module(self.builtin[name])
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"{self.kind}: unknown name {name!r} (known: "
                             f"{', '.join(self.names())})") from None

    def names(self) -> list[str]:
        """Sorted names of the registered and built-in entries."""
        return sorted(set(self._entries) | set(self.builtin))

    def loaded(self) -> dict[str, T]:
        """The entries registered so far (built-ins not yet imported are not in it)."""
        return dict(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self.builtin

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
