r"""HDGFB's fast path: the per-pixel scalar gating functions and the row kernels.

Internal to :mod:`hyperleaf.nn.hdgfb` (the Module, its argument checks and its reference paths
live there; read its docstring for the maths). Here: the scalar functions of the squared norms
and inner products that make the whole gating (:func:`gate_coeffs`, for both the autograd and the
fused path), and the fused path's three ``torch.autograd.Function``\ s on "rows" (one
``C``-vector per pixel): :class:`ProjectRows` (the 1x1 projections as GEMMs),
:class:`GateMixNorm` (reductions, the scalar graph, mix and LayerNorm, with a hand-written
backward) and :class:`FeedForward` (split first GEMM, row chunks, GELU recomputed in backward).
Their names are public so that ``tests/test_hdgfb.py`` can check each against autograd; the
module is not part of hyperleaf's API.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from hyperleaf import geometry
from hyperleaf import paper as _paper

#: nn.LayerNorm's default epsilon (the seed's ``tangent_norm``).
LN_EPS = 1e-5


# --------------------------------------------------------------------------------------------
# per-pixel scalar functions (the whole gating). Layout: dim 1 indexes the vectors: qq is
# (N, 1, ...) (||q||^2), pp and qp are (N, M, ...) (||p_m||^2, <q, p_m>); N, ... are pixels.
# All modalities go through each formula at once, so the op count does not grow with M.
# --------------------------------------------------------------------------------------------


def gate_softmax(logit_in: Tensor, gw: Tensor, gb: Tensor) -> Tensor:
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
    gates = gate_softmax(-(d / dsum), gw, gb)
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
    gates = gate_softmax(-(2.0 * torch.atanh(t) / sc), gw, gb)
    zl = sc * nb[:, 1:].clamp_min(geometry.MIN_NORM)  # logmap0
    return gates * (am * torch.atanh(zl.clamp_max(geometry.ARTANH_CLAMP)) / zl), gates


@dataclass(frozen=True)
class GateSpec:
    mode: str
    c: float  # paper mode's Python float curvature (unused in geodesic mode)


def gate_coeffs(spec: GateSpec, qq, pp, qp, c, r, gw, gb):
    # Float32 features beyond ~1e19 overflow the squared norms: keep them finite (huge), so
    # such pixels map to the ball's far region instead of producing inf * 0 = NaN.
    big = torch.finfo(qq.dtype).max / 16
    qq = torch.nan_to_num(qq, nan=big, posinf=big)
    pp = torch.nan_to_num(pp, nan=big, posinf=big)
    qp = torch.nan_to_num(qp, nan=0.0, posinf=big, neginf=-big)
    if spec.mode == "paper":
        return _paper_coeffs(qq, pp, qp, spec.c, gw, gb)
    return _geodesic_coeffs(qq, pp, qp, c, r, gw, gb)


def bcast_channels(v: Tensor, ndim: int) -> Tensor:
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


def go_wide(q: Tensor, qq: Tensor, pp: Tensor, qp: Tensor) -> bool:
    """Whether to redo the reductions in float64: always for float32/16 features (no
    data-dependent switch, so no host sync: the float64 reductions are 1/C of the data), never
    for float64 ones. The mix stays in the features' dtype."""
    return q.dtype != torch.float64


def _wide_coeffs(spec, qq, pp, qp, c, r, gw, gb):
    # The scalar graph in the reductions' dtype (float64 after an overflow), parameters cast in
    # the graph so that their gradients come back in their own dtype.
    dt = qq.dtype
    return gate_coeffs(spec, qq, pp, qp, c.to(dt), r.to(dt), gw.to(dt), gb.to(dt))


class ProjectRows(torch.autograd.Function):
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


class GateMixNorm(torch.autograd.Function):
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
        if go_wide(q, qq, pp, qp):
            # Features beyond ~1e19 overflow float32 squared norms and inner products: redo
            # the (1/C-sized) reductions and scalar graph in float64 instead of saturating.
            qq, pp, qp = _reductions(q.double(), [p.double() for p in ps])
        ks, gates = _wide_coeffs(spec, qq, pp, qp, c, r, gw, gb)
        # The mix (and backward) in the features' dtype.
        md = q.dtype
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

        md = ks.dtype  # the mix's dtype (the features')
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


class FeedForward(torch.autograd.Function):
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
