"""Checkpoints: everything needed to continue a run bit for bit, written atomically.

A checkpoint holds the model (geoopt ``ManifoldParameter``s and the learnable curvature
included), the optimizer state (RiemannianAdam's moments and step counts), the scheduler, the
step, the data position and every RNG state (torch, CUDA, NumPy, Python; one set per rank).
Files are ``checkpoints/step_XXXXXXXX.pt``; :func:`save_checkpoint` refuses to write a state
holding a non-finite floating tensor, and :func:`latest_checkpoint` skips files that cannot be
loaded, so a run killed at any moment resumes from its last complete checkpoint.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperleaf.atomic import atomic_torch_save

__all__ = ["NonFiniteStateError", "rng_state", "set_rng_state", "save_checkpoint",
           "load_checkpoint", "latest_checkpoint", "list_checkpoints", "checkpoint_path",
           "iter_tensors", "prune_checkpoints"]

_NAME = re.compile(r"^step_(\d{8})\.pt$")


class NonFiniteStateError(RuntimeError):
    """A state to be checkpointed holds NaN or infinite values (the message names them)."""


def rng_state() -> dict[str, Any]:
    """Every RNG state of this process."""
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    """Restore a state from :func:`rng_state`."""
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def iter_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """``(path, tensor)`` for every tensor nested in dicts/lists/tuples of ``obj``."""
    if isinstance(obj, torch.Tensor):
        yield prefix or "<root>", obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from iter_tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from iter_tensors(v, f"{prefix}[{i}]")


def _check_finite(state: dict[str, Any]) -> None:
    bad = [name for name, t in iter_tensors(state)
           if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteStateError(
            f"refusing to checkpoint non-finite tensors: {', '.join(bad[:5])}"
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))


def checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"


def save_checkpoint(folder: str | Path, step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``folder/step_XXXXXXXX.pt`` atomically, after checking every floating
    tensor is finite (:class:`NonFiniteStateError` otherwise; nothing is written)."""
    _check_finite(state)
    return atomic_torch_save(checkpoint_path(folder, step), state)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (CPU tensors)."""
    # weights_only=False: the state holds NumPy/Python RNG states; these files are written by
    # this module in the user's own run folder, never downloaded.
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the checkpoint files in ``folder``, by step."""
    d = Path(folder)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = _NAME.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(folder: str | Path) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint in ``folder`` that loads, or None."""
    for _, p in reversed(list_checkpoints(folder)):
        try:
            return load_checkpoint(p), p
        except Exception:  # noqa: BLE001 - a damaged file: fall back to the previous one
            continue
    return None


def prune_checkpoints(folder: str | Path, keep: int = 2) -> None:
    """Delete all but the ``keep`` newest checkpoints."""
    for _, p in list_checkpoints(folder)[:-keep]:
        p.unlink(missing_ok=True)
