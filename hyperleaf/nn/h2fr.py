r"""H2FR: the Hyperbolic Hierarchical Fused-core Ranking loss of LEAF, and ``to_ball``.

``H2FRLoss(alpha, beta, c, mode)(fused_levels, *modality_levels)``: ``fused_levels`` holds
``L >= 2`` tensors ``(B, D_l)`` (shallow to deep), each of the ``M >= 1`` ``modality_levels[m]``
the ``L`` matching unimodal tensors (points on the ball: plain tensors or
``geoopt.ManifoldTensor``). With a score :math:`s` per feature (higher = closer to the core),

.. math::
    \mathcal{L} = \alpha\,\mathrm{ListMLE}\big(s(F_L), s(F_{L-1}), \dots, s(F_1)\big)
      + \beta \sum_{l=1}^{L} -\log\frac{e^{s(F_l)}}{e^{s(F_l)} + \sum_m e^{s(X_{m,l})}},
    \qquad
    \mathrm{ListMLE}(y_1..y_L) = \frac1L\sum_{i=1}^{L}\Big(\log\sum_{j\ge i} e^{y_j} - y_i\Big):

the deepest fused level is expected closest to the core, then the next, ...; at every level the
fused feature is expected closer than each unimodal one.

* ``mode="paper"`` (the seed's ``RankingBasedGeometryLoss``): :math:`s(X) = -\operatorname{mean}_b
  \|X_b\|` (Euclidean norm, batch mean): one list for the batch.
* ``mode="geodesic"`` (the paper's text): :math:`s(X)_b = -d(\text{core}, X_b)/\tau`, the geodesic
  distance of :mod:`hyperleaf.geometry` to the origin (``core="origin"``) or to a learned
  ``geoopt.ManifoldParameter`` (``core="learned"``): one list per sample, averaged over the batch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from hyperleaf import geometry
from hyperleaf.deprecation import renamed_kwarg
from hyperleaf.geometry import geoopt  # through geometry: it silences geoopt's import warnings

__all__ = ["H2FRLoss", "to_ball"]

_MODES = ("paper", "geodesic")
_CORES = ("origin", "learned")


def to_ball(x: Tensor, c: geometry.Curvature, clip_r: float | Tensor | None = 1.0) -> Tensor:
    r"""Map Euclidean features to the Poincaré ball as LEAF's reference network does.

    Compress (``(B, C, *spatial)`` maps are average-pooled to ``(B, C)``; ``(B, D)`` vectors pass
    through), clip (:func:`hyperleaf.geometry.clip_features` to tangent norm ``clip_r``;
    ``None`` skips it), then :func:`hyperleaf.geometry.expmap0`:
    :math:`\exp_0(x\min(1, r/\|x\|))`, a point of norm :math:`< 1/\sqrt{c}`.

    Args:
        x: ``(B, D)`` vectors or ``(B, C, *spatial)`` maps.
        c: curvature magnitude (float, 0-d tensor or ``geoopt.PoincareBall``, learnable or not).
        clip_r: feature-clipping radius (Guo et al. 2022 use ~1); ``None`` for no clipping.

    Returns:
        ``(B, D)`` points on the ball, in ``x``'s dtype.

    Saturation: a vector longer than ``clip_r`` is mapped to the sphere of radius
    :math:`\tanh(\sqrt c\, r)/\sqrt c` whatever its length, so the gradient along its norm is
    zero there (only its direction still receives gradient). A loss that asks for "far" (the
    unimodal features in H2FR) can be met by pushing features past the clip, after which they
    no longer move in or out; ``hyperleaf.train.diagnostics`` measures how many do.

    Example::

        >>> pts = to_ball(torch.randn(4, 32, 8, 8), c=0.5)   # (4, 32)
        >>> bool((pts.norm(dim=1) < 0.5 ** -0.5).all())
        True
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must be (B, D) or (B, C, *spatial), got shape {tuple(x.shape)}")
    if x.dim() > 2:
        x = x.flatten(2).mean(dim=2)
    if clip_r is not None:
        x = geometry.clip_features(x, clip_r, dim=1)
    return geometry.expmap0(x, c, dim=1)


def _listmle(y: Tensor) -> Tensor:
    # y: (..., L) scores in the expected order (first = expected highest); mean over positions.
    tail = torch.logcumsumexp(y.flip(-1), dim=-1).flip(-1)
    return (tail - y).mean(dim=-1)


def _widen(x: Tensor) -> Tensor:
    """float16/bfloat16 points to float32 (:func:`hyperleaf.geometry.compute_dtype`)."""
    return x.to(geometry.compute_dtype(x.dtype))


def _default_mean(x: Tensor) -> Tensor:
    return x.mean(dim=0)


class H2FRLoss(nn.Module):
    r"""Hyperbolic Hierarchical Fused-core Ranking loss (LEAF).

    Args:
        alpha: weight of the level ranking (ListMLE over the fused levels).
        beta: weight of the per-level Top-1 terms (fused closest among fused and modalities).
        c: curvature magnitude of the ball (float, or a ``geoopt.PoincareBall`` in geodesic mode).
            Unused by the paper-mode scores (Euclidean norms), as in the seed.
        mode: ``"paper"`` or ``"geodesic"`` (see the module docstring and ``docs/h2fr.md``).
        gamma: accepted and unused, as in the seed's constructor.
        core: geodesic mode: ``"origin"`` or ``"learned"`` (``self.core``, a
            ``geoopt.ManifoldParameter`` of size ``core_dim`` on ``self.ball``, initialised at the
            origin; train it with ``geoopt.optim.RiemannianAdam``/``RiemannianSGD``).
        core_dim: ``D`` of the learned core (every level must then have ``D`` features).
        temperature: geodesic mode: scores are ``-distance / temperature``.
        learn_c: geodesic mode: learn the curvature (``self.ball`` is a learnable geoopt ball).
        num_modalities: if given, the number of modality sequences every call must pass.
        euclidean: geodesic mode's c -> 0 limit: distances :math:`2\|x - \text{core}\|`
            (``hyperleaf.geometry.dist_c0``), the core a Euclidean parameter (fixed ``c``).
        batch_mean: how per-sample values are averaged over the batch (``(B,) -> ()``; default
            ``x.mean(0)``). Pass an all-reducing mean to make the loss of a data-parallel run equal
            the loss on the union batch.

    Saturation: inputs made by :func:`to_ball` at the clipping radius have zero gradient along
    their norm, so once a modality's features are pushed to the clip the Top-1 terms can
    still be lowered only by moving the fused features and the core, and the level ranking
    only by the fused levels' distances; a ranking "met" that way says nothing per sample
    (see ``docs/training.md``, "Geometry diagnostics").

    Shapes:
        ``loss(fused_levels, *modality_levels)``: ``L >= 2`` tensors ``(B, D_l)`` (a trailing
        ``*spatial`` is averaged over per sample), ``M >= 1`` sequences of ``L`` tensors of the
        matching shapes. Returns a 0-d tensor.

    Example::

        >>> loss = H2FRLoss(mode="geodesic", core="learned", core_dim=16)
        >>> f = [to_ball(torch.randn(8, 16), 0.5) for _ in range(3)]
        >>> value = loss(f, [to_ball(torch.randn(8, 16), 0.5) for _ in range(3)], f)
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, c: float | geoopt.PoincareBall = 0.5,
                 mode: str = "paper", gamma: float = 1.0, *, core: str = "origin",
                 core_dim: int | None = None, temperature: float = 1.0, learn_c: bool = False, learnable_c: bool | None = None,
                 num_modalities: int | None = None,
                 batch_mean: Callable[[Tensor], Tensor] | None = None, euclidean: bool = False,
                 device=None, dtype=None):
        super().__init__()
        learn_c = renamed_kwarg("H2FRLoss", "learn_c", learn_c, "learnable_c", learnable_c)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if core not in _CORES:
            raise ValueError(f"core must be one of {_CORES}, got {core!r}")
        for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise TypeError(f"{name} must be a finite float, got {v!r}")
        if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
                or not (math.isfinite(temperature) and temperature > 0)):
            raise ValueError(f"temperature must be a finite float > 0, got {temperature!r}")
        if num_modalities is not None and (isinstance(num_modalities, bool)
                                           or not isinstance(num_modalities, numbers.Integral)
                                           or num_modalities < 1):
            raise ValueError(f"num_modalities must be an int >= 1 or None, got {num_modalities!r}")
        if mode == "paper":
            if core != "origin" or temperature != 1.0 or learn_c:
                raise ValueError("mode='paper' is the seed's loss (Euclidean-norm scores): core, "
                                 "temperature and learn_c apply to mode='geodesic' only")
        # euclidean: geodesic mode's c -> 0 limit, distances 2|x - core| (the Euclidean arm).
        self.euclidean = bool(euclidean)
        if self.euclidean and (mode != "geodesic" or learn_c):
            raise ValueError("euclidean=True is the c -> 0 limit of mode='geodesic' with a "
                             f"fixed curvature; got mode={mode!r}, learn_c={learn_c!r}")
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.mode, self.temperature = mode, float(temperature)
        self.num_modalities = num_modalities
        self.batch_mean = _default_mean if batch_mean is None else batch_mean
        self.ball = geometry.ball(c, learn_c=learn_c)
        self.core: geoopt.ManifoldParameter | None = None
        if core == "learned":
            if isinstance(core_dim, bool) or not isinstance(core_dim, numbers.Integral) \
                    or core_dim < 1:
                raise ValueError(f"core='learned' needs core_dim, an int >= 1; got {core_dim!r}")
            self.core = geoopt.ManifoldParameter(
                torch.zeros(int(core_dim), device=device, dtype=dtype),
                manifold=geoopt.Euclidean(ndim=1) if self.euclidean else self.ball)
        elif core_dim is not None:
            raise ValueError("core_dim applies to core='learned' only")

    def extra_repr(self) -> str:
        core = "origin" if self.core is None else f"learned({self.core.shape[0]})"
        return (f"mode={self.mode!r}, alpha={self.alpha:g}, beta={self.beta:g}, "
                f"c={float(self.ball.c.detach()):g}, core={core}, temperature={self.temperature:g}")

    # ---- validation ------------------------------------------------------------------------

    def _check(self, fused_levels: object, modality_levels: tuple) -> None:
        if isinstance(fused_levels, Tensor) or not isinstance(fused_levels, Sequence):
            raise TypeError("fused_levels must be a sequence (list/tuple) of L tensors (B, D), "
                            f"got {type(fused_levels).__name__}")
        L = len(fused_levels)
        if L < 2:
            raise ValueError(f"H2FR ranks levels: fused_levels needs at least 2 levels, got {L}")
        M = len(modality_levels)
        if M < 1:
            raise TypeError("loss(fused_levels, *modality_levels) needs at least one modality "
                            "sequence, got none")
        if self.num_modalities is not None and M != self.num_modalities:
            raise TypeError(f"H2FRLoss(num_modalities={self.num_modalities}) got {M} modality "
                            "sequences")
        for m, seq in enumerate(modality_levels):
            if isinstance(seq, Tensor) or not isinstance(seq, Sequence):
                raise TypeError(f"modality_levels[{m}] must be a sequence of {L} tensors, got "
                                f"{type(seq).__name__}")
            if len(seq) != L:
                raise ValueError(f"modality_levels[{m}] has {len(seq)} levels, fused_levels has {L}")
        batch = None
        for lvl in range(L):
            ref = fused_levels[lvl]
            items = [(f"fused_levels[{lvl}]", ref)]
            items += [(f"modality_levels[{m}][{lvl}]", s[lvl]) for m, s in enumerate(modality_levels)]
            for name, x in items:
                if not isinstance(x, Tensor):
                    raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
                if not x.is_floating_point():
                    raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
                if x.dim() < 2:
                    raise ValueError(f"{name} must be (B, D), got shape {tuple(x.shape)}")
                if x.shape != ref.shape:
                    raise ValueError(f"{name} has shape {tuple(x.shape)}, expected the shape of "
                                     f"fused_levels[{lvl}] {tuple(ref.shape)}")
            if batch is None:
                batch = ref.shape[0]
            elif ref.shape[0] != batch:
                raise ValueError(f"fused_levels[{lvl}] has batch size {ref.shape[0]}, level 0 has "
                                 f"{batch}")
            if self.core is not None and ref.shape[1] != self.core.shape[0]:
                raise ValueError(f"fused_levels[{lvl}] has {ref.shape[1]} features but the learned "
                                 f"core has core_dim={self.core.shape[0]}")

    # ---- scores ----------------------------------------------------------------------------

    def distance(self, x: Tensor) -> Tensor:
        """Geodesic distance of ``(B, D, *rest)`` points to the core, averaged over ``rest``: (B,)."""
        if self.core is None:
            d = (geometry.dist0_c0(x, dim=1) if self.euclidean
                 else geometry.dist0(x, self.ball, dim=1))
        else:
            core = self.core.to(x.dtype).view(1, -1, *([1] * (x.dim() - 2)))
            d = (geometry.dist_c0(core, x, dim=1) if self.euclidean
                 else geometry.dist(core, x, self.ball, dim=1))
        return d.flatten(1).mean(dim=1) if d.dim() > 1 else d

    def _scores(self, x: Tensor) -> Tensor:
        x = x.as_subclass(Tensor) if isinstance(x, geoopt.ManifoldTensor) else x
        if self.mode == "paper":
            # The seed's -distance_to_origin_norm: minus the batch-mean Euclidean norm.
            n = torch.linalg.vector_norm(x, dim=1)
            n = n.flatten(1).mean(dim=1) if n.dim() > 1 else n
            return -self.batch_mean(n)
        return -self.distance(x) / self.temperature

    # ---- forward ---------------------------------------------------------------------------

    @geometry.float32_island
    def forward(self, fused_levels: Sequence[Tensor], *modality_levels: Sequence[Tensor]) -> Tensor:
        """Levels of fused and unimodal features on the ball -> scalar loss (see class doc).

        Computed with autocast off and half-precision points widened to float32: the loss is
        float32 (or float64 for float64 points) whatever the autocast state."""
        self._check(fused_levels, modality_levels)
        fused_levels = [_widen(f) for f in fused_levels]
        modality_levels = tuple([_widen(x) for x in seq] for seq in modality_levels)
        L = len(fused_levels)
        fused = [self._scores(f) for f in fused_levels]  # () in paper mode, (B,) in geodesic
        # Level list, deepest first (the seed sorts ranks L-1..0 ascending: deepest first).
        level = _listmle(torch.stack(fused[::-1], dim=-1))
        total = self.alpha * (level if self.mode == "paper" else self.batch_mean(level))
        for lvl in range(L):
            scores = torch.stack([fused[lvl]] + [self._scores(s[lvl]) for s in modality_levels],
                                 dim=-1)
            top1 = -torch.log_softmax(scores, dim=-1)[..., 0]
            total = total + self.beta * (top1 if self.mode == "paper" else self.batch_mean(top1))
        return total
