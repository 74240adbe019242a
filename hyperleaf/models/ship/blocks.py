"""SHIP's building blocks: feature extraction (edge blocks, central-difference convolutions),
the spatial (FFT) and channel interactions with their invertible blocks, and the
reconstruction (CA layers, ``Refine``). Parameter names follow the authors' checkpoint
(:mod:`hyperleaf.compat.ship`); the network that assembles them is
:mod:`hyperleaf.models.ship.network`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["same_conv", "CDC", "EdgeBlock", "FeatureExtract", "ChannelLayerNorm", "SpatialInteraction", "UNetConvBlock", "DenseBlock", "InvertibleConv1x1", "InvBlock", "ChannelInteraction", "Interaction", "CALayer", "Refine"]

_THETA = 0.8  # central-difference weight of the CDC convolutions
_LN_EPS = 1e-5


def same_conv(a: int, b: int, k: int, bias: bool = True) -> nn.Conv2d:
    """A ``k`` x ``k`` convolution ``a`` -> ``b`` channels, padded to keep the size."""
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
        self.process = same_conv(n, n, 3)
        self.Res = nn.Sequential(same_conv(n, n, 3), _ReLU(), same_conv(n, n, 3))
        self.CDC = CDC(n)

    def forward(self, x: Tensor) -> Tensor:
        x = self.process(x)
        return self.Res(x) + self.CDC(x)


class FeatureExtract(nn.Module):
    """1x1 conv (``in_channels`` -> n; 1 for a grey image) then two :class:`EdgeBlock`."""

    def __init__(self, n: int, in_channels: int = 1) -> None:
        super().__init__()
        self.conv = same_conv(in_channels, n, 1)
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
    return nn.Sequential(same_conv(a, b, k), _ReLU(), same_conv(b, a if out is None else out, k))


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
        self.identity = same_conv(a, b, 1)
        self.conv_1 = same_conv(a, b, 3)
        self.conv_2 = same_conv(b, b, 3)
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
        self.conv3 = same_conv(cin + 2 * growth, cout, 3)

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
        self.postprocess = nn.Sequential(InvBlock(2 * n, n, centre_f=True), same_conv(2 * n, n, 1))

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
        self.conv_du = nn.Sequential(same_conv(n, n // 4, 1), _ReLU(), same_conv(n // 4, n, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = F.adaptive_avg_pool2d(self.process(x), 1)
        return torch.sigmoid(self.conv_du(y)) * y + x


class Refine(nn.Module):
    """``conv3 (n -> n)``, two :class:`CALayer`, ``conv3 (n -> out_channels)``."""

    def __init__(self, n: int, out_channels: int = 1) -> None:
        super().__init__()
        self.conv_in = same_conv(n, n, 3)
        self.process = nn.Sequential(CALayer(n), CALayer(n))
        self.conv_last = same_conv(n, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_last(self.process(self.conv_in(x)))


