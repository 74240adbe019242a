"""The :class:`Task` interface and the task registry.

A task is everything the training engine must not know about one kind of problem: which data it
trains and validates on, which module it optimises (network + loss), how one batch becomes a
loss, how it is validated, and which extra artifacts a finished run writes. The engine looks a
task up by ``cfg.task`` with :func:`get_task` and calls only the methods below; it never branches
on the task's name.

Adding a task is one module::

    # hyperleaf/tasks/mytask.py
    from hyperleaf.tasks.base import Task, register_task

    @register_task("mytask")
    class MyTask(Task):
        inputs = ("a", "b", "target")      # batch keys fed to the objective, in order
        def datasets(self, cfg): ...
        def build_objective(self, cfg): ...
        def evaluate(self, cfg, objective, val_set, device, samples_dir=None): ...

plus one line in ``_BUILTIN`` below (name -> module), so ``get_task("mytask")`` imports it on
first use. See ``docs/architecture.md``.
"""

from __future__ import annotations

import builtins
import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf.registry import Registry
from hyperleaf.tasks.evaluation import EvaluationReport, given_outputs, scores_report

_builtin_type = builtins.type  # task_key's `type` argument shadows the builtin

__all__ = ["Task", "TaskKey", "task_key", "register_task", "unregister_task", "get_task",
           "list_tasks"]

#: The sections of a configuration a task's own keys may go in (``run`` is the engine's).
TASK_SECTIONS = ("task", "model", "data")
#: The value types a task's own key may have (from its default; ``str | None``: a string or null).
_KEY_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
#: Types a key may declare explicitly (``type=``): the inferred ones and the nullable ones.
_DECLARABLE = frozenset({*_KEY_TYPES.values(), "str | None", "list | None", "dict | None"})


@dataclass(frozen=True)
class TaskKey:
    """One configuration key a task declares (:func:`task_key`): its section, default, type,
    one line saying what it is (``docs/configuration.md`` and ``--help`` show it) and the
    values it accepts (``choices``, ``minimum``/``maximum``, ``check``)."""

    section: str
    default: Any
    doc: str
    type: str
    #: the valid values, or a function returning them (a registry's names, read when checked)
    choices: tuple[Any, ...] | Callable[[], Sequence[Any]] | None = None
    minimum: float | None = None
    maximum: float | None = None
    #: ``(predicate, what)``: a value is valid when ``predicate(value)``; ``what`` completes
    #: "must ..." in the error.
    check: tuple[Callable[[Any], bool], str] | None = None
    #: whether ``hyperleaf train`` has a flag for it (lists and mappings never: set them in a
    #: ``--config`` file)
    flag: bool = True

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` has this key's type (an int is a float; null fits ``... | None``)."""
        kind = self.type
        if kind.endswith(" | None"):
            if value is None:
                return True
            kind = kind.removesuffix(" | None")
        if kind == "float":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        return type(value).__name__ == kind

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this key ("must ..."), or None when it is valid.

        >>> k = task_key("task", 0.5, "a weight", minimum=0)
        >>> k.problem(0.2), k.problem(-1.0), k.problem(float("nan")), k.problem("x")
        (None, 'must be finite and >= 0', 'must be finite and >= 0', 'must be of type float')
        >>> task_key("task", "a", "a mode", choices=("a", "b")).problem("c")
        "must be 'a' or 'b'"
        """
        if not self.accepts(value):
            return f"must be of type {self.type}"
        if value is None:
            return None
        choices = self.choices() if callable(self.choices) else self.choices
        if choices is not None and value not in choices:
            shown = [repr(c) for c in choices]
            return ("must be " + " or ".join(shown) if len(shown) <= 2
                    else "must be one of " + ", ".join(shown))
        if self.type.startswith("float") and not math.isfinite(value) or (
                self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum):
            finite = "finite and " if self.type.startswith("float") else ""
            if self.minimum is not None and self.maximum is not None:
                return f"must be {finite}in [{self.minimum:g}, {self.maximum:g}]"
            if self.minimum is not None:
                return f"must be {finite}>= {self.minimum:g}"
            if self.maximum is not None:
                return f"must be {finite}<= {self.maximum:g}"
            return f"must {self.check[1]}" if self.check is not None else "must be finite"
        if self.check is not None and not self.check[0](value):
            return f"must {self.check[1]}"
        return None


def task_key(section: str, default: Any, doc: str, *, type: str | None = None,
             choices: tuple[Any, ...] | Callable[[], Sequence[Any]] | None = None,
             minimum: float | None = None,
             maximum: float | None = None,
             check: tuple[Callable[[Any], bool], str] | None = None,
             flag: bool = True) -> TaskKey:
    """Declare a configuration key of a task (in its :attr:`Task.config_keys`): ``section``
    one of ``task``, ``model``, ``data``; the type is the default's (``None``: ``str | None``)
    unless ``type`` names it (``"list | None"``, ...). ``choices`` (a tuple, or a function
    returning the valid values when checked), ``minimum``/``maximum``
    (floats must also be finite) and ``check`` (``(predicate, "be ...")``) say which values are
    valid: ``TrainConfig.validate`` refuses the others by name. ``flag=False``: no
    ``hyperleaf train`` flag (a value the data decide).

    >>> task_key("task", 0.5, "weight of the toy term").type
    'float'
    >>> task_key("data", None, "two groups", type="list | None").accepts([[0], [1]])
    True
    """
    if section not in TASK_SECTIONS:
        raise ValueError(f"section: must be one of {', '.join(TASK_SECTIONS)}, got {section!r}")
    if type is not None and type not in _DECLARABLE:
        raise ValueError(f"type: must be one of {', '.join(sorted(_DECLARABLE))}, got {type!r}")
    kind = type or ("str | None" if default is None else _KEY_TYPES.get(_builtin_type(default)))
    if kind is None:
        raise TypeError(f"default: expected a bool, int, float, str, list, dict or None, got "
                        f"{_builtin_type(default).__name__}")
    if choices is not None and not callable(choices):
        choices = tuple(choices)
    key = TaskKey(section, default, doc, kind, choices,
                  minimum, maximum, check, flag and not kind.startswith(("list", "dict")))
    if default is not None and key.problem(default) is not None:
        raise ValueError(f"default: {default!r} {key.problem(default)}")
    return key


#: Built-in tasks: name -> module whose import registers it (add a line for a new task).
_BUILTIN: dict[str, str] = {
    "fuse": "hyperleaf.tasks.fuse",
    "segment": "hyperleaf.tasks.segment",
    "pansharpen": "hyperleaf.tasks.pansharpen",
}

#: The task registry (:class:`hyperleaf.registry.Registry`, shared by every kind of entry).
TASKS: Registry[Task] = Registry("task", _BUILTIN)


class Task:
    """One kind of problem the engine can train (subclass it and :func:`register_task` it).

    Every method receives the run's configuration ``cfg`` (a
    :class:`hyperleaf.train.TrainConfig`: attribute access only, so a task never imports the
    engine). Objectives follow one convention: ``objective(*batch[k] for k in inputs)`` returns
    ``(total, parts, output)`` -- the scalar loss to minimise, a dict of detached scalar parts
    for the log, and the network's output.
    """

    #: The registered name (set by :func:`register_task`).
    name: str = ""
    #: Batch keys passed to the objective, in order (the datasets' items hold them).
    inputs: tuple[str, ...] = ()
    #: Configuration values this task runs with unless the configuration file, a recipe or a
    #: flag sets them (applied by ``TrainConfig.from_dict`` under those; empty: the global
    #: defaults).
    defaults: Mapping[str, Any] = {}
    #: Engine configuration keys this task does not read (e.g. ``init`` where nothing can be
    #: fine-tuned): set away from their defaults, the configuration refuses them by name.
    unused_keys: tuple[str, ...] = ()
    #: Named sets of defaults for this task (the ``recipe`` key: name -> ``{key: value}``),
    #: applied under the keys given.
    recipes: Mapping[str, Mapping[str, Any]] = {}
    #: What this task reads from some engine keys (key -> one line, e.g. the layouts ``data``
    #: may have): ``--help`` and ``docs/configuration.md`` add it to the key's meaning.
    key_docs: Mapping[str, str] = {}

    @property
    def foreign_keys(self) -> tuple[str, ...]:
        """Keys other tasks declare (their :attr:`config_keys`) that this one does not: it
        refuses them by name, and ``load_run_config`` leaves them out of a run folder's
        ``config.yaml`` (runs written before a key moved into its task list every key).
        Derived from the registry, never listed by hand."""
        others: set[str] = set()
        for name in list_tasks():
            if name != self.name:
                others |= set(get_task(name).config_keys)
        return tuple(sorted(others - set(self.config_keys)))
    #: Engine configuration keys outside the ``task`` section that :meth:`check_config` reads
    #: (its own :attr:`config_keys` it sees anyway).
    config_needs: tuple[str, ...] = ()
    #: Configuration keys this task adds (name -> :func:`task_key`): a run of this task accepts
    #: them (type-checked), reads them flat (``cfg.name``) and writes them into ``config.yaml``
    #: under their section; any other task refuses them by name. Their flags
    #: (``--name-with-dashes``) appear in ``hyperleaf train --task NAME --help``.
    config_keys: Mapping[str, TaskKey] = {}

    #: How reports name the validation scores :meth:`evaluate` returns: a key or a
    #: ``fnmatch`` pattern -> ``(label, higher_is_better)`` (``None``: no better direction).
    #: ``{key}`` in a label is the score's key, ``{star}`` what a pattern's ``*`` matched.
    #: First match wins; unmatched keys show as is.
    score_labels: Mapping[str, tuple[str, bool | None]] = {"loss": ("validation loss", False)}

    def describe_score(self, key: str) -> str:
        """``key``'s label with its direction: ``↑`` higher is better, ``↓`` lower is better.

        >>> Task().describe_score("loss"), Task().describe_score("other")
        ('validation loss ↓', 'other')
        """
        for pattern, (label, higher) in self.score_labels.items():
            if fnmatch.fnmatchcase(key, pattern):
                arrow = "" if higher is None else (" ↑" if higher else " ↓")
                star = key[pattern.index("*"):] if "*" in pattern else ""
                return label.format(key=key, star=star) + arrow
        return key

    def check_config(self, cfg: Any) -> None:
        """Reject settings this task cannot run with: ``ValueError`` whose message starts with
        the configuration key (the engine re-raises it as its configuration error).

        ``cfg`` is a read-only view of the configuration's ``task`` section plus the keys named
        in :attr:`config_needs` and :attr:`foreign_keys`; reading another key raises
        ``AttributeError``."""

    def datasets(self, cfg: Any) -> tuple[Any, Any]:
        """``(train_set, val_set)``: map-style datasets whose items are dicts of tensors holding
        :attr:`inputs`; a train set with a ``get(i, generator)`` method draws its random
        augmentation from ``generator``. Configuration values the data decide (the network's
        bands, classes, ...) go in the train set's ``resolved`` mapping (:meth:`open_data`
        applies them), never into ``cfg``."""
        raise NotImplementedError

    def open_data(self, cfg: Any) -> tuple[Any, Any, Any]:
        """``(cfg, train_set, val_set)``: :meth:`datasets`, and the configuration with what the
        data decide for the model (bands, ratio, classes, statistics: the training set's
        ``resolved`` mapping) applied by ``cfg.replace`` (validated). ``datasets`` reports
        those values; it never writes them into ``cfg``, so nothing depends on calling it
        before :meth:`build_objective` except through this returned configuration."""
        train, val = self.datasets(cfg)
        resolved = dict(getattr(train, "resolved", None) or {})
        changed = {k: v for k, v in resolved.items() if getattr(cfg, k) != v}
        return (cfg.replace(**changed) if changed else cfg), train, val

    def build_objective(self, cfg: Any) -> nn.Module:
        """The module the optimizer trains (network and loss; what DDP wraps and
        ``model.safetensors`` holds). Its network is its ``net`` attribute."""
        raise NotImplementedError

    #: Keyword inputs of :meth:`predict`, in the order the network takes them (empty:
    #: :attr:`inputs`; a task whose batches hold a training target leaves it out here).
    predict_inputs: tuple[str, ...] = ()

    def build_network(self, cfg: Any) -> nn.Module:
        """The network alone, for inference: the objective's ``net`` without its loss (its
        tensors are the objective's ``net.*`` ones). Override it so that inference builds no
        loss; the default builds the objective and keeps its ``net``."""
        return self.build_objective(cfg).net

    def predict(self, cfg: Any, net: nn.Module, **inputs: Tensor) -> Tensor:
        """The task's output of ``net`` (from :meth:`build_network`, eval mode) for one batch
        of :attr:`predict_inputs` given by name; the default calls ``net(*inputs)``."""
        return net(*self.ordered_inputs(inputs))

    def ordered_inputs(self, inputs: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
        """``inputs`` (by name) in :attr:`predict_inputs` order; ``ValueError`` naming what is
        missing or unexpected."""
        names = self.predict_inputs or self.inputs
        missing = [k for k in names if k not in inputs]
        extra = [k for k in inputs if k not in names]
        if missing or extra:
            raise ValueError(f"inputs: the {self.name} task predicts from {', '.join(names)}; "
                             f"missing {missing}, unexpected {extra}")
        return tuple(inputs[k] for k in names)

    def loss(self, model: nn.Module, batch: Mapping[str, Tensor]
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """``(total, parts)`` of one batch through ``model`` (the objective, maybe DDP-wrapped)."""
        total, parts, _ = model(*(batch[k] for k in self.inputs))
        return total, parts

    def evaluate(self, cfg: Any, objective: nn.Module, val_set: Any, device: torch.device,
                 samples_dir: Path | None = None) -> dict[str, float]:
        """Mean validation scores (``objective`` put in eval mode); with ``samples_dir``, also
        write each validation sample's output there."""
        raise NotImplementedError

    def evaluate_run(self, cfg: Any, net: nn.Module, data: str, device: torch.device
                     ) -> dict[str, Any]:
        """Scores of a trained network (:func:`hyperleaf.runs.load_run`'s ``model``, eval mode)
        on the data at ``data``, for ``hyperleaf evaluate --task NAME --weights RUN --data
        DATA``: ``{"scores": {name: float}, "higher_is_better": {name: bool}}``, optionally
        ``"items": [{"item": str, name: float, ...}]`` (one row per scored item)."""
        raise NotImplementedError(f"task: the {self.name} task does not evaluate a trained "
                                  "model on data")

    #: The options of ``hyperleaf evaluate`` (argument names) :meth:`evaluate_command` reads;
    #: the command refuses any other one given, by name. The default: a trained run on data.
    evaluate_options: tuple[str, ...] = ("weights", "data", "csv", "json", "markdown",
                                         "no_progress")
    #: The options :meth:`evaluate_command` cannot do without (checked before any work).
    evaluate_requires: tuple[str, ...] = ("weights", "data")

    def evaluate_outputs(self, options: Mapping[str, Any]) -> dict[str, Path]:
        """The files ``hyperleaf evaluate`` will write, ``{kind: path}`` (``csv``, ``json``,
        ``markdown``), known before any work so that the command checks them first; also
        refuses option combinations this evaluation cannot run with (``ValueError`` naming
        the options). Default: the outputs given."""
        return given_outputs(options)

    def evaluate_command(self, options: Mapping[str, Any], run: Any,
                         device: torch.device) -> EvaluationReport:
        """``hyperleaf evaluate --task NAME``: ``options`` are the command's arguments by name
        (those of :attr:`evaluate_options`), ``run`` the trained run ``options["weights"]``
        names (:func:`hyperleaf.runs.load_run`; None when not given). Returns the
        :class:`~hyperleaf.tasks.evaluation.EvaluationReport` the command prints and writes.
        Errors name the option (``data: ...``), never a flag. The default scores the run with
        :meth:`evaluate_run` on ``options["data"]``."""
        if run is None:
            raise ValueError(f"weights: the {self.name} task evaluates a trained run")
        report = self.evaluate_run(run.config, run.model, options["data"], device)
        return scores_report(self.name, options, report)

    def artifacts(self, cfg: Any, objective: nn.Module, val_set: Any, device: torch.device,
                  out: Path) -> dict[str, dict[str, float]]:
        """Write a finished run's extra files into its folder ``out``; returns the log records
        to add, as ``{kind: scores}`` (empty: nothing to log)."""
        return {}

    def __repr__(self) -> str:
        return f"<task {self.name!r}: {type(self).__module__}.{type(self).__qualname__}>"


T = TypeVar("T", bound=type)


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator: register an instance of the :class:`Task` subclass as ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")

    def deco(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"register_task({name!r}): expected a Task subclass, got {cls!r}")
        task = cls()
        task.name = name
        # the same class imported again (a module reloaded) replaces its instance
        TASKS.add(name, task, same=lambda a, b: type(a).__qualname__ == type(b).__qualname__)
        return cls

    return deco


def unregister_task(name: str) -> None:
    """Remove the task registered as ``name`` (a plugin's or a test's; built-in tasks come
    back on their next :func:`get_task`). ``KeyError`` when none is registered."""
    TASKS.remove(name)


def get_task(name: str) -> Task:
    """The task registered as ``name``; ``ValueError`` lists the known names.

    Example:

        >>> get_task("fuse").inputs
        ('vis', 'ir')
    """
    return TASKS.get(name)


def list_tasks() -> list[str]:
    """Sorted names of the registered and built-in tasks."""
    return TASKS.names()
