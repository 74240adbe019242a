"""Experiments that drive training: the ablation (arms x seeds on held-out data), its
statistics and its reports.

Split by concern: :mod:`~hyperleaf.experiments.design` (arms, seeds, splits, presets),
:mod:`~hyperleaf.experiments.statistics` (intervals, the paired hierarchical bootstrap, Holm,
verdicts; generic parts in :mod:`hyperleaf.stats`), :mod:`~hyperleaf.experiments.report`
(tables, figure, CSV/JSON, provenance, docs tables) and :mod:`~hyperleaf.experiments.runner`
(running it). This package sits above :mod:`hyperleaf.train` and below :mod:`hyperleaf.cli`.

Example::

    >>> from hyperleaf.experiments import ARMS, confidence_interval
    >>> "euclidean" in ARMS, round(confidence_interval([1.0, 2.0, 3.0]).half_width, 6)
    (True, 2.484138)
"""

from hyperleaf.experiments.design import (
    ARM_LABELS,
    ARMS,
    DEFAULT_METRICS,
    MIN_EFFECT,
    MIN_SEEDS_FOR_VERDICT,
    PRESETS,
    TASK_METRICS,
    TASKS,
    AblationError,
    AblationSpec,
    heldout_count,
    make_split_view,
    parse_seeds,
    split_by_name,
)
from hyperleaf.experiments.report import (
    csv_text,
    markdown_report,
    plot_ablation,
    provenance,
    render_results_table,
)
from hyperleaf.experiments.runner import FORMAT, count_parameters, run_ablation, run_one
from hyperleaf.experiments.statistics import (
    UNIT,
    Interval,
    PairedDifference,
    confidence_interval,
    paired_difference,
    summarise,
    t_critical,
    verdict,
)

__all__ = ["ARMS", "ARM_LABELS", "DEFAULT_METRICS", "MIN_EFFECT", "MIN_SEEDS_FOR_VERDICT",
           "PRESETS", "TASKS", "TASK_METRICS", "AblationError", "AblationSpec", "FORMAT",
           "Interval", "PairedDifference", "UNIT", "confidence_interval", "count_parameters",
           "csv_text", "heldout_count", "make_split_view", "markdown_report",
           "paired_difference", "parse_seeds", "plot_ablation", "provenance",
           "render_results_table", "run_ablation", "run_one", "split_by_name", "summarise",
           "t_critical", "verdict"]
