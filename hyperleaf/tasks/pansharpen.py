r"""``task="pansharpen"``: SHIP (optionally extended by LEAF) trained to pan-sharpen PAN + MS data.

Data (``cfg.data``): a :class:`~hyperleaf.data.PanCollection` -- a PanCollection HDF5 file, a
MATLAB ``.mat`` file, a GeoTIFF PAN + MS pair or a folder of pairs. Its samples (the file's
patches, or the folder's scenes) are split into training and validation samples
(:func:`split_samples`: ``cfg.train_index`` / ``cfg.val_index``, e.g. ``"0-79"`` and
``"80-99"``, else the last ``round(val_fraction N)`` samples validate). Every sample becomes
reduced-resolution data with ground truth (:func:`patches`): files with ``gt`` are used as they
are; full-resolution scenes (Landsat, a GeoTIFF pair) are degraded by Wald's protocol with the
MTF gains of ``cfg.sensor``. Training samples are tiled into ``crop`` x ``crop`` PAN-grid
tiles, validation samples into ``val_crop`` tiles (a ``val_crop`` larger than the scene keeps it
whole).

Network: ``SHIP(task="pansharpen", ms_bands=B, ratio=r)`` (the MS residual added to ``lms``),
with ``leaf`` an HDGFB at each interaction stage and ``h2fr_weight`` x H2FR over the stages
(the MS stream and the PAN stream as the two modalities, :class:`~hyperleaf.nn.heads.LeafHead`
as for fusion). With ``normalise`` (default) it runs inside :class:`Standardised`, whose
per-band statistics come from the training tiles (:func:`band_statistics`) and are saved in the
run's ``config.yaml`` (``pan_statistics``) together with ``ms_bands`` and ``ratio``, so the run
folder rebuilds the model without the data.

Loss: the L1 distance of the output to ``gt`` (reduced resolution). Validation: the L1 distance
and the reduced-resolution indices SAM (degrees), ERGAS, Q2n, Q and SCC
(:func:`hyperleaf.pansharpen.metrics.reduced_resolution`: Q blocks of 32 or the tile side if
smaller, no border cut, no clipping; the toolbox convention, Q2n rounded on the data's digital
numbers ``PanCollection.dn_scale``, or unrounded when that is unknown), each the mean over the
validation tiles. Full-resolution scenes are degraded with the toolbox's protocol
(:func:`hyperleaf.pansharpen.degrade`: genMTF filters for the MS, bicubic PAN).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf import atomic
from hyperleaf.data import PanCollection
from hyperleaf.models.registry import create_model
from hyperleaf.nn.heads import LeafHead
from hyperleaf.pansharpen import get_sensor
from hyperleaf.pansharpen import metrics as pm
from hyperleaf.pansharpen.network import Standardised, sharpen
from hyperleaf.pansharpen.patches import (
    PanPatches,
    band_statistics,
    parse_index,
    patches,
    split_indices,
    split_samples,
)
from hyperleaf.tasks.base import Task, register_task, task_key
from hyperleaf.tasks.common import (
    add_h2fr,
    check_leaf,
    leaf_head,
    leaf_keys,
    ship_keys,
    ship_leaf_kwargs,
    uses_head,
)
from hyperleaf.tasks.evaluation import EvaluationReport, given_outputs

__all__ = ["PansharpenTask", "PansharpenObjective", "Standardised", "PanPatches",
           "band_statistics", "patches", "split_indices", "split_samples", "parse_index",
           "sharpen", "build_pansharpen_objective", "evaluate_pansharpen", "PAN_DEFAULTS",
           "evaluate_pansharpen_data"]

#: The task's defaults under ``--config`` and the flags (:attr:`Task.defaults`): the settings
#: the pan-sharpening runs of docs/pansharpening.md were measured with (Adam-like steps without
#: warm-up, cosine to 0, no gradient clip; 80 % / 20 % split).
PAN_DEFAULTS: dict[str, Any] = {
    "steps": 200, "batch_size": 8, "lr": 1e-3, "warmup": 0, "lr_min": 0.0, "grad_clip": 0.0,
    "crop": 64, "val_crop": 64, "val_fraction": 0.2,
}



class PansharpenObjective(nn.Module):
    """A pan-sharpening network (optionally extended by LEAF) and its L1 loss.

    ``net(pan, lms)`` returns the sharpened MS; with ``head`` the network must provide
    ``forward_levels(pan, lms) -> (out, levels)`` (SHIP and :class:`Standardised` do).
    ``forward(pan, lms, gt)`` returns ``(total, parts, out)`` with ``total = L1(out, gt) +
    h2fr_weight * H2FR`` and ``parts`` holding ``l1`` (and ``h2fr``); in a process group H2FR
    is computed on the union batch of all ranks while training, as for fusion.
    """

    def __init__(self, net: nn.Module, head: LeafHead | None = None, h2fr_weight: float = 0.1):
        super().__init__()
        self.net, self.head, self.h2fr_weight = net, head, float(h2fr_weight)

    def forward(self, pan: Tensor, lms: Tensor, gt: Tensor
                ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        if self.head is None:
            out = self.net(pan, lms)
            l1 = (out - gt).abs().mean()
            return l1, {"l1": l1.detach()}, out
        out, stages = self.net.forward_levels(pan, lms)
        l1 = (out - gt).abs().mean()
        parts = {"l1": l1.detach()}
        total = add_h2fr(l1, parts, self.head.embed(stages), self.head.loss, self.h2fr_weight,
                         self.training)
        return total, parts, out


def build_pansharpen_objective(cfg: Any) -> PansharpenObjective:
    """The objective ``cfg`` describes (``ms_bands``, ``ratio`` and ``pan_statistics``
    resolved from the data, see the module docstring)."""
    net = build_pansharpen_network(cfg)
    head = leaf_head(cfg, net.level_channels) if uses_head(cfg) else None
    return PansharpenObjective(net, head, cfg.h2fr_weight)


def build_pansharpen_network(cfg: Any) -> nn.Module:
    """The network ``cfg`` describes, no loss: SHIP for pan-sharpening (``ms_bands``,
    ``ratio``; HDGFB blocks with ``leaf``), wrapped in :class:`Standardised` with
    ``normalise``; call it as ``net(pan, lms)``."""
    if cfg.ms_bands < 1 or cfg.ratio < 2:
        raise ValueError(f"ms_bands: the network's bands and ratio come from the data (got "
                         f"ms_bands {cfg.ms_bands}, ratio {cfg.ratio}); open the data first")
    net: nn.Module = create_model("ship", n_feat=cfg.n_feat, task="pansharpen",
                                  ms_bands=cfg.ms_bands, ratio=cfg.ratio, **ship_leaf_kwargs(cfg))
    if cfg.normalise:
        if cfg.pan_statistics is None:
            raise ValueError("pan_statistics: normalise needs the training data's statistics "
                             "(computed when the data are opened)")
        net = Standardised(net, **cfg.pan_statistics)
    return net


@torch.no_grad()
def evaluate_pansharpen(objective: PansharpenObjective, val_set, device: torch.device,
                        ratio: int, samples_dir: Path | None = None, block: int = 32,
                        scale: float | None = None, convention: str = "toolbox"
                        ) -> dict[str, float]:
    """Mean validation L1 and reduced-resolution indices over the tiles of ``val_set``.

    Each tile is sharpened alone (float32 compute, as :func:`sharpen`) and scored in float64
    against its ``gt`` (``reduced_resolution`` with Q block ``min(block, side)``, no cut); with
    ``samples_dir`` each output is written there as ``val_NNN.npy`` (C, H, W) float32.
    ``scale``: the digital-number scale of the toolbox's Q2n (default ``val_set.scale``); when
    it is unknown (data stored in [0, 1] without a bit depth) Q2n is computed without the
    toolbox's uint16 rounding (``convention="legacy"``).
    """
    objective.eval()
    if scale is None:
        scale = getattr(val_set, "scale", None)
    if scale is None:
        convention = "legacy"
    sums: dict[str, float] = {}
    for i in range(len(val_set)):
        s = val_set[i]
        pan, lms = s["pan"].to(device), s["lms"].to(device)
        gt = s["gt"].double()
        out = sharpen(objective.net, pan, lms).double().cpu()
        row = {"loss": float((out - gt).abs().mean())}
        row.update(pm.reduced_resolution(gt, out, ratio, min(block, out.shape[-1]), 0,
                                         convention=convention, scale=scale))
        for k, v in row.items():
            sums[k] = sums.get(k, 0.0) + v
        if samples_dir is not None:
            samples_dir.mkdir(parents=True, exist_ok=True)
            arr = np.ascontiguousarray(out.numpy(), dtype=np.float32)
            atomic.atomic_write(samples_dir / f"val_{i:03d}.npy", lambda fh, a=arr: np.save(fh, a))
    return {k: v / len(val_set) for k, v in sums.items()}


# ------------------------------------------------------------- hyperleaf evaluate --task pansharpen


def _need_dn_scale(ds: Any, data: str) -> None:
    if ds.dn_scale is None:
        raise ValueError(f"scale: {data} is stored in [0, 1] without its bit depth; give the "
                         "largest digital number (e.g. 1023 for 10 bits) for the toolbox's Q2n")


def _fused_files(ds: Any, fused: str) -> list[Path]:
    """``fused``: a file for a one-scene data set, or a folder matched to the scenes."""
    from hyperleaf.pansharpen.data import FUSED_SUFFIXES, match_files

    p = Path(fused)
    if p.is_dir():
        try:
            return match_files(ds.names, p)
        except ValueError as exc:
            raise ValueError(f"fused: {exc}") from None
    if not p.is_file():
        raise FileNotFoundError(f"fused: {p} does not exist")
    if p.suffix.lower() not in FUSED_SUFFIXES:
        raise ValueError(f"fused: {p} is not one of {', '.join(FUSED_SUFFIXES)}")
    if len(ds) != 1:
        raise ValueError(f"fused: a single file, but `data` holds {len(ds)} scenes (give a "
                         "folder of fused files named after the scenes)")
    return [p]


def _scene_table(part: dict[str, Any]) -> str:
    from hyperleaf.pansharpen.evaluation import markdown_tables

    keys = list(part["mean"])
    rows = {r["scene"]: r for r in part["scenes"]}
    rows["**mean**"] = part["mean"]
    return markdown_tables({k: {m: v[m] for m in keys} for k, v in rows.items()}).replace(
        "| method |", "| scene |", 1)


def evaluate_pansharpen_data(options: Mapping[str, Any], model: nn.Module | None = None
                             ) -> EvaluationReport:
    """``hyperleaf evaluate --task pansharpen``: reduced-resolution (Wald) and full-resolution
    tables on ``options["data"]`` (a :class:`~hyperleaf.data.PanCollection`; ``scale`` its
    largest digital number, ``sensor`` the MTF gains, ``patch`` the reduced-resolution tile)
    of the baselines ``methods`` (default all) and of ``model`` (the run ``weights``); or,
    with ``fused``, of external results (a file for a one-scene data set, else a folder
    matched to the scenes by name: :func:`hyperleaf.pansharpen.evaluation.score_fused`).

    Errors name the option (``data``, ``fused``, ``methods``, ``scale``) or the file.
    """
    from hyperleaf.pansharpen import METHODS
    from hyperleaf.pansharpen.evaluation import evaluate_methods, markdown_tables, score_fused

    data = str(options["data"])
    ds = PanCollection(data, scale=options.get("scale"), dtype=torch.float64)
    sensor = options.get("sensor")
    if options.get("fused"):
        files = _fused_files(ds, options["fused"])
        _need_dn_scale(ds, data)
        result = score_fused(ds, files, sensor)
        record = {"task": "pansharpen", "data": data, "fused": str(options["fused"]),
                  "ratio": ds.ratio, "sensor": sensor, **result}
        text = [f"Convention: {result['convention']} (digital-number scale {ds.dn_scale:g})", ""]
        rows: list[dict[str, Any]] = []
        for key, title in (("reduced_resolution", "Reduced resolution (SAM in degrees):"),
                           ("full_resolution", "Full resolution:")):
            part = result[key]
            if part is not None:
                text += [title, "", _scene_table(part)]
                rows += [{"resolution": key, **r} for r in part["scenes"]]
                rows.append({"resolution": key, "scene": "mean", **part["mean"]})
        text += [f"skipped: {line}" for line in result["skipped"]]
        report = "\n".join(text)
        return EvaluationReport(record=record, rows=rows, markdown=report, text=report)
    _need_dn_scale(ds, data)
    names = list(METHODS) if not options.get("methods") else [
        m.strip() for m in options["methods"].split(",")]
    bad = [m for m in names if m not in METHODS]
    if bad:
        raise ValueError(f"methods: unknown {bad}; expected names from {list(METHODS)}")
    methods: dict[str, Any] = {m: m for m in names}
    if model is not None:
        methods["SHIP (" + Path(options["weights"]).name + ")"] = model
    patch = options.get("patch") or 64
    rr = patches(ds, sensor, patch)
    full = [{k: v.double() for k, v in ds[i].items()} for i in range(len(ds))]
    tables = {"reduced_resolution": evaluate_methods(methods, rr, ds.ratio, sensor,
                                                     scale=ds.dn_scale),
              "full_resolution": evaluate_methods(methods, full, ds.ratio, sensor, full=True,
                                                  scale=ds.dn_scale)}
    text = "\n".join(["Reduced resolution (Wald; SAM in degrees):", "",
                      markdown_tables(tables["reduced_resolution"]),
                      "Full resolution:", "", markdown_tables(tables["full_resolution"])])
    record = {"task": "pansharpen", "data": data, "weights": options.get("weights"),
              "ratio": ds.ratio, "sensor": sensor, "dn_scale": ds.dn_scale, "patch": patch,
              **tables}
    rows = [{"resolution": key, "method": m, **scores}
            for key, table in tables.items() for m, scores in table.items()]
    return EvaluationReport(record=record, rows=rows, markdown=text, text=text)


# ----------------------------------------------------------------------------- the task


@register_task("pansharpen")
class PansharpenTask(Task):
    """Pan-sharpening (see the module docstring). Batches hold ``pan``, ``lms`` and ``gt``."""

    inputs = ("pan", "lms", "gt")
    predict_inputs = ("pan", "lms")
    defaults = PAN_DEFAULTS
    # Its own H2FR weight and HDGFB (paper mode, 8 hidden): the settings docs/pansharpening.md
    # measured with.
    config_keys = {
        **leaf_keys(h2fr_weight=0.1, hdgfb_hidden=8, hdgfb_mode="paper"),
        **ship_keys(),
        "normalise": task_key("model", True, "run SHIP on per-band standardised inputs "
                                             "(Standardised); false: the raw reflectances"),
        "sensor": task_key("data", None, "MTF gains of Wald's degradation of full-resolution "
                                         "data: WV3, QB, landsat7, ... (null: generic gains)"),
        "train_index": task_key("data", None, "samples of data that train, e.g. `0-79` or "
                                              "`0-7,9` (null: the rest)"),
        "val_index": task_key("data", None, "samples that validate, e.g. `80-99` (null: "
                                            "val_fraction)"),
        "ms_bands": task_key("model", 0, "MS bands; 0: from the data (resolved and saved)",
                             minimum=0, flag=False),
        "ratio": task_key("model", 0, "PAN/MS resolution ratio; 0: from the data (saved)",
                          minimum=0, flag=False),
        "pan_statistics": task_key("model", None, "Standardised's statistics of the training "
                                                  "tiles (computed from the data and saved)",
                                   type="dict | None", flag=False),
    }
    key_docs = {"data": "PAN + MS data: a PanCollection .h5/.mat file, a GeoTIFF pair folder or "
                        "a folder of pairs",
                "val_crop": "validation tile side (larger than the scenes: each whole)"}
    # SHIP is built here from the bands; nothing else can start it.
    unused_keys = ("model", "init", "data_seed")
    score_labels = {
        "loss": ("validation L1", False), "SAM": ("SAM", False), "ERGAS": ("ERGAS", False),
        "Q2n": ("Q2n", True), "Q*": ("{key}", True), "SCC": ("SCC", True),
    }
    config_needs = ("data",)

    def check_config(self, cfg: Any) -> None:
        check_leaf(cfg)
        if cfg.data is None:
            raise ValueError("data: the pansharpen task needs PAN + MS data (a PanCollection "
                             ".h5/.mat file, a GeoTIFF pair folder or a folder of pairs)")
        if cfg.sensor is not None:
            get_sensor(cfg.sensor)  # its ValueError starts with "sensor:"
        for key in ("train_index", "val_index"):
            if getattr(cfg, key) is not None:
                parse_index(getattr(cfg, key), key)
        stats = cfg.pan_statistics
        if stats is not None:
            keys = {"pan_mean", "pan_std", "ms_mean", "ms_std"}
            if not (isinstance(stats, dict) and set(stats) == keys and all(
                    isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
                    for v in stats.values())):
                raise ValueError(f"pan_statistics: expected null or a mapping of {sorted(keys)} "
                                 "to lists of numbers")

    def datasets(self, cfg: Any) -> tuple[PanPatches, PanPatches]:
        """Opens ``cfg.data``, splits and tiles it; reports ``ms_bands``, ``ratio`` and (with
        ``normalise``) ``pan_statistics`` in the train set's ``resolved`` (``Task.open_data``
        puts them in the run's configuration, saved in config.yaml)."""
        ds = PanCollection(cfg.data, dtype=torch.float64)  # degraded and tiled in float64
        if cfg.crop % ds.ratio or cfg.val_crop % ds.ratio:
            key = "crop" if cfg.crop % ds.ratio else "val_crop"
            raise ValueError(f"{key}: {getattr(cfg, key)} must be a multiple of the data's "
                             f"ratio {ds.ratio}")
        for key, value in (("ms_bands", ds.bands), ("ratio", ds.ratio)):
            if getattr(cfg, key) not in (0, value):
                raise ValueError(f"{key}: {getattr(cfg, key)} but the data have {value}")
        train_idx, val_idx = split_samples(len(ds), cfg.train_index, cfg.val_index,
                                           cfg.val_fraction)
        train = patches(ds, cfg.sensor, cfg.crop, train_idx)
        val = patches(ds, cfg.sensor, cfg.val_crop, val_idx)
        resolved: dict[str, Any] = {"ms_bands": ds.bands, "ratio": ds.ratio}
        if cfg.normalise:
            stats = band_statistics(train)
            if cfg.pan_statistics is not None and cfg.pan_statistics != stats:
                raise ValueError("pan_statistics: differ from the training data's (they are "
                                 "computed from the data; leave the key out)")
            resolved["pan_statistics"] = stats
        train_set = PanPatches(train, scale=ds.dn_scale)
        train_set.resolved = resolved  # what the network needs (Task.open_data applies it)
        return train_set, PanPatches(val, torch.float64, ds.dn_scale)

    def build_objective(self, cfg: Any) -> PansharpenObjective:
        return build_pansharpen_objective(cfg)

    def build_network(self, cfg: Any) -> nn.Module:
        return build_pansharpen_network(cfg)

    def evaluate(self, cfg: Any, objective: nn.Module, val_set: Any, device: torch.device,
                 samples_dir: Path | None = None) -> dict[str, float]:
        return evaluate_pansharpen(objective, val_set, device, cfg.ratio, samples_dir)

    #: ``hyperleaf evaluate --task pansharpen --data DATA``: the baselines' tables (and the run
    #: ``weights``), or external results ``fused``.
    evaluate_options = ("data", "weights", "methods", "sensor", "patch", "scale", "fused",
                        "csv", "json", "markdown", "no_progress")
    evaluate_requires = ("data",)

    def evaluate_outputs(self, options: Mapping[str, Any]) -> dict[str, Path]:
        if options.get("fused") and (options.get("methods") or options.get("weights")):
            raise ValueError("fused: scores external results alone; drop `methods`/`weights` "
                             "(or run without `fused` for the baselines' tables)")
        return given_outputs(options)

    def evaluate_command(self, options: Mapping[str, Any], run: Any,
                         device: torch.device) -> EvaluationReport:
        return evaluate_pansharpen_data(options, None if run is None else run.model)
