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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

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


# --------------------------------------------------------------------------- intervals and tests
#
# Added for hyperleaf.experiments (the ablation's statistics); generic, numbers only.

__all__ += ["StatsError", "Interval", "PairedDifference", "Bootstrap", "t_critical",
            "t_interval", "paired_t", "sign_test", "hierarchical_bootstrap"]


class StatsError(ValueError):
    """An argument of a statistic is invalid; ``key`` names what the caller should fix
    (``seeds`` when there are too few replicates, ``level``, ``values``...)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def t_critical(level: float, dof: int) -> float:
    r"""Two-sided Student t critical value: :math:`t` with :math:`P(|T_{dof}| \le t) = level`
    (``scipy.stats.t.ppf((1 + level) / 2, dof)``).

    >>> round(t_critical(0.95, 2), 6)
    4.302653
    """
    from scipy.stats import t as student_t

    if not 0 < level < 1:
        raise StatsError(f"level: expected a probability in (0, 1), got {level!r}", "level")
    if dof < 1:
        raise StatsError(f"dof: need at least 1 degree of freedom (2 values), got {dof}",
                         "seeds")
    return float(student_t.ppf(0.5 + level / 2, dof))


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval ``[low, high] = mean ∓ half_width``."""

    mean: float
    half_width: float
    low: float
    high: float
    sd: float        # sample standard deviation (ddof = 1)
    n: int
    level: float

    def excludes_zero(self) -> bool:
        """Whether 0 lies outside ``[low, high]``."""
        return self.low > 0 or self.high < 0


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    r"""Mean of ``values`` (:math:`K \ge 2` numbers) and its Student-t interval,
    :math:`\bar x \pm t_{(1+level)/2,\,K-1}\, s/\sqrt K` (:math:`s` with ``ddof = 1``).

    >>> ci = t_interval([1.0, 2.0, 3.0])
    >>> round(ci.mean, 6), round(ci.half_width, 6)    # 4.302653 * 1 / sqrt(3)
    (2.0, 2.484138)
    """
    xs = [float(v) for v in values]
    if len(xs) < 2:
        raise StatsError(f"seeds: a confidence interval needs at least 2 values (K >= 2), "
                         f"got {len(xs)}", "seeds")
    if not all(math.isfinite(v) for v in xs):
        raise StatsError(f"values: non-finite value among {xs}", "values")
    n = len(xs)
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in xs) / (n - 1))
    half = t_critical(level, n - 1) * sd / math.sqrt(n)
    return Interval(mean, half, mean - half, mean + half, sd, n, level)


@dataclass(frozen=True)
class PairedDifference:
    """``treated - control`` replicate by replicate, its interval, the paired t and p."""

    per_seed: tuple[float, ...]
    interval: Interval
    t: float
    p: float


def paired_t(treated: Sequence[float], control: Sequence[float],
             level: float = 0.95) -> PairedDifference:
    r"""Paired t test: :math:`d_k = treated_k - control_k`, the interval of their mean
    (:func:`t_interval`), :math:`t = \bar d / (s_d/\sqrt K)` and the two-sided
    :math:`p = 2 P(T_{K-1} \ge |t|)` (``scipy.stats.ttest_rel``). All differences equal:
    ``t`` is ±inf (p 0), or nan (p 1) when they are all 0.

    >>> d = paired_t([3.0, 5.0, 4.0], [1.0, 2.0, 3.0])
    >>> d.per_seed, round(d.t, 6)
    ((2.0, 3.0, 1.0), 3.464102)
    """
    from scipy.stats import t as student_t

    if len(treated) != len(control):
        raise StatsError(f"paired values: {len(treated)} treated vs {len(control)} control "
                         "(one of each per seed)", "seeds")
    d = tuple(float(a) - float(b) for a, b in zip(treated, control, strict=True))
    ci = t_interval(d, level)
    n = len(d)
    if ci.sd > 0:
        t = ci.mean / (ci.sd / math.sqrt(n))
        p = float(2 * student_t.sf(abs(t), n - 1))
    elif ci.mean == 0:
        t, p = float("nan"), 1.0
    else:
        t, p = math.copysign(math.inf, ci.mean), 0.0
    return PairedDifference(d, ci, float(t), p)


def sign_test(differences: Sequence[float]) -> float:
    r"""Exact two-sided sign test of a zero median: zeros dropped, :math:`n` non-zero
    differences, :math:`k` the smaller of the positive and negative counts,

    .. math:: p = \min\Bigl(1,\ 2 \sum_{i=0}^{k} \binom{n}{i} 2^{-n}\Bigr).

    Its smallest possible value is :math:`2^{1-n}`: 0.25 for 3 pairs, 0.0625 for 5.
    NaN differences are refused; all zero gives 1.

    >>> sign_test([0.1, 0.2, 0.3]), sign_test([1, 1, 1, 1, 1, -1, 1, 1])
    (0.25, 0.0703125)
    """
    d = [float(v) for v in differences]
    if any(math.isnan(v) for v in d):
        raise StatsError(f"differences: NaN among {d}", "values")
    pos = sum(v > 0 for v in d)
    neg = sum(v < 0 for v in d)
    n = pos + neg
    if n == 0:
        return 1.0
    k = min(pos, neg)
    tail = math.fsum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return float(min(1.0, 2.0 * tail))


@dataclass(frozen=True)
class Bootstrap:
    """A paired hierarchical bootstrap of a mean difference: the point estimate, the
    percentile interval at ``level``, the two-sided bootstrap p, the replicates used."""

    mean: float
    low: float
    high: float
    p: float
    level: float
    n_boot: int
    seeds: int
    images: int


def hierarchical_bootstrap(diff: Sequence[Sequence[float]] | np.ndarray, level: float = 0.95,
                           n_boot: int = 10000, seed: int = 0) -> Bootstrap:
    r"""Paired hierarchical bootstrap of the mean of ``diff`` ``(K, N)``: per training seed
    ``k`` and held-out image ``i`` the difference of two arms' scores, :math:`d_{ki}`.

    The estimate is :math:`\hat\theta = \frac1K\sum_k \frac1{N}\sum_i d_{ki}` (NaN images of a
    seed left out of its mean). Each of ``n_boot`` replicates draws K seeds with replacement,
    then, independently within each drawn seed, N images with replacement from that seed's
    row, and takes the same mean of means. The interval is the replicates' percentile interval
    (:math:`(1\mp level)/2` quantiles, numpy's linear rule) and
    :math:`p = \min(1, 2\min(P^*(\theta^* \le 0), P^*(\theta^* \ge 0)))`, the replicates
    counted with ``+1`` smoothing: :math:`P^* = (1 + \#) / (1 + n_{boot})`. Both units of
    variation (the training seed, the test image) enter the interval; the seed draw is the
    outer one. Deterministic for a given ``seed`` (numpy's PCG64).

    >>> b = hierarchical_bootstrap([[1.0, 1.0], [1.0, 1.0]], n_boot=200)
    >>> (b.mean, b.low, b.high) == (1.0, 1.0, 1.0), round(b.p, 4)
    (True, 0.01)
    """
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 1:
        raise StatsError(f"diff: expected (K seeds >= 2, N images >= 1), got shape {d.shape}",
                         "seeds")
    if not 0 < level < 1:
        raise StatsError(f"level: expected a probability in (0, 1), got {level!r}", "level")
    if n_boot < 100:
        raise StatsError(f"n_boot: expected at least 100 replicates, got {n_boot}", "n_boot")
    if np.all(np.isnan(d), axis=1).any():
        raise StatsError("diff: a seed has no finite image difference", "values")
    k, n = d.shape
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a drawn row of NaN images only
        theta = float(np.mean(np.nanmean(d, axis=1)))
        si = rng.integers(0, k, size=(n_boot, k))                  # seeds drawn
        ii = rng.integers(0, n, size=(n_boot, k, n))               # images within each
        rows = d[si[..., None], ii]                                # (B, K, N)
        reps = np.nanmean(np.nanmean(rows, axis=2), axis=1)        # (B,)
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    below = (1 + np.count_nonzero(reps <= 0)) / (1 + reps.size)
    above = (1 + np.count_nonzero(reps >= 0)) / (1 + reps.size)
    p = float(min(1.0, 2 * min(below, above)))
    return Bootstrap(theta, float(lo), float(hi), p, level, int(reps.size), k, n)


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
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a probability in (0, 1), got {level!r}")
    x = [float(v) for v in values]
    if not x:
        raise ValueError("values: expected at least one value")
    if len(x) < 2 or not all(math.isfinite(v) for v in x):
        return float(np.mean(x)), math.nan
    ci = t_interval(x, level)  # the one Student-t interval of this module
    return ci.mean, ci.half_width
