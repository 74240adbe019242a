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
custom autograd functions, in :mod:`hyperleaf.nn._hdgfb_kernels`: ``ProjectRows`` (the projections), ``GateMixNorm`` (reductions, the scalar
function on ``(1, 1 + M, P)`` tensors, mix, LayerNorm; it saves the projected rows, the mix and
the scalars, and its backward re-runs the small scalar graph with autograd and maps it back with
``d||x||^2/dx = 2x``, ``d<q,p>/dq = p``) and ``FeedForward`` (split first GEMM instead of a
concatenation, row chunks, GELU recomputed in backward). The result equals the seed (paper) and
the geometry-module composition (geodesic, ``impl="reference"``) to ~1e-14 in float64;
``tests/test_hdgfb.py`` proves it, and ``benchmarks/bench_hdgfb.py`` measures it.

Extreme features: float32 (and half-precision) features have their ``1/C``-sized reductions and
the scalar graph computed in float64 on every path and device (no data-dependent switch, so no
host synchronisation and no graph break), while the mix and the feed-forward stay in the
features' dtype, so a diverging float32 feature gates and mixes as in the float64 block (to
2e-5, tested up to 1e37) instead of saturating or turning NaN.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyperleaf import geometry
from hyperleaf import paper as _paper
from hyperleaf.deprecation import renamed_kwarg
from hyperleaf.geometry import geoopt  # through geometry: it silences geoopt's import warnings
from hyperleaf.nn._hdgfb_kernels import (
    LN_EPS,
    FeedForward,
    GateMixNorm,
    GateSpec,
    ProjectRows,
    bcast_channels,
    gate_coeffs,
    gate_softmax,
)

__all__ = ["HDGFB", "HDGFBExtension", "SEED_PARAMETERS"]

#: The seed's ``HyperbolicAttentionFusion`` parameters -> this block's: seed prefix ->
#: ``(name, m)``, i.e. ``<prefix>.weight``/``.bias`` are ``<name>_weight``/``<name>_bias``, row
#: ``m`` of them for the stacked per-modality projections (None: the whole tensor). Convolution
#: weights are ``(out, in, 1, 1)`` there and ``(out, in)`` here. The one copy of this map: the
#: paper reference path and :func:`hyperleaf.compat.hdgfb_from_reference` read it.
SEED_PARAMETERS: dict[str, tuple[str, int | None]] = {
    "to_hyperbolic1.0": ("query", None),
    "to_hyperbolic2.0": ("proj", 0),
    "to_hyperbolic3.0": ("proj", 1),
    "distance_mlp.0": ("gate", None),
    "ff.0": ("ff1", None),
    "ff.2": ("ff2", None),
    "tangent_norm": ("norm", None),
}

_MODES = ("paper", "geodesic")
_IMPLS = ("auto", "fused", "autograd", "reference")


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
            autocast, else ``"autograd"``), ``"fused"`` (the same choice: the hand-written
            kernels are an eager float32/float64 path, so under autocast, inside
            ``torch.compile`` or for half-precision maps a ``"fused"`` block runs the autograd
            formulation of the same math, which honours autocast and which the compiler fuses),
            ``"autograd"`` (the same math with plain autograd), ``"reference"`` (paper: the seed's own code path in
            :mod:`hyperleaf.paper`; geodesic: composed from :mod:`hyperleaf.geometry` functions).
        euclidean: geodesic mode's c -> 0 limit (the ablation's Euclidean arm): gates
            ``softmax(W(-2|q - p_m|) + b)`` and the gated sum of the (clipped) projections,
            every map of the ball replaced by its limit (``hyperleaf.geometry.*_c0``).

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
                 clip_r: float | None = None, impl: str = "auto", euclidean: bool = False,
                 device=None, dtype=None):
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
        # euclidean: the c -> 0 limit of the geodesic gate (_forward_euclidean), the ablation's
        # Euclidean arm; the curvature is then unused and fixed.
        self.euclidean = bool(euclidean)
        if self.euclidean and (mode != "geodesic" or learn_c):
            raise ValueError("euclidean=True is the c -> 0 limit of mode='geodesic' with a "
                             f"fixed curvature; got mode={mode!r}, learn_c={learn_c!r}")
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
        if self.impl == "autograd":
            return False
        return (x.dtype in (torch.float32, torch.float64)
                and not torch.compiler.is_compiling()
                and not torch.is_autocast_enabled(x.device.type))

    # ---- forward ---------------------------------------------------------------------------

    def forward(self, fused: Tensor, *features: Tensor, return_gates: bool = False):
        """``(B, C, *spatial)`` fused map and ``M`` modality features -> ``(B, C, *spatial)``."""
        self._check(fused, features)
        if self.euclidean:
            out, gates = self._forward_euclidean(fused, features)
        elif self.impl == "reference":
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
        q = ProjectRows.apply(fused, w["query_weight"], w["query_bias"])
        ps = [ProjectRows.apply(f.to(dt), w["proj_weight"][m], w["proj_bias"][m])
              for m, f in enumerate(features)]
        c = self._curvature(q)
        ln, gates = GateMixNorm.apply(
            GateSpec(self.mode, self.c), q, w["gate_weight"], w["gate_bias"], w["norm_weight"],
            w["norm_bias"], c, self._radius(c), *ps)
        out = FeedForward.apply(ln, fused, w["ff1_weight"], w["ff1_bias"], w["ff2_weight"],
                                 w["ff2_bias"])
        gates = gates[0].view(len(ps), fused.shape[0], *fused.shape[2:]).movedim(0, 1)
        return out, gates.contiguous()

    def _forward_autograd(self, fused: Tensor, q: Tensor, ps: list[Tensor]):
        # Plain autograd on the same math (torch.compile, autocast, half precisions). The
        # hyperbolic scalars and the LayerNorm are computed in float32 at least.
        wd = torch.promote_types(q.dtype, torch.float32)
        q, ps = q.to(wd), [p.to(wd) for p in ps]
        # The 1/C-sized reductions and the scalar graph in float64 (always, as the fused path:
        # no data-dependent switch, no host sync), so extreme features neither overflow the
        # squared norms nor saturate the gating; the mix stays in the features' dtype.
        rd = torch.float64
        q64, ps64 = q.to(rd), [p.to(rd) for p in ps]
        qq = (q64 * q64).sum(1, keepdim=True)
        pp = torch.cat([(p * p).sum(1, keepdim=True) for p in ps64], dim=1)
        qp = torch.cat([(q64 * p).sum(1, keepdim=True) for p in ps64], dim=1)
        gates_dtype = wd
        c = self._curvature(qq)
        ks, gates = gate_coeffs(GateSpec(self.mode, self.c), qq, pp, qp, c, self._radius(c),
                                self.gate_weight.to(rd), self.gate_bias.to(rd))
        ks = ks.to(wd)
        t = sum(ks[:, m:m + 1] * p for m, p in enumerate(ps))
        normed = self._layer_norm(t)
        return self._ff(torch.cat([normed.to(fused.dtype), fused], dim=1)), gates.to(gates_dtype)

    def _layer_norm(self, t: Tensor) -> Tensor:
        var, mean = torch.var_mean(t, dim=1, keepdim=True, correction=0)
        nd = t.dim()
        return ((t - mean) * torch.rsqrt(var + LN_EPS) * bcast_channels(self.norm_weight.to(t.dtype), nd)
                + bcast_channels(self.norm_bias.to(t.dtype), nd))

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
        gates = gate_softmax(-d, self.gate_weight, self.gate_bias)
        t = sum(gates[:, m:m + 1] * geometry.logmap0(f, c) for m, f in enumerate(fb))
        return self._ff(torch.cat([self._layer_norm(t), fused], dim=1)), gates

    def _forward_euclidean(self, fused: Tensor, features: tuple):
        # The c -> 0 limit of _forward_reference: exp_0 and log_0 become the identity and the
        # distance 2 |q - p| (hyperleaf.geometry's *_c0); clip_r None clips nothing (the
        # radius 1/sqrt(c) of the hyperbolic block grows without bound).
        q = self._conv(fused, self.query_weight, self.query_bias)
        ps = [self._conv(f, self.proj_weight[m], self.proj_bias[m]) for m, f in enumerate(features)]
        if self.clip_r is not None:
            q = geometry.clip_features(q, self.clip_r)
            ps = [geometry.clip_features(p, self.clip_r) for p in ps]
        d = torch.cat([geometry.dist_c0(q, p, dim=1, keepdim=True) for p in ps], dim=1)
        gates = gate_softmax(-d, self.gate_weight, self.gate_bias)
        t = sum(gates[:, m:m + 1] * p for m, p in enumerate(ps))
        return self._ff(torch.cat([self._layer_norm(t), fused], dim=1)), gates

    def _paper_reference(self, fused: Tensor, features: tuple):
        # The seed's class itself (hyperleaf.paper), on 2-D maps, with this block's weights.
        if fused.dim() != 4:
            raise ValueError("impl='reference' in paper mode runs the seed's 2-D code: "
                             f"expected (B, C, H, W), got {tuple(fused.shape)}")
        ref = _paper.HyperbolicAttentionFusion(self.channels, self.c, self.hidden)
        ref = ref.to(device=fused.device, dtype=self.query_weight.dtype)
        params = {}
        for prefix, (name, m) in SEED_PARAMETERS.items():
            for kind in ("weight", "bias"):
                t = getattr(self, f"{name}_{kind}")
                params[f"{prefix}.{kind}"] = t if m is None else t[m]
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
