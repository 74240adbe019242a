r"""HDGFB: the Hyperbolic Distance-informed Gating Fusion Block of LEAF, fast and N-dimensional.

``HDGFB(channels, c, hidden, mode, num_modalities)`` is called as ``block(fused, *features)`` on
``(B, C, *spatial)`` maps (1, 2 or 3 spatial dimensions) and returns ``(B, C, *spatial)``:

.. math::
    q = W_0 F + b_0,\quad p_m = W_m X_m + b_m \quad (1\times1\text{ convolutions}),

    d_m = \mathrm{dist}(\phi(q), \phi(p_m)),\qquad
    w = \operatorname{softmax}_m\big(G\,\ell(d) + g\big),\qquad
    t = \textstyle\sum_m w_m \log_0\phi(p_m),

    \text{out} = \mathrm{FF}\big([\mathrm{LN}_C(t),\ F]\big),\quad
    \mathrm{FF} = \text{conv}_{2C\to\text{hidden}} \circ \mathrm{GELU} \circ
    \text{conv}_{\text{hidden}\to C}.

* ``mode="paper"``: the seed's ``HyperbolicAttentionFusion`` exactly: :math:`\phi` is
  ``euclid_to_hyper``, ``dist`` the seed's distance map (``acosh`` of
  :math:`(1+2c\|u-v\|^2)/((1-c\|u\|^2)(1-c\|v\|^2))` after its rescaling), :math:`\ell(d)_m =
  -d_m/(\sum_k d_k + 10^{-8})` (relative distances) and :math:`\log_0` the seed's
  ``hyper_to_euclid``.
* ``mode="geodesic"``: :math:`\phi = \exp_0\circ\,\mathrm{clip}_r` (geoopt's map after feature
  clipping to radius ``clip_r``, default :math:`1/\sqrt c` as the seed's), the true Poincaré
  distance, :math:`\ell(d) = -d` (raw geodesic distances: they are absolute in hyperbolic space and
  smooth at :math:`d = 0`, where relative distances are not), geoopt's :math:`\log_0`; any number of
  modalities, curvature fixed or learnable.

Every quantity between the projections and the mix is a per-pixel scalar function of the squared
norms :math:`\|q\|^2, \|p_m\|^2` and the inner products :math:`\langle q, p_m\rangle`, and the mix is
:math:`t = \sum_m k_m p_m` with per-pixel scalars :math:`k_m`. The fast path (``impl="fused"``)
exploits this and works on "rows", one ``C``-vector per pixel, so that every 1x1 convolution is
a GEMM that reads and writes the feature maps where they lie (channels-first maps as column-major
matrices, channels-last maps as row-major ones: no map is ever transposed or concatenated). Three
custom autograd functions: ``_Project`` (the projections), ``_GateMixNorm`` (reductions, the scalar
function on ``(1, 1 + M, P)`` tensors, mix, LayerNorm; it saves the projected rows, the mix and
the scalars, and its backward re-runs the small scalar graph with autograd and maps it back with
``d||x||^2/dx = 2x``, ``d<q,p>/dq = p``) and ``_FeedForward`` (split first GEMM instead of a
concatenation, row chunks, GELU recomputed in backward). The result equals the seed (paper) and
the geometry-module composition (geodesic, ``impl="reference"``) to ~1e-14 in float64;
``tests/test_hdgfb.py`` proves it, and ``benchmarks/bench_hdgfb.py`` measures it.

Extreme features (squared norms above ``WIDE_SQNORM_ABOVE`` = 2^60 in float32, checked on the
``1/C``-sized reductions) switch the scalar graph, the mix and their backward to float64 on CPU
(the fused and the eager autograd path; accelerators always run the reductions in float64 and
keep the mix in the features' dtype), so a diverging float32 feature gates and mixes as in the
float64 block (to 2e-5, tested up to 1e37) instead of saturating or turning NaN.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import geoopt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyperleaf import geometry
from hyperleaf import paper as _paper
from hyperleaf.deprecation import renamed_kwarg

__all__ = ["HDGFB", "HDGFBExtension"]

_MODES = ("paper", "geodesic")
_IMPLS = ("auto", "fused", "autograd", "reference")
#: nn.LayerNorm's default epsilon (the seed's ``tangent_norm``).
LN_EPS = 1e-5


# --------------------------------------------------------------------------------------------
# per-pixel scalar functions (the whole gating). Layout: dim 1 indexes the vectors: qq is
# (N, 1, ...) (||q||^2), pp and qp are (N, M, ...) (||p_m||^2, <q, p_m>); N, ... are pixels.
# All modalities go through each formula at once, so the op count does not grow with M.
# --------------------------------------------------------------------------------------------


def _gate(logit_in: Tensor, gw: Tensor, gb: Tensor) -> Tensor:
    # The seed's distance_mlp (an M x M 1x1 conv) on (N, M, ...), then softmax over M; as a
    # broadcast multiply-sum, not a GEMM: an (M x M) GEMM per pixel is all call overhead.
    M = gw.shape[0]
    shape = (1, M, M) + (1,) * (logit_in.dim() - 2)
    logits = (gw.view(shape) * logit_in.unsqueeze(1)).sum(2) + gb.view(shape[:2] + shape[3:])
    return torch.softmax(logits, dim=1)


def _paper_coeffs(qq: Tensor, pp: Tensor, qp: Tensor, c: float, gw: Tensor,
                  gb: Tensor) -> tuple[Tensor, Tensor]:
    """The seed's gating as per-pixel scalars: mix coefficients ``k`` and gates, both
    ``(N, M, ...)``.

    Mirrors ``paper.euclid_to_hyper``, ``HyperbolicAttentionFusion.hyper_distance_map`` and
    ``paper.hyper_to_euclid`` op by op, with each vector norm replaced by the square root of a
    squared norm and ``||u - v||^2`` expanded (exact to rounding: the seed's ``acosh`` argument is at
    least ``1 + c(||u||^2 + ||v||^2)``, which dominates the expansion's rounding).
    """
    eps, meps, sc = _paper.EPS, _paper.MAP_EPS, math.sqrt(c)
    max_allowed = 1.0 / sc - eps
    max_norm = 1.0 / sc - meps

    # euclid_to_hyper for q and every p_m at once: point = a * x, |point| = nh.
    sq = torch.cat([qq, pp], dim=1)
    n = geometry.sqrt0(sq)
    scale = torch.min(torch.ones_like(n), max_allowed / (n + eps))
    ns = n * scale
    a = scale * (torch.tanh(sc * ns) / (sc * (ns + eps)))
    nh = a * n
    # hyper_distance_map's rescaling: factor s and the clamped norm |s * point|.
    n0 = nh + meps
    s = torch.min(n0, torch.full_like(n0, max_norm)) / n0
    nr = (nh * s).clamp(max=max_norm)
    u = s * a  # the rescaled points are u * q and u_m * p_m
    uq, um = u[:, :1], u[:, 1:]
    diff = (uq * uq * qq + um * um * pp - 2 * (uq * um) * qp).clamp_min(0)
    numerator = 1 + 2 * c * diff
    den = 1 - c * nr**2
    arg = (numerator / (den[:, :1] * den[:, 1:])).clamp(min=1 + meps)
    d = (1 / sc) * torch.acosh(arg)
    dsum = d.sum(dim=1, keepdim=True) + 1e-8
    gates = _gate(-(d / dsum), gw, gb)
    nc = nh[:, 1:].clamp(min=eps, max=1 - eps)  # hyper_to_euclid's clamp
    return gates * ((1 / sc) * torch.atanh(sc * nc) / nc * a[:, 1:]), gates


def _geodesic_coeffs(qq: Tensor, pp: Tensor, qp: Tensor, c: Tensor, r: Tensor, gw: Tensor,
                     gb: Tensor) -> tuple[Tensor, Tensor]:
    """Geodesic gating as per-pixel scalars, with ``hyperleaf.geometry``'s clamps.

    ``phi = expmap0(clip_features(., r))``, ``dist`` and ``logmap0`` of :mod:`hyperleaf.geometry`
    (its ``MIN_NORM``, ``TANH_CLAMP``, ``ARTANH_CLAMP`` and ``MIN_DENOM``), the distance's
    ``||x - y||^2`` expanded from the reductions and clamped at 0.
    """
    sc = c.sqrt()
    n = geometry.sqrt0(torch.cat([qq, pp], dim=1))
    s = (r / n.clamp_min(geometry.MIN_NORM)).clamp_max(1.0)  # clip_features
    z = sc * (s * n).clamp_min(geometry.MIN_NORM)  # expmap0
    a = s * (torch.tanh(z.clamp_max(geometry.TANH_CLAMP)) / z)
    nb = a * n  # norms on the ball
    x2 = nb * nb
    aq, am, xq, xm = a[:, :1], a[:, 1:], x2[:, :1], x2[:, 1:]
    n2 = (xq + xm - 2 * (aq * am) * qp).clamp_min(0)
    denom = ((1 - c * xq) * (1 - c * xm) + c * n2).clamp_min(geometry.MIN_DENOM)
    t = (sc * geometry.sqrt0(n2) / denom.sqrt()).clamp_max(geometry.ARTANH_CLAMP)
    gates = _gate(-(2.0 * torch.atanh(t) / sc), gw, gb)
    zl = sc * nb[:, 1:].clamp_min(geometry.MIN_NORM)  # logmap0
    return gates * (am * torch.atanh(zl.clamp_max(geometry.ARTANH_CLAMP)) / zl), gates


@dataclass(frozen=True)
class _Spec:
    mode: str
    c: float  # paper mode's Python float curvature (unused in geodesic mode)


def _coeffs(spec: _Spec, qq, pp, qp, c, r, gw, gb):
    # Float32 features beyond ~1e19 overflow the squared norms: keep them finite (huge), so
    # such pixels map to the ball's far region instead of producing inf * 0 = NaN.
    big = torch.finfo(qq.dtype).max / 16
    qq = torch.nan_to_num(qq, nan=big, posinf=big)
    pp = torch.nan_to_num(pp, nan=big, posinf=big)
    qp = torch.nan_to_num(qp, nan=0.0, posinf=big, neginf=-big)
    if spec.mode == "paper":
        return _paper_coeffs(qq, pp, qp, spec.c, gw, gb)
    return _geodesic_coeffs(qq, pp, qp, c, r, gw, gb)


def _bcast(v: Tensor, ndim: int) -> Tensor:
    # (C,) -> (1, C, 1, ..., 1) for a (B, C, *spatial) tensor of ndim dimensions.
    return v.view(1, -1, *([1] * (ndim - 2)))


# --------------------------------------------------------------------------------------------
# the fast path works on "rows": (P, C) matrices, one row per pixel (P = B * prod(spatial))
# --------------------------------------------------------------------------------------------
# Why rows: every 1x1 convolution becomes a GEMM (oneDNN's 1x1 convolutions on NCHW maps ran
# ~1.3-2x slower than the same GEMMs here, forward and backward), and every per-pixel reduction
# runs along a contiguous row (``vector_norm`` along dim 1 of an NCHW map is ~25x slower). The
# projections produce rows; the maps themselves are read and written in place by the GEMMs.


def _is_rows(x: Tensor) -> bool:
    """Whether ``(B, C, *spatial)`` lies as rows already (channels-last memory)."""
    return x.movedim(1, -1).is_contiguous()


def _map_like(like: Tensor, channels: int, rows_layout: bool) -> Tensor:
    """An uninitialised ``(B, channels, *spatial)`` map of ``like``'s batch and spatial shape,
    channels-last (``rows_layout``) or channels-first."""
    kw = {"dtype": like.dtype, "device": like.device}
    if rows_layout:
        return torch.empty((like.shape[0], *like.shape[2:], channels), **kw).movedim(-1, 1)
    return torch.empty((like.shape[0], channels, *like.shape[2:]), **kw)


def _to_layout(x: Tensor, rows_layout: bool) -> Tensor:
    if _is_rows(x) == rows_layout and (rows_layout or x.is_contiguous()):
        return x
    out = _map_like(x, x.shape[1], rows_layout)
    return out.copy_(x)


def _vecdot(x: Tensor, y: Tensor) -> Tensor:
    # Row-wise inner product (P, C), (P, C) -> (P, 1).
    return (x * y).sum(-1, keepdim=True)


def _reductions(q: Tensor, ps: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Rows q, p_m -> ``||q||^2`` ``(1, 1, P)``, ``||p_m||^2`` and ``<q, p_m>`` ``(1, M, P)``."""
    P = q.shape[0]
    qq = geometry.sqnorm(q, -1).view(1, 1, P)
    pp = torch.stack([geometry.sqnorm(p, -1).view(P) for p in ps]).unsqueeze(0)
    qp = torch.stack([_vecdot(q, p).view(P) for p in ps]).unsqueeze(0)
    return qq, pp, qp


#: float32 squared norms above this (features beyond 2^30) switch the fused block's scalar graph,
#: mix and backward to float64: there the scalars' products (e.g. u_q u_m <q, p_m> of the
#: distance) would otherwise reach float32's subnormals or overflow, and a diverging feature
#: would not land where the float64 block puts it.
WIDE_SQNORM_ABOVE = 2.0**60


def _go_wide(q: Tensor, qq: Tensor, pp: Tensor, qp: Tensor) -> bool:
    """Whether to redo the reductions in float64: on CPU when a float32/16 squared norm exceeds
    ``WIDE_SQNORM_ABOVE`` or overflowed (one check on 1/C of the data); on accelerators always,
    since checking would cost a host sync per call and the float64 reductions are a small
    fraction of the block there."""
    if q.dtype == torch.float64:
        return False
    if q.device.type != "cpu":
        return True
    return geometry.reduced_peak(qq, pp) > WIDE_SQNORM_ABOVE


def _wide_coeffs(spec, qq, pp, qp, c, r, gw, gb):
    # The scalar graph in the reductions' dtype (float64 after an overflow), parameters cast in
    # the graph so that their gradients come back in their own dtype.
    dt = qq.dtype
    return _coeffs(spec, qq, pp, qp, c.to(dt), r.to(dt), gw.to(dt), gb.to(dt))


class _Project(torch.autograd.Function):
    """A 1x1 convolution from a ``(B, C, *spatial)`` map, as it lies in memory, to rows
    ``(P, C')``.

    A channels-first map is read as ``B`` column-major ``(S, C)`` matrices, which a GEMM takes
    transposed for free; this is ~2-4x faster here than transposing it to rows first and then
    multiplying, and backward writes the input gradient in the input's layout the same way.
    """

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        if _is_rows(x):
            return torch.addmm(b, x.movedim(1, -1).reshape(-1, x.shape[1]), w.t())
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        S = x3.shape[2]
        out = x.new_empty((x.shape[0] * S, w.shape[0]))
        for i in range(x.shape[0]):
            torch.addmm(b, x3[i].t(), w.t(), out=out[i * S:(i + 1) * S])
        return out

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        n = ctx.needs_input_grad
        B, C = x.shape[:2]
        g_x = g_w = None
        g_b = g.sum(0) if n[2] else None
        if _is_rows(x):
            if n[1]:
                g_w = g.t().mm(x.movedim(1, -1).reshape(-1, C))
            if n[0]:
                g_x = g.mm(w).view(B, *x.shape[2:], C).movedim(-1, 1)
            return g_x, g_w, g_b
        x3 = x.reshape(B, C, -1)
        S = x3.shape[2]
        if n[1]:
            g_w = torch.zeros_like(w)
            for i in range(B):
                g_w.addmm_(g[i * S:(i + 1) * S].t(), x3[i].t())
        if n[0]:
            g_x = x.new_empty((B, C, S))
            for i in range(B):
                torch.mm(w.t(), g[i * S:(i + 1) * S].t(), out=g_x[i])
            g_x = g_x.view(x.shape)
        return g_x, g_w, g_b


class _GateMixNorm(torch.autograd.Function):
    """``LN_C(sum_m k_m p_m)`` on rows: ``(P, C)`` rows q and p_m -> ``(P, C)``, and the gates
    ``(1, M, P)``; hand-differentiated.

    Saves q, p_m, the mix t, the LayerNorm statistics and ``(1, M, P)`` scalars; the backward
    re-runs the scalar graph with autograd (cheap: 1/C of the data) and maps its gradients back
    to the feature rows through d||x||^2/dx = 2x and d<q,p>/dq = p. The per-pixel scalars are
    laid out vector-major, ``(1, 1 + M, P)``, so every elementwise op of the scalar graph runs
    on contiguous pixel runs (from pixel-major ``(P, M)`` slices, this took the function's
    forward+backward from 18.3 to 11.8 ms at P = 8192, C = 64).
    """

    @staticmethod
    def forward(ctx, spec, q, gw, gb, nw, nb, c, r, *ps):
        P, C = q.shape
        qq, pp, qp = _reductions(q, ps)
        if _go_wide(q, qq, pp, qp):
            # Features beyond ~1e19 overflow float32 squared norms and inner products: redo
            # the (1/C-sized) reductions and scalar graph in float64 instead of saturating.
            qq, pp, qp = _reductions(q.double(), [p.double() for p in ps])
        ks, gates = _wide_coeffs(spec, qq, pp, qp, c, r, gw, gb)
        # The mix (and backward) in float64 too after a CPU switch (extreme features: float32
        # coefficients ~1/|p| would go subnormal); in the features' dtype otherwise.
        md = ks.dtype if q.device.type == "cpu" else q.dtype
        ks, gates = ks.to(md), gates.to(q.dtype)
        t = ps[0].to(md) * ks[0, 0].unsqueeze(1)
        for m in range(1, len(ps)):
            t.addcmul_(ps[m].to(md), ks[0, m].unsqueeze(1))
        t = t.to(q.dtype)
        # One fused kernel each way for the normalisation and its affine map (var_mean along
        # rows is ~5x slower); backward needs t and the statistics only.
        out, mean, rstd = torch.native_layer_norm(t, [C], nw, nb, LN_EPS)
        ctx.spec = spec
        ctx.save_for_backward(q, t, mean, rstd, qq, pp, qp, ks, gw, gb, nw, nb, c, r, *ps)
        ctx.mark_non_differentiable(gates)
        return out, gates

    @staticmethod
    def backward(ctx, g_out, _g_gates):
        spec = ctx.spec
        q, t, mean, rstd, qq, pp, qp, ks, gw, gb, nw, nb, c, r, *ps = ctx.saved_tensors
        P, C = q.shape
        needs = ctx.needs_input_grad
        dt, g_nw, g_nb = torch.ops.aten.native_layer_norm_backward(
            g_out, t, [C], mean, rstd, nw, nb, [True, needs[4], needs[5]])

        md = ks.dtype  # the mix's dtype: float64 after a CPU switch
        # The scalar graph, re-run with autograd.
        with torch.enable_grad():
            lq, lpp, lqp, lgw, lgb, lc, lr = (v.detach().requires_grad_()
                                              for v in (qq, pp, qp, gw, gb, c, r))
            lks, _ = _wide_coeffs(spec, lq, lpp, lqp, lc, lr, lgw, lgb)
            gk = torch.stack([_vecdot(dt.to(md), p.to(md)).view(P)
                              for p in ps]).unsqueeze(0).to(lks.dtype)
            wanted = [lq, lpp, lqp]
            if needs[2]:
                wanted.append(lgw)
            if needs[3]:
                wanted.append(lgb)
            if needs[6] and spec.mode == "geodesic":
                wanted.append(lc)
            if needs[7] and spec.mode == "geodesic":
                wanted.append(lr)
            grads = list(torch.autograd.grad(lks, wanted, gk, allow_unused=True))
        g_qq, g_pp, g_qp = (torch.zeros_like(v, dtype=md) if g is None else g.to(md)
                            for v, g in zip((qq, pp, qp), grads[:3]))
        extra = iter(grads[3:])
        g_gw = next(extra) if needs[2] else None
        g_gb = next(extra) if needs[3] else None
        g_c = next(extra) if needs[6] and spec.mode == "geodesic" else None
        g_r = next(extra) if needs[7] and spec.mode == "geodesic" else None

        def col(v, m):  # (1, M, P) -> the (P, 1) column of vector m
            return v[0, m].unsqueeze(1)

        g_q = None
        if needs[1]:
            g_q = q * col(2 * g_qq, 0)
            for m, p in enumerate(ps):
                g_q.addcmul_(p, col(g_qp, m))
            g_q = g_q.to(q.dtype)
        g_ps = []
        g_pp2 = 2 * g_pp
        for m, p in enumerate(ps):
            if not needs[8 + m]:
                g_ps.append(None)
                continue
            g = dt * col(ks, m)
            g.addcmul_(p, col(g_pp2, m)).addcmul_(q, col(g_qp, m))
            g_ps.append(g.to(q.dtype))
        return (None, g_q, g_gw, g_gb, g_nw, g_nb, g_c, g_r, *g_ps)


# --------------------------------------------------------------------------------------------
# the feed-forward with GELU recomputation
# --------------------------------------------------------------------------------------------


#: Row-chunk budget of the feed-forward's (rows, hidden) temporaries, in elements (4 MiB of
#: float32). Why: a fresh tensor above glibc's mmap threshold (32 MiB at most) is page-faulted
#: in on first touch, which costs more than the GELU itself (~12 ms per 32 MiB here); chunks
#: below it are recycled by malloc and stay cache-sized between the GEMMs that share them.
FF_CHUNK_ELEMENTS = 1 << 20


class _MapRows:
    """Row chunks of a ``(B, C, *spatial)`` map as ``(rows, C)`` matrices, without copying.

    Channels-last maps are one ``(P, C)`` matrix; channels-first maps are ``B`` column-major
    ``(S, C)`` matrices (``x[b].view(C, S).t()``), which GEMMs read and write transposed for free.
    Chunks never straddle two samples, so every chunk is such a matrix view.
    """

    def __init__(self, x: Tensor, width: int):
        self.rows_layout = _is_rows(x)
        B, C = x.shape[:2]
        self.mats = ([x.movedim(1, -1).reshape(-1, C)] if self.rows_layout
                     else list(x.reshape(B, C, -1).transpose(1, 2).unbind(0)))
        self.step = max(1, FF_CHUNK_ELEMENTS // max(1, width))

    def chunks(self):
        """Yields ``(global_rows, matrix_index, local_rows)`` slices."""
        start = 0
        for i, m in enumerate(self.mats):
            n = m.shape[0]
            for j in range(0, n, self.step):
                k = min(j + self.step, n)
                yield slice(start + j, start + k), i, slice(j, k)
            start += n


class _FeedForward(torch.autograd.Function):
    """``linear_{2C->hidden}([ln, fused]) -> GELU -> linear_{hidden->C}`` (the two 1x1
    convolutions as GEMMs) on ``ln`` rows ``(P, C)`` and the ``(B, C, *spatial)`` fused map,
    returning a ``(B, C, *spatial)`` map in the fused map's layout (channels-last or -first).

    The concatenation is never built: its first GEMM is split over ``[W_ln, W_fused]`` and
    reads the fused map in place (see :class:`_MapRows`); the second GEMM writes the output map
    in place the same way, and backward reads the output gradient and writes the fused map's
    gradient likewise, so no feature map is ever transposed. Everything runs in row chunks
    (``FF_CHUNK_ELEMENTS``), so the pre-activation is the only full-size (rows, hidden) tensor.

    Saves ``ln``, the fused map (saved by its projection anyway) and the pre-activation. The
    GELU output, as large as the pre-activation, is recomputed in backward instead of being
    kept, which is what keeps the block under half the seed's saved bytes.
    """

    @staticmethod
    def forward(ctx, ln, fused, w1, b1, w2, b2):
        P, C = ln.shape
        w1a, w1b = w1[:, :C], w1[:, C:]
        fm = _MapRows(fused, w1.shape[0])
        h = ln.new_empty((P, w1.shape[0]))
        out = _map_like(fused, w2.shape[0], fm.rows_layout)
        om = _MapRows(out, w1.shape[0])
        for rs, i, ls in fm.chunks():
            hs = torch.addmm(b1, ln[rs], w1a.t(), out=h[rs])
            hs.addmm_(fm.mats[i][ls], w1b.t())
            torch.addmm(b2, F.gelu(hs), w2.t(), out=om.mats[i][ls])
        ctx.save_for_backward(ln, fused, h, w1, w2)
        return out

    @staticmethod
    def backward(ctx, g):
        ln, fused, h, w1, w2 = ctx.saved_tensors
        n = ctx.needs_input_grad
        C = ln.shape[1]
        w1a, w1b = w1[:, :C], w1[:, C:]
        fm = _MapRows(fused, w1.shape[0])
        g = _MapRows(_to_layout(g, fm.rows_layout), w1.shape[0]).mats
        g_ln = torch.empty_like(ln) if n[0] else None
        g_fused = gm = None
        if n[1]:  # written in the fused map's layout (rows, or channels-first)
            g_fused = _map_like(fused, C, fm.rows_layout)
            gm = _MapRows(g_fused, w1.shape[0])
        g_w1 = torch.empty_like(w1) if n[2] else None
        g_b1 = h.new_empty(h.shape[1]) if n[3] else None
        g_w2 = torch.empty_like(w2) if n[4] else None
        for k, (rs, i, ls) in enumerate(fm.chunks()):
            hs, gs, beta = h[rs], g[i][ls], int(k > 0)  # the first chunk overwrites
            if g_w2 is not None:
                g_w2.addmm_(gs.t(), F.gelu(hs), beta=beta)
            gh = torch.ops.aten.gelu_backward(gs.mm(w2), hs)
            if g_w1 is not None:
                g_w1[:, :C].addmm_(gh.t(), ln[rs], beta=beta)
                g_w1[:, C:].addmm_(gh.t(), fm.mats[i][ls], beta=beta)
            if g_b1 is not None:
                torch.sum(gh, 0, out=g_b1) if k == 0 else g_b1.add_(gh.sum(0))
            if g_ln is not None:
                torch.mm(gh, w1a, out=g_ln[rs])
            if g_fused is not None:
                torch.mm(gh, w1b, out=gm.mats[i][ls])
        if ln.shape[0] == 0:  # no rows, no chunks: nothing above wrote the weight gradients
            for t in (g_w1, g_b1, g_w2):
                if t is not None:
                    t.zero_()
        g_b2 = None
        if n[5]:
            g_b2 = torch.stack([gi.sum(0) for gi in g]).sum(0) if g else w2.new_zeros(len(w2))
        return g_ln, g_fused, g_w1, g_b1, g_w2, g_b2


# --------------------------------------------------------------------------------------------
# the module
# --------------------------------------------------------------------------------------------


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _keep_ball_if_absent(module, state_dict, prefix, *_args) -> None:
    if module.ball is None:
        return
    for name, value in module.ball.state_dict().items():
        state_dict.setdefault(f"{prefix}ball.{name}", value)


def _conv_init_(weight: Tensor, bias: Tensor) -> None:
    # PyTorch's default Conv/Linear init (kaiming_uniform with a=sqrt(5), bias U(+-1/sqrt(fan_in))),
    # so that a fresh HDGFB is distributed like a fresh seed module.
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    bound = 1 / math.sqrt(weight.shape[-1])
    nn.init.uniform_(bias, -bound, bound)


class HDGFB(nn.Module):
    r"""Hyperbolic Distance-informed Gating Fusion Block (LEAF), for 1-D, 2-D and 3-D maps.

    Args:
        channels: ``C``, the channels of the fused map and of every modality feature.
        c: curvature magnitude of the ball (``float``; or a ``geoopt.PoincareBall`` in geodesic
            mode, whose curvature is then used and trained with it).
        hidden: width of the feed-forward (the seed's ``hidden_dim``).
        mode: ``"paper"`` (the seed's ``HyperbolicAttentionFusion``, exactly) or ``"geodesic"``
            (true Poincaré distance and geoopt maps; see the module docstring and
            ``docs/hdgfb.md``).
        num_modalities: ``M``, the number of modality features (``M >= 1``; the seed has 2).
        learn_c: geodesic mode: learn the curvature (a geoopt learnable ball, ``self.ball``).
        clip_r: geodesic mode: feature-clipping radius before ``expmap0`` (tangent norm); default
            :math:`1/\sqrt{c}`, the seed's radius.
        impl: ``"auto"`` (the fused fast path for float32/float64 outside ``torch.compile`` and
            autocast, else ``"autograd"``), ``"fused"``, ``"autograd"`` (the same math with plain
            autograd), ``"reference"`` (paper: the seed's own code path in
            :mod:`hyperleaf.paper`; geodesic: composed from :mod:`hyperleaf.geometry` functions).

    Shapes:
        ``block(fused, *features)``: ``fused`` and each of the ``M`` features ``(B, C, *spatial)``
        with 1 to 3 spatial dims; returns ``(B, C, *spatial)``; with ``return_gates=True`` returns
        ``(out, gates)``, ``gates`` of shape ``(B, M, *spatial)`` summing to 1 over dim 1
        (detached on the fused path).

    Example::

        >>> block = HDGFB(16, c=0.2, hidden=64, mode="geodesic")
        >>> fused, ir, vis = (torch.randn(2, 16, 32, 32) for _ in range(3))
        >>> out = block(fused, ir, vis)          # (2, 16, 32, 32)
    """

    def __init__(self, channels: int, c: float | geoopt.PoincareBall = 0.2, hidden: int = 512,
                 mode: str = "paper", num_modalities: int = 2, *, learn_c: bool = False, learnable_c: bool | None = None,
                 clip_r: float | None = None, impl: str = "auto", device=None, dtype=None):
        super().__init__()
        learn_c = renamed_kwarg("HDGFB", "learn_c", learn_c, "learnable_c", learnable_c)
        self.channels = C = _check_int(channels, "channels", 1)
        self.hidden = _check_int(hidden, "hidden", 1)
        self.num_modalities = M = _check_int(num_modalities, "num_modalities", 1)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if impl not in _IMPLS:
            raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
        self.mode, self.impl = mode, impl
        if mode == "paper":
            if learn_c or isinstance(c, (geoopt.PoincareBall, Tensor)):
                raise ValueError("mode='paper' takes a fixed float c (the seed's); use "
                                 "mode='geodesic' for a learnable curvature")
            if clip_r is not None:
                raise ValueError("clip_r applies to mode='geodesic' only (paper mode clips to "
                                 "1/sqrt(c) - 1e-8, as the seed)")
            if impl == "reference" and M != 2:
                raise ValueError("impl='reference' in paper mode is the seed's 2-modality code; "
                                 f"got num_modalities={M}")
            self.c = _paper.as_curvature(c)
            self.ball = None
        else:
            self.ball = geometry.ball(c, learn_c=learn_c)
            self.c = float(self.ball.c.detach())
        if clip_r is not None and not (isinstance(clip_r, numbers.Real) and clip_r > 0
                                       and math.isfinite(clip_r)):
            raise ValueError(f"clip_r must be a finite float > 0 or None, got {clip_r!r}")
        self.clip_r = None if clip_r is None else float(clip_r)
        # Seed state dicts carry no curvature: loading one keeps this block's configured c.
        self._register_load_state_dict_pre_hook(_keep_ball_if_absent, with_module=True)
        fk = {"device": device, "dtype": dtype}
        self.query_weight = nn.Parameter(torch.empty(C, C, **fk))
        self.query_bias = nn.Parameter(torch.empty(C, **fk))
        self.proj_weight = nn.Parameter(torch.empty(M, C, C, **fk))
        self.proj_bias = nn.Parameter(torch.empty(M, C, **fk))
        self.gate_weight = nn.Parameter(torch.empty(M, M, **fk))
        self.gate_bias = nn.Parameter(torch.empty(M, **fk))
        self.norm_weight = nn.Parameter(torch.empty(C, **fk))
        self.norm_bias = nn.Parameter(torch.empty(C, **fk))
        self.ff1_weight = nn.Parameter(torch.empty(self.hidden, 2 * C, **fk))
        self.ff1_bias = nn.Parameter(torch.empty(self.hidden, **fk))
        self.ff2_weight = nn.Parameter(torch.empty(C, self.hidden, **fk))
        self.ff2_bias = nn.Parameter(torch.empty(C, **fk))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Seed-like init; in geodesic mode the gate starts as ``softmax(-d)`` (identity, no
        bias), so modalities are treated symmetrically from the first step."""
        with torch.no_grad():
            _conv_init_(self.query_weight, self.query_bias)
            for m in range(self.num_modalities):
                _conv_init_(self.proj_weight[m], self.proj_bias[m])
            if self.mode == "paper":
                _conv_init_(self.gate_weight, self.gate_bias)
            else:
                self.gate_weight.copy_(torch.eye(self.num_modalities))
                self.gate_bias.zero_()
            self.norm_weight.fill_(1.0)
            self.norm_bias.zero_()
            _conv_init_(self.ff1_weight, self.ff1_bias)
            _conv_init_(self.ff2_weight, self.ff2_bias)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, c={self.c:g}, hidden={self.hidden}, mode={self.mode!r}, "
                f"num_modalities={self.num_modalities}, impl={self.impl!r}")

    # ---- helpers ---------------------------------------------------------------------------

    def _curvature(self, like: Tensor) -> Tensor:
        if self.ball is None:
            return torch.tensor(self.c, dtype=like.dtype, device=like.device)
        return geometry.curvature(self.ball, like)

    def _radius(self, c: Tensor) -> Tensor:
        return c.rsqrt() if self.clip_r is None else torch.full_like(c, self.clip_r)

    def _check(self, fused: object, features: tuple) -> None:
        if len(features) != self.num_modalities:
            raise TypeError(f"HDGFB(num_modalities={self.num_modalities}) expects "
                            f"block(fused, *features) with {self.num_modalities} feature "
                            f"tensors, got {len(features)}")
        for name, x in [("fused", fused), *[(f"features[{i}]", f) for i, f in enumerate(features)]]:
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if not x.is_floating_point():
                raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
        if not 3 <= fused.dim() <= 5:
            raise ValueError(f"fused must be (B, C, *spatial) with 1 to 3 spatial dims, got shape "
                             f"{tuple(fused.shape)}")
        if fused.shape[1] != self.channels:
            # Name the expected layout: an unbatched (C, *spatial) map passes the rank check
            # with its first spatial size read as the channels.
            hint = ("; an unbatched (C, *spatial) map? add the batch dimension "
                    "(x.unsqueeze(0))" if fused.shape[0] == self.channels else "")
            raise ValueError(f"fused must be (B, C, *spatial) with C = channels={self.channels} "
                             f"at dim 1, got shape {tuple(fused.shape)}{hint}")
        for i, f in enumerate(features):
            if f.shape != fused.shape:
                raise ValueError(f"features[{i}] has shape {tuple(f.shape)}, expected the shape of "
                                 f"fused {tuple(fused.shape)}")
            if f.device != fused.device:
                raise ValueError(f"features[{i}] is on {f.device}, fused on {fused.device}")

    def _conv(self, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        conv = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
        return conv(x, w.view(*w.shape, *([1] * (x.dim() - 2))), b)

    def _use_fused(self, x: Tensor) -> bool:
        if self.impl != "auto":
            return self.impl == "fused"
        return (x.dtype in (torch.float32, torch.float64)
                and not torch.compiler.is_compiling()
                and not torch.is_autocast_enabled(x.device.type))

    # ---- forward ---------------------------------------------------------------------------

    def forward(self, fused: Tensor, *features: Tensor, return_gates: bool = False):
        """``(B, C, *spatial)`` fused map and ``M`` modality features -> ``(B, C, *spatial)``."""
        self._check(fused, features)
        if self.impl == "reference":
            out, gates = self._forward_reference(fused, features)
        elif self._use_fused(fused):
            out, gates = self._forward_fused(fused, features)
        else:
            q = self._conv(fused, self.query_weight, self.query_bias)
            ps = [self._conv(f, self.proj_weight[m], self.proj_bias[m])
                  for m, f in enumerate(features)]
            out, gates = self._forward_autograd(fused, q, ps)
        return (out, gates) if return_gates else out

    def _forward_fused(self, fused: Tensor, features: tuple):
        # Everything on (P, C) rows: the projections and the feed-forward are GEMMs.
        dt = fused.dtype
        w = {n: p.to(dt) for n, p in self.named_parameters(recurse=False)}
        q = _Project.apply(fused, w["query_weight"], w["query_bias"])
        ps = [_Project.apply(f.to(dt), w["proj_weight"][m], w["proj_bias"][m])
              for m, f in enumerate(features)]
        c = self._curvature(q)
        ln, gates = _GateMixNorm.apply(
            _Spec(self.mode, self.c), q, w["gate_weight"], w["gate_bias"], w["norm_weight"],
            w["norm_bias"], c, self._radius(c), *ps)
        out = _FeedForward.apply(ln, fused, w["ff1_weight"], w["ff1_bias"], w["ff2_weight"],
                                 w["ff2_bias"])
        gates = gates[0].view(len(ps), fused.shape[0], *fused.shape[2:]).movedim(0, 1)
        return out, gates.contiguous()

    def _forward_autograd(self, fused: Tensor, q: Tensor, ps: list[Tensor]):
        # Plain autograd on the same math (torch.compile, autocast, half precisions). The
        # hyperbolic scalars and the LayerNorm are computed in float32 at least.
        wd = torch.promote_types(q.dtype, torch.float32)

        def reductions(wd):
            qw, pw = q.to(wd), [p.to(wd) for p in ps]
            return (qw, pw, (qw * qw).sum(1, keepdim=True),
                    torch.cat([(p * p).sum(1, keepdim=True) for p in pw], dim=1),
                    torch.cat([(qw * p).sum(1, keepdim=True) for p in pw], dim=1))

        q_, ps_, qq, pp, qp = reductions(wd)
        gates_dtype = wd
        # Extreme features: float64, as the fused path (eager only: the check is a
        # data-dependent branch; compiled graphs keep _coeffs' saturation instead).
        if (wd != torch.float64 and not torch.compiler.is_compiling()
                and geometry.reduced_peak(qq, pp) > WIDE_SQNORM_ABOVE):
            wd = torch.float64
            q_, ps_, qq, pp, qp = reductions(wd)
        q, ps = q_, ps_
        c = self._curvature(q)
        ks, gates = _coeffs(_Spec(self.mode, self.c), qq, pp, qp, c, self._radius(c),
                            self.gate_weight.to(wd), self.gate_bias.to(wd))
        t = sum(ks[:, m:m + 1] * p for m, p in enumerate(ps))
        normed = self._layer_norm(t)
        return self._ff(torch.cat([normed.to(fused.dtype), fused], dim=1)), gates.to(gates_dtype)

    def _layer_norm(self, t: Tensor) -> Tensor:
        var, mean = torch.var_mean(t, dim=1, keepdim=True, correction=0)
        nd = t.dim()
        return ((t - mean) * torch.rsqrt(var + LN_EPS) * _bcast(self.norm_weight.to(t.dtype), nd)
                + _bcast(self.norm_bias.to(t.dtype), nd))

    def _ff(self, x: Tensor) -> Tensor:
        return self._conv(F.gelu(self._conv(x, self.ff1_weight, self.ff1_bias)), self.ff2_weight,
                          self.ff2_bias)

    def _forward_reference(self, fused: Tensor, features: tuple):
        if self.mode == "paper":
            return self._paper_reference(fused, features)
        # Composed from hyperleaf.geometry (geoopt semantics) on full feature maps.
        q = self._conv(fused, self.query_weight, self.query_bias)
        ps = [self._conv(f, self.proj_weight[m], self.proj_bias[m]) for m, f in enumerate(features)]
        c = self._curvature(q)
        r = self._radius(c)
        qb = geometry.expmap0(geometry.clip_features(q, r), c)
        fb = [geometry.expmap0(geometry.clip_features(p, r), c) for p in ps]
        d = torch.cat([geometry.dist(qb, f, c, dim=1, keepdim=True) for f in fb], dim=1)
        gates = _gate(-d, self.gate_weight, self.gate_bias)
        t = sum(gates[:, m:m + 1] * geometry.logmap0(f, c) for m, f in enumerate(fb))
        return self._ff(torch.cat([self._layer_norm(t), fused], dim=1)), gates

    def _paper_reference(self, fused: Tensor, features: tuple):
        # The seed's class itself (hyperleaf.paper), on 2-D maps, with this block's weights.
        if fused.dim() != 4:
            raise ValueError("impl='reference' in paper mode runs the seed's 2-D code: "
                             f"expected (B, C, H, W), got {tuple(fused.shape)}")
        ref = _paper.HyperbolicAttentionFusion(self.channels, self.c, self.hidden)
        ref = ref.to(device=fused.device, dtype=self.query_weight.dtype)
        params = {
            "to_hyperbolic1.0.weight": self.query_weight, "to_hyperbolic1.0.bias": self.query_bias,
            "to_hyperbolic2.0.weight": self.proj_weight[0], "to_hyperbolic2.0.bias": self.proj_bias[0],
            "to_hyperbolic3.0.weight": self.proj_weight[1], "to_hyperbolic3.0.bias": self.proj_bias[1],
            "distance_mlp.0.weight": self.gate_weight, "distance_mlp.0.bias": self.gate_bias,
            "ff.0.weight": self.ff1_weight, "ff.0.bias": self.ff1_bias,
            "ff.2.weight": self.ff2_weight, "ff.2.bias": self.ff2_bias,
            "tangent_norm.weight": self.norm_weight, "tangent_norm.bias": self.norm_bias,
        }
        shaped = {k: (v.view(*v.shape, 1, 1) if k.endswith("weight") and v.dim() == 2 else v)
                  for k, v in params.items()}
        out = torch.func.functional_call(ref, shaped, (fused, *features))
        return out, None


class HDGFBExtension(nn.Module):
    """Extend any fusion module ``f(x1, x2) -> fused`` with an HDGFB: ``HDGFB(f(x1, x2), x1, x2)``.

    The paper proposes HDGFB "as an extension of conventional feature fusion components"; this
    wrapper does exactly that for two (or, with ``num_modalities``, more) ``(B, C, *spatial)``
    inputs. ``fusion`` must return a map of the inputs' shape. Extra keyword arguments go to
    :class:`HDGFB`.

    Example::

        >>> add = lambda a, b: a + b                       # any fusion f(x1, x2)
        >>> ext = HDGFBExtension(add, 16, hidden=32, mode="geodesic")
        >>> out = ext(torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8))   # (2, 16, 8, 8)
    """

    def __init__(self, fusion, channels: int, **hdgfb_kwargs):
        super().__init__()
        if not callable(fusion):
            raise TypeError(f"fusion must be callable f(x1, x2) -> fused, got "
                            f"{type(fusion).__name__}")
        self.fusion = fusion
        self.hdgfb = HDGFB(channels, **hdgfb_kwargs)

    def forward(self, *features: Tensor, return_gates: bool = False):
        """``M`` modality maps ``(B, C, *spatial)`` -> ``HDGFB(fusion(*features), *features)``."""
        fused = self.fusion(*features)
        if not isinstance(fused, Tensor):
            raise TypeError(f"fusion returned {type(fused).__name__}, expected a torch.Tensor")
        return self.hdgfb(fused, *features, return_gates=return_gates)
