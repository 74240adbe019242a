"""The LEAF paper's handwritten formulas, exactly as printed ("paper mode").

The LEAF seed writes its hyperbolic geometry by hand in a ``HyperbolicUtils`` class and its
ranking losses as free functions. They are kept here under the seed's own names, quirks included
(same ``eps`` values, same clamps, same order of operations), so that a reader can trace every
number back to the paper and so that ``HDGFB(mode="paper")`` and ``H2FRLoss(mode="paper")`` can
be proven equal to it. Do not "fix" anything in this file: the fixes live in
:mod:`hyperleaf.geometry`, and ``docs/paper-vs-geometry.md`` states, proves and measures every
difference. In short:

* ``euclid_to_hyper`` is ``expmap0`` after clipping the tangent to radius ``1/sqrt(c) - eps``;
* ``hyper_distance`` (and HDGFB's distance map) puts the ``1 +`` inside the fraction, so
  ``d(x, x) > 0`` and it always exceeds the geodesic distance;
* ``distance_to_origin`` is half of the geodesic distance to the origin;
* ``mobius_add`` uses ``2 sqrt(c) <u, v>`` where the gyrovector formula has ``2 c <u, v>``;
* ``hyper_to_euclid`` clamps ``|x|`` at ``1 - eps`` whatever ``c``.

Every function works along dim 1; distances return a batch mean, as in the seed. ``c`` is the
curvature magnitude as a Python float (the seed takes ``math.sqrt(c)``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    "EPS",
    "as_curvature",
    "euclid_to_hyper",
    "hyper_to_euclid",
    "hyper_distance",
    "hyper_distance_scale",
    "distance_to_origin",
    "distance_to_origin_norm",
    "mobius_add",
    "top1_loss",
    "listwise_ranking_loss",
    "HyperbolicUtils",
    "RankingBasedGeometryLoss",
    "HyperbolicAttentionFusion",
]

#: ``HyperbolicUtils.eps`` of the seed.
EPS = 1e-8
#: The local ``eps`` of the seed's ``HyperbolicAttentionFusion.hyper_distance_map``.
MAP_EPS = 1e-6


def as_curvature(c: object) -> float:
    """``c`` as a positive finite Python float (a 0-d tensor is read); ``TypeError`` /
    ``ValueError`` naming ``c`` otherwise.

    >>> as_curvature(torch.tensor(0.5))
    0.5
    """
    if isinstance(c, torch.Tensor) and c.dim() == 0:
        c = float(c)
    if isinstance(c, bool) or not isinstance(c, numbers.Real):
        raise TypeError(f"c must be a positive float, got {type(c).__name__}")
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"c must be finite and > 0, got {c}")
    return float(c)


def _x(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (batch, features along dim 1), "
                         f"got shape {tuple(x.shape)}")
    return x


def _pair(u: object, v: object) -> tuple[Tensor, Tensor]:
    u, v = _x(u, "u"), _x(v, "v")
    try:
        torch.broadcast_shapes(u.shape, v.shape)
    except RuntimeError:
        raise ValueError(f"u {tuple(u.shape)} and v {tuple(v.shape)} do not broadcast") from None
    return u, v


# --------------------------------------------------------------------------------------------
# HyperbolicUtils, as free functions
# --------------------------------------------------------------------------------------------


def euclid_to_hyper(x: Tensor, c: float = 1.0) -> Tensor:
    """Seed's ``HyperbolicUtils.euclid_to_hyper``: clip to ``1/sqrt(c) - eps``, then expmap0."""
    x, c = _x(x, "x"), as_curvature(c)
    eps = EPS
    norm_x = torch.norm(x, dim=1, keepdim=True, p=2)
    max_allowed_norm = 1.0 / math.sqrt(c) - eps
    scale = torch.min(torch.ones_like(norm_x), max_allowed_norm / (norm_x + eps))
    x_scaled = x * scale
    scaled_norm = math.sqrt(c) * torch.norm(x_scaled, dim=1, keepdim=True, p=2)
    tanh_term = torch.tanh(scaled_norm)
    safe_norm = torch.norm(x_scaled, dim=1, keepdim=True, p=2) + eps
    return (tanh_term / (math.sqrt(c) * safe_norm)) * x_scaled


def hyper_to_euclid(x: Tensor, c: float = 1.0) -> Tensor:
    """Seed's ``HyperbolicUtils.hyper_to_euclid``: logmap0 with ``|x|`` clamped to ``[eps, 1-eps]``."""
    x, c = _x(x, "x"), as_curvature(c)
    eps = EPS
    norm_x = torch.norm(x, dim=1, keepdim=True, p=2).clamp(min=eps, max=1 - eps)
    return (1 / math.sqrt(c)) * torch.arctanh(math.sqrt(c) * norm_x) * (x / norm_x)


def hyper_distance(u: Tensor, v: Tensor, c: float = 1.0) -> Tensor:
    """Seed's ``HyperbolicUtils.hyper_distance`` (batch mean; ``1 +`` inside the fraction)."""
    u, v = _pair(u, v)
    c = as_curvature(c)
    eps = EPS
    max_norm = (1.0 / math.sqrt(c)) - eps
    norm_u = torch.norm(u, dim=1, keepdim=True, p=2).clamp(max=max_norm)
    norm_v = torch.norm(v, dim=1, keepdim=True, p=2).clamp(max=max_norm)
    numerator = 1 + 2 * c * torch.sum((u - v) ** 2, dim=1, keepdim=True)
    denominator = (1 - c * norm_u**2) * (1 - c * norm_v**2)
    arg = (numerator / denominator).clamp(min=1 + eps)
    distance = (1 / math.sqrt(c)) * torch.acosh(arg)
    return distance.mean()


def _scale_to_ball(u: Tensor, max_norm: float, eps: float, dim: int) -> Tensor:
    # The seed's rescaling in hyper_distance_scale and hyper_distance_map, in its order of ops.
    norm_original = torch.norm(u, dim=dim, keepdim=True) + eps
    target_norm = torch.min(norm_original, torch.full_like(norm_original, max_norm))
    return u * (target_norm / norm_original)


def _acosh_distance(u_scaled: Tensor, v_scaled: Tensor, c: float, max_norm: float, eps: float,
                    dim: int) -> Tensor:
    # The seed's distance body shared by hyper_distance_scale and hyper_distance_map.
    norm_u = torch.norm(u_scaled, dim=dim, keepdim=True).clamp(max=max_norm)
    norm_v = torch.norm(v_scaled, dim=dim, keepdim=True).clamp(max=max_norm)
    numerator = 1 + 2 * c * torch.sum((u_scaled - v_scaled) ** 2, dim=dim, keepdim=True)
    denominator = (1 - c * norm_u**2) * (1 - c * norm_v**2)
    arg = (numerator / denominator).clamp(min=1 + eps)
    return (1 / math.sqrt(c)) * torch.acosh(arg)


def hyper_distance_scale(u: Tensor, v: Tensor, c: float = 1.0) -> Tensor:
    """Seed's ``HyperbolicUtils.hyper_distance_scale``: rescale into the ball, then
    :func:`hyper_distance`'s formula (batch mean).

    The seed's printed line ``scale_u = target_norm_u / norm_u_original）`` ends in a full-width
    parenthesis; it is read as the obvious ``scale_u = target_norm_u / norm_u_original``.
    """
    u, v = _pair(u, v)
    c = as_curvature(c)
    eps = EPS
    max_norm = (1.0 / math.sqrt(c)) - eps
    u_scaled = _scale_to_ball(u, max_norm, eps, 1)
    v_scaled = _scale_to_ball(v, max_norm, eps, 1)
    return _acosh_distance(u_scaled, v_scaled, c, max_norm, eps, 1).mean()


def distance_to_origin(x: Tensor, c: float = 1.0) -> Tensor:
    """Seed's ``HyperbolicUtils.distance_to_origin``: ``artanh(sqrt(c)|x|)/sqrt(c)``, batch mean
    (half the geodesic distance to the origin)."""
    x, c = _x(x, "x"), as_curvature(c)
    eps = EPS
    norm_x = torch.norm(x, dim=1, keepdim=True, p=2)
    max_norm = (1.0 / math.sqrt(c)) - eps
    scale = torch.min(torch.ones_like(norm_x), max_norm / (norm_x + eps))
    norm_x_scaled = norm_x * scale
    distance = (1.0 / math.sqrt(c)) * torch.arctanh(math.sqrt(c) * norm_x_scaled)
    return distance.mean()


def distance_to_origin_norm(x: Tensor, c: float = 1.0) -> Tensor:
    """Seed's ``HyperbolicUtils.distance_to_origin_norm``: the batch-mean Euclidean norm
    (``c`` is unused, as in the seed)."""
    x = _x(x, "x")
    as_curvature(c)
    norm_x = torch.norm(x, dim=1, keepdim=True, p=2)
    return norm_x.mean()


def mobius_add(u: Tensor, v: Tensor, c: float = 1.0) -> Tensor:
    """Seed's ``HyperbolicUtils.mobius_add`` (``2 sqrt(c) <u, v>`` where gyrovectors have
    ``2 c <u, v>``)."""
    u, v = _pair(u, v)
    c = as_curvature(c)
    sqrt_c = math.sqrt(c)
    u = u / (1 + 1e-8)
    v = v / (1 + 1e-8)
    norm_u_sq = torch.sum(u**2, dim=1, keepdim=True)
    norm_v_sq = torch.sum(v**2, dim=1, keepdim=True)
    uv_dot = torch.sum(u * v, dim=1, keepdim=True)
    numerator = (1 + 2 * sqrt_c * uv_dot + c * norm_v_sq) * u + (1 - c * norm_u_sq) * v
    denominator = 1 + 2 * sqrt_c * uv_dot + (c**2) * norm_u_sq * norm_v_sq
    return numerator / (denominator + 1e-8)


# --------------------------------------------------------------------------------------------
# ranking losses
# --------------------------------------------------------------------------------------------


def top1_loss(predicts: Tensor, target_index: Tensor) -> Tensor:
    """Seed's ``top1_loss``: ``-log_softmax(predicts)[b, target_index[b]]``, mean over b.

    predicts: ``(B, L)`` scores; target_index: ``(B,)`` (or broadcastable) integer indices.
    """
    predicts = _x(predicts, "predicts")
    if not isinstance(target_index, Tensor) or target_index.is_floating_point():
        raise TypeError("target_index must be an integer torch.Tensor")
    log_probs = torch.log_softmax(predicts, dim=1)
    loss = -log_probs[torch.arange(predicts.size(0)), target_index]
    return loss.mean()


def listwise_ranking_loss(predicts: Tensor, targets: Tensor) -> Tensor:
    """Seed's ``listwise_ranking_loss`` (ListMLE): the item with the smallest target is expected
    to have the largest score; mean over positions and lists.

    predicts, targets: ``(B, L)``.
    """
    predicts = _x(predicts, "predicts")
    if not isinstance(targets, Tensor) or targets.shape != predicts.shape:
        raise ValueError(f"targets must be a tensor of the shape of predicts "
                         f"{tuple(predicts.shape)}")
    _, indices = torch.sort(targets, dim=1, descending=False)
    predicts_sorted = torch.gather(predicts, dim=1, index=indices)
    y = predicts_sorted
    y_reverse = y.flip(dims=[1])
    cum_logsumexp = torch.logcumsumexp(y_reverse, dim=1)
    cum_logsumexp = cum_logsumexp.flip(dims=[1])
    loss_per_position = -(y - cum_logsumexp)
    return loss_per_position.mean()


# --------------------------------------------------------------------------------------------
# the seed's classes, literally (references for the fast modules in hyperleaf.nn)
# --------------------------------------------------------------------------------------------


class HyperbolicUtils(nn.Module):
    """Drop-in for the seed's ``HyperbolicUtils(c)``: its methods are the functions above."""

    def __init__(self, c: float = 1.0):
        super().__init__()
        self.c = as_curvature(c)
        self.eps = EPS
        self.sqrt_c = math.sqrt(self.c)

    def euclid_to_hyper(self, x: Tensor) -> Tensor:
        return euclid_to_hyper(x, c=self.c)

    def hyper_to_euclid(self, x: Tensor) -> Tensor:
        return hyper_to_euclid(x, c=self.c)

    def hyper_distance(self, u: Tensor, v: Tensor) -> Tensor:
        return hyper_distance(u, v, c=self.c)

    def hyper_distance_scale(self, u: Tensor, v: Tensor) -> Tensor:
        return hyper_distance_scale(u, v, c=self.c)

    def distance_to_origin(self, x: Tensor) -> Tensor:
        return distance_to_origin(x, c=self.c)

    def distance_to_origin_norm(self, x: Tensor) -> Tensor:
        return distance_to_origin_norm(x, c=self.c)

    def mobius_add(self, u: Tensor, v: Tensor) -> Tensor:
        return mobius_add(u, v, c=self.c)


class RankingBasedGeometryLoss(nn.Module):
    """The seed's H2FR loss, literally: two modalities, scores ``-distance_to_origin_norm``
    (batch-mean Euclidean norm), one ListMLE list over levels (deepest expected closest, weight
    ``alpha``) and a Top-1 term per level (fused expected closest, weight ``beta``). ``gamma`` is
    accepted and unused, as in the seed."""

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0, c: float = 0.5):
        super().__init__()
        self.hyper_utils = HyperbolicUtils(c)
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma

    def forward(self, hyper_fused: Sequence[Tensor], hyper_features1: Sequence[Tensor],
                hyper_features2: Sequence[Tensor]) -> Tensor:
        total_loss = 0.0
        num_levels = len(hyper_fused)
        ideal_level_ranks = torch.arange(num_levels - 1, -1, -1, device=hyper_fused[0].device)
        predicted_level_scores = torch.stack(
            [-self.hyper_utils.distance_to_origin_norm(feat) for feat in hyper_fused]
        )
        predicted_level_scores = predicted_level_scores.unsqueeze(0)
        ideal_level_ranks = ideal_level_ranks.unsqueeze(0)
        level_loss = listwise_ranking_loss(predicted_level_scores, ideal_level_ranks)
        total_loss += self.alpha * level_loss
        for i in range(num_levels):
            predicted_core_scores = torch.stack([
                -self.hyper_utils.distance_to_origin_norm(hyper_fused[i]),
                -self.hyper_utils.distance_to_origin_norm(hyper_features1[i]),
                -self.hyper_utils.distance_to_origin_norm(hyper_features2[i]),
            ]).unsqueeze(0)
            target_index = torch.tensor([0], device=predicted_core_scores.device).unsqueeze(0)
            coreness_loss = top1_loss(predicted_core_scores, target_index)
            total_loss += self.beta * coreness_loss
        return total_loss


class HyperbolicAttentionFusion(nn.Module):
    """The seed's HDGFB, literally (2-D maps, two modalities). The reference that
    ``hyperleaf.HDGFB(mode="paper")`` is proven equal to, and the baseline of its benchmark."""

    def __init__(self, in_channels: int, hyper_c: float = 0.2, hidden_dim: int = 512):
        super().__init__()
        self.hyper_utils = HyperbolicUtils(c=hyper_c)
        self.in_channels = in_channels
        self.to_hyperbolic1 = nn.Sequential(nn.Conv2d(in_channels, in_channels, kernel_size=1))
        self.to_hyperbolic2 = nn.Sequential(nn.Conv2d(in_channels, in_channels, kernel_size=1))
        self.to_hyperbolic3 = nn.Sequential(nn.Conv2d(in_channels, in_channels, kernel_size=1))
        self.distance_activation = nn.Sigmoid()  # unused, as in the seed
        self.distance_mlp = nn.Sequential(nn.Conv2d(2, 2, kernel_size=1))
        self.ff = nn.Sequential(
            nn.Conv2d(2 * in_channels, hidden_dim, kernel_size=1),
            nn.GELU(),
            nn.Conv2d(hidden_dim, in_channels, kernel_size=1),
        )
        self.tangent_norm = nn.LayerNorm([in_channels])

    def hyper_distance_map(self, u: Tensor, v: Tensor) -> Tensor:
        eps = MAP_EPS
        c = self.hyper_utils.c
        max_norm = (1.0 / math.sqrt(c)) - eps
        u_reshaped = u.permute(0, 2, 3, 1)
        v_reshaped = v.permute(0, 2, 3, 1)
        u_scaled = _scale_to_ball(u_reshaped, max_norm, eps, 3)
        v_scaled = _scale_to_ball(v_reshaped, max_norm, eps, 3)
        distance = _acosh_distance(u_scaled, v_scaled, c, max_norm, eps, 3)
        return distance.permute(0, 3, 1, 2)

    def _to_ball(self, proj: nn.Module, x: Tensor) -> Tensor:
        B, _, H, W = x.shape
        flat = proj(x).permute(0, 2, 3, 1).reshape(-1, self.in_channels)
        return self.hyper_utils.euclid_to_hyper(flat).reshape(B, H, W, -1).permute(0, 3, 1, 2)

    def forward(self, euclidean_fused: Tensor, feat1: Tensor, feat2: Tensor) -> Tensor:
        B, C, H, W = euclidean_fused.shape
        query_hyper = self._to_ball(self.to_hyperbolic1, euclidean_fused)
        feat1_hyper = self._to_ball(self.to_hyperbolic2, feat1)
        feat2_hyper = self._to_ball(self.to_hyperbolic3, feat2)

        dist1_map = self.hyper_distance_map(query_hyper, feat1_hyper)
        dist2_map = self.hyper_distance_map(query_hyper, feat2_hyper)
        dist_sum = dist1_map + dist2_map + 1e-8
        rel_dist1 = dist1_map / dist_sum
        rel_dist2 = dist2_map / dist_sum
        weights = torch.cat([-rel_dist1, -rel_dist2], dim=1)
        weights = self.distance_mlp(weights)
        normalized_weights = torch.softmax(weights, dim=1)
        weight1, weight2 = normalized_weights[:, 0:1, ...], normalized_weights[:, 1:2, ...]

        feat1_tangent = self.hyper_utils.hyper_to_euclid(feat1_hyper.permute(0, 2, 3, 1).reshape(-1, C))
        feat2_tangent = self.hyper_utils.hyper_to_euclid(feat2_hyper.permute(0, 2, 3, 1).reshape(-1, C))
        weight1_flat = weight1.permute(0, 2, 3, 1).reshape(-1, 1)
        weight2_flat = weight2.permute(0, 2, 3, 1).reshape(-1, 1)
        fused_tangent = weight1_flat * feat1_tangent + weight2_flat * feat2_tangent
        fused_tangent = fused_tangent.reshape(B, H, W, C).permute(0, 3, 1, 2)
        fused_euclidean = self.tangent_norm(fused_tangent.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        fused_feature = torch.cat([fused_euclidean, euclidean_fused], dim=1)
        return self.ff(fused_feature)
