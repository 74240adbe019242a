"""Checks of the paths a command line names, made before anything is written.

A command validates every output path first (:func:`check_output_dir`,
:func:`check_output_file`) and creates folders only when it is about to write into them
(:func:`make_output_dir`), so that a rejected invocation leaves nothing behind. Each check raises
:class:`PathError` (a ``ValueError``) whose message starts with the flag and names the path::

    >>> check_output_dir("/dev/null", "--out")
    Traceback (most recent call last):
    ...
    hyperleaf.cli.paths.PathError: --out: /dev/null exists and is not a folder

Standard library only: these run before torch is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PathError", "check_output_dir", "check_output_file", "make_output_dir"]


class PathError(ValueError):
    """A path given on the command line cannot be used; the message names the flag and path."""


def _check_creatable(path: Path, flag: str) -> None:
    """``path`` does not exist: its nearest existing ancestor must be a writable folder (a
    regular file in the way, e.g. ``FILE/leaf.png``, is named)."""
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:  # pragma: no cover - the root always exists
            break
        parent = parent.parent
    if not parent.is_dir():
        raise PathError(f"{flag}: cannot create {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError(f"{flag}: cannot create {path}: folder {parent} is not writable")


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as an output folder: an existing writable folder, or creatable (nothing in the
    way). Creates nothing; returns the path."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise PathError(f"{flag}: {p} exists and is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise PathError(f"{flag}: folder {p} is not writable")
        return p
    _check_creatable(p, flag)
    return p


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as an output file, to be replaced atomically: not a folder, and its folder
    exists writable or can be created. Creates nothing; returns the path."""
    p = Path(path)
    if p.is_dir():
        raise PathError(f"{flag}: {p} is a folder; expected a file name")
    if p.parent.exists():
        if not p.parent.is_dir():
            raise PathError(f"{flag}: cannot create {p}: {p.parent} is a file, not a folder")
        if not os.access(p.parent, os.W_OK | os.X_OK):
            raise PathError(f"{flag}: cannot write {p}: folder {p.parent} is not writable")
        return p
    _check_creatable(p.parent, flag)
    return p


def make_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """Create the (checked) output folder ``path`` and its parents; :class:`PathError` if that
    fails after all (e.g. a file appeared in the way meanwhile)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PathError(f"{flag}: cannot create folder {p}: {exc.strerror or exc}") from None
    return p
