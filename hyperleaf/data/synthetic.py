"""Embedded datasets generated in code, deterministic per index.

* :class:`SyntheticFusion`: infrared-visible pairs. Both modalities share a layout (regions with
  sharp edges over a smooth background); *hot targets* (small bright blobs) exist only in the
  infrared image and *fine texture* (gratings and high-frequency noise) only in the visible one,
  so a good fusion must take each from its own modality.
* :class:`SyntheticSegmentation`: two-modality scenes with a per-pixel label (background, hot
  target, textured region, shared structure); each foreground class is identifiable from one
  modality only, or from both, so a fusion network needs both inputs to reach a high mIoU.

Sample ``i`` of a split is a pure function of ``(seed, split, i)``: the generator is re-seeded
for every sample, so datasets can be indexed in any order, by any process, and give identical
tensors (what makes resumed and distributed training reproducible).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["SyntheticFusion", "SyntheticSegmentation", "SEG_CLASSES", "sample_seed"]

_SPLITS = {"train": 0, "val": 1, "test": 2}
#: Class names of :class:`SyntheticSegmentation`, in label order.
SEG_CLASSES = ("background", "hot_target", "textured_region", "shared_structure")


def sample_seed(seed: int, split: str, index: int, salt: int = 0) -> int:
    """A 63-bit seed for sample ``index`` of ``split`` (SplitMix64-style mixing, so nearby
    indices get unrelated streams)."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    x = (int(seed) * 0x9E3779B97F4A7C15 + _SPLITS[split] * 0xBF58476D1CE4E5B9
         + int(index) * 0x94D049BB133111EB + int(salt) * 0xD6E8FEB86659FD93) & (2**64 - 1)
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    return x & (2**63 - 1)


def _check_common(size: int, length: int, split: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an int >= 16, got {size!r}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int, got {length!r}")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")


def _u(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _grid(size: int) -> tuple[Tensor, Tensor]:
    t = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    return torch.meshgrid(t, t, indexing="ij")


def _smooth_field(g: torch.Generator, size: int, cells: int = 4) -> Tensor:
    # Low-frequency field in [0, 1]: a coarse random grid, bilinearly upsampled.
    coarse = torch.rand(1, 1, cells, cells, generator=g)
    up = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                         align_corners=False)
    return up[0, 0]


def _region(g: torch.Generator, yy: Tensor, xx: Tensor, size: int) -> Tensor:
    """A filled rectangle or ellipse (sharp-edged mask in {0, 1})."""
    cy, cx = _u(g, 0.15, 0.85), _u(g, 0.15, 0.85)
    hy, hx = _u(g, 0.08, 0.3), _u(g, 0.08, 0.3)
    if _u(g) < 0.5:
        m = ((yy - cy).abs() < hy) & ((xx - cx).abs() < hx)
    else:
        m = ((yy - cy) / hy) ** 2 + ((xx - cx) / hx) ** 2 < 1.0
    return m.float()


def _texture(g: torch.Generator, yy: Tensor, xx: Tensor, size: int) -> Tensor:
    """Fine texture in [-1, 1]: a high-frequency grating plus pixel noise."""
    theta = _u(g, 0.0, math.pi)
    period = _u(g, 2.5, 5.0) / size  # a few pixels
    phase = _u(g, 0.0, 2 * math.pi)
    along = yy * math.cos(theta) + xx * math.sin(theta)
    grating = torch.sin(2 * math.pi * along / period + phase)
    noise = torch.rand(size, size, generator=g) * 2 - 1
    return 0.7 * grating + 0.3 * noise


def _blob(g: torch.Generator, yy: Tensor, xx: Tensor) -> Tensor:
    cy, cx = _u(g, 0.1, 0.9), _u(g, 0.1, 0.9)
    sy, sx = _u(g, 0.025, 0.06), _u(g, 0.025, 0.06)
    r2 = ((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2
    # Flat-topped so the target has a clear outline (as a warm body does in a thermal image).
    return torch.sigmoid(4.0 * (1.0 - r2))


def _scene(g: torch.Generator, size: int) -> dict[str, Tensor]:
    yy, xx = _grid(size)
    base = _smooth_field(g, size)
    vis = 0.25 + 0.35 * base
    ir = 0.15 + 0.25 * _smooth_field(g, size)

    structure = torch.zeros(size, size)
    textured = torch.zeros(size, size)
    for _ in range(int(torch.randint(2, 5, (), generator=g))):
        m = _region(g, yy, xx, size)
        # Shared layout: the region changes both images (its own brightness in each), so its
        # edges appear in both modalities.
        vis = vis * (1 - m) + m * _u(g, 0.2, 0.8)
        ir = ir * (1 - m) + m * _u(g, 0.1, 0.5)
        structure = torch.maximum(structure, m)
    for _ in range(int(torch.randint(1, 3, (), generator=g))):
        m = _region(g, yy, xx, size)
        # Visible-only texture: the infrared image does not see surface detail.
        vis = vis + m * 0.18 * _texture(g, yy, xx, size)
        textured = torch.maximum(textured, m)
    hot = torch.zeros(size, size)
    for _ in range(int(torch.randint(1, 4, (), generator=g))):
        b = _blob(g, yy, xx)
        # Infrared-only target: hot, nearly invisible in the visible image.
        ir = ir * (1 - b) + b * _u(g, 0.85, 1.0)
        hot = torch.maximum(hot, b)
    vis = vis + 0.01 * torch.randn(size, size, generator=g)
    return {"vis": vis.clamp(0, 1)[None], "ir": ir.clamp(0, 1)[None],
            "hot": hot, "textured": textured, "structure": structure}


class _SceneDataset(Dataset):
    """Length, size, split and seed of the synthetic datasets; sample ``index`` is the scene of
    its own generator (``sample_seed``), so samples are reproducible and order-free."""

    def __init__(self, length: int = 2048, size: int = 64, split: str = "train", seed: int = 0):
        _check_common(size, length, split)
        self.length, self.size, self.split, self.seed = length, size, split, int(seed)

    def __len__(self) -> int:
        return self.length

    def _scene(self, index: int, salt: int) -> dict[str, Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        index %= self.length
        g = torch.Generator().manual_seed(sample_seed(self.seed, self.split, index, salt=salt))
        return _scene(g, self.size)


class SyntheticFusion(_SceneDataset):
    """Embedded infrared-visible pairs: ``{"vis": (1, S, S), "ir": (1, S, S)}``, float32 in [0, 1].

    Args:
        length: number of samples in the split.
        size: image side ``S`` in pixels (>= 16).
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint streams).
        seed: dataset seed (independent from the training seed).

    Example::

        >>> ds = SyntheticFusion(8, size=64, split="val")
        >>> ds[3]["ir"].shape
        torch.Size([1, 64, 64])
    """

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        s = self._scene(index, salt=0)
        return {"vis": s["vis"], "ir": s["ir"]}


class SyntheticSegmentation(_SceneDataset):
    """Embedded two-modality segmentation scenes.

    Returns ``{"vis": (1, S, S), "ir": (1, S, S), "mask": (S, S) int64}`` with labels
    :data:`SEG_CLASSES`: 1 = hot target (seen only in ``ir``), 2 = textured region (seen only in
    ``vis``), 3 = shared structure (seen in both), 0 = background. Later classes are painted over
    earlier ones in the order hot > textured > structure.
    """

    num_classes = len(SEG_CLASSES)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        s = self._scene(index, salt=1)
        mask = torch.zeros(self.size, self.size, dtype=torch.int64)
        mask[s["structure"] > 0.5] = 3
        mask[s["textured"] > 0.5] = 2
        mask[s["hot"] > 0.5] = 1
        return {"vis": s["vis"], "ir": s["ir"], "mask": mask}
