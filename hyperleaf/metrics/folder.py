r"""Metrics of a folder of fused images against their source pairs, optionally in parallel.

:func:`evaluate_folder` reads every image with :func:`hyperleaf.io.read_gray_levels` (8-bit
grey files as their exact ``uint8`` levels, so the numbers equal those of
:func:`hyperleaf.metrics.evaluate` on the same arrays) and computes the selected metrics per
pair, in ``workers`` processes when asked. Rows come back in the order of ``pairs``.

Example::

    >>> from hyperleaf.io import find_pairs_in
    >>> rows = evaluate_folder("out", find_pairs_in("tno"), ("EN", "Qabf"))  # doctest: +SKIP
    >>> rows[0]["image"], sorted(rows[0])                                      # doctest: +SKIP
    ('1', ['EN', 'Qabf', 'image'])
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from hyperleaf.io import IMAGE_EXTENSIONS, ImageError, ImagePair, read_gray_levels
from hyperleaf.metrics.fusion import evaluate
from hyperleaf.metrics.registry import check_convention, resolve
from hyperleaf.metrics.vifb import read_matlab, select

__all__ = ["evaluate_folder", "evaluate_pair", "fused_file", "mean_row", "quiet_third_party"]


def quiet_third_party() -> None:
    """Silence warnings raised from modules outside hyperleaf (a library's deprecation or
    sparse-tensor notice is not the user's concern); hyperleaf's own warnings still show."""
    warnings.filterwarnings("ignore", module=r"(?!hyperleaf)")


def fused_file(folder: str | Path, name: str) -> Path:
    """The fused image of pair ``name`` in ``folder`` (``<name>.png`` or another image
    extension); :class:`ImageError` naming the expected file when there is none."""
    folder = Path(folder)
    for ext in IMAGE_EXTENSIONS:
        for cand in (folder / f"{name}{ext}", folder / f"{name}{ext.upper()}"):
            if cand.is_file():
                return cand
    raise ImageError(f"no fused image for pair {name!r}: expected {folder / (name + '.png')}")


def evaluate_pair(fused_dir: str | Path, pair: ImagePair, names: Sequence[str],
                  convention: str = "standard") -> dict[str, Any]:
    """``{"image": pair.name, metric: value, ...}`` for one pair, its fused image read from
    ``fused_dir``."""
    quiet_third_party()
    f = fused_file(fused_dir, pair.name)
    # vifb: the images as MATLAB's imread gives them (colour kept); otherwise grey levels.
    read = {"vifb": _read_vifb, "mmif": _read_mmif}.get(convention, read_gray_levels)
    fused, ir, vis = read(f), read(pair.ir), read(pair.vis)
    for p, arr in ((pair.ir, ir), (pair.vis, vis)):
        if arr.shape[:2] != fused.shape[:2]:
            raise ImageError(f"size mismatch: fused {f} is {fused.shape[0]}x{fused.shape[1]} "
                             f"but {p} is {arr.shape[0]}x{arr.shape[1]}")
    try:
        scores = evaluate(fused, ir=ir, vis=vis, metrics=tuple(names), convention=convention)
    except ValueError as exc:
        raise ValueError(f"pair {pair.name!r} (fused {f}): {exc}") from exc
    return {"image": pair.name, **scores}


def _read_mmif(path: str | Path) -> Any:
    """What the MMIF Evaluator measures: grey files as their levels; colour files as
    ``round(0.299 R + 0.587 G + 0.114 B)``, computed in float32 and rounded half to even
    (OpenCV's ``cvtColor(BGR2GRAY)`` on its float32 image, then ``np.round``), ``uint8``."""
    img = read_gray_levels(path)
    if img.dtype == np.uint8:
        return img
    rgb = read_matlab(path)
    if rgb.ndim != 3 or not np.array_equal(rgb, np.rint(rgb)):
        return img  # 16-bit grey: no luminance to round
    c = rgb.astype(np.float32)
    y = c[..., 2] * np.float32(0.114) + c[..., 1] * np.float32(0.587) + c[..., 0] * np.float32(0.299)
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def _read_vifb(path: str | Path) -> Any:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` as MATLAB's ``imread`` gives 8-bit files."""
    img = read_matlab(path)
    return img.astype(np.uint8) if np.array_equal(img, np.rint(img)) and img.max() <= 255 \
        else img / 255.0


def evaluate_folder(fused_dir: str | Path, pairs: Sequence[ImagePair], metrics: Any = None,
                    convention: str = "standard", workers: int = 1,
                    progress: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Rows ``{"image": name, metric: value, ...}`` for each pair, in the order of ``pairs``.

    Args:
        fused_dir: folder holding ``<pair.name>.png`` for every pair.
        pairs: the source pairs (:func:`hyperleaf.io.find_pairs_in`, ...).
        metrics: names (case-insensitive), ``"all"``, or ``None`` for the default set.
        convention: ``"standard"``, ``"mmif"`` or ``"vifb"`` (colour images read as MATLAB
            does, VIFB's 13 metrics by default).
        workers: processes computing pairs in parallel (1: in this process).
        progress: called once after each finished pair (e.g. a progress bar's update).
    """
    check_convention(convention)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers: expected an integer >= 1, got {workers!r}")
    names = select(metrics) if convention == "vifb" else resolve(metrics)
    tick = progress or (lambda: None)
    if workers == 1 or len(pairs) < 2:
        rows = []
        for pair in pairs:
            rows.append(evaluate_pair(fused_dir, pair, names, convention))
            tick()
        return rows

    # spawn: workers start clean (no inherited threads or locks of the parent's libraries).
    ctx = multiprocessing.get_context("spawn")
    results: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(pairs)), mp_context=ctx) as pool:
        futures = {pool.submit(evaluate_pair, fused_dir, pair, names, convention): i
                   for i, pair in enumerate(pairs)}
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                tick()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return [results[i] for i in range(len(pairs))]


def mean_row(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """``{"image": "mean", metric: mean over rows}``."""
    return {"image": "mean", **{m: sum(r[m] for r in rows) / len(rows) for m in names}}
