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
(:func:`hyperleaf.metrics.pansharpening.reduced_resolution`: Q blocks of 32 or the tile side if
smaller, no border cut, no clipping), each the mean over the validation tiles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from hyperleaf import atomic
from hyperleaf.data import PanCollection
from hyperleaf.distributed import gather_levels
from hyperleaf.metrics import pansharpening as pm
from hyperleaf.models.registry import create_model
from hyperleaf.nn.heads import LeafHead
from hyperleaf.pansharpen import get_sensor, reduced_resolution
from hyperleaf.tasks.base import Task, register_task
from hyperleaf.tasks.common import PANSHARPEN_KEYS, leaf_head, ship_leaf_kwargs, uses_head

__all__ = ["PansharpenTask", "PansharpenObjective", "Standardised", "PanPatches",
           "band_statistics", "patches", "split_indices", "split_samples", "parse_index",
           "sharpen", "build_pansharpen_objective", "evaluate_pansharpen", "PAN_DEFAULTS"]

#: The task's defaults under ``--config`` and the flags (:attr:`Task.defaults`): the settings
#: the pan-sharpening runs of docs/pansharpening.md were measured with (Adam-like steps without
#: warm-up, cosine to 0, no gradient clip; 80 % / 20 % split).
PAN_DEFAULTS: dict[str, Any] = {
    "steps": 200, "batch_size": 8, "lr": 1e-3, "warmup": 0, "lr_min": 0.0, "grad_clip": 0.0,
    "crop": 64, "val_crop": 64, "h2fr_weight": 0.1, "hdgfb_hidden": 8, "hdgfb_mode": "paper",
    "val_fraction": 0.2,
}

#: Keys of other tasks: a pan-sharpening run refuses any of them set away from its default.
_FOREIGN_KEYS = ("recipe", "init", "loss", "w_mask", "w_intensity", "w_gradient", "w_ssim",
                 "rot90", "train_size", "val_size", "data_seed", "num_classes", "seg_width", "model",
                 "in_channels", "encoder", "feature_dim", "mlp_dim", "leaf_mode",
                 "widths3d", "modality_groups", "seg_loss", "w_ce", "w_focal_dice", "w_dice",
                 "w_focal", "focal_reduction", "lesion_fraction")


# ----------------------------------------------------------------------------- data


def _tiles(sample: dict[str, Tensor], patch: int, ratio: int) -> list[dict[str, Tensor]]:
    h, w = sample["pan"].shape[-2:]
    if patch % ratio:
        raise ValueError(f"patch: {patch} must be a multiple of ratio {ratio}")
    if h < patch or w < patch:
        return [sample]
    out = []
    for y in range(0, h - patch + 1, patch):
        for x in range(0, w - patch + 1, patch):
            t = {k: v[..., y:y + patch, x:x + patch] for k, v in sample.items() if k != "ms"}
            r = ratio
            t["ms"] = sample["ms"][..., y // r:(y + patch) // r, x // r:(x + patch) // r]
            out.append(t)
    return out


def patches(ds, sensor: Any = None, patch: int = 64, indices: Sequence[int] | None = None
            ) -> list[dict[str, Tensor]]:
    """Reduced-resolution float64 samples ``{"pan", "lms", "ms", "gt"}`` (C, H, W) of ``ds``.

    Samples with ``gt`` are kept as they are; full-resolution samples are cropped to whole MS
    pixels after degradation and reduced by Wald's protocol
    (:func:`hyperleaf.pansharpen.reduced_resolution` with ``sensor``'s MTF gains; the original
    MS becomes ``gt``). Each is then tiled into ``patch`` x ``patch`` PAN-grid tiles (a sample
    smaller than ``patch`` stays whole). ``indices``: the samples of ``ds`` to use (default all).
    """
    out: list[dict[str, Tensor]] = []
    for i in (range(len(ds)) if indices is None else indices):
        s = {k: v.double() for k, v in ds[i].items()}
        if "gt" not in s:
            r = ds.ratio
            h, w = s["pan"].shape[-2:]
            hh, ww = h - h % (r * r), w - w % (r * r)  # whole MS pixels after degradation
            pan, ms = s["pan"][..., :hh, :ww], s["ms"][..., :hh // r, :ww // r]
            s = {k: v[0] for k, v in reduced_resolution(pan[None], ms[None], r, sensor).items()}
        out.extend(_tiles(s, patch, ds.ratio))
    return out


def split_indices(n: int, test_fraction: float = 0.2) -> tuple[list[int], list[int]]:
    """The first ``n - k`` samples train, the last ``k = max(1, round(n f))`` test.

    >>> split_indices(100, 0.2)[1][:3], len(split_indices(100, 0.2)[0])
    ([80, 81, 82], 80)
    """
    if n < 2:
        raise ValueError(f"need at least 2 samples to split, got {n}")
    k = min(n - 1, max(1, round(n * test_fraction)))
    return list(range(n - k)), list(range(n - k, n))


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_index(spec: str, key: str = "index") -> list[int]:
    """Sample indices of ``spec``: comma-separated indices and inclusive ranges ``a-b``.

    >>> parse_index("0-3, 7,9-10")
    [0, 1, 2, 3, 7, 9, 10]
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{key}: expected indices such as '0-79' or '0-7,9', got {spec!r}")
    out: set[int] = set()
    for part in spec.split(","):
        m = _RANGE.match(part)
        if m is None:
            raise ValueError(f"{key}: expected indices such as '0-79' or '0-7,9', got "
                             f"{spec!r} ({part.strip()!r} is neither an index nor a range a-b)")
        a, b = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if b < a:
            raise ValueError(f"{key}: range {part.strip()!r} ends before it starts")
        out.update(range(a, b + 1))
    return sorted(out)


def split_samples(n: int, train_index: str | None = None, val_index: str | None = None,
                  val_fraction: float = 0.2) -> tuple[list[int], list[int]]:
    """``(train, val)`` sample indices of a dataset of ``n`` samples.

    Both given: those (they must not overlap); one given: the other is every remaining
    sample; none: :func:`split_indices` with ``val_fraction`` (the last samples validate).

    >>> split_samples(10, val_index="0-1")
    ([2, 3, 4, 5, 6, 7, 8, 9], [0, 1])
    >>> split_samples(10)
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    """
    if train_index is None and val_index is None:
        return split_indices(n, val_fraction)
    sets = {}
    for key, spec in (("train_index", train_index), ("val_index", val_index)):
        if spec is None:
            continue
        idx = parse_index(spec, key)
        if idx[-1] >= n:
            raise ValueError(f"{key}: sample {idx[-1]} is out of range for the {n} samples of "
                             f"the data (0-{n - 1})")
        sets[key] = idx
    rest = [i for i in range(n) if i not in set(next(iter(sets.values())))]
    train = sets.get("train_index", rest)
    val = sets.get("val_index", rest)
    both = sorted(set(train) & set(val))
    if both:
        raise ValueError(f"val_index: samples {both[:5]} are also in train_index (validation "
                         "samples must be held out)")
    for key, idx in (("train_index", train), ("val_index", val)):
        if not idx:
            raise ValueError(f"{key}: no samples left (the data hold {n})")
    return train, val


class PanPatches(torch.utils.data.Dataset):
    """A list of ``{"pan", "lms", "ms", "gt"}`` tiles as a map-style dataset (dtype ``dtype``)."""

    def __init__(self, samples: list[dict[str, Tensor]], dtype: torch.dtype = torch.float32):
        if not samples:
            raise ValueError("samples: expected at least one tile")
        self.samples = [{k: v.to(dtype).contiguous() for k, v in s.items()} for s in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.samples[i]


# ----------------------------------------------------------------------------- network


class Standardised(nn.Module):
    r"""Runs a pan-sharpening network on standardised inputs and maps its output back.

    With per-band training statistics :math:`\mu_c, \sigma_c` of ``lms`` and
    :math:`\mu_p, \sigma_p` of ``pan``::

        out = sigma * net((pan - mu_p) / sigma_p, (lms - mu) / sigma) + mu

    For a residual network (``net(p, m) = m + r``) this is ``lms + sigma * r``: the residual is
    learnt in units of each band's spread, so bands with small dynamic range (Landsat's
    blue, sigma 0.04 of full scale) get gradients as large as the others.

    Shapes: ``pan`` (B, 1, H, W), ``lms`` (B, C, H, W) -> (B, C, H, W).

    >>> import torch
    >>> class Residual(torch.nn.Module):
    ...     def forward(self, pan, lms):
    ...         return lms + pan
    >>> net = Standardised(Residual(), [0.5], [2.0], [1.0, 1.0], [4.0, 1.0])
    >>> net(torch.full((1, 1, 1, 1), 2.5), torch.zeros(1, 2, 1, 1)).flatten().tolist()
    [4.0, 1.0]
    """

    def __init__(self, net: nn.Module, pan_mean: Sequence[float], pan_std: Sequence[float],
                 ms_mean: Sequence[float], ms_std: Sequence[float]) -> None:
        super().__init__()
        stats = {"pan_mean": pan_mean, "pan_std": pan_std, "ms_mean": ms_mean,
                 "ms_std": ms_std}
        for name, v in stats.items():
            t = torch.as_tensor(v, dtype=torch.float32).flatten()
            if not bool(torch.isfinite(t).all()) or (name.endswith("std") and
                                                      not bool((t > 0).all())):
                raise ValueError(f"{name}: expected finite values (std > 0), got {t.tolist()}")
            self.register_buffer(name, t.view(1, -1, 1, 1))
        if self.pan_mean.numel() != 1 or self.pan_std.numel() != 1:
            raise ValueError("pan_mean/pan_std: expected one value each (PAN has one band)")
        if self.ms_mean.numel() != self.ms_std.numel():
            raise ValueError(f"ms_mean/ms_std: expected one value per band each, got "
                             f"{self.ms_mean.numel()} and {self.ms_std.numel()}")
        self.net = net

    def _inputs(self, pan: Tensor, lms: Tensor) -> tuple[Tensor, Tensor]:
        if lms.ndim != 4 or lms.shape[1] != self.ms_mean.shape[1]:
            raise ValueError(f"lms: expected shape (B, {self.ms_mean.shape[1]}, H, W), got "
                             f"{tuple(lms.shape)}")
        return (pan - self.pan_mean) / self.pan_std, (lms - self.ms_mean) / self.ms_std

    def forward(self, pan: Tensor, lms: Tensor, return_features: bool = False):
        """``pan`` (B, 1, H, W), ``lms`` (B, C, H, W) -> (B, C, H, W) (and the network's
        features with ``return_features=True``)."""
        p, m = self._inputs(pan, lms)
        if return_features:
            out, feats = self.net(p, m, return_features=True)
            return out * self.ms_std + self.ms_mean, feats
        return self.net(p, m) * self.ms_std + self.ms_mean

    @property
    def level_channels(self) -> list[int]:
        """The wrapped network's per-level channels (:meth:`forward_levels`)."""
        return list(self.net.level_channels)

    def forward_levels(self, pan: Tensor, lms: Tensor) -> tuple[Tensor, list[tuple[Tensor, ...]]]:
        """``(output, levels)``: the output mapped back, and the wrapped network's per-level
        maps (of the standardised inputs), as ``net.forward_levels``."""
        p, m = self._inputs(pan, lms)
        out, levels = self.net.forward_levels(p, m)
        return out * self.ms_std + self.ms_mean, levels


def band_statistics(samples: list[dict[str, Tensor]]) -> dict[str, list[float]]:
    """Mean and standard deviation of ``pan`` and of each ``lms`` band over ``samples``
    (float64; the population spread), the statistics of :class:`Standardised`."""
    lms = torch.stack([s["lms"].double() for s in samples])
    pan = torch.stack([s["pan"].double() for s in samples])
    std = lms.std((0, 2, 3), correction=0)
    pstd = pan.std(correction=0)
    if not (bool((std > 0).all()) and pstd > 0):
        raise ValueError("samples: a band (or the PAN) is constant over the training data; "
                         "train with normalise=False")
    return {"pan_mean": [float(pan.mean())], "pan_std": [float(pstd)],
            "ms_mean": lms.mean((0, 2, 3)).tolist(), "ms_std": std.tolist()}


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
        levels = self.head.embed(stages)
        if self.training:
            levels = gather_levels(levels)
        l1 = (out - gt).abs().mean()
        h = self.head.loss(levels)
        return l1 + self.h2fr_weight * h, {"l1": l1.detach(), "h2fr": h.detach()}, out


def build_pansharpen_objective(cfg: Any) -> PansharpenObjective:
    """The objective ``cfg`` describes (``ms_bands``, ``ratio`` and ``pan_statistics``
    resolved from the data, see the module docstring)."""
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
    head = leaf_head(cfg, net.level_channels) if uses_head(cfg) else None
    return PansharpenObjective(net, head, cfg.h2fr_weight)


@torch.no_grad()
def sharpen(net: nn.Module, pan: Tensor, lms: Tensor) -> Tensor:
    """``net(pan, lms)`` for (C, H, W) or (N, C, H, W) inputs, float32 compute, input dtype out."""
    squeeze = lms.ndim == 3
    p, m = (pan[None], lms[None]) if squeeze else (pan, lms)
    out = net(p.float(), m.float()).to(lms.dtype)
    return out[0] if squeeze else out


@torch.no_grad()
def evaluate_pansharpen(objective: PansharpenObjective, val_set, device: torch.device,
                        ratio: int, samples_dir: Path | None = None, block: int = 32
                        ) -> dict[str, float]:
    """Mean validation L1 and reduced-resolution indices over the tiles of ``val_set``.

    Each tile is sharpened alone (float32 compute, as :func:`sharpen`) and scored in float64
    against its ``gt`` (``reduced_resolution`` with Q block ``min(block, side)``, no cut); with
    ``samples_dir`` each output is written there as ``val_NNN.npy`` (C, H, W) float32.
    """
    objective.eval()
    sums: dict[str, float] = {}
    for i in range(len(val_set)):
        s = val_set[i]
        pan, lms = s["pan"].to(device), s["lms"].to(device)
        gt = s["gt"].double()
        out = sharpen(objective.net, pan, lms).double().cpu()
        row = {"loss": float((out - gt).abs().mean())}
        row.update(pm.reduced_resolution(gt, out, ratio, min(block, out.shape[-1]), 0))
        for k, v in row.items():
            sums[k] = sums.get(k, 0.0) + v
        if samples_dir is not None:
            samples_dir.mkdir(parents=True, exist_ok=True)
            arr = np.ascontiguousarray(out.numpy(), dtype=np.float32)
            atomic.atomic_write(samples_dir / f"val_{i:03d}.npy", lambda fh, a=arr: np.save(fh, a))
    return {k: v / len(val_set) for k, v in sums.items()}


# ----------------------------------------------------------------------------- the task


@register_task("pansharpen")
class PansharpenTask(Task):
    """Pan-sharpening (see the module docstring). Batches hold ``pan``, ``lms`` and ``gt``."""

    inputs = ("pan", "lms", "gt")
    defaults = PAN_DEFAULTS
    foreign_keys = _FOREIGN_KEYS
    config_needs = ("data", *PANSHARPEN_KEYS)

    def check_config(self, cfg: Any) -> None:
        if cfg.data is None:
            raise ValueError("data: the pansharpen task needs PAN + MS data (a PanCollection "
                             ".h5/.mat file, a GeoTIFF pair folder or a folder of pairs)")
        if cfg.sensor is not None:
            get_sensor(cfg.sensor)  # its ValueError starts with "sensor:"
        for key in ("train_index", "val_index"):
            if getattr(cfg, key) is not None:
                parse_index(getattr(cfg, key), key)
        if cfg.ms_bands < 0 or cfg.ratio < 0:
            raise ValueError(f"ms_bands: must be >= 0 (0: from the data), got ms_bands "
                             f"{cfg.ms_bands}, ratio {cfg.ratio}")
        stats = cfg.pan_statistics
        if stats is not None:
            keys = {"pan_mean", "pan_std", "ms_mean", "ms_std"}
            if not (isinstance(stats, dict) and set(stats) == keys and all(
                    isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
                    for v in stats.values())):
                raise ValueError(f"pan_statistics: expected null or a mapping of {sorted(keys)} "
                                 "to lists of numbers")

    def datasets(self, cfg: Any) -> tuple[PanPatches, PanPatches]:
        """Opens ``cfg.data``, splits and tiles it; resolves ``ms_bands``, ``ratio`` and (with
        ``normalise``) ``pan_statistics`` into ``cfg`` (saved in config.yaml)."""
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
        cfg.ms_bands, cfg.ratio = ds.bands, ds.ratio
        if cfg.normalise:
            stats = band_statistics(train)
            if cfg.pan_statistics is not None and cfg.pan_statistics != stats:
                raise ValueError("pan_statistics: differ from the training data's (they are "
                                 "computed from the data; leave the key out)")
            cfg.pan_statistics = stats
        return PanPatches(train), PanPatches(val, torch.float64)

    def build_objective(self, cfg: Any) -> PansharpenObjective:
        return build_pansharpen_objective(cfg)

    def evaluate(self, cfg: Any, objective: nn.Module, val_set: Any, device: torch.device,
                 samples_dir: Path | None = None) -> dict[str, float]:
        return evaluate_pansharpen(objective, val_set, device, cfg.ratio, samples_dir)
