"""An independent functional transcription of the LEAF authors' 2-D network, from the spec alone.

Written from ``shared/specs/leaf_authors_net.md`` (§3 primitives, §4 network, §5 H2FR, §7.2 loss)
without hyperleaf's modules, hyperleaf.paper or segmentation-models-pytorch: the ResNet encoder
(§4.3), the UNet++ decoder (§4.10 table), the fusion blocks and H2FR are plain ``torch.nn.functional``
calls on a flat dict of the authors' state-dict tensors. ``tests/test_leafunet.py`` compares
``hyperleaf.models.LEAFUNet`` against it (logits, H2FR, parameter gradients, BN buffer updates).

Formulas are deliberately written in the spec's own form where hyperleaf writes another one
(e.g. Dice's intersection as ``Σ p t``, ListMLE as an explicit log-sum-exp sum, the distance's
norms with ``vector_norm``), so an error shared by both sides is unlikely.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# alias prefix -> the primary name of the same tensor (spec §1)
ALIASES = {"encoder1.": "model1.encoder.", "encoder2.": "model2.encoder.",
           "decoder.": "model1.decoder.", "segmentation_head.": "model1.segmentation_head."}


class Weights:
    """Look-ups into a flat state dict by the authors' names (aliases resolved); records which
    BatchNorm layers ran in training mode so that their buffers can be compared."""

    def __init__(self, params: dict[str, Tensor], buffers: dict[str, Tensor], training: bool):
        self.p, self.b, self.training = params, buffers, training

    def __getitem__(self, key: str) -> Tensor:
        for alias, base in ALIASES.items():
            if key.startswith(alias):
                key = base + key[len(alias):]
        return self.p[key] if key in self.p else self.b[key]

    def has(self, key: str) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def bn(self, x: Tensor, prefix: str) -> Tensor:
        # BatchNorm, eps 1e-5, momentum 0.1; in training: batch statistics, buffers updated
        # (unbiased variance for the running estimate), num_batches_tracked += 1.
        w, b = self[prefix + ".weight"], self[prefix + ".bias"]
        rm, rv = self[prefix + ".running_mean"], self[prefix + ".running_var"]
        if not self.training:
            return (x - rm[None, :, None, None]) / torch.sqrt(rv[None, :, None, None] + 1e-5) \
                * w[None, :, None, None] + b[None, :, None, None]
        n = x.numel() // x.shape[1]
        mean = x.mean(dim=(0, 2, 3))
        var = ((x - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))
        with torch.no_grad():
            rm.mul_(0.9).add_(0.1 * mean)
            rv.mul_(0.9).add_(0.1 * var * n / (n - 1))
            self[prefix + ".num_batches_tracked"].add_(1)
        return (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + 1e-5) \
            * w[None, :, None, None] + b[None, :, None, None]

    def conv(self, x: Tensor, key: str, stride: int = 1, padding: int = 0,
             bias: bool = False) -> Tensor:
        return F.conv2d(x, self[key + ".weight"], self[key + ".bias"] if bias else None,
                        stride=stride, padding=padding)

    def linear(self, x: Tensor, key: str) -> Tensor:
        return x @ self[key + ".weight"].t() + self[key + ".bias"]

    def ln(self, x: Tensor, key: str) -> Tensor:
        # LayerNorm over the last dim, biased variance, eps 1e-5
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * self[key + ".weight"] + self[key + ".bias"]


# ---------------------------------------------------------------- encoder (§4.3)

def _block(W: Weights, x: Tensor, pre: str, stride: int) -> Tensor:
    if W.has(pre + ".conv3.weight"):  # Bottleneck (ResNet-50): 1x1, 3x3 (stride), 1x1
        out = F.relu(W.bn(W.conv(x, pre + ".conv1"), pre + ".bn1"))
        out = F.relu(W.bn(W.conv(out, pre + ".conv2", stride, 1), pre + ".bn2"))
        out = W.bn(W.conv(out, pre + ".conv3"), pre + ".bn3")
    else:  # BasicBlock (ResNet-18/34): 3x3 (stride), 3x3
        out = F.relu(W.bn(W.conv(x, pre + ".conv1", stride, 1), pre + ".bn1"))
        out = W.bn(W.conv(out, pre + ".conv2", 1, 1), pre + ".bn2")
    if W.has(pre + ".downsample.0.weight"):
        x = W.bn(W.conv(x, pre + ".downsample.0", stride), pre + ".downsample.1")
    return F.relu(out + x)


def encoder(W: Weights, x: Tensor, pre: str) -> list[Tensor]:
    feats = [x]
    f = F.relu(W.bn(W.conv(x, pre + ".conv1", 2, 3), pre + ".bn1"))
    feats.append(f)
    f = F.max_pool2d(f, 3, 2, 1)
    for layer in range(1, 5):
        i = 0
        while W.has(f"{pre}.layer{layer}.{i}.conv1.weight"):
            f = _block(W, f, f"{pre}.layer{layer}.{i}", 2 if (layer > 1 and i == 0) else 1)
            i += 1
        feats.append(f)
    return feats


# ---------------------------------------------------------------- decoder (§4.10)

def _dblock(W: Weights, x: Tensor, skips: list[Tensor], name: str) -> Tensor:
    pre = f"decoder.blocks.{name}"
    x = F.interpolate(x, scale_factor=2.0, mode="nearest")
    if skips:
        x = torch.cat([x, *skips], dim=1)
    x = F.relu(W.bn(W.conv(x, pre + ".conv1.0", 1, 1), pre + ".conv1.1"))
    return F.relu(W.bn(W.conv(x, pre + ".conv2.0", 1, 1), pre + ".conv2.1"))


def decoder(W: Weights, levels: list[Tensor]) -> Tensor:
    Fs = levels[1:][::-1]  # F0 = deepest ... F4 = level 1; level 0 is dropped
    x = {}
    for d in range(4):
        x[(d, d)] = _dblock(W, Fs[d], [Fs[d + 1]], f"x_{d}_{d}")
    for l in range(1, 4):
        for d in range(4 - l):
            skips = [x[(j, d + l)] for j in range(d + 1, d + l + 1)] + [Fs[d + l + 1]]
            x[(d, d + l)] = _dblock(W, x[(d, d + l - 1)], skips, f"x_{d}_{d + l}")
    out = _dblock(W, x[(0, 3)], [], "x_0_4")
    return W.conv(out, "segmentation_head.0", 1, 1, bias=True)


# ---------------------------------------------------------------- fusion blocks (§4.5-4.9)

def shallow(W: Weights, f1: Tensor, f2: Tensor, pre: str) -> Tensor:
    g = torch.cat([f1, f2], 1).mean(dim=(2, 3), keepdim=True)
    cw = torch.sigmoid(W.conv(F.relu(W.conv(g, pre + ".channel_att.1")), pre + ".channel_att.3"))
    sw = torch.sigmoid(W.conv(torch.cat([f1.mean(1, keepdim=True), f2.mean(1, keepdim=True)], 1),
                              pre + ".spatial_att.0", 1, 1))
    return W.conv(torch.cat([f1 * cw * sw, f2 * cw * (1 - sw)], 1), pre + ".fusion_conv")


def deep(W: Weights, x: Tensor, y: Tensor, pre: str, heads: int = 8) -> Tensor:
    B, C, H, Wd = x.shape
    X = x.reshape(B, C, H * Wd).permute(0, 2, 1)
    Y = y.reshape(B, C, H * Wd).permute(0, 2, 1)
    d = C // heads

    def split(t):
        return t.reshape(B, H * Wd, heads, d).permute(0, 2, 1, 3)

    def att(q, k, v):
        a = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(d), dim=3) @ v
        return a.permute(0, 2, 1, 3).reshape(B, H * Wd, C)

    Xn, Yn = W.ln(X, pre + ".norm_x1"), W.ln(Y, pre + ".norm_y1")
    qx, kx, vx = (split(W.linear(Xn, f"{pre}.{n}_x")) for n in ("query", "key", "value"))
    qy, ky, vy = (split(W.linear(Yn, f"{pre}.{n}_y")) for n in ("query", "key", "value"))
    Xa = (W[pre + ".w11"] * W.linear(att(qx, kx, vx), pre + ".out_x")
          + W[pre + ".w12"] * W.linear(att(qx, ky, vy), pre + ".out_x") + X)
    Ya = (W[pre + ".w21"] * W.linear(att(qy, ky, vy), pre + ".out_y")
          + W[pre + ".w22"] * W.linear(att(qy, kx, vx), pre + ".out_y") + Y)

    def mlp(t, m):
        h = F.gelu(W.linear(t, m + ".0"))
        return W.linear(h, m + ".3")

    Xf = mlp(W.ln(Xa, pre + ".norm_x2"), pre + ".mlp_x") + Xa
    Yf = mlp(W.ln(Ya, pre + ".norm_y2"), pre + ".mlp_y") + Ya
    return (Xf + Yf).permute(0, 2, 1).reshape(B, C, H, Wd)


def exp_map(v: Tensor, c: float) -> Tensor:
    # §3 "euclid_to_hyper" along dim 1
    sc = math.sqrt(c)
    n = torch.linalg.vector_norm(v, dim=1, keepdim=True)
    s = torch.clamp(((1 / sc - 1e-8) / (n + 1e-8)), max=1.0)
    v2 = s * v
    n2 = torch.linalg.vector_norm(v2, dim=1, keepdim=True)
    return torch.tanh(sc * n2) / (sc * (n2 + 1e-8)) * v2


def log_map(x: Tensor, c: float) -> Tensor:
    # §3 "hyper_to_euclid" (Q2: the clamp at 1 - 1e-8 whatever c)
    sc = math.sqrt(c)
    m = torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp(1e-8, 1 - 1e-8)
    return torch.atanh(sc * m) / sc * x / m


def dist_map(u: Tensor, v: Tensor, c: float, den_eps: float = 0.0) -> Tensor:
    # §3 distance map (Q1: acosh((1 + 2c|u'-v'|^2)/den)); the 3-D file adds 1e-6 to den (Q9)
    r6 = 1 / math.sqrt(c) - 1e-6

    def rescale(t):
        a = torch.linalg.vector_norm(t, dim=1, keepdim=True) + 1e-6
        return t * (torch.clamp(a, max=r6) / a)

    u, v = rescale(u), rescale(v)
    nu = torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp(max=r6)
    nv = torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp(max=r6)
    num = 1 + 2 * c * ((u - v) ** 2).sum(1, keepdim=True)
    den = (1 - c * nu**2) * (1 - c * nv**2) + den_eps
    return torch.acosh(torch.clamp(num / den, min=1 + 1e-6)) / math.sqrt(c)


def hdgfb(W: Weights, E: Tensor, X1: Tensor, X2: Tensor, pre: str, c: float) -> Tensor:
    Q = exp_map(W.conv(E, pre + ".to_hyperbolic1.0", bias=True), c)
    P1 = exp_map(W.conv(X1, pre + ".to_hyperbolic2.0", bias=True), c)
    P2 = exp_map(W.conv(X2, pre + ".to_hyperbolic3.0", bias=True), c)
    d1, d2 = dist_map(Q, P1, c), dist_map(Q, P2, c)
    S = d1 + d2 + 1e-8
    g = torch.softmax(W.conv(torch.cat([-d1 / S, -d2 / S], 1), pre + ".distance_mlp.0",
                             bias=True), dim=1)
    T = g[:, 0:1] * log_map(P1, c) + g[:, 1:2] * log_map(P2, c)
    U = W.ln(T.permute(0, 2, 3, 1), pre + ".tangent_norm").permute(0, 3, 1, 2)
    h = F.gelu(W.conv(torch.cat([U, E], 1), pre + ".ff.0", bias=True))
    return W.conv(h, pre + ".ff.2", bias=True)


def hdgfb3d(W: Weights, E: Tensor, X1: Tensor, X2: Tensor, c: float) -> Tensor:
    """§6 HyperbolicAttentionFusion3D on (B, C, D, H, W), through (N, C) rows as the authors'
    code flattens them; the lazy LN([C, D, H, W]) is weight/bias ``tangent_norm.*``."""
    B, C, D, H, Wd = E.shape

    def rows(t):
        return t.permute(0, 2, 3, 4, 1).reshape(-1, t.shape[1])

    def vol(r, ch):
        return r.reshape(B, D, H, Wd, ch).permute(0, 4, 1, 2, 3)

    def conv(x, key):
        return F.conv3d(x, W[key + ".weight"], W[key + ".bias"])

    F1, F2 = conv(X1, "to_hyperbolic2.0"), conv(X2, "to_hyperbolic3.0")
    Q = vol(exp_map(rows(conv(E, "to_hyperbolic1.0")), c), C)
    P1, P2 = vol(exp_map(rows(F1), c), C), vol(exp_map(rows(F2), c), C)
    d1, d2 = dist_map(Q, P1, c, 1e-6), dist_map(Q, P2, c, 1e-6)
    S = d1 + d2 + 1e-8
    g = torch.softmax(conv(torch.cat([-d1 / S, -d2 / S], 1), "distance_mlp.0"), dim=1)
    T = (rows(g[:, 0:1]) * log_map(rows(F1), c) + rows(g[:, 1:2]) * log_map(rows(F2), c))
    T = vol(T, C)
    flat = T.reshape(B, -1)
    mean = flat.mean(1, keepdim=True)
    var = ((flat - mean) ** 2).mean(1, keepdim=True)
    U = ((flat - mean) / torch.sqrt(var + 1e-5)).reshape(T.shape) * W["tangent_norm.weight"] \
        + W["tangent_norm.bias"]
    h = F.gelu(conv(torch.cat([U, E], 1), "ff.0"))
    return conv(h, "ff.2")


def compress(W: Weights, x: Tensor, pre: str) -> Tensor:
    g = x.mean(dim=(2, 3))
    return W.linear(F.gelu(W.linear(g, pre + ".projection.0")), pre + ".projection.2")


def h2fr(Hf: list[Tensor], H1: list[Tensor], H2: list[Tensor]) -> Tensor:
    # §5, alpha = beta = 1
    a = [torch.linalg.vector_norm(h, dim=1).mean() for h in Hf]
    m1 = [torch.linalg.vector_norm(h, dim=1).mean() for h in H1]
    m2 = [torch.linalg.vector_norm(h, dim=1).mean() for h in H2]
    L = len(a)
    y = [-a[L - 1 - k] for k in range(L)]  # deepest level first
    level = sum(torch.logsumexp(torch.stack(y[k:]), 0) - y[k] for k in range(L)) / L
    core = sum(a[l] + torch.log(torch.exp(-a[l]) + torch.exp(-m1[l]) + torch.exp(-m2[l]))
               for l in range(L))
    return level + core


def forward(W: Weights, x1: Tensor, x2: Tensor, c: float = 0.1):
    """The authors' ``forward(x1, x2)`` -> ``(logits, h2fr)`` (§4.12)."""
    f1, f2 = encoder(W, x1, "encoder1"), encoder(W, x2, "encoder2")
    L = len(f1)
    E = [shallow(W, f1[i], f2[i], f"fusion_blocks.{i}") for i in range(L - 1)]
    E.append(deep(W, f1[-1], f2[-1], "mbafusion"))
    Z = [hdgfb(W, E[i], f1[i], f2[i], f"hyperbolic_fusion_blocks.{i}", c) for i in range(L)]
    c1 = [compress(W, f1[i], f"feature_compressors1.{i}") for i in range(L)]
    c2 = [compress(W, f2[i], f"feature_compressors2.{i}") for i in range(L)]
    cf = [compress(W, Z[i], f"feature_compressors_fused.{i}") for i in range(L)]
    D = []
    for i in range(L):
        g = W.ln(W.linear((c1[i] + c2[i] + cf[i]) / 3, f"compress_injectors.{i}.0"),
                 f"compress_injectors.{i}.1")
        D.append(Z[i] + g[:, :, None, None])
    logits = decoder(W, D)
    geom = h2fr([exp_map(v, c) for v in cf], [exp_map(v, c) for v in c1],
                [exp_map(v, c) for v in c2])
    return logits, geom


def training_loss(logits: Tensor, y: Tensor, geom: Tensor) -> Tensor:
    """§7.2: CE + 0.5·(Dice + 1.2·Focal) + 0.5·H2FR, Focal summed over classes (smp 0.5)."""
    K = logits.shape[1]
    logp = torch.log_softmax(logits, 1)
    t = torch.stack([(y == k).to(logits.dtype) for k in range(K)], 1)
    ce = -(logp * t).sum(1).mean()
    p = torch.softmax(logits, 1)
    dims = (0, 2, 3)
    inter = (p * t).sum(dims)
    score = inter / torch.clamp(0.5 * p.sum(dims) + 0.5 * t.sum(dims), min=1e-7)
    dice = ((1 - score) * (t.sum(dims) > 0).to(logits.dtype)).mean()
    focal = 0
    for k in range(K):
        z, tk = logits[:, k], t[:, k]
        bce = torch.clamp(z, min=0) - z * tk + torch.log1p(torch.exp(-z.abs()))
        focal = focal + ((1 - torch.exp(-bce)) ** 2 * bce * (0.25 * tk + 0.75 * (1 - tk))).mean()
    return ce + 0.5 * (dice + 1.2 * focal) + 0.5 * geom
