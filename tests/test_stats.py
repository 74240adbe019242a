"""hyperleaf.stats against the procedures as their papers state them (independent loops)."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperleaf.stats import holm

probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def holm_rejections(pvalues, alpha):
    """Holm's step-down procedure, Holm (1979): walk the sorted p-values, reject while
    p_(i) <= alpha / (m - i + 1) (1-based i), stop at the first acceptance."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    rejected = set()
    for rank, i in enumerate(order):
        if pvalues[i] <= alpha / (m - rank):
            rejected.add(i)
        else:
            break
    return rejected


@given(st.lists(probabilities, min_size=1, max_size=12),
       st.sampled_from([0.01, 0.05, 0.1, 0.2]))
def test_holm_adjusted_values_reject_what_the_step_down_procedure_rejects(ps, alpha):
    adjusted = holm(ps)
    # Ties at the threshold: the adjusted value equals k * p exactly, compare with <= as the
    # procedure does; a product that rounds across alpha is excluded by a relative margin.
    near = [abs(a - alpha) <= 1e-12 for a in adjusted]
    mine = {i for i, a in enumerate(adjusted) if a <= alpha}
    theirs = holm_rejections(ps, alpha)
    assert {i for i in mine if not near[i]} == {i for i in theirs if not near[i]}


@given(st.lists(probabilities, min_size=1, max_size=12))
def test_holm_is_monotone_bounded_and_at_least_the_raw_p(ps):
    adjusted = holm(ps)
    assert all(a >= p for a, p in zip(adjusted, ps, strict=True))
    assert all(a <= 1.0 for a in adjusted)
    pairs = sorted(zip(ps, adjusted, strict=True))
    assert all(pairs[i][1] <= pairs[i + 1][1] for i in range(len(pairs) - 1))


def test_holm_by_hand_and_nan_is_left_out():
    # m = 4: sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.03, max(0.06, 0.03)=0.06, max(0.06, 0.04)
    assert holm([0.04, 0.01, 0.03, 0.005]) == pytest.approx([0.06, 0.03, 0.06, 0.02], abs=1e-15)
    out = holm([0.02, math.nan, 0.5])
    assert math.isnan(out[1])
    assert out[0] == pytest.approx(0.04) and out[2] == pytest.approx(0.5)


def test_holm_refuses_values_outside_unit_interval():
    with pytest.raises(ValueError, match="pvalues"):
        holm([0.5, 1.5])
