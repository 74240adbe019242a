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

import yaml

from hyperleaf.losses import list_losses
from hyperleaf.tasks import get_task, list_tasks

__all__ = ["TrainConfig", "task_key_owners", "task_defaults", "key_doc", "load_yaml", "load_run_config", "ConfigError", "RESUME_OVERRIDABLE",
           "RECIPES", "RUN_FILE_FALLBACKS", "SECTIONS", "SECTION_OF", "key", "flatten_config",
           "ConfigView", "markdown_table"]

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


@dataclass
class TrainConfig:
    """Everything a run needs; ``config.yaml`` in the run folder is this, serialised by section.

    Model keys (``n_feat``, ``leaf``, ``ball_dim``, ...) are what rebuilds the network from
    ``model.safetensors``; ``docs/configuration.md`` lists every key with its section.
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
    recipe: str | None = key("run", None, "a named set of defaults (`RECIPES`): `ship-authors`, "
                                          "`leaf-authors`")
    init: str | None = key("run", None, "initial weights: the SHIP authors' `.pth` or a run "
                                        "folder")
    # ---- task: what is optimised and scored
    task: str = key("task", "fuse", "a registered task: `fuse` (SHIP + LEAF), `segment`, ...")
    loss: str = key("task", "hyperleaf", "fuse: `hyperleaf` (FusionLoss) or `ship-authors`")
    w_mask: float = key("task", 3.0, "fuse, `ship-authors` loss: weight of L_mask")
    w_intensity: float = key("task", 1.0, "fuse: weight of the intensity term")
    w_gradient: float = key("task", 1.0, "fuse: weight of the gradient term")
    w_ssim: float = key("task", 0.5, "fuse: weight of the SSIM term")
    h2fr_weight: float = key("task", 0.5, "weight of the H2FR loss")
    h2fr_mode: str = key("task", "geodesic", "H2FR distances: `geodesic` or `paper`")
    h2fr_core: str = key("task", "learned", "H2FR core: `learned` or `origin` (`origin` with "
                                            "`paper`)")
    h2fr_alpha: float = key("task", 1.0, "H2FR alpha (>= 0)")
    h2fr_beta: float = key("task", 1.0, "H2FR beta (>= 0)")
    seg_loss: str = key("task", "ce", "segment: `ce` (CE + h2fr_weight H2FR) or `leaf-authors` "
                                      "(w_ce CE + w_focal_dice (w_dice Dice + w_focal Focal) + "
                                      "h2fr_weight H2FR)")
    w_ce: float = key("task", 1.0, "segment, `leaf-authors` loss: weight of CE")
    w_focal_dice: float = key("task", 0.5, "segment, `leaf-authors` loss: weight of Dice + Focal")
    w_dice: float = key("task", 1.0, "segment, `leaf-authors` loss: weight of Dice")
    w_focal: float = key("task", 1.2, "segment, `leaf-authors` loss: weight of Focal")
    focal_reduction: str = key("task", "sum", "focal loss over classes: `sum` (smp 0.5) or "
                                              "`mean`")
    # ---- model: what rebuilds the network from model.safetensors
    model: str | None = key("model", None, "network (`hyperleaf.models.registry`); null: the "
                                           "task's default (segment: leafseg on the synthetic "
                                           "set, leaf-unet on 2-D folders, leaf-unet3d on NIfTI "
                                           "volumes)")
    n_feat: int = key("model", 8, "SHIP feature channels")
    leaf: bool = key("model", True, "false: plain SHIP (the ablation)")
    curvature: float = key("model", 0.5, "the H2FR head's (LeafHead's) initial ball curvature "
                                         "c > 0; leaf-unet(3d): the network's one curvature "
                                         "(head and HDGFB blocks, the authors' constant)")
    learn_curvature: bool = key("model", True, "learn the H2FR head's curvature")
    hdgfb_curvature: float = key("model", 0.2, "the HDGFB blocks' fixed curvature c > 0 (SHIP + "
                                               "LEAF, leafseg; the seed's 0.2); not the head's "
                                               "`curvature`")
    ball_dim: int = key("model", 16, "LeafHead ball dimension")
    clip_r: float = key("model", 2.0, "LeafHead tangent clip radius")
    leaf_norm: str = key("model", "layer", "LeafHead normalisation: `layer` (radial_layer_norm) "
                                           "or `none`")
    leaf_radius: float = key("model", 1.5, "leaf_norm `layer`: initial tangent norm, in "
                                           "(0, clip_r)")
    hdgfb_mode: str = key("model", "geodesic", "HDGFB: `geodesic` or `paper`")
    hdgfb_hidden: int = key("model", 32, "HDGFB hidden width")
    num_classes: int = key("model", 0, "segment: classes; 0: from the data (layout / labels; "
                                       "synthetic set 4)")
    seg_width: int = key("model", 16, "leafseg: base width")
    in_channels: int = key("model", 0, "channels of each of the two network inputs; 0: from the "
                                       "data (saved in the run's config.yaml)")
    encoder: str = key("model", "resnet50", "leaf-unet: a segmentation-models-pytorch encoder")
    feature_dim: int = key("model", 512, "leaf-unet(3d): width of the compressed global vectors")
    mlp_dim: int = key("model", 2048, "leaf-unet(3d): deep attention fusion MLP width")
    leaf_mode: str = key("model", "paper", "leaf-unet(3d): `paper` (the authors') or "
                                           "`corrected`")
    hdgfb: bool = key("model", True, "false replaces every HDGFB by identity (SHIP: none built)")
    h2fr: bool = key("model", True, "false with `leaf`: no LEAF head, no H2FR loss (`hdgfb-only`)")
    euclidean: bool = key("model", False, "LEAF's c -> 0 limit: every ball map and distance Euclidean")
    widths3d: list[int] = key("model", [16, 32, 64, 128], "leaf-unet3d: widths per level")
    # ---- data: what is read and how it is cut
    data: str | None = key("data", None, "data folder; null: the embedded synthetic set")
    crop: int = key("data", 32, "training crop side (>= 16)")
    val_crop: int = key("data", 64, "validation image side (synthetic) / centre crop (real)")
    train_size: int = key("data", 4096, "synthetic set: training samples")
    val_size: int = key("data", 8, "synthetic set: validation samples")
    val_fraction: float = key("data", 0.1, "real data: held-out fraction, in (0, 1)")
    data_seed: int = key("data", 0, "synthetic set seed")
    rot90: bool = key("data", False, "real data: random 90-degree rotations of training crops")
    lesion_fraction: float = key("data", 0.0, "segment: share of training crops centred on a label > 0 voxel")
    modality_groups: list[list[int]] | None = key(
        "data", None, "segment: modality folders forming the two inputs, e.g. [[0, 1], [2, 3]]; "
                      "null: first half, second half")
    # ---- pan-sharpening (task "pansharpen", hyperleaf/tasks/pansharpen.py) -- one block ----
    sensor: str | None = key("data", None, "pansharpen: MTF gains of Wald's degradation (null: "
                                           "generic gains)")
    normalise: bool = key("model", True, "pansharpen: run SHIP on per-band standardised inputs "
                                         "(Standardised)")
    train_index: str | None = key("data", None, "pansharpen: samples of data that train, e.g. "
                                                "`0-79` (null: the rest)")
    val_index: str | None = key("data", None, "pansharpen: samples that validate, e.g. `80-99` "
                                              "(null: val_fraction)")
    ms_bands: int = key("model", 0, "pansharpen: MS bands; 0: from the data (resolved and saved)")
    ratio: int = key("model", 0, "pansharpen: PAN/MS resolution ratio; 0: from the data (saved)")
    pan_statistics: dict[str, list[float]] | None = key(
        "model", None, "pansharpen: Standardised's statistics of the training tiles (computed "
                       "from the data and saved)")
    # ---- end of the pan-sharpening block ----
    # ---- the running task's own keys (Task.config_keys), read and written flat: cfg.<name>
    task_options: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False,
                                                     metadata={"task_options": True})

    def __getattr__(self, name: str) -> Any:
        # Called only when ordinary lookup fails: a key the running task declares.
        options = self.__dict__.get("task_options")
        if options is not None and name in options:
            return options[name]
        declared = _declared_keys(self.__dict__.get("task"))
        if name in declared:
            return copy.deepcopy(declared[name].default)
        raise AttributeError(f"{name!r} is no config key")

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
        for section in SECTIONS:
            _SECTION_CHECKS[section](self)
        for f in _FIELD.values():
            if _TYPE_OF[f.name] == "float":
                self._need(self._finite(f.name), f.name, "must be finite")
        task = get_task(self.task)
        self._check_options(task)
        # A key only another task reads would be silently ignored: refuse it set at all.
        foreign = [k for k in RECIPES.get(self.recipe or "", {}) if k in task.foreign_keys]
        if foreign and "recipe" not in task.foreign_keys:
            raise ConfigError(f"recipe: {self.recipe!r} is not a recipe of the {self.task} task "
                              f"(it sets {', '.join(foreign)}, which that task does not use)",
                              key="recipe")
        # the recipe first: the keys it sets were not given by the user
        for name in sorted(task.foreign_keys, key=lambda n: n != "recipe"):
            if name not in _FIELD:
                continue  # another task's own key: refused by _check_options when given
            if getattr(self, name) != _default_of(name):
                raise ConfigError(f"{name}: does not apply to the {self.task} task (got "
                                  f"{getattr(self, name)!r})", key=name)
        try:
            needs = (*task.config_needs, *task.foreign_keys, *task.config_keys)
            task.check_config(self.section_view("task", needs, owner=f"task {self.task!r}"))
        except ValueError as exc:
            named = str(exc).split(":", 1)[0]
            raise ConfigError(str(exc), key=named if named in SECTION_OF else None) from exc
        return self

    def _check_options(self, task: Any) -> None:
        """The keys ``task`` declares (``Task.config_keys``): defaults filled in, types checked;
        a key it does not declare is refused by name."""
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
            if not k.accepts(value):
                raise ConfigError(f"{name}: must be of type {k.type}, got {value!r}", key=name)
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
        need(self.recipe is None or self.recipe in RECIPES, "recipe",
             f"must be one of {', '.join(sorted(RECIPES))} or null")
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
        need = self._need
        need(self.task in list_tasks(), "task", f"must be one of {', '.join(list_tasks())}")
        fusion_losses = list_losses("fuse")
        need(self.loss in fusion_losses, "loss", f"must be one of {', '.join(fusion_losses)}")
        need(self.seg_loss in ("ce", "leaf-authors"), "seg_loss", "must be 'ce' or 'leaf-authors'")
        need(self.focal_reduction in ("sum", "mean"), "focal_reduction", "must be 'sum' or 'mean'")
        need(self.h2fr_mode in ("paper", "geodesic"), "h2fr_mode", "must be 'paper' or 'geodesic'")
        need(self.h2fr_core in ("origin", "learned"), "h2fr_core", "must be 'origin' or 'learned'")
        need(self.h2fr_mode == "geodesic" or self.h2fr_core == "origin", "h2fr_core",
             "must be 'origin' with h2fr_mode 'paper' (the seed's loss has no learned core)")
        self._weights_non_negative(("w_intensity", "w_gradient", "w_ssim", "h2fr_weight",
                                    "h2fr_alpha", "h2fr_beta", "w_mask", "w_ce", "w_focal_dice",
                                    "w_dice", "w_focal"))

    def _check_model(self) -> None:
        need = self._need
        self._ints_at_least_one("model")
        need(self.leaf_mode in ("paper", "corrected"), "leaf_mode",
             "must be 'paper' or 'corrected'")
        need(isinstance(self.widths3d, list) and len(self.widths3d) >= 1
             and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                     for w in self.widths3d), "widths3d", "must be a list of ints >= 1")
        need(self.leaf_norm in ("layer", "none"), "leaf_norm", "must be 'layer' or 'none'")
        need(self.hdgfb_mode in ("paper", "geodesic"), "hdgfb_mode",
             "must be 'paper' or 'geodesic'")
        need(not self.euclidean or (self.h2fr_mode == self.hdgfb_mode == "geodesic"
                                    and not self.learn_curvature), "euclidean",
             "is the c -> 0 limit of geodesic LEAF: needs h2fr_mode and hdgfb_mode 'geodesic' "
             "and learn_curvature false")
        need(self.in_channels >= 0, "in_channels", "must be >= 0 (0: from the data)")
        need(self.num_classes == 0 or self.num_classes >= 2, "num_classes",
             "must be >= 2 (0: from the data)")
        for name in ("curvature", "hdgfb_curvature", "clip_r"):
            need(self._finite(name) and getattr(self, name) > 0, name, "must be finite and > 0")
        need(self.leaf_norm != "layer" or (self._finite("leaf_radius")
                                            and 0 < self.leaf_radius < self.clip_r),
             "leaf_radius", f"must be in (0, clip_r={self.clip_r:g}) with leaf_norm 'layer'")

    def _check_data(self) -> None:
        need = self._need
        self._ints_at_least_one("data")
        groups = self.modality_groups
        need(groups is None or (isinstance(groups, list) and len(groups) == 2 and all(
            isinstance(g, list) and g and all(isinstance(i, int) and not isinstance(i, bool)
                                              and i >= 0 for i in g) for g in groups)),
             "modality_groups", "must be null or two non-empty lists of modality indices")
        need(self.crop >= 16, "crop", "must be >= 16")
        need(self.val_crop >= 16, "val_crop", "must be >= 16")
        need(0 < self.val_fraction < 1, "val_fraction", "must be in (0, 1)")

    def section_view(self, section: str, needs: Iterable[str] = (),
                     owner: str = "caller") -> ConfigView:
        """Read-only view of the keys of ``section`` plus ``needs`` (keys of other sections).

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
        return ConfigView(self, (*_keys_of(section), *needs), owner)

    def to_dict(self) -> dict[str, Any]:
        """Flat ``{key: value}`` (what checkpoints store), the task's own keys included."""
        flat = dataclasses.asdict(self)
        return {**{k: v for k, v in flat.items() if k != "task_options"},
                **flat["task_options"]}

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
        name = clean.get("recipe")
        if name is not None:
            if name not in RECIPES:
                raise ConfigError(f"{source}: recipe: unknown recipe {name!r} (known: "
                                  f"{', '.join(sorted(RECIPES))})", key="recipe")
            clean = {**RECIPES[name], **clean}
        # The task's own defaults (Task.defaults) go under the recipe's and the mapping's values.
        task = clean.get("task", cls.task)
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
    if task is None or task not in list_tasks():
        return {}
    return get_task(task).config_keys


def task_key_owners(name: str) -> list[tuple[str, Any]]:
    """``[(task, TaskKey)]`` of every registered (or built-in) task declaring key ``name``."""
    return [(t, get_task(t).config_keys[name]) for t in list_tasks()
            if name in get_task(t).config_keys]


def task_defaults(task: str) -> dict[str, Any]:
    """Every key's value for a run of ``task`` that sets nothing: the engine's defaults under
    the task's own (``Task.defaults``) and its declared keys' defaults (no recipe applied).

    >>> task_defaults("pansharpen")["steps"], task_defaults("fuse")["steps"]
    (200, 100)
    """
    t = get_task(task)
    out = {k: _default_of(k) for k in SECTION_OF}
    out.update(copy.deepcopy(dict(t.defaults)))
    out.update({k: copy.deepcopy(v.default) for k, v in t.config_keys.items()})
    out["task"] = task
    return out


def key_doc(name: str, task: str | None = None) -> str:
    """The one-line meaning of key ``name`` (an engine key, or one ``task`` declares)."""
    if name in _FIELD:
        return _FIELD[name].metadata["doc"]
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
_OWN_RANGE = frozenset({"seed", "warmup", "threads", "in_channels", "num_classes", "data_seed",
                        "crop", "val_crop", "ms_bands", "ratio"})

_SECTION_CHECKS = {"run": TrainConfig._check_run, "task": TrainConfig._check_task,
                   "model": TrainConfig._check_model, "data": TrainConfig._check_data}


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


def markdown_table() -> str:
    """The Markdown table of every key by section (``docs/configuration.md`` holds it;
    ``tests/test_config_groups.py`` checks it is current)."""
    rows = ["| section | key | in the section | default | meaning |", "|---|---|---|---|---|"]
    for f in fields(TrainConfig):
        if f.name == "task_options":
            continue
        default = _default_of(f.name)
        shown = "null" if default is None else yaml.safe_dump(
            default, default_flow_style=True).strip().removesuffix("...").strip()
        rows.append(f"| {f.metadata['section']} | `{f.name}` | `{GROUPED_NAMES.get(f.name, f.name)}`"
                    f" | `{shown}` | {f.metadata['doc']} |")
    return "\n".join(rows) + "\n"

#: Named sets of defaults, applied under the keys given (the ``recipe`` key).
#: ``ship-authors``: what the SHIP authors trained their infrared-visible network with (see
#: ``docs/training.md``, "The SHIP authors' recipe", for the choices their file leaves open).
RECIPES: dict[str, dict[str, Any]] = {
    "ship-authors": {
        "loss": "ship-authors", "w_mask": 3.0, "w_intensity": 10.0, "w_gradient": 10.0,
        "w_ssim": 0.0, "lr": 1e-4, "lr_min": 0.0, "warmup": 0, "lr_schedule": "multistep",
        "lr_milestones": [15000, 25000], "lr_gamma": 0.75, "crop": 128, "rot90": True,
        "n_feat": 16, "grad_clip": 0.0,
    },
    # The LEAF authors' segmentation recipe (shared/specs/leaf_authors_net.md §7; see
    # docs/segmentation.md): their network, loss CE + 0.5 (Dice + 1.2 Focal) + 0.5 H2FR with the
    # focal loss summed over classes, AdamW (lr 1e-4, weight decay 0.01), cosine per epoch to
    # 1e-5, gradient clip 1.0, 256x256 inputs.
    "leaf-authors": {
        "task": "segment", "encoder": "resnet50", "curvature": 0.1,
        "feature_dim": 512, "hdgfb_hidden": 512, "mlp_dim": 2048, "leaf_mode": "paper",
        "seg_loss": "leaf-authors", "w_ce": 1.0, "w_focal_dice": 0.5, "w_dice": 1.0,
        "w_focal": 1.2, "h2fr_weight": 0.5, "focal_reduction": "sum", "optimizer": "adamw",
        "lr": 1e-4, "weight_decay": 0.01, "lr_schedule": "cosine", "lr_min": 1e-5,
        "lr_per_epoch": True, "warmup": 0, "grad_clip": 1.0, "crop": 256, "val_crop": 256,
    },
}

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
    # Keys the run's task does not use (Task.foreign_keys) are left out: they meant nothing to
    # the run, and another task may have changed their defaults since.
    task = data.get("task", TrainConfig.task)
    if task in list_tasks():
        foreign = set(get_task(task).foreign_keys)
        data = {k: v for k, v in data.items() if k not in foreign}
    for name, value in RUN_FILE_FALLBACKS.items():
        data.setdefault(name, value)
    return TrainConfig.from_dict(data, source=str(path))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors (``key="config"``) name the file."""
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
