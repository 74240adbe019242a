r"""What an ablation runs: the arms, the tasks and their metrics, seeds, the held-out split and
the named presets.

Arms (:data:`ARMS`): TrainConfig keys each arm sets over the configuration shared by all runs.
Every run of an ablation also sets ``shared_init: true``: its initial tensors are copied from
the full LEAF network drawn with the run's seed (:func:`hyperleaf.train.build.copy_shared_init`),
so all arms of one seed share every tensor they have in common, bit for bit, for every task.

========== ===================================================================================
arm        what it is
========== ===================================================================================
ship       the plain backbone (no HDGFB, no H2FR); the reference of the paired differences
leaf       SHIP + LEAF: HDGFB at each stage and H2FR (the configuration's, geodesic default)
leaf-paper SHIP + LEAF with the seed's paper-mode H2FR (Euclidean-norm scores, core at 0)
hdgfb-only the HDGFB blocks, no H2FR head or loss (``h2fr: false``)
h2fr-only  H2FR on the plain backbone's stages, no HDGFB (``hdgfb: false``)
euclidean  ``leaf`` with every hyperbolic map and distance replaced by its c -> 0 limit
           (``euclidean: true``; :mod:`hyperleaf.geometry` ``*_c0``: :math:`\exp_0 = \log_0 =`
           identity, :math:`d(x, y) = 2\|x - y\|`), the paper's c = 0 arm; its curvature is
           fixed (``learn_curvature: false``), there is none to learn
========== ===================================================================================

Example::

    >>> sorted(ARMS)[:3], ARMS["hdgfb-only"]
    (['euclidean', 'h2fr-only', 'hdgfb-only'], {'leaf': True, 'h2fr': False})
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hyperleaf.data.pairs import split_pairs
from hyperleaf.io import find_pairs_in
from hyperleaf.metrics.registry import check_convention, get, resolve

__all__ = ["ARMS", "ARM_LABELS", "TASKS", "DEFAULT_METRICS", "TASK_METRICS", "MIN_EFFECT",
           "LOWER_IS_BETTER", "MIN_SEEDS_FOR_VERDICT", "PRESETS", "AblationError",
           "AblationSpec", "heldout_count", "split_by_name", "make_split_view", "split_items",
           "make_item_view", "parse_seeds",
           "higher_is_better", "min_effect_of"]

#: The arms: TrainConfig keys each arm sets over the shared configuration.
ARMS: dict[str, dict[str, Any]] = {
    "ship": {"leaf": False},
    "leaf": {"leaf": True},
    "leaf-paper": {"leaf": True, "h2fr_mode": "paper", "h2fr_core": "origin"},
    "hdgfb-only": {"leaf": True, "h2fr": False},
    "h2fr-only": {"leaf": True, "hdgfb": False},
    "euclidean": {"leaf": True, "euclidean": True, "learn_curvature": False},
}
ARM_LABELS = {"ship": "SHIP", "leaf": "SHIP+LEAF", "leaf-paper": "SHIP+LEAF (paper H2FR)",
              "hdgfb-only": "SHIP+HDGFB", "h2fr-only": "SHIP+H2FR",
              "euclidean": "SHIP+LEAF (c→0)"}

#: The tasks ``hyperleaf ablate --task`` runs.
TASKS = ("fuse", "segment", "pansharpen")

#: The metrics most infrared-visible fusion papers tabulate (e.g. CDDFuse, SHIP's comparisons).
DEFAULT_METRICS = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")

#: Per task, the default metrics (segment and pansharpen: keys of the task's own per-item
#: evaluation, :meth:`hyperleaf.tasks.Task.evaluate` on one held-out item at a time).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "fuse": DEFAULT_METRICS,
    "segment": ("dice_1", "iou_1", "mdice", "pixel_acc"),
    "pansharpen": ("Q", "SAM", "ERGAS", "SCC", "Q2n"),
}

#: Non-registry metrics where lower is better (the others are higher-is-better).
LOWER_IS_BETTER = frozenset({"loss", "SAM", "ERGAS"})

#: Smallest effect of interest per metric (``--min-effect`` overrides): a difference smaller
#: than this is called "no difference" when its interval lies inside ``±min_effect``. The
#: values are conventions, about the smallest gain the papers tabulate as one: fusion
#: (gray levels 0-255 where the metric has units): EN 0.05 bit, SD 1 level, SF 0.5, MI 0.05
#: bit, SCD 0.05, VIF 0.01, Qabf 0.01, SSIM 0.01; segmentation: 0.01 (one Dice/IoU point),
#: pixel accuracy 0.001; pan-sharpening: Q, Q2n, SCC 0.005, SAM 0.1 degree, ERGAS 0.1.
MIN_EFFECT: dict[str, float] = {
    "EN": 0.05, "SD": 1.0, "SF": 0.5, "MI": 0.05, "SCD": 0.05, "VIF": 0.01, "Qabf": 0.01,
    "SSIM": 0.01, "Nabf": 0.01, "AG": 0.1, "PSNR": 0.1, "CC": 0.005,
    "dice_1": 0.01, "iou_1": 0.01, "mdice": 0.01, "miou": 0.01, "pixel_acc": 0.001,
    "Q": 0.005, "Q2n": 0.005, "SCC": 0.005, "SAM": 0.1, "ERGAS": 0.1,
}

#: Below this many seeds a table gives no verdict ("too few seeds").
MIN_SEEDS_FOR_VERDICT = 5


class AblationError(ValueError):
    """An argument of the ablation is invalid; ``key`` names it (``seeds``, ``arms``, ...)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def higher_is_better(metric: str) -> bool:
    """The direction of ``metric``: the registry's for fusion metrics, else
    :data:`LOWER_IS_BETTER`.

    >>> higher_is_better("SSIM"), higher_is_better("SAM"), higher_is_better("dice_1")
    (True, False, True)
    """
    try:
        return bool(get(metric).higher_is_better)
    except (KeyError, ValueError):
        return metric not in LOWER_IS_BETTER


def min_effect_of(metric: str, override: dict[str, float] | None = None) -> float | None:
    """The smallest effect of interest of ``metric``: ``override``'s, else :data:`MIN_EFFECT`'s,
    else None (then no "no difference" verdict can be given).

    >>> min_effect_of("SSIM"), min_effect_of("SSIM", {"SSIM": 0.05}), min_effect_of("XYZ")
    (0.01, 0.05, None)
    """
    if override and metric in override:
        return float(override[metric])
    return MIN_EFFECT.get(metric)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"K"`` (seeds 0..K-1) or a comma-separated list of seeds.

    >>> parse_seeds("3"), parse_seeds("4,7")
    ((0, 1, 2), (4, 7))
    """
    parts = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        values = [int(t) for t in parts]
    except ValueError:
        raise AblationError(f"seeds: expected K or a comma-separated list of integers, got "
                            f"{text!r}", "seeds") from None
    if len(values) == 1 and "," not in str(text):
        if values[0] < 2:
            raise AblationError(f"seeds: need K >= 2 seeds for a confidence interval, got "
                                f"{values[0]}", "seeds")
        return tuple(range(values[0]))
    return tuple(values)


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """A named experiment: task, arms, seeds, TrainConfig keys, held-out count, and the wall
    time measured for it (see docs/training.md, "Presets")."""

    task: str
    arms: tuple[str, ...]
    seeds: int
    config: dict[str, Any] = field(default_factory=dict)
    heldout: int | None = None
    note: str = ""
    heldout_items: tuple[str, ...] = ()


#: ``hyperleaf ablate --preset NAME``: K >= 8 seeds x the arms on 2 CPU cores (2 worker
#: processes, 1 thread each); ``fuse-hour`` sized for under an hour, ``pansharpen-hour`` and
#: ``segment3d-hour`` for 20-25 minutes (measured 22.6 and 26.9 min); the sizing and the
#: measured wall times are in docs/training.md, "Presets".
PRESETS: dict[str, Preset] = {
    "fuse-hour": Preset(
        task="fuse", arms=("ship", "leaf", "hdgfb-only", "h2fr-only", "euclidean"), seeds=8,
        config={"steps": 150, "crop": 32, "batch_size": 4, "val_crop": 64, "n_feat": 8},
        heldout=5,
        note="TNO or MSRS pairs; 5 arms x 8 seeds = 40 runs from scratch"),
    "fuse-finetune-hour": Preset(
        task="fuse", arms=("ship", "leaf", "euclidean"), seeds=8,
        config={"recipe": "ship-authors", "steps": 60, "crop": 64, "batch_size": 2,
                "val_crop": 64},
        heldout=5,
        note="fine-tuning from the SHIP authors' weights (give --init); 3 arms x 8 seeds"),
    "pansharpen-hour": Preset(
        task="pansharpen", arms=("ship", "leaf", "hdgfb-only", "euclidean"), seeds=8,
        config={"steps": 80, "crop": 32, "batch_size": 8, "lr": 1e-3, "n_feat": 8,
                "val_crop": 400, "val_index": "8-9", "sensor": "landsat7",
                "hdgfb_mode": "geodesic"},
        note="the ten Landsat 7 scenes (K_pan.mat + K_ms.mat): scenes 1-8 train, 9-10 held "
             "out whole (Wald-reduced); geodesic HDGFB so that the euclidean arm is its c -> 0 "
             "limit; the paper's arms (c = 0.5, c -> 0, no H2FR) and SHIP: 4 arms x 8 seeds"),
    "segment3d-hour": Preset(
        task="segment", arms=("ship", "leaf"), seeds=8,
        config={"recipe": "leaf-authors", "model": "leaf-unet3d", "widths3d": [8, 16, 32],
                "feature_dim": 64, "hdgfb_hidden": 64, "mlp_dim": 128,
                "leaf_mode": "corrected", "modality_groups": [[0, 1], [3, 2]], "crop": 32,
                "batch_size": 1, "lesion_fraction": 0.5, "lr": 5e-4, "lr_min": 5e-5,
                "lr_per_epoch": False, "steps": 120},
        heldout_items=("p07",),
        note="open_ms volumes (2 patients): p19 trains, p07 is held out whole; "
             "leaf-unet3d as benchmarks/leafunet_openms.py; no euclidean arm (the segment "
             "task's networks have no c -> 0 switch); 2 arms x 8 seeds (a whole held-out "
             "volume costs about a minute per evaluation, two per run)"),
}


# --------------------------------------------------------------------------- split


def heldout_count(n_pairs: int, heldout: int | None = None, fraction: float = 0.25) -> int:
    """How many of ``n_pairs`` to hold out: ``heldout`` if given, else
    ``max(1, round(n_pairs · fraction))``; at least one pair must remain for training.

    >>> heldout_count(21), heldout_count(40), heldout_count(40, heldout=8)
    (5, 10, 8)
    """
    if n_pairs < 2:
        raise AblationError(f"data: need at least 2 pairs (1 to train, 1 held out), got "
                            f"{n_pairs}", "data")
    if heldout is None:
        if not 0 < fraction < 1:
            raise AblationError(f"heldout_fraction: expected a value in (0, 1), got {fraction}",
                                "heldout_fraction")
        heldout = max(1, round(n_pairs * fraction))
    if not 1 <= heldout <= n_pairs - 1:
        raise AblationError(f"heldout: expected 1 to {n_pairs - 1} of the {n_pairs} pairs, got "
                            f"{heldout}", "heldout")
    return int(heldout)


def _name_rank(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def split_by_name(pairs: Sequence[Any], n_heldout: int) -> tuple[list[Any], list[Any]]:
    """``(train, heldout)``: the ``n_heldout`` pairs whose names have the smallest SHA-256
    (hex digest of the UTF-8 name) are held out. Both parts keep the input order. The split
    depends on the names alone, not on their order or on anything random.

    >>> from types import SimpleNamespace as P
    >>> tr, ho = split_by_name([P(name=str(i)) for i in range(1, 6)], 2)
    >>> [p.name for p in ho], [p.name for p in tr]
    (['3', '4'], ['1', '2', '5'])
    """
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        raise AblationError("data: two pairs share a name", "data")
    n_heldout = heldout_count(len(names), n_heldout)
    held = set(sorted(names, key=lambda s: (_name_rank(s), s))[:n_heldout])
    return ([p for p in pairs if p.name not in held], [p for p in pairs if p.name in held])


def make_split_view(train: Sequence[Any], heldout: Sequence[Any], folder: str | Path) -> Path:
    """A folder ``folder/ir``, ``folder/vi`` of symbolic links, ``fit-NAME`` to each training
    pair and ``held-NAME`` to each held-out one (absolute targets, extensions kept), so that a
    ``hyperleaf train`` run with ``data: folder`` and ``val_fraction = len(heldout) / n``
    trains on exactly ``train`` and validates on ``heldout``. Returns ``folder``."""
    root = Path(folder)
    for part in ("ir", "vi"):
        (root / part).mkdir(parents=True, exist_ok=True)
    for prefix, group in (("fit-", train), ("held-", heldout)):
        for p in group:
            for part, src in (("ir", Path(p.ir)), ("vi", Path(p.vis))):
                link = root / part / f"{prefix}{p.name}{src.suffix.lower()}"
                target = src.resolve()
                if link.is_symlink() and Path(os.readlink(link)) == target:
                    continue
                if link.exists() or link.is_symlink():
                    link.unlink()
                link.symlink_to(target)
    # The view must split exactly as intended; check with the trainer's own rule.
    found = find_pairs_in(root)
    fit, held = split_pairs(found, len(heldout) / len(found))
    if ({p.name for p in held} != {f"held-{p.name}" for p in heldout}
            or {p.name for p in fit} != {f"fit-{p.name}" for p in train}):
        raise AblationError(f"data: the split view {root} does not split as intended (stale "
                            "files from another ablation? use a new `out`)", "out")
    return root


def split_items(names: Sequence[str], heldout_items: Sequence[str]
                ) -> tuple[list[str], list[str]]:
    """``(train, heldout)`` names of a segmentation folder's items when ``heldout_items`` name
    the held-out ones (each must be an item; at least one item must remain to train). Both
    parts keep the order of ``names``.

    >>> split_items(["p07", "p19"], ["p07"])
    (['p19'], ['p07'])
    """
    names = list(names)
    held = list(dict.fromkeys(heldout_items))
    unknown = [h for h in held if h not in names]
    if unknown:
        raise AblationError(f"heldout_items: {unknown[0]!r} is not an item of the data (items: "
                            f"{', '.join(names)})", "heldout_items")
    if not 1 <= len(held) <= len(names) - 1:
        raise AblationError(f"heldout_items: expected 1 to {len(names) - 1} of the "
                            f"{len(names)} items, got {len(held)}", "heldout_items")
    return [n for n in names if n not in held], [n for n in names if n in held]


def _data_suffix(path: Path) -> str:
    name = path.name
    return ".nii.gz" if name.lower().endswith(".nii.gz") else path.suffix


def make_item_view(items: Sequence[tuple[str, dict[str, Path]]], heldout: Sequence[str],
                   folder: str | Path) -> Path:
    """A flat segmentation folder (``CASE_KEY.ext`` links, absolute targets) in which each
    item ``(name, {key: file})`` becomes case ``fit-NAME`` or, when ``name`` is in
    ``heldout``, ``held-NAME``. ``fit-`` sorts before ``held-``, so the segment task's split
    (the last ``round(val_fraction N)`` items in name order validate) with ``val_fraction =
    len(heldout) / N`` trains on exactly the other items and validates on ``heldout``.
    Returns ``folder``.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> files = {k: d / f"p1_{k}.png" for k in ("a", "b", "label")}
    >>> for f in files.values():
    ...     _ = f.write_bytes(b"")
    >>> view = make_item_view([("p1", files), ("p2", files)], ["p1"], d / "view")
    >>> sorted(p.name for p in view.iterdir())[:4]
    ['fit-p2_a.png', 'fit-p2_b.png', 'fit-p2_label.png', 'held-p1_a.png']
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    held = set(heldout)
    for name, files in items:
        prefix = "held-" if name in held else "fit-"
        for key, src in files.items():
            link = root / f"{prefix}{name}_{key}{_data_suffix(Path(src))}"
            target = Path(src).resolve()
            if link.is_symlink() and Path(os.readlink(link)) == target:
                continue
            if link.exists() or link.is_symlink():
                link.unlink()
            link.symlink_to(target)
    return root


# --------------------------------------------------------------------------- specification

#: TrainConfig keys the ablation sets itself for every run (a configuration may not).
OWN_KEYS = frozenset({"seed", "data", "val_fraction", "out", "leaf", "task", "shared_init",
                      "h2fr", "hdgfb", "euclidean"})


@dataclass
class AblationSpec:
    """What to run. ``config``: TrainConfig keys shared by every run (``steps``, ``crop``,
    ``recipe``, ``init``, ...); the ablation sets ``seed``, ``data``, ``val_fraction`` (fuse),
    ``out``, ``task``, ``shared_init`` and the arm's keys itself. ``min_effect``: per-metric
    overrides of :data:`MIN_EFFECT`. ``n_boot``: hierarchical bootstrap replicates.
    ``heldout_items`` (segment only): the names of the items to hold out (default: the task's
    split, the last ``round(heldout_fraction N)`` in name order); the runs then read a view of
    the data (``OUT/data``, :func:`make_item_view`)."""

    data: str
    out: str
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ("ship", "leaf")
    config: dict[str, Any] | None = None
    heldout: int | None = None
    heldout_fraction: float = 0.25
    metrics: tuple[str, ...] | None = None
    convention: str = "standard"
    workers: int = 1
    level: float = 0.95
    task: str = "fuse"
    min_effect: dict[str, float] | None = None
    n_boot: int = 10000
    command: str | None = None
    heldout_items: tuple[str, ...] | None = None

    def validate(self) -> AblationSpec:
        """Check every argument (no file is written); raises :class:`AblationError`."""
        if self.task not in TASKS:
            raise AblationError(f"task: expected one of {', '.join(TASKS)}, got {self.task!r}",
                                "task")
        seeds = tuple(self.seeds)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise AblationError(f"seeds: expected integers >= 0, got {seeds!r}", "seeds")
        if len(seeds) < 2:
            raise AblationError(f"seeds: need K >= 2 seeds for a confidence interval, got "
                                f"{len(seeds)}", "seeds")
        if len(set(seeds)) != len(seeds):
            raise AblationError(f"seeds: repeated seed in {seeds!r}", "seeds")
        self.seeds = seeds
        arms = tuple(self.arms)
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            raise AblationError(f"arms: unknown arm {unknown[0]!r}; known: "
                                f"{', '.join(ARMS)}", "arms")
        if len(arms) < 2 or len(set(arms)) != len(arms):
            raise AblationError(f"arms: need at least two different arms, got {arms!r}", "arms")
        if self.task == "segment" and "euclidean" in arms:
            raise AblationError("arms: 'euclidean' is not available for the segment task (the "
                                "authors' segmentation networks have no c -> 0 switch)", "arms")
        self.arms = arms
        if (not isinstance(self.workers, int) or isinstance(self.workers, bool)
                or self.workers < 1):
            raise AblationError(f"workers: expected an integer >= 1, got {self.workers!r}",
                                "workers")
        metrics = tuple(self.metrics) if self.metrics else TASK_METRICS[self.task]
        if self.task == "fuse":
            try:
                check_convention(self.convention)
                metrics = tuple(resolve(list(metrics)))
            except ValueError as exc:
                key = "convention" if "convention" in str(exc) else "metrics"
                raise AblationError(str(exc), key) from None
        self.metrics = metrics
        if not 0 < self.level < 1:
            raise AblationError(f"level: expected a value in (0, 1), got {self.level}", "level")
        for m, v in (self.min_effect or {}).items():
            if m not in self.metrics:
                raise AblationError(f"min_effect: {m!r} is not one of the metrics "
                                    f"({', '.join(self.metrics)})", "min_effect")
            if not (isinstance(v, (int, float)) and v >= 0):
                raise AblationError(f"min_effect: {m} must be a number >= 0, got {v!r}",
                                    "min_effect")
        if not isinstance(self.n_boot, int) or self.n_boot < 100:
            raise AblationError(f"n_boot: expected an integer >= 100, got {self.n_boot!r}",
                                "n_boot")
        if self.heldout_items:
            if self.task != "segment":
                raise AblationError(f"heldout_items: only the segment task holds out named "
                                    f"items (fuse: heldout; pansharpen: val_index), got task "
                                    f"{self.task!r}", "heldout_items")
            if not all(isinstance(h, str) and h for h in self.heldout_items):
                raise AblationError(f"heldout_items: expected item names, got "
                                    f"{self.heldout_items!r}", "heldout_items")
            self.heldout_items = tuple(self.heldout_items)
        clash = sorted(OWN_KEYS & set(self.config or {}))
        if clash:
            raise AblationError(f"config: {', '.join(clash)} are set by the ablation itself "
                                "(per run and arm)", "config")
        return self
