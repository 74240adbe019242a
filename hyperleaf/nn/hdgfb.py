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
exploits this: a custom autograd function computes those reductions once along ``dim=1`` (no
permutes or copies), evaluates the scalar function on ``(B, 1, *spatial)`` tensors, and saves only
the projected features, the normalised mix and a few scalar maps; its backward differentiates the
small scalar graph with autograd and maps the result back with two fused multiply-adds per
feature. The feed-forward saves its pre-activation only and recomputes the GELU in backward. The
result equals the seed (paper) and the geometry-module composition (geodesic, ``impl="reference"``)
to ~1e-14 in float64; ``tests/test_hdgfb*.py`` proves it.
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

__all__ = ["HDGFB", "HDGFBExtension"]

_MODES = ("paper", "geodesic")
_IMPLS = ("auto", "fused", "autograd", "reference")
#: nn.LayerNorm's default epsilon (the seed's ``tangent_norm``).
LN_EPS = 1e-5


# --------------------------------------------------------------------------------------------
# per-pixel scalar functions (the whole gating, on (B, 1, *spatial) tensors)
# --------------------------------------------------------------------------------------------


def _sqrt0(x: Tensor) -> Tensor:
    # sqrt with a zero (sub)gradient at 0, like torch.norm's backward at the zero vector.
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def _gate(logit_in: Tensor, gw: Tensor, gb: Tensor) -> Tensor:
    # The seed's distance_mlp (an M x M 1x1 conv) on (B, M, *spatial), then softmax over M.
    logits = F.linear(logit_in.movedim(1, -1), gw, gb).movedim(-1, 1)
    return torch.softmax(logits, dim=1)


def _paper_coeffs(qq: Tensor, pp: Sequence[Tensor], qp: Sequence[Tensor], c: float, gw: Tensor,
                  gb: Tensor) -> tuple[list[Tensor], Tensor]:
    """The seed's gating as per-pixel scalars: mix coefficients ``k_m`` and gates ``(B, M, ...)``.

    Mirrors ``paper.euclid_to_hyper``, ``HyperbolicAttentionFusion.hyper_distance_map`` and
    ``paper.hyper_to_euclid`` op by op, with each vector norm replaced by the square root of a
    squared norm and ``||u - v||^2`` expanded (exact to rounding: the seed's ``acosh`` argument is at
    least ``1 + c(||u||^2 + ||v||^2)``, which dominates the expansion's rounding).
    """
    eps, meps, sc = _paper.EPS, _paper.MAP_EPS, math.sqrt(c)
    max_allowed = 1.0 / sc - eps
    max_norm = 1.0 / sc - meps

    def to_ball(sq: Tensor) -> tuple[Tensor, Tensor]:
        # euclid_to_hyper: point = a * x; returns (a, |point|).
        n = _sqrt0(sq)
        scale = torch.min(torch.ones_like(n), max_allowed / (n + eps))
        ns = n * scale
        a = scale * (torch.tanh(sc * ns) / (sc * (ns + eps)))
        return a, a * n

    def rescale(nh: Tensor) -> tuple[Tensor, Tensor]:
        # hyper_distance_map's rescaling: factor s and the clamped norm |s * point|.
        n0 = nh + meps
        s = torch.min(n0, torch.full_like(n0, max_norm)) / n0
        return s, (nh * s).clamp(max=max_norm)

    aq, nhq = to_ball(qq)
    sq_, nu = rescale(nhq)
    uq = sq_ * aq  # us = uq * q
    dists, amps = [], []
    for ppm, qpm in zip(pp, qp):
        am, nhm = to_ball(ppm)
        sm, nv = rescale(nhm)
        vm = sm * am
        diff = (uq * uq * qq + vm * vm * ppm - 2 * (uq * vm) * qpm).clamp_min(0)
        numerator = 1 + 2 * c * diff
        denominator = (1 - c * nu**2) * (1 - c * nv**2)
        arg = (numerator / denominator).clamp(min=1 + meps)
        dists.append((1 / sc) * torch.acosh(arg))
        amps.append((am, nhm))
    dsum = sum(dists) + 1e-8
    gates = _gate(torch.cat([-(d / dsum) for d in dists], dim=1), gw, gb)
    ks = []
    for m, (am, nhm) in enumerate(amps):
        nc = nhm.clamp(min=eps, max=1 - eps)  # hyper_to_euclid's clamp
        ks.append(gates[:, m:m + 1] * ((1 / sc) * torch.atanh(sc * nc) / nc * am))
    return ks, gates


def _geodesic_coeffs(qq: Tensor, pp: Sequence[Tensor], qp: Sequence[Tensor], c: Tensor,
                     r: Tensor, gw: Tensor, gb: Tensor) -> tuple[list[Tensor], Tensor]:
    """Geodesic gating as per-pixel scalars, with ``hyperleaf.geometry``'s clamps.

    ``phi = expmap0(clip_features(., r))``, ``dist`` and ``logmap0`` of :mod:`hyperleaf.geometry`
    (its ``MIN_NORM``, ``TANH_CLAMP``, ``ARTANH_CLAMP`` and ``MIN_DENOM``), the distance's
    ``||x - y||^2`` expanded from the reductions and clamped at 0.
    """
    sc = c.sqrt()

    def to_ball(sq: Tensor) -> tuple[Tensor, Tensor]:
        n = _sqrt0(sq)
        s = (r / n.clamp_min(geometry.MIN_NORM)).clamp_max(1.0)  # clip_features
        z = sc * (s * n).clamp_min(geometry.MIN_NORM)  # expmap0
        a = s * (torch.tanh(z.clamp_max(geometry.TANH_CLAMP)) / z)
        return a, a * n

    aq, nq = to_ball(qq)
    x2 = nq * nq
    dists, amps = [], []
    for ppm, qpm in zip(pp, qp):
        am, nm = to_ball(ppm)
        y2 = nm * nm
        n2 = (x2 + y2 - 2 * (aq * am) * qpm).clamp_min(0)
        denom = ((1 - c * x2) * (1 - c * y2) + c * n2).clamp_min(geometry.MIN_DENOM)
        t = (sc * _sqrt0(n2) / denom.sqrt()).clamp_max(geometry.ARTANH_CLAMP)
        dists.append(2.0 * torch.atanh(t) / sc)
        amps.append((am, nm))
    gates = _gate(-torch.cat(dists, dim=1), gw, gb)
    ks = []
    for m, (am, nm) in enumerate(amps):
        z = sc * nm.clamp_min(geometry.MIN_NORM)  # logmap0
        ks.append(gates[:, m:m + 1] * (am * torch.atanh(z.clamp_max(geometry.ARTANH_CLAMP)) / z))
    return ks, gates


@dataclass(frozen=True)
class _Spec:
    mode: str
    c: float  # paper mode's Python float curvature (unused in geodesic mode)


def _coeffs(spec: _Spec, qq, pp, qp, c, r, gw, gb):
    # Float32 features beyond ~1e19 overflow the squared norms: keep them finite (huge), so
    # such pixels map to the ball's far region instead of producing inf * 0 = NaN.
    big = torch.finfo(qq.dtype).max / 16
    qq = torch.nan_to_num(qq, nan=big, posinf=big)
    pp = [torch.nan_to_num(v, nan=big, posinf=big) for v in pp]
    qp = [torch.nan_to_num(v, nan=0.0, posinf=big, neginf=-big) for v in qp]
    if spec.mode == "paper":
        return _paper_coeffs(qq, pp, qp, spec.c, gw, gb)
    return _geodesic_coeffs(qq, pp, qp, c, r, gw, gb)


def _bcast(v: Tensor, ndim: int) -> Tensor:
    # (C,) -> (1, C, 1, ..., 1) for a (B, C, *spatial) tensor of ndim dimensions.
    return v.view(1, -1, *([1] * (ndim - 2)))


def _sum_but_channels(x: Tensor) -> Tensor:
    return x.sum(dim=[d for d in range(x.dim()) if d != 1])


# --------------------------------------------------------------------------------------------
# the fused gating + tangent mix + LayerNorm (+ concatenation with the fused map)
# --------------------------------------------------------------------------------------------


class _GateMixNorm(torch.autograd.Function):
    """``[LN_C(sum_m k_m p_m), fused]`` of shape (B, 2C, *spatial), hand-differentiated.

    Saves q, p_m, the normalised mix xhat and (B, 1, ...) scalars; the backward recomputes the
    scalar graph with autograd (cheap: 1/C of the data) and maps its gradients back to the
    feature maps through d||x||^2/dx = 2x and d<q,p>/dq = p.
    """

    @staticmethod
    def forward(ctx, spec, q, fused, gw, gb, nw, nb, c, r, *ps):
        nd = q.dim()
        qq = torch.linalg.vector_norm(q, dim=1, keepdim=True).square()
        pp = [torch.linalg.vector_norm(p, dim=1, keepdim=True).square() for p in ps]
        qp = [torch.linalg.vecdot(q, p, dim=1).unsqueeze(1) for p in ps]
        ks, gates = _coeffs(spec, qq, pp, qp, c, r, gw, gb)
        t = ps[0] * ks[0]
        for p, k in zip(ps[1:], ks[1:]):
            t.addcmul_(p, k)
        var, mean = torch.var_mean(t, dim=1, keepdim=True, correction=0)
        rstd = torch.rsqrt(var + LN_EPS)
        xhat = t.sub_(mean).mul_(rstd)
        C = q.shape[1]
        out = fused.new_empty((q.shape[0], 2 * C, *q.shape[2:]))
        torch.addcmul(_bcast(nb, nd), xhat, _bcast(nw, nd), out=out[:, :C])
        out[:, C:].copy_(fused)
        ctx.spec = spec
        ctx.save_for_backward(q, xhat, rstd, qq, gw, gb, nw, c, r, *ps, *pp, *qp)
        ctx.mark_non_differentiable(gates)
        return out, gates

    @staticmethod
    def backward(ctx, g_out, _g_gates):
        spec = ctx.spec
        q, xhat, rstd, qq, gw, gb, nw, c, r, *rest = ctx.saved_tensors
        M = len(rest) // 3
        ps, pp, qp = rest[:M], rest[M:2 * M], rest[2 * M:]
        nd, C = q.dim(), q.shape[1]
        needs = ctx.needs_input_grad
        go, g_fused = g_out[:, :C], g_out[:, C:]

        # LayerNorm over dim 1.
        g_nw = _sum_but_channels(go * xhat) if needs[5] else None
        g_nb = _sum_but_channels(go) if needs[6] else None
        dx = go * _bcast(nw, nd)
        m1 = dx.mean(dim=1, keepdim=True)
        m2 = torch.linalg.vecdot(dx, xhat, dim=1).unsqueeze(1) / C
        dt = dx.mul_(rstd).addcmul_(xhat, -(rstd * m2)).sub_(rstd * m1)

        # The scalar graph, re-run with autograd.
        with torch.enable_grad():
            leaves = [v.detach().requires_grad_() for v in (qq, *pp, *qp, gw, gb, c, r)]
            lq, lpp, lqp = leaves[0], leaves[1:1 + M], leaves[1 + M:1 + 2 * M]
            lgw, lgb, lc, lr = leaves[1 + 2 * M:]
            ks, _ = _coeffs(spec, lq, lpp, lqp, lc, lr, lgw, lgb)
            gk = [torch.linalg.vecdot(dt, p, dim=1).unsqueeze(1) for p in ps]
            wanted = [lq, *lpp, *lqp]
            if needs[3]:
                wanted.append(lgw)
            if needs[4]:
                wanted.append(lgb)
            if needs[7] and spec.mode == "geodesic":
                wanted.append(lc)
            if needs[8] and spec.mode == "geodesic":
                wanted.append(lr)
            grads = list(torch.autograd.grad(ks, wanted, gk, allow_unused=True))
        g_qq, g_pp, g_qp = grads[0], grads[1:1 + M], grads[1 + M:1 + 2 * M]
        extra = iter(grads[1 + 2 * M:])
        g_gw = next(extra) if needs[3] else None
        g_gb = next(extra) if needs[4] else None
        g_c = next(extra) if needs[7] and spec.mode == "geodesic" else None
        g_r = next(extra) if needs[8] and spec.mode == "geodesic" else None

        def z(g):
            return torch.zeros_like(qq) if g is None else g

        g_q = None
        if needs[1]:
            g_q = q * (2 * z(g_qq))
            for p, g in zip(ps, g_qp):
                g_q.addcmul_(p, z(g))
        g_ps = []
        for i, (p, k, gpp, gqp) in enumerate(zip(ps, ks, g_pp, g_qp)):
            if not needs[9 + i]:
                g_ps.append(None)
                continue
            g = dt * k.detach()
            g.addcmul_(p, 2 * z(gpp)).addcmul_(q, z(gqp))
            g_ps.append(g)
        return (None, g_q, g_fused if needs[2] else None, g_gw, g_gb, g_nw, g_nb, g_c, g_r,
                *g_ps)


# --------------------------------------------------------------------------------------------
# the feed-forward with GELU recomputation
# --------------------------------------------------------------------------------------------


def _conv_args(nd: int):
    k = nd - 2
    return [1] * k, [0] * k, [1] * k, False, [0] * k, 1


class _FeedForward(torch.autograd.Function):
    """``conv_{2C->hidden} -> GELU -> conv_{hidden->C}`` (1x1), saving the input and the
    pre-activation only: the GELU output (as large as the pre-activation) is recomputed in
    backward instead of being kept, which halves the block's saved bytes."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):
        nd = x.dim()
        args = _conv_args(nd)
        w1v, w2v = w1.view(*w1.shape, *([1] * (nd - 2))), w2.view(*w2.shape, *([1] * (nd - 2)))
        h = torch.ops.aten.convolution(x, w1v, b1, *args)
        out = torch.ops.aten.convolution(F.gelu(h), w2v, b2, *args)
        ctx.save_for_backward(x, h, w1v, w2v)
        return out

    @staticmethod
    def backward(ctx, g):
        x, h, w1v, w2v = ctx.saved_tensors
        n = ctx.needs_input_grad
        args = _conv_args(x.dim())
        a = F.gelu(h)
        ga, gw2, gb2 = torch.ops.aten.convolution_backward(
            g, a, w2v, [w2v.shape[0]], *args, [True, n[3], n[4]])
        del a
        gh = torch.ops.aten.gelu_backward(ga, h)
        del ga
        gx, gw1, gb1 = torch.ops.aten.convolution_backward(
            gh, x, w1v, [w1v.shape[0]], *args, [n[0], n[1], n[2]])
        return (gx, None if gw1 is None else gw1.flatten(1), gb1,
                None if gw2 is None else gw2.flatten(1), gb2)


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
        learnable_c: geodesic mode: learn the curvature (a geoopt learnable ball, ``self.ball``).
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
                 mode: str = "paper", num_modalities: int = 2, *, learnable_c: bool = False,
                 clip_r: float | None = None, impl: str = "auto", device=None, dtype=None):
        super().__init__()
        self.channels = C = _check_int(channels, "channels", 1)
        self.hidden = _check_int(hidden, "hidden", 1)
        self.num_modalities = M = _check_int(num_modalities, "num_modalities", 1)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if impl not in _IMPLS:
            raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
        self.mode, self.impl = mode, impl
        if mode == "paper":
            if learnable_c or isinstance(c, (geoopt.PoincareBall, Tensor)):
                raise ValueError("mode='paper' takes a fixed float c (the seed's); use "
                                 "mode='geodesic' for a learnable curvature")
            if clip_r is not None:
                raise ValueError("clip_r applies to mode='geodesic' only (paper mode clips to "
                                 "1/sqrt(c) - 1e-8, as the seed)")
            if impl == "reference" and M != 2:
                raise ValueError("impl='reference' in paper mode is the seed's 2-modality code; "
                                 f"got num_modalities={M}")
            self.c = _paper._c(c)
            self.ball = None
        else:
            self.ball = geometry.ball(c, learnable=learnable_c)
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
            raise ValueError(f"fused has {fused.shape[1]} channels (dim 1) but the block was built "
                             f"with channels={self.channels}")
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
        else:
            q = self._conv(fused, self.query_weight, self.query_bias)
            ps = [self._conv(f, self.proj_weight[m], self.proj_bias[m])
                  for m, f in enumerate(features)]
            if self._use_fused(q):
                out, gates = self._forward_fused(fused, q, ps)
            else:
                out, gates = self._forward_autograd(fused, q, ps)
        return (out, gates) if return_gates else out

    def _forward_fused(self, fused: Tensor, q: Tensor, ps: list[Tensor]):
        dt = q.dtype
        c = self._curvature(q)
        cat, gates = _GateMixNorm.apply(
            _Spec(self.mode, self.c), q, fused.to(dt), self.gate_weight.to(dt),
            self.gate_bias.to(dt), self.norm_weight.to(dt), self.norm_bias.to(dt), c,
            self._radius(c), *ps)
        out = _FeedForward.apply(cat, self.ff1_weight.to(dt), self.ff1_bias.to(dt),
                                 self.ff2_weight.to(dt), self.ff2_bias.to(dt))
        return out, gates

    def _forward_autograd(self, fused: Tensor, q: Tensor, ps: list[Tensor]):
        # Plain autograd on the same math (torch.compile, autocast, half precisions). The
        # hyperbolic scalars and the LayerNorm are computed in float32 at least.
        wd = torch.promote_types(q.dtype, torch.float32)
        q = q.to(wd)
        ps = [p.to(wd) for p in ps]
        qq = (q * q).sum(1, keepdim=True)
        pp = [(p * p).sum(1, keepdim=True) for p in ps]
        qp = [(q * p).sum(1, keepdim=True) for p in ps]
        c = self._curvature(q)
        ks, gates = _coeffs(_Spec(self.mode, self.c), qq, pp, qp, c, self._radius(c),
                            self.gate_weight.to(wd), self.gate_bias.to(wd))
        t = sum(k * p for k, p in zip(ks, ps))
        normed = self._layer_norm(t)
        return self._ff(torch.cat([normed.to(fused.dtype), fused], dim=1)), gates

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
