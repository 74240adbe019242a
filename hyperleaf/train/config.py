"""Training configuration: defaults < ``--config FILE`` (YAML) < command-line flags.

The defaults are the embedded demo run: ``hyperleaf train`` with no arguments trains SHIP + LEAF
on the synthetic infrared-visible set for a couple of minutes on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TrainConfig", "load_yaml", "load_run_config", "ConfigError", "RESUME_OVERRIDABLE",
           "RECIPES", "RUN_FILE_FALLBACKS"]


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the key or the file.

    ``key`` is the offending :class:`TrainConfig` key when one value is at fault (else None),
    so a front end can name its own spelling of it (the command line names the flag).
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass
class TrainConfig:
    """Everything a run needs; ``config.yaml`` in the run folder is this, serialised.

    Model keys (``n_feat``, ``leaf``, ``ball_dim``, ...) are what rebuilds the network from
    ``model.safetensors``; see ``docs/training.md`` for each key.
    """

    task: str = "fuse"                 # a registered task: "fuse" (SHIP + LEAF), "segment", ...
    steps: int = 100
    batch_size: int = 4
    lr: float = 2e-3
    warmup: int = 10                   # linear warm-up steps, then lr_schedule
    lr_min: float = 2e-4               # cosine schedule's floor
    lr_schedule: str = "cosine"        # "cosine" (to lr_min) or "multistep" (below)
    # multistep: the rate is multiplied by lr_gamma at each of these steps
    lr_milestones: list[int] = field(default_factory=lambda: [15000, 25000])
    lr_gamma: float = 0.75
    # cosine per epoch: the rate changes once per pass over the training set (the LEAF authors'
    # CosineAnnealingLR stepped each epoch) instead of every step
    lr_per_epoch: bool = False
    seed: int = 0
    save_every: int = 50
    log_every: int = 5
    eval_every: int = 50
    # "radam" (RiemannianAdam), "rsgd" (RiemannianSGD) or "adamw" (torch AdamW, decoupled weight
    # decay; for networks without manifold parameters, e.g. the LEAF authors' leaf-unet)
    optimizer: str = "radam"
    momentum: float = 0.9              # RiemannianSGD only
    weight_decay: float = 0.0
    grad_clip: float = 1.0             # global gradient-norm clip; 0 disables
    max_nonfinite: int = 5             # consecutive non-finite losses that stop the run
    deterministic: bool = True
    device: str | None = None          # None: cuda when available, else cpu
    threads: int = 1                   # CPU threads for torch; 0 keeps torch's default
    out: str | None = None             # None: runs/<timestamp>
    recipe: str | None = None          # a named set of defaults (RECIPES), e.g. "ship-authors"
    init: str | None = None            # initial weights: the SHIP authors' .pth or a run folder
    # data
    data: str | None = None            # None: the embedded synthetic set
    crop: int = 32                     # training crop side
    val_crop: int = 64                 # validation image side (synthetic) / centre crop (real)
    train_size: int = 4096             # synthetic train samples
    val_size: int = 8                  # synthetic validation samples
    val_fraction: float = 0.1          # real data: held-out fraction of pairs
    data_seed: int = 0                 # synthetic set seed
    rot90: bool = False                # real data: random 90-degree rotations of training crops
    # fusion losses
    loss: str = "hyperleaf"            # "hyperleaf" (FusionLoss) or "ship-authors"
    w_mask: float = 3.0                # ship-authors only: weight of L_mask
    w_intensity: float = 1.0
    w_gradient: float = 1.0
    w_ssim: float = 0.5
    # model
    n_feat: int = 8
    leaf: bool = True                  # False: plain SHIP (the ablation)
    h2fr_weight: float = 0.5
    h2fr_mode: str = "geodesic"
    h2fr_core: str = "learned"
    h2fr_alpha: float = 1.0
    h2fr_beta: float = 1.0
    curvature: float = 0.5
    learn_curvature: bool = True
    ball_dim: int = 16
    clip_r: float = 2.0
    leaf_norm: str = "layer"           # LeafHead normalisation: "layer" (radial_layer_norm) or "none"
    leaf_radius: float = 1.5           # leaf_norm "layer": initial tangent norm, in (0, clip_r)
    hdgfb_mode: str = "geodesic"
    hdgfb_hidden: int = 32
    # segmentation
    num_classes: int = 0               # 0: from the data (layout / labels; synthetic set 4)
    seg_width: int = 16
    # segmentation network: None = the task's default (leafseg on the synthetic set, leaf-unet
    # on 2-D folders, leaf-unet3d on NIfTI volumes); see hyperleaf.models.registry
    model: str | None = None
    # channels of each of the two network inputs; 0 = from the data (resolved and saved in the
    # run's config.yaml when the data are opened)
    in_channels: int = 0
    encoder: str = "resnet50"          # leaf-unet: any segmentation-models-pytorch encoder
    feature_dim: int = 512             # leaf-unet(3d): width of the compressed global vectors
    mlp_dim: int = 2048                # leaf-unet(3d): deep attention fusion MLP width
    leaf_mode: str = "paper"           # leaf-unet(3d): "paper" (the authors') or "corrected"
    hdgfb: bool = True                 # leaf-unet(3d): False replaces every HDGFB by identity
    widths3d: list[int] = field(default_factory=lambda: [16, 32, 64, 128])  # leaf-unet3d
    # groups of modality folders forming the network's two inputs (None: first half, second
    # half), e.g. [[0, 1], [2, 3]] for FLAIR+T1 | T2+T1post
    modality_groups: list[list[int]] | None = None
    # segmentation loss: "ce" (CE + h2fr_weight * H2FR) or "leaf-authors"
    # (w_ce CE + w_focal_dice (w_dice Dice + w_focal Focal) + h2fr_weight H2FR)
    seg_loss: str = "ce"
    w_ce: float = 1.0
    w_focal_dice: float = 0.5
    w_dice: float = 1.0
    w_focal: float = 1.2
    focal_reduction: str = "sum"       # focal loss over classes: "sum" (smp 0.5) or "mean"
    # ---- pan-sharpening (task "pansharpen", hyperleaf/tasks/pansharpen.py) -- one block ----
    sensor: str | None = None          # MTF gains of Wald's degradation (None: generic gains)
    normalise: bool = True             # run SHIP on per-band standardised inputs (Standardised)
    train_index: str | None = None     # samples of data that train, e.g. "0-79" (None: the rest)
    val_index: str | None = None       # samples that validate, e.g. "80-99" (None: val_fraction)
    ms_bands: int = 0                  # MS bands; 0 = from the data (resolved and saved)
    ratio: int = 0                     # PAN/MS resolution ratio; 0 = from the data (saved)
    # Standardised's statistics of the training tiles (computed from the data and saved)
    pan_statistics: dict[str, list[float]] | None = None
    # ---- end of the pan-sharpening block ----

    def validate(self) -> TrainConfig:
        """Check types and ranges; raises :class:`ConfigError` naming the key."""
        def need(cond: bool, key: str, what: str) -> None:
            if not cond:
                raise ConfigError(f"{key}: {what}, got {getattr(self, key)!r}", key=key)

        def finite(key: str) -> bool:
            return math.isfinite(getattr(self, key))

        for f in fields(self):
            v = getattr(self, f.name)
            t = f.type if isinstance(f.type, str) else f.type.__name__
            if t == "int":
                need(isinstance(v, int) and not isinstance(v, bool), f.name, "must be an int")
            elif t == "float":
                need(isinstance(v, (int, float)) and not isinstance(v, bool), f.name,
                     "must be a number")
                setattr(self, f.name, float(v))
            elif t == "bool":
                need(isinstance(v, bool), f.name, "must be true or false")
            elif t == "str | None":
                need(v is None or isinstance(v, str), f.name, "must be a string or null")
        from hyperleaf.tasks import get_task, list_tasks

        need(self.task in list_tasks(), "task", f"must be one of {', '.join(list_tasks())}")
        need(self.recipe is None or self.recipe in RECIPES, "recipe",
             f"must be one of {', '.join(sorted(RECIPES))} or null")
        need(self.loss in ("hyperleaf", "ship-authors"), "loss",
             "must be 'hyperleaf' or 'ship-authors'")
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
        need(self.seg_loss in ("ce", "leaf-authors"), "seg_loss", "must be 'ce' or 'leaf-authors'")
        need(self.focal_reduction in ("sum", "mean"), "focal_reduction", "must be 'sum' or 'mean'")
        need(self.leaf_mode in ("paper", "corrected"), "leaf_mode",
             "must be 'paper' or 'corrected'")
        need(isinstance(self.widths3d, list) and len(self.widths3d) >= 1
             and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                     for w in self.widths3d), "widths3d", "must be a list of ints >= 1")
        groups = self.modality_groups
        need(groups is None or (isinstance(groups, list) and len(groups) == 2 and all(
            isinstance(g, list) and g and all(isinstance(i, int) and not isinstance(i, bool)
                                              and i >= 0 for i in g) for g in groups)),
             "modality_groups", "must be null or two non-empty lists of modality indices")
        need(self.h2fr_mode in ("paper", "geodesic"), "h2fr_mode", "must be 'paper' or 'geodesic'")
        need(self.h2fr_core in ("origin", "learned"), "h2fr_core", "must be 'origin' or 'learned'")
        need(self.h2fr_mode == "geodesic" or self.h2fr_core == "origin", "h2fr_core",
             "must be 'origin' with h2fr_mode 'paper' (the seed's loss has no learned core)")
        need(self.leaf_norm in ("layer", "none"), "leaf_norm", "must be 'layer' or 'none'")
        need(self.hdgfb_mode in ("paper", "geodesic"), "hdgfb_mode",
             "must be 'paper' or 'geodesic'")
        need(self.device in (None, "cpu", "cuda") or str(self.device).startswith("cuda:"),
             "device", "must be cpu, cuda or cuda:N")
        for key in ("steps", "batch_size", "save_every", "log_every", "eval_every", "n_feat",
                    "ball_dim", "train_size", "val_size", "max_nonfinite", "hdgfb_hidden",
                    "seg_width", "feature_dim", "mlp_dim"):
            need(getattr(self, key) >= 1, key, "must be >= 1")
        need(self.in_channels >= 0, "in_channels", "must be >= 0 (0: from the data)")
        need(self.num_classes == 0 or self.num_classes >= 2, "num_classes",
             "must be >= 2 (0: from the data)")
        need(self.threads >= 0, "threads", "must be >= 0 (0: torch's default)")
        need(self.crop >= 16, "crop", "must be >= 16")
        need(self.val_crop >= 16, "val_crop", "must be >= 16")
        need(self.warmup >= 0, "warmup", "must be >= 0")
        # NaN fails every comparison and inf passes "> 0": each float is checked finite too
        # (an infinite learning rate turns every weight into NaN at the first step).
        for key in ("lr", "curvature", "clip_r"):
            need(finite(key) and getattr(self, key) > 0, key, "must be finite and > 0")
        need(self.leaf_norm != "layer" or (finite("leaf_radius")
                                            and 0 < self.leaf_radius < self.clip_r),
             "leaf_radius", f"must be in (0, clip_r={self.clip_r:g}) with leaf_norm 'layer'")
        need(finite("lr_min") and 0 <= self.lr_min <= self.lr, "lr_min", "must be in [0, lr]")
        for key in ("w_intensity", "w_gradient", "w_ssim", "h2fr_weight", "weight_decay",
                    "grad_clip", "momentum", "h2fr_alpha", "h2fr_beta", "w_mask", "w_ce",
                    "w_focal_dice", "w_dice", "w_focal"):
            need(finite(key) and getattr(self, key) >= 0, key, "must be finite and >= 0")
        need(0 < self.val_fraction < 1, "val_fraction", "must be in (0, 1)")
        for f in fields(self):
            if f.type in ("float", float):
                need(finite(f.name), f.name, "must be finite")
        try:
            get_task(self.task).check_config(self)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping; keys may use ``-`` or ``_``. Unknown keys raise.

        A ``recipe`` key puts that recipe's values (:data:`RECIPES`) under the mapping's own,
        and the task's ``defaults`` (:attr:`hyperleaf.tasks.Task.defaults`) go under both.
        """
        known = {f.name for f in fields(cls)}
        clean: dict[str, Any] = {}
        for k, v in d.items():
            key = str(k).replace("-", "_")
            if key not in known:
                raise ConfigError(f"{source}: unknown key {k!r} "
                                  f"(known: {', '.join(sorted(known))})")
            clean[key] = v
        name = clean.get("recipe")
        if name is not None:
            if name not in RECIPES:
                raise ConfigError(f"{source}: recipe: unknown recipe {name!r} (known: "
                                  f"{', '.join(sorted(RECIPES))})")
            clean = {**RECIPES[name], **clean}
        # The task's own defaults (Task.defaults) go under the recipe's and the mapping's values.
        from hyperleaf.tasks import get_task, list_tasks

        task = clean.get("task", cls.task)
        if task in list_tasks():
            clean = {**get_task(task).defaults, **clean}
        return cls(**clean).validate()

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes).validate()


#: Named sets of defaults, applied under the keys given (``--recipe NAME``, ``recipe:``).
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

#: Keys a ``--resume`` may change (anything else must match the run's ``config.yaml``).
RESUME_OVERRIDABLE = frozenset({"steps", "save_every", "log_every", "eval_every", "device",
                                "out", "max_nonfinite"})


#: Values of keys a run folder's ``config.yaml`` written before the key existed meant
#: (:func:`load_run_config`): ``leaf_norm`` came with the normalised head.
RUN_FILE_FALLBACKS: dict[str, Any] = {"leaf_norm": "none"}


def load_run_config(path: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` of a run folder's ``config.yaml``.

    A run's file lists every key (those its task does not use are ignored); a key it lacks was
    added later, and the run used what that key's
    :data:`RUN_FILE_FALLBACKS` value gives (e.g. runs before ``leaf_norm`` had the clip-only head),
    not today's default.
    """
    data = dict(load_yaml(path))
    # Keys the run's task does not use (Task.foreign_keys) are left out: they meant nothing to
    # the run, and another task may have changed their defaults since.
    from hyperleaf.tasks import get_task, list_tasks

    task = data.get("task", TrainConfig.task)
    if task in list_tasks():
        foreign = set(get_task(task).foreign_keys)
        data = {k: v for k, v in data.items() if str(k).replace("-", "_") not in foreign}
    keys = {str(k).replace("-", "_") for k in data}
    for key, value in RUN_FILE_FALLBACKS.items():
        if key not in keys:
            data[key] = value
    return TrainConfig.from_dict(data, source=str(path))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {p}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {p} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {p} must hold a mapping of keys to values, "
                          f"got {type(data).__name__}")
    return data
