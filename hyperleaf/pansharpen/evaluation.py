"""Pan-sharpening score tables: baselines, trained networks and external results scored at
reduced resolution (against ``gt``) and full resolution (QNR), as ``hyperleaf pansharpen`` and
``hyperleaf evaluate --task pansharpen`` print them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from hyperleaf.pansharpen import metrics as pm
from hyperleaf.pansharpen.baselines import fuse
from hyperleaf.pansharpen.network import sharpen

__all__ = ["evaluate_methods", "markdown_tables", "score_fused"]


def evaluate_methods(methods: dict[str, Any], samples: list[dict[str, Tensor]], ratio: int,
                     sensor: Any = None, full: bool = False, block: int = 32, cut: int = 0,
                     convention: str = "toolbox", scale: float | None = None
                     ) -> dict[str, dict[str, float]]:
    """Mean indices per method over ``samples`` (float64 (C, H, W) dicts).

    ``methods[name]`` is a baseline name of :data:`hyperleaf.pansharpen.METHODS` or a model
    (``net(pan, lms)``). ``full=False``: reduced-resolution indices against ``gt``;
    ``full=True``: full-resolution indices from ``pan`` and ``ms``. ``convention`` and
    ``scale`` (the digital number of 1.0 in the samples) as in
    :mod:`hyperleaf.pansharpen.metrics`.
    """
    table: dict[str, dict[str, float]] = {}
    for name, m in methods.items():
        rows = []
        for s in samples:
            if isinstance(m, str):
                f = fuse(m, s["pan"], s["lms"], s["ms"], ratio, sensor)
            else:
                f = sharpen(m, s["pan"], s["lms"])
            if full:
                rows.append(pm.full_resolution(f, s["ms"], s["pan"], ratio, sensor, block,
                                               convention=convention, scale=scale))
            else:
                rows.append(pm.reduced_resolution(s["gt"], f, ratio, min(block, f.shape[-1]),
                                                  cut, convention=convention, scale=scale))
        table[name] = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    return table


def score_fused(ds: Any, files: Sequence[str | Path], sensor: Any = None, block: int = 32,
                convention: str = "toolbox", fused_scale: float | None = None
                ) -> dict[str, Any]:
    """Indices of external fused images, one file per sample of ``ds`` (a
    :class:`~hyperleaf.data.PanCollection`), in the order of ``ds.names``.

    Reduced resolution (samples with ``gt``; the fused image at ``gt``'s size): SAM, ERGAS,
    Q2n, Q, SCC against ``gt`` (Q block ``min(block, side)``, no cut, no clipping). Full
    resolution (every sample whose side is a multiple of ``block``): D_lambda, D_s, QNR,
    D_lambda_K, HQNR from the sample's ``ms``, ``pan`` and ``lms``. Both under ``convention``
    with the data's digital-number scale ``ds.dn_scale`` (Q2n's rounding). Fused files are
    read by :meth:`~hyperleaf.data.PanCollection.read_fused` (``fused_scale``: their divisor;
    default: the data's scale for digital numbers, 1 for images in [0, 1]).

    Returns ``{"convention", "dn_scale", "reduced_resolution": {"scenes": [...], "mean": {...}}
    | None, "full_resolution": ... | None, "skipped": [...]}``; each scene row holds
    ``scene``, ``file`` and the indices.

    >>> from hyperleaf.data import PanCollection                     # doctest: +SKIP
    >>> ds = PanCollection("Pleiades_test.mat", scale=1023)          # doctest: +SKIP
    >>> score_fused(ds, ["my_method.mat"])["reduced_resolution"]["mean"]["Q2n"]  # doctest: +SKIP
    0.93...
    """
    if len(files) != len(ds):
        raise ValueError(f"files: expected one fused file per scene ({len(ds)}), got "
                         f"{len(files)}")
    rr_rows: list[dict[str, Any]] = []
    fr_rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    conv = convention
    for i, (name, path) in enumerate(zip(ds.names, files, strict=True)):
        s = {k: v.double() for k, v in ds[i].items()}
        f = ds.read_fused(path, i, fused_scale)
        base = {"scene": name, "file": str(path)}
        if "gt" in s:
            side = min(f.shape[-2:])
            rr_rows.append({**base, **pm.reduced_resolution(
                s["gt"], f, ds.ratio, min(block, side), 0, convention=conv,
                scale=ds.dn_scale)})
        h, w = f.shape[-2:]
        if h % block or w % block:
            skipped.append(f"{name}: full resolution needs sides that are multiples of {block} "
                           f"(got {h}x{w})")
        else:
            fr_rows.append({**base, **pm.full_resolution(
                f, s["ms"], s["pan"], ds.ratio, sensor, block, convention=conv,
                scale=ds.dn_scale, lms=s["lms"])})

    def table(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any] | None:
        if not rows:
            return None
        return {"scenes": rows, "mean": {k: sum(r[k] for r in rows) / len(rows) for k in keys}}

    return {"convention": conv, "dn_scale": ds.dn_scale,
            "reduced_resolution": table(rr_rows, pm.REDUCED_RESOLUTION),
            "full_resolution": table(fr_rows, pm.FULL_RESOLUTION), "skipped": skipped}


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
