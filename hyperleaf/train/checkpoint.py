"""Checkpoints: everything needed to continue a run bit for bit, written atomically, read safely.

A checkpoint holds the model (geoopt ``ManifoldParameter``s and the learnable curvature
included), the optimizer state (RiemannianAdam's moments and step counts), the scheduler, the
step, the data position and every RNG state (torch, CUDA, NumPy, Python; one set per rank).
Files are ``checkpoints/step_XXXXXXXX.pt`` in the format :data:`FORMAT`.

Every value is a tensor or a plain Python value (RNG states included: NumPy's key as an int64
tensor, Python's state as a list of ints), so checkpoints are read with
``torch.load(weights_only=True)`` (:func:`hyperleaf.atomic.safe_torch_load`): a run folder from
someone else can hold a malicious pickle, and loading it must run nothing.

* :func:`save_checkpoint` refuses to write a state holding a non-finite floating tensor;
* :func:`load_checkpoint` raises :class:`CheckpointError` (one line: the file and what was
  expected) for anything that is not a complete hyperleaf checkpoint;
* :func:`find_resumable` walks a run's checkpoints newest first and reports which one it resumes
  from and which newer ones it skipped and why; it stops at a file refused as unsafe.

Example::

    >>> st = rng_state()
    >>> sorted(st), type(st["python"]["internal"]).__name__, st["numpy"]["keys"].dtype
    (['numpy', 'python', 'torch'], 'list', torch.int64)
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperleaf.atomic import (
    UnreadableFileError,
    UnsafeFileError,
    atomic_torch_save,
    safe_torch_load,
)

__all__ = ["FORMAT", "CheckpointError", "UnsafeCheckpointError", "NonFiniteStateError",
           "FoundCheckpoint", "rng_state", "set_rng_state", "save_checkpoint", "load_checkpoint",
           "validate_checkpoint", "find_resumable", "list_checkpoints", "checkpoint_path",
           "iter_tensors", "check_finite_state", "prune_checkpoints"]

#: The ``format`` entry of every checkpoint this module writes.
FORMAT = "hyperleaf-train-checkpoint/2"
_WHAT = f"a hyperleaf train checkpoint ({FORMAT})"

_NAME = re.compile(r"^step_(\d{8})\.pt$")


class CheckpointError(ValueError):
    """A file is not a loadable hyperleaf checkpoint; ``str()`` is ``"PATH: reason"``."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{self.path}: {reason}")


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file holds objects that could run code when unpickled; it was not loaded."""


class NonFiniteStateError(RuntimeError):
    """A state to be checkpointed holds NaN or infinite values (the message names them)."""


# --------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, Any]:
    """Every RNG state of this process, as tensors and plain values (``weights_only``-safe).

    ``torch``/``cuda``: torch's uint8 state tensors; ``numpy``: the MT19937 key as an int64
    tensor with its position and Gaussian cache; ``python``: ``random.getstate()`` as a list.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    st: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": [int(x) for x in internal],
                   "gauss_next": None if gauss_next is None else float(gauss_next)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    """Restore a state from :func:`rng_state`."""
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), int(n["pos"]),
                         int(n["has_gauss"]), float(n["cached_gaussian"])))
    p = st["python"]
    random.setstate((int(p["version"]), tuple(int(x) for x in p["internal"]), p["gauss_next"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# --------------------------------------------------------------------------- checks


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


def check_finite_state(state: dict[str, Any]) -> None:
    """Raise :class:`NonFiniteStateError` naming (up to five of) the non-finite tensors."""
    bad = [name for name, t in iter_tensors(state)
           if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteStateError(
            f"refusing to checkpoint non-finite tensors: {', '.join(bad[:5])}"
            + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _rng_problem(i: int, r: Any) -> str | None:
    where = f"rng[{i}]"
    if not isinstance(r, dict):
        return f"{where} is a {type(r).__name__}, expected a dict"
    t = r.get("torch")
    if not (isinstance(t, torch.Tensor) and t.dtype == torch.uint8):
        return f"{where}.torch is not a uint8 tensor"
    n = r.get("numpy")
    if not (isinstance(n, dict) and isinstance(n.get("keys"), torch.Tensor)
            and isinstance(n.get("kind"), str) and _is_int(n.get("pos"))
            and _is_int(n.get("has_gauss")) and isinstance(n.get("cached_gaussian"), float)):
        return f"{where}.numpy is not a NumPy RNG state (kind, keys tensor, pos, has_gauss, " \
               "cached_gaussian)"
    p = r.get("python")
    if not (isinstance(p, dict) and _is_int(p.get("version"))
            and isinstance(p.get("internal"), (list, tuple))
            and all(_is_int(x) for x in p["internal"])
            and (p.get("gauss_next") is None or isinstance(p.get("gauss_next"), float))):
        return f"{where}.python is not a Python RNG state (version, internal ints, gauss_next)"
    if "cuda" in r and not (isinstance(r["cuda"], (list, tuple))
                            and all(isinstance(x, torch.Tensor) for x in r["cuda"])):
        return f"{where}.cuda is not a list of tensors"
    return None


def _problem(st: Any) -> str | None:
    """What makes ``st`` not a complete :data:`FORMAT` checkpoint, or None."""
    if not isinstance(st, dict):
        return f"holds a {type(st).__name__}, expected a dict"
    fmt = st.get("format")
    if fmt != FORMAT:
        return f"format is {fmt!r}, expected {FORMAT!r}"
    need = {"step": int, "model": dict, "optimizer": dict, "scheduler": dict, "rng": list,
            "world_size": int, "data": dict, "counters": dict, "log_window": list,
            "config": dict}
    missing = sorted(k for k in need if k not in st)
    if missing:
        return f"missing {', '.join(missing)}"
    wrong = sorted(k for k, t in need.items()
                   if not isinstance(st[k], t) or (t is int and isinstance(st[k], bool)))
    if wrong:
        return "wrong type for " + ", ".join(f"{k} ({type(st[k]).__name__}, expected "
                                             f"{need[k].__name__})" for k in wrong)
    if st["step"] < 0 or st["world_size"] < 1:
        return f"step {st['step']} / world_size {st['world_size']} out of range"
    bad = [k for k, v in st["model"].items()
           if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        return f"model entries that are not named tensors: {bad[:3]}"
    opt = st["optimizer"]
    if not (isinstance(opt.get("state"), dict) and isinstance(opt.get("param_groups"), list)):
        return "optimizer lacks 'state' (dict) and 'param_groups' (list)"
    if len(st["rng"]) != st["world_size"]:
        return f"{len(st['rng'])} RNG state(s) for world_size {st['world_size']}"
    for i, r in enumerate(st["rng"]):
        msg = _rng_problem(i, r)
        if msg:
            return msg
    counters = st["counters"]
    if not all(_is_int(counters.get(k)) for k in ("skipped_nonfinite", "consecutive")):
        return "counters lack integer 'skipped_nonfinite' and 'consecutive'"
    return None


def validate_checkpoint(st: Any, path: str | Path = "<checkpoint>") -> dict[str, Any]:
    """Return ``st`` if it is a complete :data:`FORMAT` checkpoint, else raise
    :class:`CheckpointError` naming ``path``, the first problem and what was expected.

    >>> try:
    ...     validate_checkpoint({"format": FORMAT, "model": {}}, "x.pt")
    ... except CheckpointError as exc:
    ...     print(exc.reason)
    not a hyperleaf train checkpoint (hyperleaf-train-checkpoint/2): missing config, counters, data, log_window, optimizer, rng, scheduler, step, world_size
    """
    problem = _problem(st)
    if problem:
        raise CheckpointError(path, f"not {_WHAT}: {problem}")
    return st


# --------------------------------------------------------------------------- files


def checkpoint_path(folder: str | Path, step: int) -> Path:
    return Path(folder) / f"step_{step:08d}.pt"


def save_checkpoint(folder: str | Path, step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``folder/step_XXXXXXXX.pt`` atomically, after checking every floating
    tensor is finite (:class:`NonFiniteStateError` otherwise; nothing is written)."""
    check_finite_state(state)
    return atomic_torch_save(checkpoint_path(folder, step), state)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint` (CPU tensors).

    Read with ``weights_only=True``: nothing in the file can run code. Raises
    :class:`UnsafeCheckpointError` for a pickle holding other objects and
    :class:`CheckpointError` for a damaged file or one that is not a complete checkpoint.
    """
    p = Path(path)
    try:
        st = safe_torch_load(p, what=_WHAT)
    except UnsafeFileError as exc:
        raise UnsafeCheckpointError(p, str(exc).removeprefix(f"{p}: ")) from None
    except (UnreadableFileError, FileNotFoundError) as exc:
        raise CheckpointError(p, str(exc).removeprefix(f"{p}: ")) from None
    return validate_checkpoint(st, p)


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


@dataclass
class FoundCheckpoint:
    """The checkpoint a resume continues from, and the newer files it had to skip."""

    path: Path
    state: dict[str, Any]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why), newest first

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def report(self) -> list[str]:
        """Lines saying what was skipped and what is resumed, for the user."""
        lines = [f"skipped {p.name}: {why}" for p, why in self.skipped]
        lines.append(f"resuming from {self.path.name} (step {self.step})")
        return lines


def find_resumable(folder: str | Path) -> FoundCheckpoint | None:
    """The newest checkpoint in ``folder`` that loads, with the newer ones that did not.

    Returns None when ``folder`` holds no checkpoint file at all. Raises
    :class:`UnsafeCheckpointError` at the first file refused as unsafe (a resume does not
    continue past a file someone may have planted) and :class:`CheckpointError` when checkpoint
    files exist but none loads (the message lists each file and why).
    """
    skipped: list[tuple[Path, str]] = []
    found = list_checkpoints(folder)
    for _, p in reversed(found):
        try:
            return FoundCheckpoint(p, load_checkpoint(p), skipped)
        except UnsafeCheckpointError as exc:
            raise UnsafeCheckpointError(
                exc.path, f"{exc.reason}; the resume stops here rather than fall back to an older "
                "checkpoint: remove this file if the run folder is otherwise trusted") from None
        except CheckpointError as exc:
            skipped.append((p, exc.reason))
    if not found:
        return None
    raise CheckpointError(Path(folder), "no checkpoint can be loaded ("
                          + "; ".join(f"{p.name}: {why}" for p, why in skipped) + ")")


def prune_checkpoints(folder: str | Path, keep: int = 2) -> None:
    """Delete all but the ``keep`` newest checkpoints."""
    for _, p in list_checkpoints(folder)[:-keep]:
        p.unlink(missing_ok=True)
