"""Training configuration: defaults < a YAML file (``config`` key) < explicit values.

The defaults are the embedded demo run: ``hyperleaf train`` with no arguments trains SHIP + LEAF
on the synthetic infrared-visible set for a couple of minutes on a 2-core CPU.

Every key belongs to one of four sections (:data:`SECTIONS`), declared on the key's own line
with :func:`key`:

* ``run``: how the engine trains (steps, optimizer, schedule, seeds, device, run folder);
* ``task``: what the task optimises and scores (``task`` itself, the losses and their weights);
* ``model``: what rebuilds the network from ``model.safetensors`` (widths, LEAF's head, ...);
* ``data``: what is read and how it is cut (folder, crops, split, augmentation).

A run folder's ``config.yaml`` is written grouped (:meth:`TrainConfig.to_grouped`)::

    run:
      steps: 100
      ...
    task:
      name: fuse
      ...
    model:
      name: null
      ...
    data:
      path: null
      ...

and both that and the flat form of earlier runs (``steps: 100`` ... at the top level) are read
(:func:`flatten_config`). In Python the configuration stays flat: ``cfg.steps``, ``cfg.crop``.
A task validates its own section (:meth:`hyperleaf.tasks.Task.check_config` receives
:meth:`TrainConfig.section_view`: the ``task`` keys plus the keys the task declares in
``config_needs``). ``docs/configuration.md`` lists every key (:func:`markdown_table`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# yaml and the task registry (hyperleaf.tasks, which imports torch) are imported where they are
# used, not here: the command line builds its flags from the keys below without loading torch.

__all__ = ["TrainConfig", "task_key_owners", "task_defaults", "key_doc", "load_yaml",
           "load_run_config", "engine_keys", "ConfigError", "RESUME_OVERRIDABLE", "RECIPES", "recipe_owner",
           "RUN_FILE_FALLBACKS", "SECTIONS", "SECTION_OF", "key", "flatten_config", "ConfigView",
           "markdown_table"]


def _tasks():
    """``(get_task, list_tasks)`` of the task registry (imported on first use: see above)."""
    from hyperleaf.tasks import get_task, list_tasks

    return get_task, list_tasks

#: The sections of a configuration, in the order ``config.yaml`` lists them.
SECTIONS: tuple[str, ...] = ("run", "task", "model", "data")

#: Keys spelled differently inside their section of a grouped file (flat key -> grouped name):
#: ``task: {name: fuse}``, ``model: {name: leaf-unet}``, ``data: {path: DIR}``.
GROUPED_NAMES: dict[str, str] = {"task": "name", "model": "name", "data": "path"}


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the key or the file.

    ``key`` is the offending :class:`TrainConfig` key when one value is at fault (else None),
    so a front end can name its own spelling of it (the command line names the flag).
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def key(section: str, default: Any, doc: str) -> Any:
    """Declare one configuration key: its ``section`` (one of :data:`SECTIONS`), its default and
    one line saying what it is (``docs/configuration.md`` shows it). Mutable defaults (lists)
    are copied per instance.

    Example (inside :class:`TrainConfig`)::

        steps: int = key("run", 100, "optimizer steps (one batch each)")
    """
    if section not in SECTIONS:
        raise ValueError(f"section: must be one of {', '.join(SECTIONS)}, got {section!r}")
    meta = {"section": section, "doc": doc}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(init=False, eq=False)
class TrainConfig:
    """Everything a run needs; ``config.yaml`` in the run folder is this, serialised by section.

    The engine's own keys are the fields below (how it trains, which task and network, which
    data); every other key belongs to the task that declares it (``Task.config_keys``: fuse's
    losses, LEAF's head and blocks, the segment networks' widths, ...), is stored in
    ``task_options`` and read flat all the same (``cfg.h2fr_weight``). ``TrainConfig(**keys)``
    takes both; ``docs/configuration.md`` lists every key with its section and task.

    Example:

        >>> cfg = TrainConfig(steps=3, h2fr_weight=0.2)
        >>> cfg.steps, cfg.h2fr_weight, cfg.task_options
        (3, 0.2, {'h2fr_weight': 0.2})
        >>> cfg.validate().curvature   # the fuse task's default
        0.5
    """

    # ---- run: how the engine trains
    steps: int = key("run", 100, "optimizer steps (one batch each)")
    batch_size: int = key("run", 4, "batch size per process")
    lr: float = key("run", 2e-3, "peak learning rate")
    warmup: int = key("run", 10, "linear warm-up steps, then `lr_schedule`")
    lr_min: float = key("run", 2e-4, "cosine schedule's floor, in [0, lr]")
    lr_schedule: str = key("run", "cosine", "`cosine` (to `lr_min`) or `multistep`")
    lr_milestones: list[int] = key("run", [15000, 25000],
                                   "multistep: steps at which the rate is multiplied by `lr_gamma`")
    lr_gamma: float = key("run", 0.75, "multistep: factor at each milestone, in (0, 1]")
    lr_per_epoch: bool = key("run", False, "cosine changes once per pass over the training set "
                                           "(the LEAF authors' CosineAnnealingLR) instead of "
                                           "every step")
    seed: int = key("run", 0, "training seed: initial weights, data order, augmentation")
    shared_init: bool = key("run", False, "copy initial weights from the full LEAF net of `seed`")
    save_every: int = key("run", 50, "checkpoint every K steps (and at the end)")
    log_every: int = key("run", 5, "`log.jsonl` training record every K steps")
    eval_every: int = key("run", 50, "validate every K steps (and at step 0 and the end)")
    optimizer: str = key("run", "radam", "`radam` (RiemannianAdam), `rsgd` (RiemannianSGD) or "
                                         "`adamw` (no manifold parameters, e.g. leaf-unet)")
    momentum: float = key("run", 0.9, "RiemannianSGD momentum")
    weight_decay: float = key("run", 0.0, "optimizer weight decay")
    grad_clip: float = key("run", 1.0, "global gradient-norm clip; 0 disables")
    max_nonfinite: int = key("run", 5, "consecutive non-finite losses that stop the run")
    deterministic: bool = key("run", True, "deterministic torch kernels")
    device: str | None = key("run", None, "`cpu`, `cuda` or `cuda:N`; null: cuda when available")
    threads: int = key("run", 1, "CPU threads for torch per process; 0 keeps torch's default")
    precision: str = key("run", "fp32", "`fp32`, `bf16` or `fp16` (autocast; `fp16` with a gradient scaler)")
    compile: bool = key("run", False, "run the objective through `torch.compile`")
    out: str | None = key("run", None, "run folder; null: `runs/<timestamp>`")
    recipe: str | None = key("run", None, "a named set of defaults of the task (`Task.recipes`), "
                                          "under the keys given: `ship-authors` (fuse), "
                                          "`leaf-authors` (segment; names its task)")
    init: str | None = key("run", None, "initial weights: the SHIP authors' `.pth` or a run "
                                        "folder")
    # ---- task: what is optimised and scored (the keys of each task are its own: Task.config_keys)
    task: str = key("task", "fuse", "a registered task: `fuse` (SHIP + LEAF), `segment` "
                                    "(LEAFSegNet, LEAFUNet, LEAFUNet3D) or `pansharpen` (SHIP on "
                                    "PAN + MS), or one a plugin registers")
    # ---- model: what rebuilds the network from model.safetensors
    model: str | None = key("model", None, "network (`hyperleaf.models.registry`); null: the "
                                           "task's default (segment: leafseg on the synthetic "
                                           "set, leaf-unet on 2-D folders, leaf-unet3d on NIfTI "
                                           "volumes)")
    # ---- data: what is read and how it is cut
    data: str | None = key("data", None, "data folder (or file) the task reads; null: the "
                                         "task's embedded synthetic set")
    crop: int = key("data", 32, "training crop side (>= 16)")
    val_crop: int = key("data", 64, "validation image side (synthetic) / centre crop (real) / "
                                    "tile side (pansharpen)")
    val_fraction: float = key("data", 0.1, "real data: held-out fraction, in (0, 1)")
    data_seed: int = key("data", 0, "seed of a generated (synthetic) data set")
    # ---- the running task's own keys (Task.config_keys), read and written flat: cfg.<name>
    task_options: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False,
                                                     metadata={"task_options": True})

    def __init__(self, **values: Any) -> None:
        fields_, options = _split_options(values)
        for name in _FIELD:
            object.__setattr__(self, name, copy.deepcopy(fields_[name]) if name in fields_
                               else _default_of(name))
        undeclared = [k for k in options if not task_key_owners(k)]
        if undeclared:
            raise TypeError(f"TrainConfig: unknown keys {undeclared} (neither the engine's nor "
                            "declared by a registered task)")
        object.__setattr__(self, "task_options", copy.deepcopy(options))

    def __eq__(self, other: object) -> bool:
        # every key's value, the task's undeclared defaults included
        return isinstance(other, TrainConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"TrainConfig({shown})"

    def __getattr__(self, name: str) -> Any:
        # Called only when ordinary lookup fails: a key the running task declares.
        if name.startswith("__"):  # copy, pickle and friends probing for hooks
            raise AttributeError(name)
        options = self.__dict__.get("task_options")
        if options is not None and name in options:
            return options[name]
        declared = _declared_keys(self.__dict__.get("task"))
        if name in declared and options is not None:
            # the default, stored: a list read and changed in place stays changed
            return options.setdefault(name, copy.deepcopy(declared[name].default))
        raise AttributeError(f"{name!r} is no config key" + (
            f" of the {self.__dict__.get('task')} task" if task_key_owners(name) else ""))

    def __setattr__(self, name: str, value: Any) -> None:
        options = self.__dict__.get("task_options")
        if options is not None and name not in _FIELD and (
                name in options or name in _declared_keys(self.__dict__.get("task"))):
            options[name] = value
            return
        object.__setattr__(self, name, value)

    def validate(self) -> TrainConfig:
        """Check types and ranges, section by section, then let the task check its section;
        raises :class:`ConfigError` naming the key."""
        for f in _FIELD.values():
            self._check_type(f)
        for check in _SECTION_CHECKS.values():
            check(self)
        for f in _FIELD.values():
            if _TYPE_OF[f.name] == "float":
                self._need(self._finite(f.name), f.name, "must be finite")
        get_task, _ = _tasks()
        task = get_task(self.task)
        if self.recipe is not None and self.recipe not in task.recipes:
            owner = recipe_owner(self.recipe)
            whose = f"{self.recipe!r} is the {owner} task's" if owner else "unknown recipe"
            if not task.recipes:
                raise ConfigError(f"recipe: does not apply to the {self.task} task (it has no "
                                  f"recipes; {whose})", key="recipe")
            raise ConfigError(f"recipe: {self.recipe!r} is not a recipe of the {self.task} task "
                              f"({whose}; the {self.task} task's: "
                              f"{', '.join(sorted(task.recipes))})", key="recipe")
        self._check_options(task)
        # An engine key the task does not read would be silently ignored: refuse it set at all.
        for name in task.unused_keys:
            if getattr(self, name) != _default_of(name):
                raise ConfigError(f"{name}: does not apply to the {self.task} task (got "
                                  f"{getattr(self, name)!r})", key=name)
        try:
            needs = (*task.config_needs, *task.config_keys)
            task.check_config(self.section_view("task", needs, owner=f"task {self.task!r}"))
        except ValueError as exc:
            named = str(exc).split(":", 1)[0]
            known = named in SECTION_OF or named in task.config_keys
            raise ConfigError(str(exc), key=named if known else None) from exc
        return self

    def _check_options(self, task: Any) -> None:
        """The keys ``task`` declares (``Task.config_keys``): defaults filled in, each value
        checked against its declaration (type, choices, range); a key it does not declare is
        refused by name."""
        declared = task.config_keys
        clash = sorted(set(declared) & set(_FIELD))
        if clash:
            raise TypeError(f"task {task.name!r} declares config keys the engine has: {clash}")
        for name in self.task_options:
            if name not in declared:
                others = [t for t, _ in task_key_owners(name)]
                raise ConfigError(f"{name}: does not apply to the {task.name} task" + (
                    f" (a key of the {', '.join(others)} task)" if others else " (unknown key)"),
                    key=name)
        for name, k in declared.items():
            value = self.task_options.setdefault(name, copy.deepcopy(k.default))
            problem = k.problem(value)
            if problem is not None:
                raise ConfigError(f"{name}: {problem}, got {value!r}", key=name)
            if k.type == "float":
                self.task_options[name] = float(value)

    def _need(self, cond: bool, key: str, what: str) -> None:
        if not cond:
            raise ConfigError(f"{key}: {what}, got {getattr(self, key)!r}", key=key)

    def _finite(self, key: str) -> bool:
        return math.isfinite(getattr(self, key))

    def _check_type(self, f: dataclasses.Field) -> None:
        v = getattr(self, f.name)
        t = f.type if isinstance(f.type, str) else f.type.__name__
        if t == "int":
            self._need(isinstance(v, int) and not isinstance(v, bool), f.name, "must be an int")
        elif t == "float":
            self._need(isinstance(v, (int, float)) and not isinstance(v, bool), f.name,
                       "must be a number")
            setattr(self, f.name, float(v))
        elif t == "bool":
            self._need(isinstance(v, bool), f.name, "must be true or false")
        elif t == "str | None":
            self._need(v is None or isinstance(v, str), f.name, "must be a string or null")

    def _ints_at_least_one(self, section: str) -> None:
        for name in _keys_of(section):
            if _TYPE_OF[name] == "int" and name not in _OWN_RANGE:
                self._need(getattr(self, name) >= 1, name, "must be >= 1")

    def _weights_non_negative(self, names: Iterable[str]) -> None:
        for name in names:
            self._need(self._finite(name) and getattr(self, name) >= 0, name,
                       "must be finite and >= 0")

    def _check_run(self) -> None:
        need = self._need
        self._ints_at_least_one("run")
        need(self.lr_schedule in ("cosine", "multistep"), "lr_schedule",
             "must be 'cosine' or 'multistep'")
        need(isinstance(self.lr_milestones, list)
             and all(isinstance(m, int) and not isinstance(m, bool) and m >= 1
                     for m in self.lr_milestones)
             and self.lr_milestones == sorted(set(self.lr_milestones)), "lr_milestones",
             "must be a strictly increasing list of steps >= 1")
        need(0 < self.lr_gamma <= 1, "lr_gamma", "must be in (0, 1]")
        need(self.optimizer in ("radam", "rsgd", "adamw"), "optimizer",
             "must be 'radam', 'rsgd' or 'adamw'")
        need(self.device in (None, "cpu", "cuda") or str(self.device).startswith("cuda:"),
             "device", "must be cpu, cuda or cuda:N")
        need(self.threads >= 0, "threads", "must be >= 0 (0: torch's default)")
        need(self.precision in ("fp32", "bf16", "fp16"), "precision",
             "must be 'fp32', 'bf16' or 'fp16'")
        need(self.warmup >= 0, "warmup", "must be >= 0")
        # NaN fails every comparison and inf passes "> 0": each float is checked finite too
        # (an infinite learning rate turns every weight into NaN at the first step).
        need(self._finite("lr") and self.lr > 0, "lr", "must be finite and > 0")
        need(self._finite("lr_min") and 0 <= self.lr_min <= self.lr, "lr_min",
             "must be in [0, lr]")
        self._weights_non_negative(("weight_decay", "grad_clip", "momentum"))

    def _check_task(self) -> None:
        _, list_tasks = _tasks()
        self._need(self.task in list_tasks(), "task", f"must be one of {', '.join(list_tasks())}")

    def _check_data(self) -> None:
        need = self._need
        self._ints_at_least_one("data")
        need(self.crop >= 16, "crop", "must be >= 16")
        need(self.val_crop >= 16, "val_crop", "must be >= 16")
        need(0 < self.val_fraction < 1, "val_fraction", "must be in (0, 1)")

    def section_view(self, section: str, needs: Iterable[str] = (),
                     owner: str = "caller") -> ConfigView:
        """Read-only view of the keys of ``section`` (the engine's and the running task's own)
        plus ``needs`` (keys of other sections).

        What a task's ``check_config`` receives: reading any other key raises
        ``AttributeError`` naming the key, its section and ``owner``.

        Example:

            >>> v = TrainConfig().section_view("task", needs=("crop",))
            >>> v.loss, v.crop
            ('hyperleaf', 32)
            >>> v.steps
            Traceback (most recent call last):
            ...
            AttributeError: caller reads config key 'steps' (section run) without declaring it in config_needs
        """
        if section not in SECTIONS:
            raise ValueError(f"section: must be one of {', '.join(SECTIONS)}, got {section!r}")
        needs = tuple(needs)
        unknown = [n for n in needs if n not in SECTION_OF and not task_key_owners(n)]
        if unknown:
            raise ValueError(f"needs: unknown config keys {unknown} (of {owner})")
        own = [k for k, v in _declared_keys(self.task).items() if v.section == section]
        return ConfigView(self, (*_keys_of(section), *own, *needs), owner)

    def to_dict(self) -> dict[str, Any]:
        """Flat ``{key: value}`` (what checkpoints store), the task's own keys included."""
        flat = {k: copy.deepcopy(getattr(self, k)) for k in _FIELD}
        declared = {k: copy.deepcopy(v.default) for k, v in _declared_keys(self.task).items()}
        return {**flat, **declared, **copy.deepcopy(self.task_options)}

    def to_grouped(self) -> dict[str, dict[str, Any]]:
        """``{section: {name: value}}`` in :data:`SECTIONS` order, the form ``config.yaml``
        is written in (``task``/``model`` are ``name`` and ``data`` is ``path`` inside their
        sections: :data:`GROUPED_NAMES`).

        Example:

            >>> g = TrainConfig().to_grouped()
            >>> list(g), g["task"]["name"], g["run"]["steps"], g["data"]["path"]
            (['run', 'task', 'model', 'data'], 'fuse', 100, None)
            >>> TrainConfig.from_dict(g) == TrainConfig()
            True
        """
        flat = self.to_dict()
        grouped = {s: {GROUPED_NAMES.get(k, k): flat[k] for k in _keys_of(s)} for s in SECTIONS}
        for name, k in _declared_keys(self.task).items():
            grouped[k.section][name] = flat.get(name, k.default)
        return grouped

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping, grouped or flat (:func:`flatten_config`); keys may use ``-`` or
        ``_``. Unknown keys raise.

        A ``recipe`` key puts that recipe's values (:data:`RECIPES`) under the mapping's own,
        and the task's ``defaults`` (:attr:`hyperleaf.tasks.Task.defaults`) go under both.
        """
        clean = flatten_config(d, source)
        for k in clean:
            if k not in SECTION_OF and not task_key_owners(k):
                raise ConfigError(f"{source}: unknown key {k!r} "
                                  f"(known: {', '.join(sorted(SECTION_OF))})")
        get_task, list_tasks = _tasks()
        name = clean.get("recipe")
        if name is not None:
            # a recipe is its task's (Task.recipes); one that names its task picks it
            task = clean.get("task", recipe_owner(name) or _default_of("task"))
            recipes = get_task(task).recipes if task in list_tasks() else {}
            if name not in RECIPES:
                raise ConfigError(f"{source}: recipe: unknown recipe {name!r} (known: "
                                  f"{', '.join(sorted(RECIPES))})", key="recipe")
            clean = {**recipes.get(name, {}), **clean}  # another task's: validate names it
        # The task's own defaults (Task.defaults) go under the recipe's and the mapping's values.
        task = clean.get("task", _default_of("task"))
        if task in list_tasks():
            clean = {**get_task(task).defaults, **clean}
        fields_, options = _split_options(clean)
        return cls(**fields_, task_options=options).validate()

    def replace(self, **changes: Any) -> TrainConfig:
        fields_, options = _split_options(changes)
        if "task" in fields_ and fields_["task"] != self.task:
            merged = options  # another task: the old task's own keys do not carry over
        else:
            merged = {**self.task_options, **options}
        return dataclasses.replace(self, **fields_, task_options=merged).validate()


class ConfigView:
    """Read-only attribute access to some keys of a :class:`TrainConfig`
    (:meth:`TrainConfig.section_view`)."""

    __slots__ = ("_cfg", "_keys", "_owner")

    def __init__(self, cfg: TrainConfig, keys: Iterable[str], owner: str):
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "_keys", frozenset(keys))
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str) -> Any:
        if name in self._keys:
            return getattr(self._cfg, name)
        if name == "__dataclass_fields__":  # dataclasses.fields(view): the visible keys
            every = self._cfg.__dataclass_fields__
            return {k: f for k, f in every.items() if k in self._keys}
        if name in SECTION_OF:
            raise AttributeError(f"{self._owner} reads config key {name!r} (section "
                                 f"{SECTION_OF[name]}) without declaring it in config_needs")
        raise AttributeError(f"{name!r} is no config key")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._owner}: the configuration is read-only here ({name})")

    def __repr__(self) -> str:
        return f"ConfigView({', '.join(sorted(self._keys))})"


#: Key -> its section (declared with :func:`key` on the key's line in :class:`TrainConfig`).
SECTION_OF: dict[str, str] = {}
#: Key -> its annotation as written (``"int"``, ``"str | None"``, ...).
_TYPE_OF: dict[str, str] = {}
for _f in fields(TrainConfig):
    if _f.metadata.get("task_options"):
        continue
    if "section" not in _f.metadata:
        raise TypeError(f"TrainConfig.{_f.name}: declare it with key(section, default, doc)")
    SECTION_OF[_f.name] = _f.metadata["section"]
    _TYPE_OF[_f.name] = _f.type if isinstance(_f.type, str) else _f.type.__name__
del _f
_FIELD = {f.name: f for f in fields(TrainConfig) if f.name != "task_options"}


def _declared_keys(task: str | None) -> Mapping[str, Any]:
    """The keys task ``task`` declares (``Task.config_keys``); none for an unknown name."""
    get_task, list_tasks = _tasks()
    if task is None or task not in list_tasks():
        return {}
    return get_task(task).config_keys


def task_key_owners(name: str) -> list[tuple[str, Any]]:
    """``[(task, TaskKey)]`` of every registered (or built-in) task declaring key ``name``.

    >>> [t for t, _ in task_key_owners("h2fr_weight")], [t for t, _ in task_key_owners("loss")]
    (['fuse', 'pansharpen', 'segment'], ['fuse'])
    """
    get_task, list_tasks = _tasks()
    return [(t, get_task(t).config_keys[name]) for t in list_tasks()
            if name in get_task(t).config_keys]


def recipe_owner(name: str) -> str | None:
    """The task whose ``recipes`` hold recipe ``name`` (None: no task's).

    >>> recipe_owner("ship-authors"), recipe_owner("leaf-authors"), recipe_owner("none")
    ('fuse', 'segment', None)
    """
    get_task, list_tasks = _tasks()
    return next((t for t in list_tasks() if name in get_task(t).recipes), None)


def task_defaults(task: str) -> dict[str, Any]:
    """Every key's value for a run of ``task`` that sets nothing: the engine's defaults under
    the task's own (``Task.defaults``) and its declared keys' defaults (no recipe applied).

    >>> task_defaults("pansharpen")["steps"], task_defaults("fuse")["steps"]
    (200, 100)
    """
    t = _tasks()[0](task)
    out = {k: _default_of(k) for k in SECTION_OF}
    out.update({k: copy.deepcopy(v.default) for k, v in t.config_keys.items()})
    out.update(copy.deepcopy(dict(t.defaults)))
    out["task"] = task
    return out


def engine_keys() -> dict[str, tuple[str, str, Any]]:
    """The engine's own keys: ``{name: (type, doc, default)}`` in declaration order (the
    command line's flags are made from these and the running task's ``config_keys``). Imports
    no torch.

    >>> engine_keys()["steps"]
    ('int', 'optimizer steps (one batch each)', 100)
    """
    return {n: (_TYPE_OF[n], f.metadata["doc"], _default_of(n)) for n, f in _FIELD.items()}


def key_doc(name: str, task: str | None = None) -> str:
    """The one-line meaning of key ``name`` (an engine key, or one ``task`` declares); for an
    engine key, what ``task`` says it reads from it (``Task.key_docs``) comes after."""
    if name in _FIELD:
        doc = _FIELD[name].metadata["doc"]
        if task is not None and task in _tasks()[1]():
            own = _tasks()[0](task).key_docs.get(name)
            if own:
                doc = f"{doc}; the {task} task: {own}"
        return doc
    declared = _declared_keys(task)
    if name in declared:
        return declared[name].doc
    owners = task_key_owners(name)
    return owners[0][1].doc if owners else ""


def _split_options(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(engine keys, task-declared keys)`` of a flat mapping."""
    fields_ = {k: v for k, v in values.items() if k in _FIELD or k == "task_options"}
    options = {k: v for k, v in values.items() if k not in fields_}
    if "task_options" in fields_:
        options = {**fields_.pop("task_options"), **options}
    return fields_, options


def _default_of(name: str) -> Any:
    """Key ``name``'s default (a fresh copy for list/dict defaults)."""
    f = _FIELD[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]

#: int keys with a range of their own (the others must be >= 1).
_OWN_RANGE = frozenset({"seed", "warmup", "threads", "data_seed", "crop", "val_crop"})

# The model section's keys other than `model` are the task's (Task.config_keys), checked there.
_SECTION_CHECKS = {"run": TrainConfig._check_run, "task": TrainConfig._check_task,
                   "data": TrainConfig._check_data}


def _keys_of(section: str) -> list[str]:
    return [k for k, s in SECTION_OF.items() if s == section]


def flatten_config(d: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """The flat ``{key: value}`` of a grouped, flat or mixed configuration mapping.

    A top-level ``run``/``task``/``model``/``data`` whose value is a mapping is that section:
    its keys must belong to it (``name`` is ``task`` / ``model`` and ``path`` is ``data`` there,
    :data:`GROUPED_NAMES`). Other top-level keys are flat keys (``task: fuse``). ``-`` in a key
    reads as ``_``. A key given twice raises :class:`ConfigError`; unknown flat keys are kept
    for the caller to refuse.

    Example:

        >>> flatten_config({"run": {"steps": 3}, "task": {"name": "segment"}, "crop": 64})
        {'steps': 3, 'task': 'segment', 'crop': 64}
        >>> flatten_config({"steps": 3, "task": "fuse"})
        {'steps': 3, 'task': 'fuse'}
    """
    flat: dict[str, Any] = {}

    def put(name: str, value: Any, spelled: str) -> None:
        if name in flat:
            raise ConfigError(f"{source}: {spelled}: {name} is given twice", key=name)
        flat[name] = value

    for k, v in d.items():
        top = str(k).replace("-", "_")
        if top in SECTIONS and isinstance(v, Mapping):
            inner = {GROUPED_NAMES[n]: n for n in _keys_of(top) if n in GROUPED_NAMES}
            for sk, sv in v.items():
                sub = str(sk).replace("-", "_")
                name = inner.get(sub, sub)
                owner = SECTION_OF.get(name)
                if owner is None and task_key_owners(name):
                    owner = task_key_owners(name)[0][1].section
                if owner is None:
                    raise ConfigError(f"{source}: {top}.{sk}: unknown key (known in {top}: "
                                      f"{', '.join(GROUPED_NAMES.get(n, n) for n in _keys_of(top))})")
                if owner != top:
                    raise ConfigError(f"{source}: {top}.{sk}: {name} belongs to section "
                                      f"{owner!r}", key=name)
                put(name, sv, f"{top}.{sk}")
        else:
            put(top, v, str(k))
    return flat


def _shown(value: Any) -> str:
    import yaml

    return "null" if value is None else yaml.safe_dump(
        value, default_flow_style=True).strip().removesuffix("...").strip()


def markdown_table() -> str:
    """The Markdown tables of every key: the engine's (by section), then each registered
    task's own (``Task.config_keys``, with that task's defaults); ``docs/configuration.md``
    holds them and ``tests/test_config_groups.py`` checks they are current."""
    rows = ["| section | key | in the section | default | meaning |", "|---|---|---|---|---|"]
    for name, f in _FIELD.items():
        rows.append(f"| {f.metadata['section']} | `{name}` | `{GROUPED_NAMES.get(name, name)}`"
                    f" | `{_shown(_default_of(name))}` | {f.metadata['doc']} |")
    get_task, list_tasks = _tasks()
    for t in list_tasks():
        task = get_task(t)
        if not task.config_keys:
            continue
        rows += ["", f"Keys of the `{t}` task (`{type(task).__module__}`):", "",
                 "| section | key | default | meaning |", "|---|---|---|---|"]
        rows += [f"| {k.section} | `{name}` | `{_shown(k.default)}` | {k.doc} |"
                 for name, k in task.config_keys.items()]
    return "\n".join(rows) + "\n"


class _Recipes(Mapping):
    """Every task's recipes by name (``Task.recipes``), read when used (the tasks import
    torch)."""

    def _all(self) -> dict[str, Mapping[str, Any]]:
        get_task, list_tasks = _tasks()
        return {n: r for t in list_tasks() for n, r in get_task(t).recipes.items()}

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        return self._all()[name]

    def __iter__(self):
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


#: Named sets of defaults, applied under the keys given (the ``recipe`` key): every task's
#: ``recipes`` (``ship-authors``: fuse; ``leaf-authors``: segment).
RECIPES: Mapping[str, Mapping[str, Any]] = _Recipes()

#: Keys a resumed run may change (anything else must match the run's ``config.yaml``).
RESUME_OVERRIDABLE = frozenset({"steps", "save_every", "log_every", "eval_every", "device",
                                "out", "max_nonfinite"})


#: Values of keys a run folder's ``config.yaml`` written before the key existed meant
#: (:func:`load_run_config`): ``leaf_norm`` came with the normalised head.
RUN_FILE_FALLBACKS: dict[str, Any] = {"leaf_norm": "none"}


def load_run_config(path: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` of a run folder's ``config.yaml`` (grouped, or flat as runs
    before the sections wrote it); keys its task does not use (``Task.foreign_keys``) are
    ignored.

    A run's file lists every key; a key it lacks was added later, and the run used what that key's
    :data:`RUN_FILE_FALLBACKS` value gives (e.g. runs before ``leaf_norm`` had the clip-only head),
    not today's default.
    """
    data = flatten_config(load_yaml(path), source=str(path))
    # Keys the run's task does not use (Task.foreign_keys: other tasks' keys, which runs written
    # before the keys moved into their tasks list too) are left out: they meant nothing to the
    # run, and another task may have changed their defaults since.
    get_task, list_tasks = _tasks()
    task = data.get("task", _default_of("task"))
    if task in list_tasks():
        foreign = set(get_task(task).foreign_keys)
        data = {k: v for k, v in data.items() if k not in foreign}
    own = get_task(task).config_keys if task in list_tasks() else {}
    for name, value in RUN_FILE_FALLBACKS.items():
        if name in SECTION_OF or name in own:  # the fallback of a key the run's task has
            data.setdefault(name, value)
    return TrainConfig.from_dict(data, source=str(path))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors (``key="config"``) name the file."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config: cannot read {p}: {exc}", key="config") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: {p} is not valid YAML: {exc}", key="config") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {p} must hold a mapping of keys to values, "
                          f"got {type(data).__name__}", key="config")
    return data
