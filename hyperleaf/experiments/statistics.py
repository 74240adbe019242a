r"""The ablation's summary: intervals over seeds, paired differences, the paired hierarchical
bootstrap over seeds x held-out images, Holm across the table, and the verdicts.

Unit of replication: the **training run** (one seed of one arm). Each run is scored on the
same N held-out images. Two intervals are reported for every difference ``arm - reference``:

(a) **over seeds**: the run's score is its mean over the N images; the K per-seed paired
    differences :math:`d_k` give a Student-t interval (:func:`hyperleaf.stats.paired_t`). The
    images are fixed: this interval says how much the *training seed* moves the result on
    these images, not how it generalises to other images.
(b) **paired hierarchical bootstrap** over seeds x images
    (:func:`hyperleaf.stats.hierarchical_bootstrap`): seeds resampled, then images within each
    seed, on the per-image differences :math:`d_{ki}`; both sources of variation enter.

Verdicts, per (arm, metric), in this order:

1. fewer than :data:`~hyperleaf.experiments.design.MIN_SEEDS_FOR_VERDICT` (5) seeds:
   **too few seeds**;
2. Holm-adjusted paired-t p (:func:`hyperleaf.stats.holm` over all metrics x arms of the
   table) below ``1 - level`` **and** the bootstrap interval (b) excluding 0 on the same side:
   **ARM better** / **REFERENCE better** in the metric's direction (with "(below min effect)"
   when :math:`|\bar d|` is smaller than the metric's smallest effect of interest);
3. otherwise, when both intervals (a) and (b) lie inside :math:`\pm` the smallest effect of
   interest: **no difference** (equivalence at that margin);
4. otherwise: **too noisy to say**.

The exact two-sided sign test over the K seed differences is reported beside them (its
smallest p is :math:`2^{1-K}`: 0.25 for 3 seeds).

Example::

    >>> runs = [{"arm": a, "seed": s, "metrics": {"EN": 5.0 + s + (a == "leaf")},
    ...          "images": [{"image": "x", "EN": 5.0 + s + (a == "leaf")}]}
    ...         for a in ("ship", "leaf") for s in range(3)]
    >>> out = summarise(runs, ("ship", "leaf"), (0, 1, 2), ("EN",), n_boot=200)
    >>> out["paired"]["leaf-ship"]["EN"]["verdict"]
    'too few seeds'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from hyperleaf import stats
from hyperleaf.experiments.design import (
    ARM_LABELS,
    MIN_SEEDS_FOR_VERDICT,
    AblationError,
    higher_is_better,
    min_effect_of,
)
from hyperleaf.stats import Interval, PairedDifference

__all__ = ["Interval", "PairedDifference", "t_critical", "confidence_interval",
           "paired_difference", "summarise", "verdict", "UNIT"]

#: The unit-of-replication line every output carries.
UNIT = ("Unit of replication: the training run (one seed); every run is scored on the same "
        "held-out images.")


def _ablation_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    # hyperleaf.stats raises StatsError; the ablation's callers catch AblationError.
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except stats.StatsError as exc:
            raise AblationError(str(exc), exc.key) from None

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = (f":func:`hyperleaf.stats.{fn.__name__}` (see there for the formula), "
                       "raising :class:`~hyperleaf.experiments.design.AblationError`.")
    return wrapped


#: :func:`hyperleaf.stats.t_critical`, raising :class:`AblationError`.
t_critical = _ablation_errors(stats.t_critical)
#: :func:`hyperleaf.stats.t_interval`, raising :class:`AblationError`.
confidence_interval = _ablation_errors(stats.t_interval)
#: :func:`hyperleaf.stats.paired_t`, raising :class:`AblationError`.
paired_difference = _ablation_errors(stats.paired_t)


def verdict(k: int, p_adj: float, boot_low: float, boot_high: float, t_low: float,
            t_high: float, mean: float, up: bool, min_effect: float | None, arm: str,
            ref: str, alpha: float = 0.05) -> str:
    """The verdict of one difference ``arm - ref`` (module docstring's rules 1-4).

    >>> verdict(3, 0.001, 1, 2, 1, 2, 1.5, True, 0.1, "leaf", "ship")
    'too few seeds'
    >>> verdict(8, 0.01, 0.2, 0.4, 0.1, 0.5, 0.3, True, 0.1, "leaf", "ship")
    'SHIP+LEAF better'
    >>> verdict(8, 0.6, -0.02, 0.03, -0.05, 0.05, 0.0, True, 0.1, "leaf", "ship")
    'no difference (within ±0.1)'
    >>> verdict(8, 0.6, -0.5, 0.6, -0.4, 0.4, 0.0, True, 0.1, "leaf", "ship")
    'too noisy to say'
    """
    if k < MIN_SEEDS_FOR_VERDICT:
        return "too few seeds"
    same_side = boot_low > 0 or boot_high < 0
    if math.isfinite(p_adj) and p_adj < alpha and same_side and (boot_low > 0) == (mean > 0):
        winner = ARM_LABELS.get(arm, arm) if (mean > 0) == up else ARM_LABELS.get(ref, ref)
        small = min_effect is not None and abs(mean) < min_effect
        return f"{winner} better" + (" (below min effect)" if small else "")
    if (min_effect is not None and -min_effect < min(t_low, boot_low)
            and max(t_high, boot_high) < min_effect):
        return f"no difference (within ±{min_effect:g})"
    return "too noisy to say"


def _image_matrix(runs_by: dict[tuple[str, int], dict[str, Any]], arm: str, seeds: Sequence[int],
                  metric: str) -> np.ndarray:
    rows = []
    names = None
    for s in seeds:
        imgs = runs_by[arm, s].get("images") or []
        if names is None:
            names = [im["image"] for im in imgs]
        elif [im["image"] for im in imgs] != names:
            raise AblationError(f"runs: {arm} seed {s} was scored on other images than seed "
                                f"{seeds[0]}", "runs")
        rows.append([float(im[metric]) for im in imgs])
    return np.asarray(rows, dtype=np.float64)


def summarise(runs: Sequence[dict[str, Any]], arms: Sequence[str], seeds: Sequence[int],
              metrics: Sequence[str], level: float = 0.95,
              min_effect: dict[str, float] | None = None, n_boot: int = 10000,
              boot_seed: int = 0) -> dict[str, Any]:
    """Per arm and metric the interval over seeds of the per-run scores; per non-reference arm
    and metric the paired difference to ``arms[0]`` (seed by seed, in ``seeds`` order) with
    (a) its t interval, t, p, Holm-adjusted p and sign-test p, (b) the paired hierarchical
    bootstrap over seeds x images, the smallest effect of interest and the verdict.

    ``runs``: records with ``arm``, ``seed``, ``metrics`` (``{name: score}``, the mean over
    the held-out images) and ``images`` (per image ``{"image": name, metric: score}``; the
    same images, in the same order, for every run).
    """
    by = {(r["arm"], r["seed"]): r for r in runs}
    missing = [(a, s) for a in arms for s in seeds if (a, s) not in by]
    if missing:
        raise AblationError(f"runs: no record for {missing[:3]}", "runs")
    k = len(seeds)
    out: dict[str, Any] = {
        "level": level, "reference": arms[0], "arms": {}, "paired": {}, "k": k,
        "n_images": len(by[arms[0], seeds[0]].get("images") or []), "n_boot": n_boot,
        "boot_seed": boot_seed, "unit": UNIT, "correction": "holm",
        "min_seeds_for_verdict": MIN_SEEDS_FOR_VERDICT}
    for a in arms:
        out["arms"][a] = {m: asdict(confidence_interval([by[a, s]["metrics"][m] for s in seeds],
                                                        level)) for m in metrics}
    ref = arms[0]
    cells: list[tuple[str, str, dict[str, Any]]] = []
    for a in arms[1:]:
        comp: dict[str, Any] = {}
        for m in metrics:
            pd = paired_difference([by[a, s]["metrics"][m] for s in seeds],
                                   [by[ref, s]["metrics"][m] for s in seeds], level)
            diff = _image_matrix(by, a, seeds, m) - _image_matrix(by, ref, seeds, m)
            try:
                boot = stats.hierarchical_bootstrap(diff, level, n_boot, boot_seed)
            except stats.StatsError as exc:
                raise AblationError(str(exc), exc.key) from None
            comp[m] = {"per_seed": list(pd.per_seed), **asdict(pd.interval), "t": pd.t,
                       "p": pd.p, "sign_p": stats.sign_test(pd.per_seed),
                       "boot": asdict(boot), "min_effect": min_effect_of(m, min_effect),
                       "higher_is_better": higher_is_better(m)}
            cells.append((a, m, comp[m]))
        out["paired"][f"{a}-{ref}"] = comp
    adjusted = stats.holm([c["p"] for _a, _m, c in cells])
    for (a, _m, c), p_adj in zip(cells, adjusted, strict=True):
        c["p_holm"] = p_adj
        c["verdict"] = verdict(k, p_adj, c["boot"]["low"], c["boot"]["high"], c["low"],
                               c["high"], c["mean"], c["higher_is_better"], c["min_effect"], a,
                               ref, 1 - level)
    return out
