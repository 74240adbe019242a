r"""Statistics shared by every comparison hyperleaf reports (ablations, leaderboards).

A utility module: it imports no hyperleaf layer, so experiments, metrics and the CLI may all
use it. Each function states its unit of replication in the caller's terms; this module only
sees numbers.

Multiple comparisons: when one table tests ``m`` hypotheses (metrics x arms, or method pairs),
every verdict uses :func:`holm`'s adjusted p-values, which keep the family-wise error rate at
the chosen level for any dependence between the tests (Holm 1979).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["holm", "mean_interval"]


def holm(pvalues: Sequence[float]) -> list[float]:
    r"""Holm–Bonferroni adjusted p-values, in the order given.

    With the ``m`` p-values sorted increasingly, :math:`p_{(1)} \le \dots \le p_{(m)}`,
    the adjusted values are

    .. math:: \tilde p_{(i)} = \min\Bigl(1, \max_{j \le i} (m - j + 1)\, p_{(j)}\Bigr),

    so that rejecting every hypothesis with :math:`\tilde p < \alpha` controls the family-wise
    error rate at :math:`\alpha`. NaN p-values (a test that could not be computed) stay NaN
    and do not count in ``m``.

    Args:
        pvalues: ``m`` p-values in [0, 1] (NaN allowed).

    Returns:
        ``m`` adjusted p-values in the input order.

    Raises:
        ValueError: a p-value outside [0, 1].

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    >>> holm([])
    []
    """
    p = np.asarray([float(v) for v in pvalues], dtype=np.float64)
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError(f"pvalues: expected probabilities in [0, 1], got {list(pvalues)!r}")
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(finite)
    m = idx.size
    if m:
        order = idx[np.argsort(p[idx], kind="stable")]
        scaled = (m - np.arange(m)) * p[order]
        out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return [float(v) for v in out]


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    r"""Mean of ``n`` independent replicates and the half-width of its Student-t interval.

    .. math:: \bar x \pm t_{(1 + \text{level}) / 2,\; n - 1}\; s / \sqrt{n},

    with ``s`` the sample standard deviation (``n - 1`` in the denominator). The half-width is
    NaN for ``n < 2`` (no spread to estimate) or when a value is not finite.

    Args:
        values: ``n`` replicates (e.g. one score per image).
        level: coverage in (0, 1).

    Returns:
        ``(mean, half_width)``.

    >>> m, h = mean_interval([1.0, 2.0, 3.0])
    >>> m, round(h, 6)        # t_{0.975, 2} = 4.302653, s = 1
    (2.0, 2.484138)
    """
    from scipy import stats as _st

    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}")
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    if x.size == 0:
        raise ValueError("values: expected at least one value")
    mean = float(x.mean())
    if x.size < 2 or not np.all(np.isfinite(x)):
        return mean, math.nan
    sd = float(x.std(ddof=1))
    return mean, float(_st.t.ppf((1.0 + level) / 2.0, x.size - 1) * sd / math.sqrt(x.size))
