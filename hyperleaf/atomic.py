"""Safe file I/O: atomic writes and ``torch.load`` that never runs code.

Writes go to a temporary file in the destination folder, are fsynced, then renamed over the
target with ``os.replace``, so a reader (or a run killed with SIGKILL) never sees a half-written
file. The finished file gets the permissions of an ordinary ``open(path, "w")``: ``0o666`` minus
the user's umask (``0o644`` under umask ``022``), not ``mkstemp``'s private ``0o600``.

Reading PyTorch files goes through :func:`safe_torch_load`: ``weights_only=True`` (tensors and
plain Python values only), so a pickle whose objects would run code when rebuilt is refused
before anything of it runs, with hyperleaf's own one-line message.

Example::

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(d / "a" / "note.txt", "hello").read_text()
    'hello'
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_torch_save",
           "atomic_write_jsonl", "atomic_write_path", "safe_torch_load", "UnreadableFileError",
           "UnsafeFileError", "LocationError", "check_writable_location", "prepare_parent",
           "default_file_mode"]


class LocationError(ValueError):
    """A file or folder cannot be created where asked (a path component is an existing file)."""


class UnreadableFileError(ValueError):
    """A file is not what it should be: damaged, truncated, or of another kind."""


class UnsafeFileError(UnreadableFileError):
    """A file holds objects that could run code when unpickled; it was refused, unread."""


# --------------------------------------------------------------------------- locations


def check_writable_location(path: str | Path, *, folder: bool = False) -> Path:
    """Check that ``path`` can be created: no existing component above it is a regular file
    (and ``path`` itself is not one when ``folder`` is true). Nothing is created.

    Raises :class:`LocationError` naming the component. Permission problems are left to the
    write itself (they are reported by the OS error).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "file"
    >>> _ = f.write_text("x")
    >>> try:
    ...     check_writable_location(f / "leaf.png")
    ... except LocationError as exc:
    ...     print(str(exc).replace(str(f.parent), "D"))
    cannot create D/file/leaf.png: D/file is a file, not a folder
    """
    p = Path(path)
    parents = [p] if folder else []
    parents += list(p.parents)
    for q in reversed(parents):  # from the root down: name the first offending component
        if q.exists() and not q.is_dir():
            kind = "a file" if q.is_file() else "something else"
            raise LocationError(f"cannot create {p}: {q} is {kind}, not a folder")
    return p


def check_output_file(path: str | Path, *, key: str = "path") -> Path:
    """Check, before any work, that a file can be written at ``path``: it is not an existing
    folder, no existing component above it is a file, and the nearest existing folder above it
    is writable. Nothing is created. ``key`` names the argument in the message.

    Raises :class:`LocationError`.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> check_output_file(Path(d) / "new" / "rows.json").name
    'rows.json'
    >>> try:
    ...     check_output_file(d, key="json")
    ... except LocationError as exc:
    ...     print(str(exc).replace(d, "D"))
    json: D is a folder; expected a file path
    """
    p = Path(path)
    if p.is_dir():
        raise LocationError(f"{key}: {p} is a folder; expected a file path")
    try:
        check_writable_location(p)
    except LocationError as exc:
        raise LocationError(f"{key}: {exc}") from None
    existing = next((q for q in p.parents if q.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise LocationError(f"{key}: cannot write {p}: {existing} is not writable")
    return p


def prepare_parent(path: str | Path) -> Path:
    """Create the folders above ``path`` after :func:`check_writable_location`; returns ``path``."""
    p = check_writable_location(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


# --------------------------------------------------------------------------- writes


def default_file_mode() -> int:
    """``0o666`` minus the process umask: the mode ``open(path, "w")`` would give a new file."""
    # Reading the umask means setting it; /proc gives it without a (racy) set-and-restore.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _finish(tmp: str, target: Path) -> None:
    os.chmod(tmp, default_file_mode())
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_write_path(path: str | Path) -> Iterator[Path]:
    """Context manager for writers that need a *path* (e.g. ``safetensors``): yields a temporary
    path beside ``path``; on a clean exit the file is fsynced, given the umask's mode and renamed
    over ``path``; on an exception it is removed and ``path`` is left as it was.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.bin"
    >>> with atomic_write_path(target) as tmp:
    ...     _ = tmp.write_bytes(b"123")
    >>> target.read_bytes()
    b'123'
    """
    p = prepare_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _finish(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | Path, writer: Callable[[IO[bytes]], None]) -> Path:
    """Call ``writer(fh)`` on a temporary binary file next to ``path`` and rename it over
    ``path``; the temporary file is removed if ``writer`` fails. Parent folders are created."""
    p = prepare_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _finish(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return p


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch  # lazy: atomic and io (which imports it) stay free of torch for the CLI

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write ``records`` as JSON lines to ``path`` atomically."""
    return atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


# --------------------------------------------------------------------------- safe reads

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def safe_torch_load(path: str | Path, *, what: str = "a PyTorch file of tensors",
                    allow: Sequence[Any] = ()) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with hyperleaf's errors.

    Only tensors and plain Python values (dicts, lists, tuples, numbers, strings, None) are
    rebuilt; any other object in the pickle is refused before it is created, so nothing in the
    file can run code.

    Args:
        path: the file.
        what: what the file should be, for the messages (e.g. ``"a hyperleaf checkpoint"``).
        allow: further classes/functions the file may name (``torch.serialization.safe_globals``),
            e.g. the exact NumPy scalar types another program's checkpoint holds; each one
            widens what a file can make the loader build, so list only data types.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        UnsafeFileError: the pickle holds other objects (named when torch reports them).
        UnreadableFileError: the file is damaged, truncated or not a PyTorch file.
    """
    import torch  # lazy: see atomic_torch_save

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file (expected {what})")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the error below says enough.
            warnings.simplefilter("ignore")
            with torch.serialization.safe_globals(list(allow)):
                return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Weights only load failed" in text:
            found = _GLOBAL.search(text)
            holds = f"a {found.group(1)} object" if found else "objects other than tensors"
            raise UnsafeFileError(
                f"{p}: refused to load: expected {what}, but it holds {holds}, which could run "
                "code when unpickled (hyperleaf only reads tensors and plain values)") from None
        raise UnreadableFileError(f"{p}: cannot be read as {what}: damaged pickle "
                                  f"({_one_line(text)})") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError, TypeError,
            AttributeError) as exc:
        # Truncated zips (RuntimeError), empty files (EOFError), text files (KeyError), ...
        reason = ("not a PyTorch file" if isinstance(exc, KeyError) else
                  "empty or cut short" if isinstance(exc, EOFError) else
                  _one_line(str(exc)) or type(exc).__name__)
        raise UnreadableFileError(f"{p}: cannot be read as {what} (damaged, truncated or not a "
                                  f"PyTorch file: {reason})") from None


def _one_line(text: str) -> str:
    """First sentence of ``text`` without ANSI escapes or line breaks."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
    first = text.split("\n", 1)[0]
    return first.split(". ", 1)[0].strip()

