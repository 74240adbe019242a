"""A direct, unoptimised transcription of the SHIP infrared-visible network specification.

This is the *baseline* that ``benchmarks/bench_ship.py`` times :class:`hyperleaf.models.SHIP`
against: one module per block of the specification, every kernel rebuilt on every forward,
no folding, parameter names equal to the authors' checkpoint so that its ``params`` load with
``load_state_dict(strict=True)``. It deliberately imports nothing from hyperleaf.

Example::

    net = ShipTranscription()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["params"])
    fused = net.eval()(vis, ir)          # (B, 1, H, W) each
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ShipTranscription"]

THETA = 0.8


def conv(a: int, b: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(a, b, k, padding=k // 2, bias=bias)


class CrossConv(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n, n, (1, 5), bias=False)

    def kernel(self) -> Tensor:
        w = self.conv.weight
        z = torch.zeros_like(w[:, :, 0, 0])
        taps = [z, w[:, :, 0, 0], z, w[:, :, 0, 1], w[:, :, 0, 2], w[:, :, 0, 3], z,
                w[:, :, 0, 4], z]
        return torch.stack(taps, 2).view(w.shape[0], w.shape[1], 3, 3)

    def forward(self, x: Tensor) -> Tensor:
        w = self.conv.weight
        out = F.conv2d(x, self.kernel(), padding=1)
        diff = w.sum(dim=(2, 3))[:, :, None, None]
        return out - THETA * F.conv2d(x, diff)


class DiagConv(CrossConv):
    def kernel(self) -> Tensor:
        w = self.conv.weight
        z = torch.zeros_like(w[:, :, 0, 0])
        taps = [w[:, :, 0, 0], z, w[:, :, 0, 1], z, w[:, :, 0, 2], z, w[:, :, 0, 3], z,
                w[:, :, 0, 4]]
        return torch.stack(taps, 2).view(w.shape[0], w.shape[1], 3, 3)


class CDC(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.h_conv = CrossConv(n)
        self.d_conv = DiagConv(n)
        self.HP_branch = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.HP_branch)
        return s * self.h_conv(x) + (1 - s) * self.d_conv(x) + x


class EdgeBlock(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.process = conv(n, n, 3)
        self.Res = nn.Sequential(conv(n, n, 3), nn.ReLU(), conv(n, n, 3))
        self.CDC = CDC(n)

    def forward(self, x: Tensor) -> Tensor:
        x = self.process(x)
        return self.Res(x) + self.CDC(x)


class FeatureExtract(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.conv = conv(1, n, 1)
        self.block1 = EdgeBlock(n)
        self.block2 = EdgeBlock(n)

    def forward(self, x: Tensor) -> Tensor:
        return self.block2(self.block1(self.conv(x)))


class LayerNormBody(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))


class ChannelLN(nn.Module):
    """Layer norm over channels at each pixel, written out literally."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.body = LayerNormBody(n)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        t = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        mu = t.mean(-1, keepdim=True)
        var = t.var(-1, keepdim=True, unbiased=False)
        t = (t - mu) / torch.sqrt(var + 1e-5) * self.body.weight + self.body.bias
        return t.reshape(b, h, w, c).permute(0, 3, 1, 2)


def two_convs(a: int, b: int, k: int) -> nn.Sequential:
    return nn.Sequential(conv(a, b, k), nn.ReLU(), conv(b, a if k == 1 else b, k))


class Spatial(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        for k in (1, 2, 3):
            setattr(self, f"reflashFused{k}", two_convs(n, n, 3))
            setattr(self, f"reflashInfrared{k}", two_convs(n, n, 3))
        for k in (1, 2, 3, 4):
            setattr(self, f"norm{k}", ChannelLN(n))

    def forward(self, v: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        h, w = v.shape[-2:]
        a = torch.fft.irfft2(torch.fft.rfft2(v) * torch.fft.rfft2(i), s=(h, w))
        a = self.norm1(a)
        s = a * i
        r = i
        for k in (1, 2, 3):
            s = getattr(self, f"norm{k + 1}")(getattr(self, f"reflashFused{k}")(s))
            r = getattr(self, f"reflashInfrared{k}")(r)
            s = s * r
        return s + v, r


def centred_conv(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(x)`` evaluated as ``conv(x - m) + conv(m)``, m the per-channel spatial mean.

    The F branch of the interaction InvBlocks sees nearly constant channels, where a plain
    float32 convolution cancels most of its digits. (An earlier measurement put the plain path
    ~5e-4 off the golden outputs; with torch 2.13 it is 0 to 4.5e-5 off depending on the
    thread count: results/ship_golden.json, docs/ship.md.)
    """
    m = x.mean(dim=(2, 3), keepdim=True)
    const = F.conv2d(m.expand_as(x).contiguous(), conv.weight, conv.bias, padding=conv.padding)
    return F.conv2d(x - m, conv.weight, None, padding=conv.padding) + const


class UNetConvBlock(nn.Module):
    def __init__(self, a: int, b: int, centre: bool = False) -> None:
        super().__init__()
        self.identity = conv(a, b, 1)
        self.conv_1 = conv(a, b, 3)
        self.conv_2 = conv(b, b, 3)
        self.norm = nn.InstanceNorm2d(b // 2, affine=True)
        self.centre = centre

    def forward(self, x: Tensor) -> Tensor:
        if self.centre:
            u = centred_conv(x, self.conv_1)
            h = u.shape[1] // 2
            u = torch.cat([self.norm(u[:, :h]), u[:, h:]], 1)
            u = F.leaky_relu(u, 0.1)
            u = F.leaky_relu(self.conv_2(u), 0.1)
            return u + centred_conv(x, self.identity)
        u = self.conv_1(x)
        h = u.shape[1] // 2
        u = torch.cat([self.norm(u[:, :h]), u[:, h:]], 1)
        u = F.leaky_relu(u, 0.1)
        u = F.leaky_relu(self.conv_2(u), 0.1)
        return u + self.identity(x)


class DenseBlock(nn.Module):
    def __init__(self, cin: int, cout: int, g: int = 16, centre: bool = False) -> None:
        super().__init__()
        self.conv1 = UNetConvBlock(cin, g, centre)
        self.conv2 = UNetConvBlock(g, g)
        self.conv3 = conv(cin + 2 * g, cout, 3)

    def forward(self, x: Tensor) -> Tensor:
        d1 = F.leaky_relu(self.conv1(x), 0.2)
        d2 = F.leaky_relu(self.conv2(d1), 0.2)
        return F.leaky_relu(self.conv3(torch.cat([x, d1, d2], 1)), 0.2)


class InvConv(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.lower = nn.Parameter(torch.zeros(n, n))
        self.upper = nn.Parameter(torch.zeros(n, n))
        self.log_s = nn.Parameter(torch.zeros(n))
        self.register_buffer("p", torch.eye(n))
        self.register_buffer("sign_s", torch.ones(n))

    def forward(self, x: Tensor) -> Tensor:
        n = self.lower.shape[0]
        eye = torch.eye(n, dtype=x.dtype)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        w = self.p @ lower @ upper
        return F.conv2d(x, w[:, :, None, None])


class InvBlock(nn.Module):
    def __init__(self, channels: int, split: int, centre: bool = False) -> None:
        super().__init__()
        self.split = split
        self.invconv = InvConv(channels)
        self.F = DenseBlock(channels - split, split, centre=centre)
        self.G = DenseBlock(split, channels - split)
        self.H = DenseBlock(split, channels - split)

    def forward(self, x: Tensor) -> Tensor:
        y = self.invconv(x)
        x1, x2 = y[:, : self.split], y[:, self.split :]
        y1 = x1 + self.F(x2)
        t = 0.8 * (torch.sigmoid(self.H(y1)) * 2 - 1)
        y2 = x2 * torch.exp(t) + self.G(y1)
        return torch.cat([y1, y2], 1)


class Channel(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.chaAtten = two_convs(2 * n, n, 1)
        for k in (1, 2, 3):
            setattr(self, f"reflashChaAtten{k}", two_convs(2 * n, n, 1))
            setattr(self, f"reflashFused{k}", two_convs(2 * n, 2 * n, 3))
        self.postprocess = nn.Sequential(InvBlock(2 * n, n, centre=True), conv(2 * n, n, 1))

    def forward(self, v: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([v, i], 1)
        w = torch.softmax(self.chaAtten(F.adaptive_avg_pool2d(x, 1)), dim=1)
        c = x * w
        for k in (1, 2, 3):
            c = getattr(self, f"reflashFused{k}")(c)
            w = torch.softmax(getattr(self, f"reflashChaAtten{k}")(w), dim=1)
            c = c * w
        return self.postprocess(c) + v, i


class Interaction(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.spatial = Spatial(n)
        self.channel = Channel(n)

    def forward(self, v: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        return self.channel(*self.spatial(v, i))


class CALayer(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.process = two_convs(n, n, 3)
        self.conv_du = nn.Sequential(conv(n, n // 4, 1), nn.ReLU(), conv(n // 4, n, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = F.adaptive_avg_pool2d(self.process(x), 1)
        return torch.sigmoid(self.conv_du(y)) * y + x


class Refine(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.conv_in = conv(n, n, 3)
        self.process = nn.Sequential(CALayer(n), CALayer(n))
        self.conv_last = conv(n, 1, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_last(self.process(self.conv_in(x)))


class ShipTranscription(nn.Module):
    """The released SHIP infrared-visible network, transcribed block by block."""

    def __init__(self, n_feat: int = 16) -> None:
        super().__init__()
        n = n_feat
        self.vis = FeatureExtract(n)
        self.inf = FeatureExtract(n)
        self.interaction1 = Interaction(n)
        self.interaction2 = Interaction(n)
        self.interaction3 = Interaction(n)
        self.postprocess = nn.Sequential(InvBlock(3 * n, 3 * n // 2), conv(3 * n, n, 1))
        self.reconstruction = Refine(n)

    def forward(self, vis: Tensor, ir: Tensor) -> Tensor:
        v0, i0 = self.vis(vis), self.inf(ir)
        v1, i1 = self.interaction1(v0, i0)
        v2, i2 = self.interaction2(v1, i1)
        v3, _ = self.interaction3(v2, i2)
        return self.reconstruction(self.postprocess(torch.cat([v1, v2, v3], 1)))
