"""``task="fuse"``: SHIP (optionally extended by LEAF) trained with the unsupervised fusion losses
(+ H2FR) on infrared-visible pairs (the embedded synthetic set, or a folder of real pairs).

With LEAF, :class:`hyperleaf.nn.heads.LeafHead` turns SHIP's per-stage feature maps
(:meth:`hyperleaf.models.SHIP.forward_levels`) into H2FR's inputs (pool, compress to ``(B, D)``,
map to a ball of learnable curvature); H2FR's fused core is a ``geoopt.ManifoldParameter`` on
that ball. Both are trained by the Riemannian optimizer. A finished LEAF run also draws the leaf
plot (``leaf.png``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf import io as hio
from hyperleaf.data import PairDataset, SyntheticFusion
from hyperleaf.losses import get_loss, list_losses
from hyperleaf.losses.fusion import FusionLoss
from hyperleaf.models.registry import create_model
from hyperleaf.nn.heads import LeafHead, Levels, ordering
from hyperleaf.tasks.base import Task, register_task, task_key
from hyperleaf.tasks.common import (
    add_h2fr,
    check_leaf,
    leaf_head,
    leaf_keys,
    ship_keys,
    ship_leaf_kwargs,
    synthetic_keys,
    uses_head,
    val_batches,
)
from hyperleaf.tasks.diagnostics import geometry_diagnostics, null_control
from hyperleaf.tasks.evaluation import EvaluationReport, given_outputs
from hyperleaf.tasks.leafplot import plot_run_objective

__all__ = ["FuseTask", "FusionObjective", "build_fusion_network", "build_fusion_objective",
           "evaluate_fusion", "evaluate_fused_folder", "markdown_table", "select_metrics"]


class FusionObjective(nn.Module):
    """A fusion network (optionally extended by LEAF) and its training loss.

    ``net(vis, ir)`` must return the fused image; with ``head`` given, the network must expose
    its per-level maps (:class:`hyperleaf.models.registry.LevelFeatures`:
    ``net.forward_levels(vis, ir) -> (fused, levels)`` with ``levels[l] = (fused_map, vis_map,
    ir_map)``), or ``features(net, vis, ir)`` must return the same.

    ``forward(vis, ir)`` returns ``(total, parts, fused)``; ``parts`` holds detached scalars
    (``fusion``, ``intensity``, ``gradient``, ``ssim``, ``h2fr``). In a process group, H2FR is
    computed on the union batch of all ranks (:func:`~hyperleaf.distributed.gather_batch`)
    while training.
    """

    def __init__(self, net: nn.Module, fusion_loss: FusionLoss, head: LeafHead | None = None,
                 h2fr_weight: float = 0.1, features=None):
        super().__init__()
        self.net, self.fusion_loss, self.head = net, fusion_loss, head
        self.h2fr_weight = float(h2fr_weight)
        if head is not None and features is None and not hasattr(net, "forward_levels"):
            raise TypeError(f"net: a LEAF head needs a network with forward_levels(vis, ir) "
                            f"(got {type(net).__name__}) or a features(net, vis, ir) function")
        self._features = features

    def run(self, vis: Tensor, ir: Tensor) -> tuple[Tensor, Levels | None]:
        """Fused image and (with LEAF) the ball points of every stage."""
        if self.head is None:
            return self.net(vis, ir), None
        if self._features is not None:
            fused, stages = self._features(self.net, vis, ir)
        else:
            fused, stages = self.net.forward_levels(vis, ir)
        return fused, self.head.embed(stages)

    def forward(self, vis: Tensor, ir: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        fused, levels = self.run(vis, ir)
        total, parts = self.fusion_loss(fused, vis, ir)
        parts["fusion"] = total.detach()
        if levels is not None:
            total = add_h2fr(total, parts, levels, self.head.loss, self.h2fr_weight,
                             self.training)
        return total, parts, fused


def build_fusion_network(cfg: Any) -> nn.Module:
    """SHIP as configured (``n_feat``; with ``leaf``, an HDGFB at each interaction stage)."""
    return create_model("ship", n_feat=cfg.n_feat, **ship_leaf_kwargs(cfg))


def build_fusion_objective(cfg: Any) -> FusionObjective:
    """:class:`FusionObjective` of the configured network, loss (``loss``: ``"hyperleaf"``,
    :class:`FusionLoss`; ``"ship-authors"``, :class:`hyperleaf.losses.ShipAuthorsLoss`) and
    (with ``leaf``) head."""
    net = build_fusion_network(cfg)
    head = leaf_head(cfg, net.level_channels) if uses_head(cfg) else None
    loss = get_loss(cfg.loss).from_config(cfg)  # the loss registry (hyperleaf.losses.LOSSES)
    return FusionObjective(net, loss, head, h2fr_weight=cfg.h2fr_weight)


@torch.no_grad()
def evaluate_fusion(objective: FusionObjective, val_set, device: torch.device,
                    samples_dir: Path | None = None) -> dict[str, object]:
    """Mean validation fusion losses, SSIM of the fused image to each source and (with LEAF)
    H2FR and its ordering fractions; writes the fused images to ``samples_dir`` if given.

    With LEAF also the geometry diagnostics of the validation stage vectors
    (:func:`hyperleaf.tasks.diagnostics.geometry_diagnostics`): ``saturated``, ``spread_*``,
    ``core_dist_*`` floats and ``geometry`` (per stage and modality, a dict), and the null
    control (:func:`hyperleaf.tasks.diagnostics.null_control`: ``null_{noise,constant,
    swapped}_order_*`` and ``..._spread_*``), the same measures on inputs with no image content.
    """
    # lazy: importing torchmetrics takes ~2.7 s here; only validation needs it
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    objective.eval()
    sums: dict[str, float] = {}
    n = 0
    stage_points = []

    def add(key: str, value: Tensor | float, count: int) -> None:
        sums[key] = sums.get(key, 0.0) + float(value) * count

    for names, batch in val_batches(val_set):
        vis, ir = batch["vis"].to(device), batch["ir"].to(device)
        b = vis.shape[0]
        fused, levels = objective.run(vis, ir)
        total, parts = objective.fusion_loss(fused, vis, ir)
        add("loss", total, b)
        for k, v in parts.items():
            add(k, v, b)
        f = fused.clamp(0, 1)
        add("ssim_ir", ssim(f, ir, data_range=1.0), b)
        add("ssim_vis", ssim(f, vis, data_range=1.0), b)
        if levels is not None:
            head = objective.head
            add("h2fr", head.loss(levels), b)
            ok = ordering(levels, head.core(), head.curvature)
            for k, v in ok.items():
                sums[f"order_{k}"] = sums.get(f"order_{k}", 0.0) + float(v.float().sum())
            stage_points.append(torch.stack([torch.stack(lv, 1) for lv in levels]).cpu())
        if samples_dir is not None:
            samples_dir.mkdir(parents=True, exist_ok=True)
            for name, img in zip(names, f, strict=False):
                hio.write_png(samples_dir / f"{name}.png", img[0].cpu().numpy())
        n += b
    out: dict[str, object] = {k: v / n for k, v in sums.items()}
    if stage_points:
        head = objective.head
        geo = geometry_diagnostics(torch.cat(stage_points, 1), head.core().detach().cpu(),
                                   float(head.curvature), head.clip_r)
        out["geometry"] = geo.pop("groups")  # per stage and modality, in log.jsonl only
        out.update(geo)  # the summaries also go to the end-of-run table
        # the same ordering and spreads on inputs with no image content, beside the real ones
        out.update(null_control(objective, val_set, device))
    return out


def select_metrics(text: str | None, convention: str = "standard") -> tuple[str, ...]:
    """The metrics a comma-separated, case-insensitive ``text`` names (``"all"``: every one;
    None: the convention's default selection); ``ValueError`` naming ``metrics``.

    >>> select_metrics("en, SD")
    ('EN', 'SD')
    """
    from hyperleaf.metrics.registry import resolve
    from hyperleaf.metrics.vifb import select

    pick = select if convention == "vifb" else resolve
    if text is None:
        return pick(None)
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ValueError("metrics: give at least one name (or all)")
    return pick(names)


def markdown_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                   convention: str = "standard") -> str:
    """A Markdown table of per-image ``rows`` (``{"image", metric: value}``) plus their mean
    (4 decimals), each metric's header with its direction (``↑`` higher is better).

    >>> print(markdown_table([{"image": "a", "EN": 1.0}, {"image": "b", "EN": 2.0}], ["EN"]))
    Convention: standard
    <BLANKLINE>
    | image | EN ↑ |
    |---|---:|
    | a | 1.0000 |
    | b | 2.0000 |
    | **mean** | 1.5000 |
    <BLANKLINE>
    """
    from hyperleaf.metrics.folder import mean_row
    from hyperleaf.metrics.registry import get

    heads = [f"{m} {get(m).direction}" for m in metrics]
    lines = [f"Convention: {convention}", "",
             "| image | " + " | ".join(heads) + " |",
             "|---|" + "---:|" * len(metrics)]
    for r in [*rows, mean_row(list(rows), metrics)]:
        name = f"**{r['image']}**" if r["image"] == "mean" else r["image"]
        lines.append(f"| {name} | " + " | ".join(f"{r[m]:.4f}" for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def evaluate_fused_folder(options: Mapping[str, Any]) -> EvaluationReport:
    """``hyperleaf evaluate --fused DIR``: the fusion metrics of each pair's fused image
    ``DIR/<name>.png`` against its sources (``ir`` + ``vis``, or ``data``), per image and their
    mean, in ``convention`` (``metrics``: the selection, :func:`select_metrics`; ``workers``
    processes; a progress bar unless ``no_progress``). 8-bit grey images are measured on their
    integer levels, colour ones on their luminance (``vifb``: per RGB channel).

    Errors (``ValueError`` / ``FileNotFoundError``) name the option: ``fused``, ``ir``,
    ``vis``, ``data``, ``metrics``, ``workers`` or a file.
    """
    from tqdm import tqdm

    from hyperleaf.io import select_pairs
    from hyperleaf.metrics.folder import evaluate_folder, mean_row, quiet_third_party
    from hyperleaf.metrics.registry import get

    quiet_third_party()
    convention = options.get("convention") or "standard"
    names = select_metrics(options.get("metrics"), convention)
    workers = options.get("workers", 1)
    if workers is None or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers}")
    fused_dir = Path(options["fused"])
    if not fused_dir.is_dir():
        raise ValueError(f"fused: not a folder: {fused_dir}")
    pairs = select_pairs(ir=options.get("ir"), vis=options.get("vis"), data=options.get("data"))
    with tqdm(total=len(pairs), desc="evaluating", unit="pair", file=sys.stderr,
              disable=bool(options.get("no_progress"))) as bar:
        rows = evaluate_folder(fused_dir, pairs, names, convention, workers,
                               progress=lambda: bar.update(1))
    mean = mean_row(rows, names)
    heads = [f"{m} {get(m).direction}" for m in names]
    table = [[r["image"], *(f"{r[m]:.4f}" for m in names)] for r in [*rows, mean]]
    record = {"convention": convention, "metrics": list(names),
              "higher_is_better": {m: get(m).higher_is_better for m in names},
              "images": rows, "mean": {m: mean[m] for m in names}}
    return EvaluationReport(
        record=record,
        rows=[{"image": r["image"], "convention": convention, **{m: r[m] for m in names}}
              for r in [*rows, mean]],
        markdown=markdown_table(rows, names, convention),
        table=(f"fusion metrics ({len(rows)} images, {convention} convention; ↑ higher is "
               "better, ↓ lower is better)", ["image", *heads], table))


@register_task("fuse")
class FuseTask(Task):
    """Infrared-visible fusion (see the module docstring). Batches hold ``vis`` and ``ir``."""

    inputs = ("vis", "ir")
    predict_inputs = ("vis", "ir")
    config_keys = {
        "loss": task_key("task", "hyperleaf", "`hyperleaf` (FusionLoss) or `ship-authors`",
                         choices=lambda: list_losses("fuse")),
        "w_mask": task_key("task", 3.0, "`ship-authors` loss: weight of L_mask", minimum=0),
        "w_intensity": task_key("task", 1.0, "weight of the intensity term", minimum=0),
        "w_gradient": task_key("task", 1.0, "weight of the gradient term", minimum=0),
        "w_ssim": task_key("task", 0.5, "weight of the SSIM term", minimum=0),
        **leaf_keys(),
        **ship_keys(),
        **synthetic_keys(),
        "rot90": task_key("data", False, "real data: random 90-degree rotations of training "
                                         "crops"),
    }
    key_docs = {"data": "a folder of infrared-visible pairs (DIR/ir + DIR/vi, or flat "
                        "IRk/VISk)"}
    # The SHIP authors' infrared-visible training (see docs/training.md, "The SHIP authors'
    # recipe", for the choices their file leaves open).
    recipes = {
        "ship-authors": {
            "loss": "ship-authors", "w_mask": 3.0, "w_intensity": 10.0, "w_gradient": 10.0,
            "w_ssim": 0.0, "lr": 1e-4, "lr_min": 0.0, "warmup": 0, "lr_schedule": "multistep",
            "lr_milestones": [15000, 25000], "lr_gamma": 0.75, "crop": 128, "rot90": True,
            "n_feat": 16, "grad_clip": 0.0,
        },
    }
    score_labels = {
        "loss": ("validation loss (fusion loss)", False),
        "fusion": ("loss: fusion terms", False),
        "intensity": ("loss term: intensity", False),
        "gradient": ("loss term: gradient", False),
        "ssim": ("loss term: 1 - SSIM", False),
        "mask": ("loss term: saliency mask", False),
        "max": ("loss term: max intensity", False),
        "ssim_ir": ("SSIM(fused, infrared)", True),
        "ssim_vis": ("SSIM(fused, visible)", True),
        "h2fr": ("loss term: H2FR", False),
        "order_*": ("H2FR ordering, {star}", True),
        # the same measures on inputs without image content: a control, no better direction
        "null_*": ("null control: {star}", None),
        "saturated": ("saturated ball vectors", False),
        "spread_*": ("geometry: spread of {star}", None),
        "core_dist_*": ("geometry: distance of {star} to the core", None),
    }
    config_needs = ("model",)

    def check_config(self, cfg: Any) -> None:
        check_leaf(cfg)
        if cfg.model not in (None, "ship"):
            raise ValueError(f"model: the fuse task trains SHIP (null or 'ship'), got "
                             f"{cfg.model!r}")

    def datasets(self, cfg: Any) -> tuple[Any, Any]:
        if cfg.data is None:
            return (SyntheticFusion(cfg.train_size, cfg.crop, "train", cfg.data_seed),
                    SyntheticFusion(cfg.val_size, cfg.val_crop, "val", cfg.data_seed))
        # Both parts are fully checked here: bad files stop the run before step 1.
        return (PairDataset.from_folder(cfg.data, crop=cfg.crop, train=True,
                                        val_fraction=cfg.val_fraction, rot90=cfg.rot90),
                PairDataset.from_folder(cfg.data, crop=cfg.val_crop, train=False,
                                        val_fraction=cfg.val_fraction))

    def build_network(self, cfg: Any) -> nn.Module:
        return build_fusion_network(cfg)

    def build_objective(self, cfg: Any) -> FusionObjective:
        return build_fusion_objective(cfg)

    def evaluate(self, cfg: Any, objective: nn.Module, val_set: Any, device: torch.device,
                 samples_dir: Path | None = None) -> dict[str, object]:
        return evaluate_fusion(objective, val_set, device, samples_dir)

    #: ``hyperleaf evaluate`` (the default task): fused images against their sources.
    evaluate_options = ("fused", "ir", "vis", "data", "csv", "json", "markdown", "metrics",
                        "convention", "workers", "no_progress")
    evaluate_requires = ("fused",)

    def evaluate_outputs(self, options: Mapping[str, Any]) -> dict[str, Path]:
        """CSV and JSON (default ``FUSED/metrics.csv`` and ``FUSED/metrics.json``), and the
        Markdown table when asked."""
        fused = Path(options["fused"])
        if not fused.is_dir():
            raise ValueError(f"fused: not a folder: {fused}")
        return {"csv": Path(options.get("csv") or fused / "metrics.csv"),
                "json": Path(options.get("json") or fused / "metrics.json"),
                **given_outputs(options, ("markdown",))}

    def evaluate_command(self, options: Mapping[str, Any], run: Any,
                         device: torch.device) -> EvaluationReport:
        return evaluate_fused_folder(options)

    def artifacts(self, cfg: Any, objective: nn.Module, val_set: Any, device: torch.device,
                  out: Path) -> dict[str, dict[str, float]]:
        """With LEAF's head: the leaf plot ``out/leaf.png``; logs its ordering fractions as
        ``leaf`` (none for the Euclidean limit, which has no disk to draw on)."""
        if not uses_head(cfg) or cfg.euclidean:
            return {}
        return {"leaf": plot_run_objective(cfg, objective, val_set, device,
                                           Path(out) / "leaf.png")}
