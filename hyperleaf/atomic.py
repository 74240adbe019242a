"""Atomic file writes: a temporary file in the destination folder, fsync, then ``os.replace``,
so a reader (or a run killed with SIGKILL) never sees a half-written file."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_torch_save",
           "atomic_write_jsonl"]


def atomic_write(path: str | Path, writer: Callable[[IO[bytes]], None]) -> Path:
    """Call ``writer(fh)`` on a temporary binary file next to ``path`` and rename it over
    ``path``; the temporary file is removed if ``writer`` fails."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write ``records`` as JSON lines to ``path`` atomically."""
    return atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
