r"""SHIP, the infrared-visible fusion network of "Probing Synergistic High-Order Interaction for
Multi-Modal Image Fusion", rebuilt from its specification so that the authors' released weights
load unchanged (parameter names follow their checkpoint; see :mod:`hyperleaf.compat.ship`).

Structure (``n = n_feat``)::

    v0 = FeatureExtract_vis(vis); i0 = FeatureExtract_inf(ir)       # 1 -> n, edge blocks + CDC
    (v_k, i_k) = Interaction_k(v_{k-1}, i_{k-1}),  k = 1, 2, 3       # spatial (FFT) + channel
    out = Refine(Post(cat(v1, v2, v3)))                              # InvBlock, 1x1, CA layers

Two numerically equivalent execution paths (``SHIP.fast``):

* ``fast=True`` (default): channels-last tensors (oneDNN convolutions run ~3x faster on them
  than on NCHW at 16 channels), each central-difference block (CDC) folded into a single 3x3
  kernel, folded kernels cached between calls while the weights do not change.
* ``fast=False``: the specification term by term (every CDC as two 3x3 and two 1x1 convs).

Both reproduce the authors' golden outputs within ~1e-4. The network is ill-conditioned in one
place: the first UNet block of each interaction InvBlock's ``F`` branch sees an input whose
channels are nearly constant (mean/std ~ 100 after three softmax gatings), so float32
convolution rounding there is amplified to ~5e-4 at the output and even depends on the number
of threads. Those blocks convolve the mean-removed input and add the (exactly constant)
convolution of the mean back, which is the same linear map evaluated with ~100x less rounding;
this brings the output within ~6e-5 of the goldens (and of float64).

``hdgfb=True`` adds LEAF's hyperbolic fusion block at each interaction stage; see :class:`SHIP`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hyperleaf.io import rgb_to_ycrcb, ycrcb_to_rgb
from hyperleaf.models.registry import register_model
from hyperleaf.nn.hdgfb import HDGFB

__all__ = ["SHIP", "ShipFeatures", "tiled_forward", "fuse_arrays", "DEFAULT_OVERLAP"]

#: Tile overlap when tiling is asked for without one: ``min(DEFAULT_OVERLAP, tile // 4)``.
DEFAULT_OVERLAP = 32

_THETA = 0.8  # central-difference weight of the CDC convolutions
_LN_EPS = 1e-5


def _conv(a: int, b: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(a, b, k, padding=k // 2, bias=bias)


class _ReLU(nn.ReLU):
    """ReLU that works in place when autograd is off (one allocation fewer)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x) if torch.is_grad_enabled() else torch.relu_(x)


def _params_key(params: Sequence[Tensor]) -> tuple:
    # In-place updates (optimiser steps, load_state_dict) bump ``_version``; a new tensor has a
    # new data_ptr. Either invalidates a cached kernel.
    return tuple((p._version, p.data_ptr(), p.dtype, p.device) for p in params)


class _Cached:
    """A value derived from parameters, rebuilt when they change or while autograd needs it."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: Tensor | None = None

    def get(self, params: Sequence[Tensor], build) -> Tensor:
        if torch.compiler.is_compiling():
            # A compiled graph folds the value into the graph (the cache's data_ptr key and
            # inference-mode reads would break it): built every call, which the compiler fuses.
            return build()
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return build()  # differentiable, never cached
        key = _params_key(params)
        if self.value is None or key != self.key or torch.is_inference_mode_enabled():
            with torch.no_grad():
                value = build()
            if torch.is_inference_mode_enabled():
                return value  # inference tensors must not leak into later autograd use
            self.key, self.value = key, value
        return self.value


# ----------------------------------------------------------------------------- feature extract


class _TapConv(nn.Module):
    """Five taps ``w`` (n, n, 1, 5) placed into a 3x3 kernel, minus theta x (sum of taps) at
    the centre: a central-difference convolution without bias."""

    #: flat 3x3 positions of taps w0..w4 (row-major)
    positions: tuple[int, ...] = ()

    def __init__(self, n: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n, n, (1, 5), bias=False)

    def kernel(self) -> Tensor:
        """The 3x3 kernel holding the five taps (without the central-difference term)."""
        w = self.conv.weight
        k = w.new_zeros(w.shape[0], w.shape[1], 9)
        k[:, :, list(self.positions)] = w[:, :, 0, :]
        return k.view(w.shape[0], w.shape[1], 3, 3)

    def folded(self) -> Tensor:
        """One 3x3 kernel for the whole central-difference convolution."""
        k = self.kernel().clone()
        k[:, :, 1, 1] -= _THETA * self.conv.weight.sum(dim=(2, 3))
        return k

    def forward(self, x: Tensor) -> Tensor:
        diff = self.conv.weight.sum(dim=(2, 3))[:, :, None, None]
        return F.conv2d(x, self.kernel(), padding=1) - _THETA * F.conv2d(x, diff)


class _CrossConv(_TapConv):
    positions = (1, 3, 4, 5, 7)


class _DiagConv(_TapConv):
    positions = (0, 2, 4, 6, 8)


class CDC(nn.Module):
    """``sigma(h) Cross(x) + (1 - sigma(h)) Diag(x) + x``; (B, n, H, W) -> (B, n, H, W).

    The whole map is linear in ``x``: :meth:`folded` is the single 3x3 kernel computing it.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.h_conv = _CrossConv(n)
        self.d_conv = _DiagConv(n)
        self.HP_branch = nn.Parameter(torch.zeros(1))
        self.fast = True
        self._cache = _Cached()

    def folded(self) -> Tensor:
        s = torch.sigmoid(self.HP_branch)
        k = s * self.h_conv.folded() + (1 - s) * self.d_conv.folded()
        n = k.shape[0]
        idx = torch.arange(n, device=k.device)
        k = k.clone()
        k[idx, idx, 1, 1] += 1  # the "+ x" identity
        return k

    def forward(self, x: Tensor) -> Tensor:
        if self.fast:
            params = (self.HP_branch, self.h_conv.conv.weight, self.d_conv.conv.weight)
            return F.conv2d(x, self._cache.get(params, self.folded), padding=1)
        s = torch.sigmoid(self.HP_branch)
        return s * self.h_conv(x) + (1 - s) * self.d_conv(x) + x


class EdgeBlock(nn.Module):
    """``x = process(x); Res(x) + CDC(x)`` with ``Res = conv3 -> ReLU -> conv3``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.process = _conv(n, n, 3)
        self.Res = nn.Sequential(_conv(n, n, 3), _ReLU(), _conv(n, n, 3))
        self.CDC = CDC(n)

    def forward(self, x: Tensor) -> Tensor:
        x = self.process(x)
        return self.Res(x) + self.CDC(x)


class FeatureExtract(nn.Module):
    """1x1 conv (``in_channels`` -> n; 1 for a grey image) then two :class:`EdgeBlock`."""

    def __init__(self, n: int, in_channels: int = 1) -> None:
        super().__init__()
        self.conv = _conv(in_channels, n, 1)
        self.block1 = EdgeBlock(n)
        self.block2 = EdgeBlock(n)
        self.channels_last = True

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.channels_last:
            # A 1-channel input cannot carry the layout; switch once the maps have n channels,
            # and every later op (conv, cat, elementwise) keeps it.
            x = x.contiguous(memory_format=torch.channels_last)
        return self.block2(self.block1(x))


# ----------------------------------------------------------------------------- interaction


class _Affine(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))


class ChannelLayerNorm(nn.Module):
    """Layer norm over channels at each pixel, computed literally as
    ``(x - mean) / sqrt(var + 1e-5) * w + b`` with biased variance, channels innermost.

    (PyTorch's fused ``layer_norm`` rounds differently; this network amplifies that to ~1e-4.)
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.body = _Affine(n)
        self.fast = False

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        # (B, H, W, C): a view for channels-last input, one copy for NCHW.
        t = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        mu = t.mean(-1, keepdim=True)
        if self.fast:
            # Two-pass variance reusing (t - mu): same value to rounding, and ~10x faster
            # than torch.var's per-row Welford on 16-element rows.
            d = t - mu
            var = (d * d).mean(-1, keepdim=True)
            t = d / torch.sqrt(var + _LN_EPS) * self.body.weight + self.body.bias
        else:
            var = t.var(-1, keepdim=True, unbiased=False)
            t = (t - mu) / torch.sqrt(var + _LN_EPS) * self.body.weight + self.body.bias
        return t.view(b, h, w, c).permute(0, 3, 1, 2)


def _pair(a: int, b: int, k: int, out: int | None = None) -> nn.Sequential:
    """``conv(a -> b, k) -> ReLU -> conv(b -> out, k)`` (keys ``.0`` and ``.2``)."""
    return nn.Sequential(_conv(a, b, k), _ReLU(), _conv(b, a if out is None else out, k))


class SpatialInteraction(nn.Module):
    """FFT interaction of the two streams, refreshed three times; returns ``(s4 + v, r3)``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        for k in (1, 2, 3):
            setattr(self, f"reflashFused{k}", _pair(n, n, 3))
            setattr(self, f"reflashInfrared{k}", _pair(n, n, 3))
        for k in (1, 2, 3, 4):
            setattr(self, f"norm{k}", ChannelLayerNorm(n))

    def forward(self, v: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        h, w = v.shape[-2:]
        a = torch.fft.irfft2(torch.fft.rfft2(v) * torch.fft.rfft2(i), s=(h, w))
        if v.is_contiguous(memory_format=torch.channels_last):
            a = a.contiguous(memory_format=torch.channels_last)
        s = self.norm1(a) * i
        r = i
        for k in (1, 2, 3):
            s = getattr(self, f"norm{k + 1}")(getattr(self, f"reflashFused{k}")(s))
            r = getattr(self, f"reflashInfrared{k}")(r)
            s = s * r
        return s + v, r


class UNetConvBlock(nn.Module):
    """``u = conv3(x)``; half-instance-norm; lrelu(0.1); ``lrelu(0.1)(conv3(u)) + conv1(x)``.

    ``centre_input=True`` evaluates the two convolutions of ``x`` as ``conv(x - m) + conv(m)``
    with ``m`` the per-channel spatial mean: the same linear map, but without the float32
    cancellation when ``x`` is nearly constant (see the module docstring).
    """

    def __init__(self, a: int, b: int, centre_input: bool = False) -> None:
        super().__init__()
        self.identity = _conv(a, b, 1)
        self.conv_1 = _conv(a, b, 3)
        self.conv_2 = _conv(b, b, 3)
        self.norm = nn.InstanceNorm2d(b // 2, affine=True)
        self.centre_input = centre_input

    def _input_convs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.centre_input:
            return self.conv_1(x), self.identity(x)
        m = x.mean(dim=(2, 3), keepdim=True)
        xc = x - m
        h, w = x.shape[-2:]
        # conv of the constant image m: equal at every interior pixel, different only on the
        # one-pixel border (zero padding), so a <=3x3 evaluation expanded by index is exact.
        small = m.expand(x.shape[0], x.shape[1], min(h, 3), min(w, 3))
        rows = _border_index(h, x.device)
        cols = _border_index(w, x.device)
        c1 = F.conv2d(small, self.conv_1.weight, self.conv_1.bias, padding=1)
        c1 = c1.index_select(2, rows).index_select(3, cols)
        ci = F.conv2d(m, self.identity.weight, self.identity.bias)
        return (
            F.conv2d(xc, self.conv_1.weight, None, padding=1) + c1,
            F.conv2d(xc, self.identity.weight, None) + ci,
        )

    def forward(self, x: Tensor) -> Tensor:
        u, ident = self._input_convs(x)
        h = u.shape[1] // 2
        if torch.is_grad_enabled():
            u = torch.cat([self.norm(u[:, :h]), u[:, h:]], dim=1)
            u = F.leaky_relu(u, 0.1)
            u = F.leaky_relu(self.conv_2(u), 0.1)
            return u + ident
        # Same arithmetic in place (no autograd to protect): saves a concatenation and three
        # temporaries per block.
        u[:, :h] = self.norm(u[:, :h])
        u = F.leaky_relu_(u, 0.1)
        return F.leaky_relu_(self.conv_2(u), 0.1).add_(ident)


def _border_index(size: int, device: torch.device) -> Tensor:
    """Index into a min(size, 3)-long evaluation: first, interior..., last."""
    if size <= 3:
        return torch.arange(size, device=device)
    idx = torch.ones(size, dtype=torch.long, device=device)
    idx[0], idx[-1] = 0, 2
    return idx


class DenseBlock(nn.Module):
    """Two UNet blocks (growth 16) and a 3x3 conv over ``cat(x, d1, d2)``, lrelu(0.2) each."""

    def __init__(self, cin: int, cout: int, growth: int = 16, centre_input: bool = False):
        super().__init__()
        self.conv1 = UNetConvBlock(cin, growth, centre_input=centre_input)
        self.conv2 = UNetConvBlock(growth, growth)
        self.conv3 = _conv(cin + 2 * growth, cout, 3)

    def forward(self, x: Tensor) -> Tensor:
        d1 = F.leaky_relu(self.conv1(x), 0.2)
        d2 = F.leaky_relu(self.conv2(d1), 0.2)
        return F.leaky_relu(self.conv3(torch.cat([x, d1, d2], dim=1)), 0.2)


class InvertibleConv1x1(nn.Module):
    """Glow's LU-parametrised invertible 1x1 convolution, ``W = p @ L @ U`` (forward only).

    Freshly built modules start from a random rotation (as Glow does); loading weights
    overwrites everything including the buffers ``p`` and ``sign_s``.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(n, n))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.lower = nn.Parameter(torch.tril(lower, -1))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))
        self._cache = _Cached()

    def weight(self) -> Tensor:
        """The (N, N) matrix ``p @ L @ U``."""
        n = self.lower.shape[0]
        eye = torch.eye(n, dtype=self.lower.dtype, device=self.lower.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def forward(self, x: Tensor) -> Tensor:
        params = (self.lower, self.upper, self.log_s, self.p, self.sign_s)
        w = self._cache.get(params, self.weight)
        return F.conv2d(x, w[:, :, None, None])


class InvBlock(nn.Module):
    """Invertible 1x1 conv then an affine coupling (forward direction).

    ``y1 = x1 + F(x2)``; ``y2 = x2 * exp(0.8 (2 sigma(H(y1)) - 1)) + G(y1)``; ``cat(y1, y2)``.
    """

    def __init__(self, channels: int, split: int, centre_f: bool = False) -> None:
        super().__init__()
        self.split = split
        self.invconv = InvertibleConv1x1(channels)
        self.F = DenseBlock(channels - split, split, centre_input=centre_f)
        self.G = DenseBlock(split, channels - split)
        self.H = DenseBlock(split, channels - split)

    def forward(self, x: Tensor) -> Tensor:
        y = self.invconv(x)
        x1, x2 = y[:, : self.split], y[:, self.split :]
        y1 = x1 + self.F(x2)
        t = 0.8 * (torch.sigmoid(self.H(y1)) * 2 - 1)
        y2 = x2 * torch.exp(t) + self.G(y1)
        return torch.cat([y1, y2], dim=1)


class ChannelInteraction(nn.Module):
    """Softmax channel attention refreshed three times, then InvBlock + 1x1; ``(c4 + v, i)``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.chaAtten = _pair(2 * n, n, 1)
        for k in (1, 2, 3):
            setattr(self, f"reflashChaAtten{k}", _pair(2 * n, n, 1))
            setattr(self, f"reflashFused{k}", _pair(2 * n, 2 * n, 3))
        # After three softmax gatings the F branch's input is nearly constant: centre it.
        self.postprocess = nn.Sequential(InvBlock(2 * n, n, centre_f=True), _conv(2 * n, n, 1))

    def forward(self, v: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([v, i], dim=1)
        w = torch.softmax(self.chaAtten(F.adaptive_avg_pool2d(x, 1)), dim=1)
        c = x * w
        for k in (1, 2, 3):
            c = getattr(self, f"reflashFused{k}")(c)
            w = torch.softmax(getattr(self, f"reflashChaAtten{k}")(w), dim=1)
            c = c * w
        return self.postprocess(c) + v, i


class Interaction(nn.Module):
    """One interaction stage: spatial, then channel, ``(v, i) -> (v', i')``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.spatial = SpatialInteraction(n)
        self.channel = ChannelInteraction(n)

    def forward(self, v: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        return self.channel(*self.spatial(v, i))


# ----------------------------------------------------------------------------- reconstruction


class CALayer(nn.Module):
    """``y = avgpool(conv3 -> ReLU -> conv3 (x))``; ``sigma(du(y)) * y + x``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.process = _pair(n, n, 3)
        self.conv_du = nn.Sequential(_conv(n, n // 4, 1), _ReLU(), _conv(n // 4, n, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = F.adaptive_avg_pool2d(self.process(x), 1)
        return torch.sigmoid(self.conv_du(y)) * y + x


class Refine(nn.Module):
    """``conv3 (n -> n)``, two :class:`CALayer`, ``conv3 (n -> out_channels)``."""

    def __init__(self, n: int, out_channels: int = 1) -> None:
        super().__init__()
        self.conv_in = _conv(n, n, 3)
        self.process = nn.Sequential(CALayer(n), CALayer(n))
        self.conv_last = _conv(n, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_last(self.process(self.conv_in(x)))


# ----------------------------------------------------------------------------- the network


@dataclass
class ShipFeatures:
    """Per-interaction-stage feature maps, each list holding three (B, n, H, W) tensors.

    ``fused[k]`` is stage k+1's fused output (after its HDGFB when ``hdgfb=True``), the map
    that feeds the next stage and the final ``Post``; ``vis[k]`` / ``ir[k]`` are the visible
    and infrared streams entering that stage (the unimodal features it fuses).
    """

    fused: list[Tensor] = field(default_factory=list)
    vis: list[Tensor] = field(default_factory=list)
    ir: list[Tensor] = field(default_factory=list)


@register_model("ship")
class SHIP(nn.Module):
    """The SHIP fusion network (the authors' released architecture), for infrared-visible
    fusion (``task="fuse"``) or pan-sharpening (``task="pansharpen"``).

    Args:
        n_feat: feature channels ``n`` (16 in the released model; must be divisible by 4).
        hdgfb: add LEAF's :class:`hyperleaf.HDGFB` at each of the three interaction stages.
            Stage k's block is called ``block(fused_k, vis_in, ir_in)`` (the stage's fused
            output and the two streams entering it) and its output is added to the fused
            stream through a 1x1 convolution initialised to zero, so a freshly extended model
            computes exactly the released network until training moves that projection.
        hdgfb_kwargs: extra keyword arguments for ``HDGFB`` (``c``, ``hidden``, ``mode``...).
        fast: use the fast execution path (see the module docstring); same function.
        task: ``"fuse"`` (infrared-visible; the released network) or ``"pansharpen"``.
        ms_bands: pan-sharpening only: number of MS bands ``C`` (required there).
        ratio: pan-sharpening only: PAN/MS resolution ratio the model is trained for (default
            4); kept as metadata (the inputs arrive interpolated to the PAN grid).

    Infrared-visible fusion: inputs ``vis`` (visible luminance Y) and ``ir``, each
    ``(B, 1, H, W)`` in [0, 1], any H, W; output the fused luminance ``(B, 1, H, W)``, not
    clamped.

    Pan-sharpening: call ``net(pan, lms)`` with ``pan`` (B, 1, H, W) and ``lms`` (B, C, H, W),
    the MS interpolated to the PAN grid (e.g. :func:`hyperleaf.pansharpen.interp23`). The two
    streams are the MS (``C`` bands into the main stream, ``ms``) and the PAN (``pan``, in the
    infrared stream's place); the interaction stages are SHIP's; the reconstruction outputs
    ``C`` bands, the residual added to ``lms`` (its last convolution starts at zero, so an
    untrained model returns ``lms``, the EXP baseline). ``ShipFeatures.vis``/``.ir`` then hold
    the MS/PAN streams. ``hdgfb=True`` and H2FR work as for fusion.

    Example::

        >>> net = SHIP().eval()
        >>> with torch.no_grad():
        ...     fused = net(torch.rand(1, 1, 24, 20), torch.rand(1, 1, 24, 20))
        >>> fused.shape
        torch.Size([1, 1, 24, 20])
        >>> ps = SHIP(task="pansharpen", ms_bands=4, ratio=4).eval()
        >>> pan, lms = torch.rand(1, 1, 32, 32), torch.rand(1, 4, 32, 32)
        >>> with torch.no_grad():
        ...     out = ps(pan, lms)
        >>> out.shape, bool(torch.equal(out, lms))   # untrained: the residual is zero
        (torch.Size([1, 4, 32, 32]), True)
    """

    def __init__(self, n_feat: int = 16, *, hdgfb: bool = False,
                 hdgfb_kwargs: dict | None = None, fast: bool = True, task: str = "fuse",
                 ms_bands: int | None = None, ratio: int | None = None) -> None:
        super().__init__()
        if not isinstance(n_feat, int) or n_feat < 4 or n_feat % 4:
            raise ValueError(f"n_feat: expected a positive multiple of 4, got {n_feat!r}")
        if task not in ("fuse", "pansharpen"):
            raise ValueError(f"task: expected 'fuse' or 'pansharpen', got {task!r}")
        self.task = task
        n = self.n_feat = n_feat
        if task == "fuse":
            if ms_bands is not None or ratio is not None:
                raise ValueError("ms_bands/ratio: only for task='pansharpen'")
            self.ms_bands, self.ratio = None, None
            self.vis = FeatureExtract(n)
            self.inf = FeatureExtract(n)
        else:
            if isinstance(ms_bands, bool) or not isinstance(ms_bands, int) or ms_bands < 1:
                raise ValueError(f"ms_bands: expected a positive number of MS bands for "
                                 f"task='pansharpen', got {ms_bands!r}")
            ratio = 4 if ratio is None else ratio
            if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
                raise ValueError(f"ratio: expected a positive integer, got {ratio!r}")
            self.ms_bands, self.ratio = ms_bands, ratio
            self.ms = FeatureExtract(n, ms_bands)
            self.pan = FeatureExtract(n, 1)
        self.interaction1 = Interaction(n)
        self.interaction2 = Interaction(n)
        self.interaction3 = Interaction(n)
        self.postprocess = nn.Sequential(InvBlock(3 * n, 3 * n // 2), _conv(3 * n, n, 1))
        self.reconstruction = Refine(n, 1 if task == "fuse" else ms_bands)
        if task == "pansharpen":
            nn.init.zeros_(self.reconstruction.conv_last.weight)
            nn.init.zeros_(self.reconstruction.conv_last.bias)
        self.hdgfb_enabled = bool(hdgfb)
        if hdgfb:
            kw = dict(hdgfb_kwargs or {})
            kw.setdefault("num_modalities", 2)
            self.hdgfb = nn.ModuleList([HDGFB(n, **kw) for _ in range(3)])
            self.hdgfb_proj = nn.ModuleList([_conv(n, n, 1) for _ in range(3)])
            for proj in self.hdgfb_proj:
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)
        self.fast = fast

    @property
    def fast(self) -> bool:
        """Whether the fast path (channels-last, folded CDC kernels) is used."""
        return self._fast

    @fast.setter
    def fast(self, value: bool) -> None:
        self._fast = bool(value)
        for m in self.modules():
            if isinstance(m, CDC):
                m.fast = self._fast
            elif isinstance(m, FeatureExtract):
                m.channels_last = self._fast
            elif isinstance(m, ChannelLayerNorm):
                m.fast = self._fast

    def new_parameter_names(self) -> list[str]:
        """State-dict keys that the released checkpoint does not have (the HDGFB parts)."""
        return [k for k in self.state_dict() if k.startswith(("hdgfb.", "hdgfb_proj."))]

    @property
    def level_channels(self) -> list[int]:
        """Channels of the three interaction stages' maps (:meth:`forward_levels`)."""
        return [self.n_feat] * 3

    def forward_levels(self, vis: Tensor, ir: Tensor) -> tuple[Tensor, list[tuple[Tensor, ...]]]:
        """``(fused, levels)`` with ``levels[k] = (fused_k, vis_k, ir_k)``, the maps of
        interaction stage k+1 (see :class:`ShipFeatures`), each ``(B, n_feat, H, W)``.

        The :class:`hyperleaf.models.registry.LevelFeatures` interface LEAF's head reads.
        """
        out, f = self.forward(vis, ir, return_features=True)
        return out, list(zip(f.fused, f.vis, f.ir, strict=True))

    def forward(self, vis: Tensor, ir: Tensor, return_features: bool = False
                ) -> Tensor | tuple[Tensor, ShipFeatures]:
        """Fuse ``vis`` and ``ir`` (each (B, 1, H, W)) into (B, 1, H, W); with
        ``task="pansharpen"`` the arguments are ``(pan, lms)`` and the output (B, C, H, W).

        With ``return_features=True`` returns ``(fused, ShipFeatures)``.
        """
        lms = None
        if self.task == "pansharpen":
            pan, lms = vis, ir
            _check_pansharpen_inputs(pan, lms, self.ms_bands)
            v, i = self.ms(lms), self.pan(pan)
        else:
            _check_inputs(vis, ir)
            v, i = self.vis(vis), self.inf(ir)
        feats = ShipFeatures()
        outs = []
        for k, stage in enumerate((self.interaction1, self.interaction2, self.interaction3)):
            v_in, i_in = v, i
            v, i = stage(v, i)
            if self.hdgfb_enabled:
                v = v + self.hdgfb_proj[k](self.hdgfb[k](v, v_in, i_in))
            outs.append(v)
            if return_features:
                feats.fused.append(v)
                feats.vis.append(v_in)
                feats.ir.append(i_in)
        out = self.reconstruction(self.postprocess(torch.cat(outs, dim=1)))
        out = out.contiguous()
        if lms is not None:
            out = lms + out  # the network predicts the MS residual
        return (out, feats) if return_features else out


def _check_pansharpen_inputs(pan: Tensor, lms: Tensor, bands: int) -> None:
    for name, t, c in (("pan", pan, 1), ("lms", lms, bands)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != c:
            raise ValueError(f"{name}: expected shape (B, {c}, H, W), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if pan.shape[0] != lms.shape[0] or pan.shape[-2:] != lms.shape[-2:]:
        raise ValueError(f"pan {tuple(pan.shape)} and lms {tuple(lms.shape)} must share batch "
                         "size and H, W (interpolate the MS to the PAN grid first)")


def _check_inputs(vis: Tensor, ir: Tensor) -> None:
    for name, t in (("vis", vis), ("ir", ir)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 1:
            raise ValueError(f"{name}: expected shape (B, 1, H, W), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    if vis.shape != ir.shape:
        raise ValueError(f"vis and ir must have the same shape, got {tuple(vis.shape)} and "
                         f"{tuple(ir.shape)}")


def tiled_forward(net: nn.Module, vis: Tensor, ir: Tensor, tile: int, overlap: int = 32
                  ) -> Tensor:
    """Run ``net(vis, ir)`` on overlapping ``tile`` x ``tile`` windows and blend them.

    Bounds memory for very large images. Not identical to a whole-image pass: SHIP's spatial
    interaction multiplies full-image FFTs (a circular convolution over the whole image) and
    its channel attention and CA layers pool over the whole image, so each tile sees only its
    own context. Overlapping windows are blended with a linear ramp over ``overlap`` pixels to
    hide seams. ``vis``/``ir``: (B, 1, H, W); returns (B, 1, H, W).

    Example::

        >>> out = tiled_forward(SHIP().eval(), vis, ir, tile=512, overlap=64)  # doctest: +SKIP
    """
    _check_inputs(vis, ir)
    if tile < 8:
        raise ValueError(f"tile: expected at least 8 pixels, got {tile}")
    if overlap < 0 or 2 * overlap >= tile:
        raise ValueError(f"overlap: expected 0 <= overlap < tile/2, got {overlap} (tile {tile})")
    b, _, h, w = vis.shape
    if h <= tile and w <= tile:
        return net(vis, ir)
    out = torch.zeros(b, 1, h, w, dtype=vis.dtype, device=vis.device)
    weight = torch.zeros(1, 1, h, w, dtype=vis.dtype, device=vis.device)
    for y0 in _starts(h, tile, overlap):
        for x0 in _starts(w, tile, overlap):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            piece = net(vis[:, :, y0:y1, x0:x1], ir[:, :, y0:y1, x0:x1])
            ramp = _ramp(y1 - y0, y0 > 0, y1 < h, overlap, vis)[:, None] * \
                _ramp(x1 - x0, x0 > 0, x1 < w, overlap, vis)[None, :]
            out[:, :, y0:y1, x0:x1] += piece * ramp
            weight[:, :, y0:y1, x0:x1] += ramp
    return out / weight


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    step = tile - overlap
    n = math.ceil((size - tile) / step) + 1
    starts = [min(k * step, size - tile) for k in range(n)]
    return sorted(set(starts))


def _ramp(length: int, ramp_start: bool, ramp_end: bool, overlap: int, like: Tensor) -> Tensor:
    r = torch.ones(length, dtype=like.dtype, device=like.device)
    if overlap > 0:
        edge = (torch.arange(overlap, dtype=like.dtype, device=like.device) + 1) / (overlap + 1)
        if ramp_start:
            r[:overlap] = torch.minimum(r[:overlap], edge)
        if ramp_end:
            r[-overlap:] = torch.minimum(r[-overlap:], edge.flip(0))
    return r


def fuse_arrays(net: nn.Module, *, ir: np.ndarray, vis: np.ndarray,
                device: str | torch.device = "cpu", tile: int = 0, overlap: int | None = None
                ) -> np.ndarray:
    """Fuse one infrared-visible pair of NumPy images with a fusion network ``net(vis, ir)``.

    The modalities are keyword-only (``ir=``, ``vis=``): no positional order to swap.

    Args:
        net: a fusion network (e.g. :class:`SHIP`) taking ``(vis, ir)`` maps ``(1, 1, H, W)``.
        ir: ``(H, W)`` floats in [0, 1] (as :mod:`hyperleaf.io` reads them).
        vis: ``(H, W)`` grey or ``(H, W, 3)`` RGB floats in [0, 1]; a colour image is fused in
            YCrCb: the network fuses Y, Cr/Cb are kept, the result goes back to RGB.
        device: where the network runs.
        tile: > 0 fuses in ``tile`` x ``tile`` tiles (:func:`tiled_forward`); 0 fuses whole.
        overlap: the tiles' overlap; None picks ``min(DEFAULT_OVERLAP, tile // 4)``.

    Returns:
        ``(H, W)`` or ``(H, W, 3)`` float32 in [0, 1] (clamped), the shape of ``vis``.

    Example:

        >>> net = SHIP(n_feat=4).eval()
        >>> fused = fuse_arrays(net, ir=np.zeros((16, 16)), vis=np.full((16, 16, 3), 0.5))
        >>> fused.shape, bool(((0 <= fused) & (fused <= 1)).all())
        ((16, 16, 3), True)
    """
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, tile // 4)
    colour = vis.ndim == 3
    ycc = rgb_to_ycrcb(vis.astype(np.float32)) if colour else None
    y = ycc[..., 0] if colour else vis
    vt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None, None].to(device)
    it = torch.from_numpy(np.ascontiguousarray(ir, dtype=np.float32))[None, None].to(device)
    with torch.inference_mode():
        out = tiled_forward(net, vt, it, tile, overlap) if tile else net(vt, it)
    fused = out[0, 0].clamp(0, 1).float().cpu().numpy()
    if not colour:
        return fused
    ycc = ycc.copy()
    ycc[..., 0] = fused
    return np.clip(ycrcb_to_rgb(ycc), 0.0, 1.0)
