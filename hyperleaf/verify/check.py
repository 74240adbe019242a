"""The numerical-consistency suite behind ``hyperleaf check``.

A grid of operations x comparisons x dtypes x curvatures x norm regimes:

* ``geometry vs closed form``: :mod:`hyperleaf.geometry` against the Poincaré ball's closed forms
  in 50-digit arithmetic (:mod:`hyperleaf.verify.oracle`);
* ``geometry vs geoopt``: the fused functions against geoopt's own math (same semantics);
* ``paper vs NumPy``: :mod:`hyperleaf.paper` (the seed's formulas in torch) against an independent
  float64 NumPy transcription;
* ``paper vs geometry``: the exact relations proven in ``docs/paper-vs-geometry.md`` (verdict
  ``ok``/``FAIL``) and the raw divergences they explain (verdict ``expected``, with their size).

Inputs are deterministic: ``N`` random directions scaled to a norm regime given as
:math:`s = \\sqrt{c}\\|x\\|` (the fraction of the ball's radius). Every comparison is made on the
exact values the tested dtype holds (inputs are rounded to the dtype first, the oracle sees those).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from hyperleaf import geometry as G
from hyperleaf import paper as P
from hyperleaf.atomic import atomic_write_text
from hyperleaf.verify import oracle as O

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
CURVATURES = (0.1, 0.2, 0.5, 1.0, 2.0)
REGIMES = ("tiny", "interior", "near boundary", "beyond")
N_SAMPLES = 32
DIM = 16

# Unit roundoff of each dtype's results (bfloat16 results are rounded to its 8-bit mantissa).
UNIT = {"float64": 2.0**-53, "float32": 2.0**-24, "bfloat16": 2.0**-8}
ACOSH_OPS = ("hyper_distance", "hyper_distance_scale")


def tolerance(comparison: str, op: str, dtype: str, regime: str,
              c: float) -> tuple[float, float] | str:
    """``(rtol, atol)`` for a row, or the reason why the row is an expected divergence.

    A row passes when every sample has ``|got - want| <= rtol |want| + atol`` (vectors
    normwise). The bounds follow from each formula's conditioning, in units of the dtype's unit
    roundoff ``u``:

    * geometry, float64: the library's claim, 1e-10 relative, everywhere (no atol);
    * float32/bfloat16 near the boundary: artanh at ``1 - 10 eps`` has condition number up to
      ~1/(2 eps artanh) (eps = 4e-3, the projection margin), hence the looser near-boundary bound;
    * the seed's arcosh distances: arcosh has an infinite slope at 1, so rounding ``u`` in its
      argument moves the result by up to ``sqrt(2u)/sqrt(c)``: that is their absolute floor;
    * the seed's formulas beyond the boundary clip norms to ``1/sqrt(c) - 1e-8``, which leaves
      ``1 - c|x|^2`` of order ``2e-8 sqrt(c)``: rounding is amplified ~1e8 (float64) and the
      margin vanishes entirely in float32.
    """
    if comparison.startswith("geometry"):
        if dtype == "float64":
            return 1e-10, 0.0
        if dtype == "float32":
            return (5e-4 if regime == "near boundary" else 2e-5), 0.0
        return 4 * UNIT[dtype], 0.0
    # paper vs NumPy, and the paper-vs-geometry relations
    atol = math.sqrt(4 * UNIT[dtype]) / math.sqrt(c) if op in ACOSH_OPS else 0.0
    if dtype == "float64":
        if regime == "beyond":
            return 1e-6, 0.0
        return (1e-10 if regime == "near boundary" else 1e-12), 0.0
    if regime == "beyond" and op not in ("euclid_to_hyper", "distance_to_origin_norm",
                                         "mobius_add"):
        return (f"{dtype}: 1/sqrt(c) - 1e-8 rounds to 1/sqrt(c) (or 1 - 1e-8 to 1), "
                "so 1 - c|x|^2 is 0 and the seed's formula is inf/NaN")
    if dtype == "bfloat16":
        if regime in ("near boundary", "beyond") and op != "distance_to_origin_norm":
            return "bfloat16 cannot hold 1 - c|x|^2 near the boundary (8-bit mantissa)"
        return 0.08, atol
    return (2e-4 if regime == "near boundary" else 2e-5), atol


@dataclass
class Row:
    op: str
    comparison: str
    dtype: str
    c: float
    regime: str
    max_abs: float
    max_rel: float
    tol: float | None  # relative tolerance (None: expected divergence)
    verdict: str  # "ok", "FAIL" or "expected"
    note: str = ""
    atol: float = 0.0

    @property
    def failed(self) -> bool:
        return self.verdict == "FAIL"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.failed]

    def to_json(self) -> str:
        return json.dumps([asdict(r) for r in self.rows], indent=1, allow_nan=True)


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def _radii(regime: str, dtype: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """s = sqrt(c)|x| for a regime; 'near boundary' is the band the projection still allows."""
    eps = G.project_eps(DTYPES[dtype])
    if regime == "tiny":
        return 10.0 ** rng.uniform(-9, -4, n)
    if regime == "interior":
        return rng.uniform(0.05, 0.95, n)
    if regime == "near boundary":
        return 1 - 10.0 ** rng.uniform(math.log10(eps), math.log10(10 * eps), n)
    if regime == "beyond":
        return 10.0 ** rng.uniform(math.log10(1.05), 3, n)
    raise ValueError(f"unknown regime {regime!r}")


def _points(regime: str, dtype: str, c: float, seed: int, n: int = N_SAMPLES,
            dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((n, dim))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * (_radii(regime, dtype, rng, n) / math.sqrt(c))[:, None]


def _pairs(regime: str, dtype: str, c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = _points(regime, dtype, c, seed)
    y = _points(regime, dtype, c, seed + 1)
    # Half the pairs nearly coincident: relative accuracy there is the hard case.
    h = len(x) // 2
    rng = np.random.default_rng(seed + 2)
    near = x[:h] + 1e-6 * np.linalg.norm(x[:h], axis=1, keepdims=True) * \
        rng.standard_normal(x[:h].shape) / math.sqrt(x.shape[1])
    # keep the partner at its point's radius, so it stays in the same regime (inside the ball)
    near *= np.linalg.norm(x[:h], axis=1, keepdims=True) / np.linalg.norm(near, axis=1,
                                                                         keepdims=True)
    y[:h] = near
    return x, y


def _as(dtype: str, *arrays: np.ndarray) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Tensors in ``dtype`` and the exact float64 values they hold."""
    ts = [torch.from_numpy(a).to(DTYPES[dtype]) for a in arrays]
    return ts, [t.double().numpy() for t in ts]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


# --------------------------------------------------------------------------------------------
# error measures
# --------------------------------------------------------------------------------------------


def errors(got: np.ndarray, want: np.ndarray, rtol: float = 0.0,
           atol: float = 0.0) -> tuple[float, float, bool]:
    """Max absolute error, max relative error, and whether every sample has
    ``|got - want| <= rtol |want| + atol``. For vectors ``(N, D)`` errors are normwise per
    vector; for scalars, elementwise. NaN where the reference is NaN counts as agreement; NaN or
    inf elsewhere is an infinite error."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    got, want = np.broadcast_arrays(got, want)
    same = (np.isnan(got) & np.isnan(want)) | ((got == want) & np.isinf(want))
    got = np.where(same, 0.0, got)
    want = np.where(same, 0.0, want)
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(want))):
        return math.inf, math.inf, False
    diff = np.abs(got - want)
    if got.ndim == 2:
        num = np.sqrt(np.sum(diff**2, axis=1))
        den = np.sqrt(np.sum(want**2, axis=1))
    else:
        num, den = diff, np.abs(want)
    rel = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, 0.0))
    passed = bool(np.all(num <= rtol * den + atol))
    return float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), passed


def _row(op, comparison, dtype, c, regime, got, want, tol, note="", within=None) -> Row:
    """``tol``: (rtol, atol), or a string (the reason the divergence is expected), or None.
    ``within``: an absolute error bound that also passes (geoopt's own error)."""
    if isinstance(tol, tuple):
        rtol, atol = tol
        a, r, ok = errors(got, want, rtol, atol)
        if not ok and within is not None and a <= within:
            ok, note = True, note or "within geoopt's own error vs the closed form"
        return Row(op, comparison, dtype, c, regime, a, r, rtol, "ok" if ok else "FAIL", note,
                   atol)
    a, r, _ = errors(got, want)
    return Row(op, comparison, dtype, c, regime, a, r, None, "expected", tol or note)


# --------------------------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------------------------


def _geometry_rows(dtype: str, c: float, regime: str, seed: int) -> Iterable[Row]:
    tol = tolerance("geometry", "", dtype, regime, c)
    inside = regime != "beyond"
    x64 = _points(regime, dtype, c, seed)
    # expmap0 takes tangent vectors: map the regime's radius s to the tangent norm artanh(s).
    if inside:
        s = np.linalg.norm(x64, axis=1, keepdims=True) * math.sqrt(c)
        v64 = x64 * (np.arctanh(np.minimum(s, 1 - 1e-16)) / s)
    else:
        v64 = x64
    (x, v), (xe, ve) = _as(dtype, x64, v64)
    a64, b64 = _pairs(regime, dtype, c, seed + 10)
    (a, b), (ae, be) = _as(dtype, a64, b64)
    eps = G.project_eps(DTYPES[dtype])
    r = 0.5 / math.sqrt(c)
    # artanh's clamp 1 - 1e-7 as the computing dtype holds it (float32: 1 - 1.19e-7)
    cl = float(torch.tensor(G.ARTANH_CLAMP, dtype=G.compute_dtype(DTYPES[dtype])))

    cases: list[tuple[str, Callable, Callable | None, Callable]] = [
        ("expmap0", lambda: G.expmap0(v, c), lambda: O.mp_expmap0(ve, c),
         lambda: G.reference.expmap0(v, c)),
        ("logmap0", lambda: G.logmap0(x, c), lambda: O.mp_logmap0(xe, c, cl),
         lambda: G.reference.logmap0(x, c)),
        ("dist0", lambda: G.dist0(x, c), lambda: O.mp_dist0(xe, c, cl),
         lambda: G.reference.dist0(x, c)),
        ("dist", lambda: G.dist(a, b, c), (lambda: O.mp_dist(ae, be, c, cl)) if inside else None,
         lambda: G.reference.dist(a, b, c)),
        ("mobius_add", lambda: G.mobius_add(a, b, c),
         (lambda: O.mp_mobius_add(ae, be, c)) if inside else None,
         lambda: G.reference.mobius_add(a, b, c)),
        ("project", lambda: G.project(x, c), lambda: O.mp_project(xe, c, eps),
         lambda: G.reference.project(x, c)),
        ("clip_features", lambda: G.clip_features(x, r), lambda: O.mp_clip_features(xe, r), None),
    ]
    for op, fn, closed, ref in cases:
        got = _np(fn())
        exact = closed() if closed is not None else None
        if exact is not None:
            yield _row(op, "geometry vs closed form", dtype, c, regime, got, exact, tol)
        if ref is not None:
            want = _np(ref())
            if inside or op in ("expmap0", "project"):
                # geoopt loses digits where this library does not (artanh of tiny arguments,
                # the Möbius difference of near points): differences within twice geoopt's own
                # error against the closed form are agreement.
                within = 2 * errors(want, exact)[0] if exact is not None else None
                yield _row(op, "geometry vs geoopt", dtype, c, regime, got, want, tol,
                           within=within)
            else:
                # Beyond the boundary both saturate, but through different clamps
                # (documented): report the size.
                yield _row(op, "geometry vs geoopt", dtype, c, regime, got, want, None,
                           "outside the ball: both saturate, different clamps")


def _per_row(fn: Callable, *ts: torch.Tensor) -> np.ndarray:
    """Per-sample values of a paper function that returns a batch mean."""
    return np.array([float(fn(*(t[i:i + 1] for t in ts))) for i in range(ts[0].shape[0])])


def _paper_rows(dtype: str, c: float, regime: str, seed: int) -> Iterable[Row]:
    x64 = _points(regime, dtype, c, seed + 20)
    a64, b64 = _pairs(regime, dtype, c, seed + 30)
    (x,), (xe,) = _as(dtype, x64)
    (a, b), (ae, be) = _as(dtype, a64, b64)
    cases = [
        ("euclid_to_hyper", lambda: P.euclid_to_hyper(x, c=c), lambda: O.np_euclid_to_hyper(xe, c)),
        ("hyper_to_euclid", lambda: P.hyper_to_euclid(x, c=c), lambda: O.np_hyper_to_euclid(xe, c)),
        ("hyper_distance", lambda: P.hyper_distance(a, b, c=c),
         lambda: O.np_hyper_distance(ae, be, c)),
        ("hyper_distance_scale", lambda: P.hyper_distance_scale(a, b, c=c),
         lambda: O.np_hyper_distance_scale(ae, be, c)),
        ("distance_to_origin", lambda: P.distance_to_origin(x, c=c),
         lambda: O.np_distance_to_origin(xe, c)),
        ("distance_to_origin_norm", lambda: P.distance_to_origin_norm(x, c=c),
         lambda: O.np_distance_to_origin_norm(xe, c)),
        ("mobius_add", lambda: P.mobius_add(a, b, c=c), lambda: O.np_mobius_add(ae, be, c)),
    ]
    for op, fn, want in cases:
        yield _row(op, "paper vs NumPy", dtype, c, regime, _np(fn()), np.asarray(want()),
                   tolerance("paper", op, dtype, regime, c))


def _ranking_rows(dtype: str, seed: int) -> Iterable[Row]:
    rng = np.random.default_rng(seed + 40)
    scores64 = rng.standard_normal((8, 5)) * 3
    (s,), (se,) = _as(dtype, scores64)
    idx = rng.integers(0, 5, 8)
    targets = np.stack([rng.permutation(5) for _ in range(8)])
    tol = tolerance("paper", "top1_loss", dtype, "scores", 1.0)
    yield _row("top1_loss", "paper vs NumPy", dtype, math.nan, "scores", _np(
        P.top1_loss(s, torch.from_numpy(idx))), O.np_top1_loss(se, idx), tol)
    yield _row("listwise_ranking_loss", "paper vs NumPy", dtype, math.nan, "scores", _np(
        P.listwise_ranking_loss(s, torch.from_numpy(targets))),
        O.np_listwise_ranking_loss(se, targets), tol)


def _relation_rows(dtype: str, c: float, regime: str, seed: int) -> Iterable[Row]:
    """The exact relations of docs/paper-vs-geometry.md (verdict ok/FAIL) and the raw
    divergences (verdict 'expected', with their measured size)."""
    def tol(op: str):
        return tolerance("relation", op, dtype, regime, c)

    inside = regime != "beyond"
    eps = P.EPS
    sc = math.sqrt(c)
    x64 = _points(regime, dtype, c, seed + 50)
    a64, b64 = _pairs(regime, dtype, c, seed + 60)
    (x,), _ = _as(dtype, x64)
    (a, b), _ = _as(dtype, a64, b64)
    cmp = "paper vs geometry"

    # 1. euclid_to_hyper = expmap0 of the seed's clipped tangent, times |xs| / (|xs| + eps).
    n = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    xs = x * torch.clamp((1 / sc - eps) / (n + eps), max=1.0)
    ns = torch.linalg.vector_norm(xs, dim=1, keepdim=True)
    e2h = P.euclid_to_hyper(x, c=c)
    yield _row("euclid_to_hyper", cmp, dtype, c, regime, _np(e2h),
               _np(G.expmap0(xs, c) * (ns / (ns + eps))), tol("euclid_to_hyper"),
               "= expmap0(clip(x, 1/sqrt(c) - eps)) * |xs|/(|xs|+eps)")
    yield _row("euclid_to_hyper", cmp, dtype, c, regime, _np(e2h), _np(G.expmap0(x, c)), None,
               "vs expmap0(x): differs once |x| > 1/sqrt(c) - eps")

    # 2. hyper_distance: cosh(sqrt(c) d_paper) = cosh(sqrt(c) d) + (1/A - 1), A = (1-c|u|^2)(1-c|v|^2)
    if inside:
        dp = torch.from_numpy(_per_row(lambda u, v: P.hyper_distance(u, v, c=c), a, b))
        d = G.dist(a.double(), b.double(), c)
        # where dist saturates (artanh clamp, points > 2 artanh(1 - 1e-7)/sqrt(c) apart) the
        # relation is about the unclamped distance: leave those pairs out.
        live = (d < 0.999 * 2 * math.atanh(G.ARTANH_CLAMP) / sc).numpy()
        au = 1 - c * a.double().pow(2).sum(1)
        av = 1 - c * b.double().pow(2).sum(1)
        gap = 1 / (au * av) - 1
        lhs = torch.cosh(sc * dp.double())
        rhs = torch.clamp(torch.cosh(sc * d) + gap, min=1 + eps)
        # compared through cosh(sqrt(c) d): the relation holds for the arcosh arguments, whose
        # rounding the low-precision paper result carries (its acosh is evaluated on them).
        t = tol("hyper_distance")
        if isinstance(t, tuple):
            t = (max(t[0], 32 * UNIT[dtype]), 0.0)
        yield _row("hyper_distance", cmp, dtype, c, regime, _np(lhs)[live], _np(rhs)[live], t,
                   "cosh(sqrt(c) d_paper) = cosh(sqrt(c) d) + 1/((1-c|u|^2)(1-c|v|^2)) - 1")
        yield _row("hyper_distance", cmp, dtype, c, regime, _np(dp), _np(d), None,
                   "vs dist: d_paper > d, d_paper(x, x) > 0")

        # 3. distance_to_origin = dist0 / 2
        dto = _per_row(lambda t: P.distance_to_origin(t, c=c), x)
        yield _row("distance_to_origin", cmp, dtype, c, regime, dto, _np(G.dist0(x, c)) / 2, tol("distance_to_origin"),
                   "= dist0 / 2")

        # 5. hyper_to_euclid = logmap0 of x rescaled to n' = clamp(|x|, eps, 1-eps), times |x|/n'
        nn_ = torch.clamp(n, min=eps, max=1 - eps)
        h2e = P.hyper_to_euclid(x, c=c)
        rel_ok = (sc * nn_ < 1 - 1e-7).squeeze(1)
        yield _row("hyper_to_euclid", cmp, dtype, c, regime, _np(h2e[rel_ok]),
                   _np((G.logmap0(x * (nn_ / n), c) * (n / nn_))[rel_ok]), tol("hyper_to_euclid"),
                   "= logmap0(x n'/|x|) |x|/n', n' = clamp(|x|, eps, 1 - eps)")
        yield _row("hyper_to_euclid", cmp, dtype, c, regime, _np(h2e), _np(G.logmap0(x, c)), None,
                   "vs logmap0: |x| clamped at 1 - eps whatever c")
    else:
        dto = _per_row(lambda t: P.distance_to_origin(t, c=c), x)
        yield _row("distance_to_origin", cmp, dtype, c, regime, dto, _np(G.dist0(x, c)) / 2, None,
                   "outside: paper clips |x| to 1/sqrt(c) - eps, dist0 saturates")

    # 4. mobius_add: the gyro formula with 2 sqrt(c)<u,v> in place of 2c<u,v>, u, v / (1 + 1e-8),
    # denominator + 1e-8.
    u, v = a / (1 + 1e-8), b / (1 + 1e-8)
    uu, vv = u.pow(2).sum(1, keepdim=True), v.pow(2).sum(1, keepdim=True)
    uv = (u * v).sum(1, keepdim=True)
    m = ((1 + 2 * sc * uv + c * vv) * u + (1 - c * uu) * v) / (1 + 2 * sc * uv + c**2 * uu * vv
                                                               + 1e-8)
    pm = P.mobius_add(a, b, c=c)
    yield _row("mobius_add", cmp, dtype, c, regime, _np(pm), _np(m), tol("mobius_add"),
               "= gyro formula with 2 sqrt(c)<u,v>")
    yield _row("mobius_add", cmp, dtype, c, regime, _np(pm), _np(G.mobius_add(a, b, c)), None,
               "vs mobius_add: equal only at c = 1")


def run_checks(dtypes: Iterable[str] = tuple(DTYPES), curvatures: Iterable[float] = CURVATURES,
               regimes: Iterable[str] = REGIMES, seed: int = 0) -> Report:
    """Run the grid; returns every row (see :class:`Row`)."""
    report = Report()
    dtypes, curvatures, regimes = list(dtypes), list(curvatures), list(regimes)
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        for c in curvatures:
            for k, regime in enumerate(regimes):
                if regime not in REGIMES:
                    raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
                s = seed + 1000 * k
                for gen in (_geometry_rows, _paper_rows, _relation_rows):
                    report.rows.extend(gen(dtype, c, regime, s))
        report.rows.extend(_ranking_rows(dtype, seed))
    return report


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "-"
    if v == 0:
        return "0"
    return f"{v:.1e}"


def summarize(rows: list[Row]) -> list[Row]:
    """One row per (op, comparison, dtype, verdict kind), the worst over c and regimes."""
    groups: dict[tuple, Row] = {}
    for r in rows:
        key = (r.op, r.comparison, r.dtype, r.verdict == "expected", r.note)
        best = groups.get(key)
        if best is None or r.max_rel > best.max_rel or (r.failed and not best.failed):
            groups[key] = r
    out = []
    for key, worst in groups.items():
        members = [r for r in rows if (r.op, r.comparison, r.dtype, r.verdict == "expected",
                                       r.note) == key]
        verdict = "FAIL" if any(m.failed for m in members) else worst.verdict
        out.append(Row(worst.op, worst.comparison, worst.dtype, worst.c, worst.regime,
                       max(m.max_abs for m in members), max(m.max_rel for m in members),
                       worst.tol, verdict, worst.note))
    return out


HEADER = ("op", "comparison", "dtype", "c", "regime", "max abs", "max rel", "tol", "verdict")


def _cells(r: Row) -> tuple[str, ...]:
    c = "-" if math.isnan(r.c) else f"{r.c:g}"
    return (r.op, r.comparison, r.dtype, c, r.regime, _fmt(r.max_abs), _fmt(r.max_rel),
            _fmt(r.tol), r.verdict)


def format_table(rows: list[Row]) -> str:
    cells = [HEADER] + [_cells(r) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = ["  ".join(s.ljust(w) for s, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _md_table(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(report: Report) -> str:
    """The generated tables of docs/paper-vs-geometry.md."""
    out = []
    summary = [r for r in summarize(report.rows) if r.verdict != "expected"]
    out.append("### Verdicts (worst case over c and norm regimes)\n")
    out.append(_md_table(("op", "comparison", "dtype", "worst c", "worst regime", "max abs",
                          "max rel", "tol", "verdict"),
                         (_cells(r) for r in summary)))
    out.append("\n### Expected divergences, float64 (size of paper minus geometry)\n")
    div = [r for r in report.rows if r.verdict == "expected" and r.dtype == "float64"]
    out.append(_md_table(("op", "what", "c", "regime", "max abs", "max rel"),
                         ((r.op, r.note, f"{r.c:g}", r.regime, _fmt(r.max_abs), _fmt(r.max_rel))
                          for r in div)))
    return "\n".join(out) + "\n"


BEGIN = "<!-- BEGIN GENERATED BY `hyperleaf check --markdown` -->"
END = "<!-- END GENERATED -->"


def splice_markdown(path: str | os.PathLike, tables: str) -> None:
    """Put ``tables`` between the BEGIN/END markers of ``path`` (appending them if absent)."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{BEGIN}\n{tables}{END}"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = head + block + tail
    else:
        new = (old.rstrip() + "\n\n" if old else "") + block + "\n"
    atomic_write_text(path, new)
