"""The SHIP network (:class:`SHIP`, both task variants: infrared-visible fusion and
pan-sharpening) assembled from :mod:`hyperleaf.models.ship.blocks`, registered as ``"ship"``
in the model registry, and the checks of its inputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from hyperleaf.models.registry import register_model
from hyperleaf.models.ship.blocks import (
    CDC,
    ChannelLayerNorm,
    FeatureExtract,
    Interaction,
    InvBlock,
    Refine,
    same_conv,
)
from hyperleaf.nn.hdgfb import HDGFB

__all__ = ["SHIP", "ShipFeatures", "check_fusion_inputs", "check_pansharpen_inputs"]


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
        self.postprocess = nn.Sequential(InvBlock(3 * n, 3 * n // 2), same_conv(3 * n, n, 1))
        self.reconstruction = Refine(n, 1 if task == "fuse" else ms_bands)
        if task == "pansharpen":
            nn.init.zeros_(self.reconstruction.conv_last.weight)
            nn.init.zeros_(self.reconstruction.conv_last.bias)
        self.hdgfb_enabled = bool(hdgfb)
        if hdgfb:
            kw = dict(hdgfb_kwargs or {})
            kw.setdefault("num_modalities", 2)
            self.hdgfb = nn.ModuleList([HDGFB(n, **kw) for _ in range(3)])
            self.hdgfb_proj = nn.ModuleList([same_conv(n, n, 1) for _ in range(3)])
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
            check_pansharpen_inputs(pan, lms, self.ms_bands)
            v, i = self.ms(lms), self.pan(pan)
        else:
            check_fusion_inputs(vis, ir)
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


def check_pansharpen_inputs(pan: Tensor, lms: Tensor, bands: int) -> None:
    """``TypeError`` / ``ValueError`` naming ``pan`` or ``lms`` unless they are floating-point
    ``(B, 1, H, W)`` and ``(B, bands, H, W)`` tensors of one batch size and grid.

    >>> check_pansharpen_inputs(torch.zeros(1, 1, 8, 8), torch.zeros(1, 4, 8, 8), 4)
    """
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


def check_fusion_inputs(vis: Tensor, ir: Tensor) -> None:
    """``TypeError`` / ``ValueError`` naming ``vis`` or ``ir`` unless both are floating-point
    ``(B, 1, H, W)`` tensors of the same shape.

    >>> check_fusion_inputs(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8))
    """
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
