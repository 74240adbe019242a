r"""Pan-sharpening with SHIP: training on reduced-resolution pairs, inference, evaluation.

* :func:`patches` turns a :class:`~hyperleaf.data.PanCollection` into reduced-resolution
  training samples ``{"pan", "lms", "ms", "gt"}``: files with ``gt`` are used as they are;
  full-resolution scenes (Landsat, a GeoTIFF pair) are degraded by Wald's protocol
  (:func:`hyperleaf.pansharpen.reduced_resolution`, the sensor's MTF gains) and tiled into
  ``patch`` x ``patch`` PAN-grid tiles.
* :func:`train_pansharpen` fits ``SHIP(task="pansharpen")`` with the L1 distance to ``gt``
  (plus, with ``leaf=True``, HDGFB at each stage and ``h2fr_weight`` x H2FR over the stages
  with the MS stream and the PAN stream as the two modalities), Adam (Riemannian Adam from
  geoopt when LEAF adds ball parameters), and writes ``model.safetensors``,
  ``config.json`` and ``log.jsonl`` into the run folder (atomic writes).
* :func:`load_pansharpen` / :func:`sharpen` run a trained model; :func:`evaluate_methods`
  computes the reduced- and full-resolution tables for baselines and models.

Example::

    >>> from hyperleaf.train.pansharpen import train_pansharpen      # doctest: +SKIP
    >>> train_pansharpen("wv3_rr100.h5", "runs/ps", steps=200)       # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Standardised", "band_statistics", "evaluate_methods", "load_pansharpen",
           "markdown_tables", "patches", "sharpen", "split_indices", "train_pansharpen"]


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
    """Reduced-resolution float64 samples (C, H, W) of ``ds`` (see the module docstring)."""
    from hyperleaf.pansharpen import reduced_resolution

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
    """The first ``n - k`` samples train, the last ``k = max(1, round(n f))`` test."""
    if n < 2:
        raise ValueError(f"need at least 2 samples to split, got {n}")
    k = min(n - 1, max(1, round(n * test_fraction)))
    return list(range(n - k)), list(range(n - k, n))


def _stack(samples: list[dict[str, Tensor]], idx: Sequence[int]) -> dict[str, Tensor]:
    return {k: torch.stack([samples[i][k] for i in idx]) for k in samples[0]}


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

    def forward(self, pan: Tensor, lms: Tensor, return_features: bool = False):
        """``pan`` (B, 1, H, W), ``lms`` (B, C, H, W) -> (B, C, H, W) (and the network's
        features with ``return_features=True``)."""
        if lms.ndim != 4 or lms.shape[1] != self.ms_mean.shape[1]:
            raise ValueError(f"lms: expected shape (B, {self.ms_mean.shape[1]}, H, W), got "
                             f"{tuple(lms.shape)}")
        p = (pan - self.pan_mean) / self.pan_std
        m = (lms - self.ms_mean) / self.ms_std
        if return_features:
            out, feats = self.net(p, m, return_features=True)
            return out * self.ms_std + self.ms_mean, feats
        return self.net(p, m) * self.ms_std + self.ms_mean


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


def _build(config: dict[str, Any]) -> nn.Module:
    from hyperleaf.models import SHIP

    kw = {"hdgfb_kwargs": {"hidden": config.get("hdgfb_hidden", 8)}} if config["leaf"] else {}
    net = SHIP(n_feat=config["n_feat"], task="pansharpen", ms_bands=config["ms_bands"],
               ratio=config["ratio"], hdgfb=config["leaf"], **kw)
    stats = config.get("normalisation")
    return Standardised(net, **stats) if stats else net


def train_pansharpen(data: str | Path | Sequence, out: str | Path, *, steps: int = 200,
                     batch_size: int = 8, lr: float = 1e-3, seed: int = 0, leaf: bool = False,
                     n_feat: int = 8, sensor: Any = None, patch: int = 64,
                     train_samples: Sequence[int] | None = None, h2fr_weight: float = 0.1,
                     normalise: bool = True, threads: int | None = None, log=print
                     ) -> dict[str, Any]:
    """Train ``SHIP(task="pansharpen")`` on ``data``; returns the run's summary.

    ``train_samples``: indices of ``data``'s samples to train on (default: all).
    ``normalise``: wrap SHIP in :class:`Standardised` with the training patches' per-band
    statistics (stored in ``config.json``; measured: lower held-out SAM and ERGAS than raw
    reflectances at the same step, docs/pansharpening.md). The run folder ``out`` receives
    ``model.safetensors``, ``config.json`` and ``log.jsonl``.
    """
    from safetensors.torch import save_model

    from hyperleaf.atomic import atomic_write_path, atomic_write_text
    from hyperleaf.data import PanCollection

    for name, value in (("steps", steps), ("batch_size", batch_size), ("n_feat", n_feat),
                        ("patch", patch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a finite number > 0, got {lr!r}")
    if not (math.isfinite(h2fr_weight) and h2fr_weight >= 0):
        raise ValueError(f"h2fr_weight: expected a finite number >= 0, got {h2fr_weight!r}")
    if threads:
        torch.set_num_threads(threads)
    ds = data if isinstance(data, PanCollection) else PanCollection(data)
    samples = patches(ds, sensor, patch, train_samples)
    torch.manual_seed(seed)
    config = {"task": "pansharpen", "n_feat": n_feat, "ms_bands": ds.bands, "ratio": ds.ratio,
              "leaf": bool(leaf), "hdgfb_hidden": 8, "scale": ds.scale, "sensor": sensor if
              isinstance(sensor, str) or sensor is None else getattr(sensor, "name", None),
              "data": str(ds.path), "steps": steps, "batch_size": batch_size, "lr": lr,
              "seed": seed, "patch": patch, "train_patches": len(samples),
              "h2fr_weight": h2fr_weight,
              "normalisation": band_statistics(samples) if normalise else None}
    net = _build(config)
    head = None
    params = list(net.parameters())
    if leaf:
        from hyperleaf.models.leafseg import LeafHead

        head = LeafHead([n_feat] * 3, dim=16)
        params += list(head.parameters())
    if leaf:
        import geoopt

        opt = geoopt.optim.RiemannianAdam(params, lr=lr)
    else:
        opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    gen = torch.Generator().manual_seed(seed)
    records, t0 = [], time.perf_counter()
    net.train()
    for step in range(1, steps + 1):
        idx = torch.randint(len(samples), (batch_size,), generator=gen).tolist()
        b = {k: v.float() for k, v in _stack(samples, idx).items()}
        if leaf:
            out_img, f = net(b["pan"], b["lms"], return_features=True)
            levels = list(zip(f.fused, f.vis, f.ir, strict=True))
            l1 = (out_img - b["gt"]).abs().mean()
            h = head.loss(head.embed(levels))
            loss = l1 + h2fr_weight * h
        else:
            l1 = (net(b["pan"], b["lms"]) - b["gt"]).abs().mean()
            loss, h = l1, None
        if not torch.isfinite(loss):
            raise RuntimeError(f"step {step}: the loss is not finite ({float(loss)})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        rec = {"step": step, "l1": float(l1.detach()), "seconds": round(time.perf_counter() - t0, 2)}
        if h is not None:
            rec["h2fr"] = float(h.detach())
        records.append(rec)
        if log and (step % max(1, steps // 10) == 0 or step == 1):
            log(f"step {step}/{steps} L1 {rec['l1']:.5f}" +
                (f" H2FR {rec['h2fr']:.4f}" if h is not None else ""))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    net.eval()
    with atomic_write_path(out / "model.safetensors") as tmp:
        save_model(net, str(tmp))
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    atomic_write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return {"out": str(out), "seconds": time.perf_counter() - t0, "final_l1": records[-1]["l1"],
            "config": config}


def load_pansharpen(run: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """``(model in eval mode, config)`` from a run folder (or its ``model.safetensors``)."""
    from safetensors.torch import load_model

    p = Path(run)
    folder = p.parent if p.suffix == ".safetensors" else p
    cfg_path, weights = folder / "config.json", folder / "model.safetensors"
    for f in (cfg_path, weights):
        if not f.is_file():
            raise FileNotFoundError(f"--weights: {f} not found (a 'hyperleaf train --task "
                                    "pansharpen' run folder is expected)")
    config = json.loads(cfg_path.read_text())
    if config.get("task") != "pansharpen":
        raise ValueError(f"--weights: {folder} is not a pan-sharpening run")
    net = _build(config)
    load_model(net, str(weights), strict=True)
    return net.eval(), config


@torch.no_grad()
def sharpen(net: nn.Module, pan: Tensor, lms: Tensor) -> Tensor:
    """``net(pan, lms)`` for (C, H, W) or (N, C, H, W) inputs, float32 compute, input dtype out."""
    squeeze = lms.ndim == 3
    p, m = (pan[None], lms[None]) if squeeze else (pan, lms)
    out = net(p.float(), m.float()).to(lms.dtype)
    return out[0] if squeeze else out


def evaluate_methods(methods: dict[str, Any], samples: list[dict[str, Tensor]], ratio: int,
                     sensor: Any = None, full: bool = False, block: int = 32, cut: int = 0
                     ) -> dict[str, dict[str, float]]:
    """Mean indices per method over ``samples`` (float64 (C, H, W) dicts).

    ``methods[name]`` is a baseline name of :data:`hyperleaf.pansharpen.METHODS` or a model
    (``net(pan, lms)``). ``full=False``: reduced-resolution indices against ``gt``;
    ``full=True``: full-resolution indices from ``pan`` and ``ms``.
    """
    from hyperleaf.metrics import pansharpening as pm
    from hyperleaf.pansharpen import fuse

    table: dict[str, dict[str, float]] = {}
    for name, m in methods.items():
        rows = []
        for s in samples:
            if isinstance(m, str):
                f = fuse(m, s["pan"], s["lms"], s["ms"], ratio, sensor)
            else:
                f = sharpen(m, s["pan"], s["lms"])
            if full:
                rows.append(pm.full_resolution(f, s["ms"], s["pan"], ratio, sensor, block))
            else:
                rows.append(pm.reduced_resolution(s["gt"], f, ratio, min(block, f.shape[-1]),
                                                  cut))
        table[name] = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return table


def markdown_tables(table: dict[str, dict[str, float]]) -> str:
    """One Markdown table (methods as rows; arrows: lower/higher is better)."""
    better = {"SAM": "↓", "ERGAS": "↓", "Q2n": "↑", "Q": "↑", "SCC": "↑", "D_lambda": "↓",
              "D_s": "↓", "QNR": "↑", "D_lambda_K": "↓", "HQNR": "↑"}
    keys = list(next(iter(table.values())))
    lines = ["| method | " + " | ".join(f"{k} {better.get(k, '')}".strip() for k in keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |")
    return "\n".join(lines) + "\n"
