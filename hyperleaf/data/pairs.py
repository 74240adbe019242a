"""Real infrared-visible pairs for training: random crops and flips, built on :mod:`hyperleaf.io`.

Every file is checked (decoded, partner present, sizes equal, large enough for the crop) when the
dataset is built, so bad data stops a run before its first step with an error naming the file.
Augmentation draws come from a generator the caller seeds per sample (see
:meth:`PairDataset.get`), so a sample is a pure function of ``(index, seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hyperleaf import io as hio

__all__ = ["PairDataset", "split_pairs"]


def split_pairs(pairs: Sequence[hio.ImagePair], val_fraction: float = 0.1
                ) -> tuple[list[hio.ImagePair], list[hio.ImagePair]]:
    """Deterministic train/val split: the last ``max(1, round(n * val_fraction))`` pairs (in the
    natural order of their names) are held out; with a single pair it is used for both."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("split_pairs: no pairs")
    if len(pairs) == 1:
        return pairs, pairs
    n_val = min(len(pairs) - 1, max(1, round(len(pairs) * val_fraction)))
    return pairs[:-n_val], pairs[-n_val:]


class PairDataset(Dataset):
    """Registered infrared/visible pairs as ``{"vis": (1, h, w), "ir": (1, h, w)}`` float32.

    Args:
        pairs: :class:`hyperleaf.io.ImagePair` list (e.g. from ``hyperleaf.io.find_pairs_in``).
        crop: side of the square crop; ``None`` keeps whole images.
        train: random crops and horizontal/vertical flips when True, the centre crop otherwise.
        rot90: in train mode also rotate by a random multiple of 90 degrees (needs a square
            ``crop``), as the SHIP authors augment.

    Raises:
        hyperleaf.io.ImageError: a file is unreadable, has no partner, the two images of a pair
            differ in size, or an image is smaller than ``crop`` (the message names the file).
        ValueError: ``pairs`` is empty.

    Images are read when accessed (not held in memory); colour visible images are reduced to
    their luminance, as SHIP fuses the Y channel.
    """

    def __init__(self, pairs: Sequence[hio.ImagePair], crop: int | None = 128, train: bool = True,
                 rot90: bool = False):
        self.pairs = list(pairs)
        if not self.pairs:
            raise ValueError("PairDataset: no image pairs given (empty folder?)")
        if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 8):
            raise ValueError(f"crop must be an int >= 8 or None, got {crop!r}")
        if rot90 and crop is None:
            raise ValueError("rot90: rotations need a square crop (crop=None keeps whole "
                             "images of any shape)")
        self.crop, self.train, self.rot90 = crop, bool(train), bool(rot90)
        hio.check_pairs(self.pairs, decode=True)
        if crop is not None:
            for p in self.pairs:
                h, w = hio.image_size(p.ir)
                if h < crop or w < crop:
                    raise hio.ImageError(f"crop: image {p.ir} is {h}x{w} (HxW), smaller than "
                                         f"the crop size {crop}; lower `crop`")

    @classmethod
    def from_folder(cls, data_dir: str | Path, crop: int | None = 128, train: bool = True,
                    val_fraction: float = 0.1, rot90: bool = False) -> PairDataset:
        """Pairs of ``data_dir`` (TNO/MSRS ``ir/`` + ``vi/`` or flat ``IRk``/``VISk``), split
        with :func:`split_pairs`; ``train`` picks the part."""
        tr, va = split_pairs(hio.find_pairs_in(data_dir), val_fraction)
        return cls(tr if train else va, crop=crop, train=train, rot90=rot90)

    def __len__(self) -> int:
        return len(self.pairs)

    def get(self, index: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Sample ``index``; random crop/flips are drawn from ``generator`` (train mode)."""
        p = self.pairs[index]
        ir, vis = hio.read_gray(p.ir), hio.read_gray(p.vis)
        h, w = ir.shape
        if self.crop is not None:
            c = self.crop
            if self.train:
                g = generator if generator is not None else torch.Generator().manual_seed(index)
                y = int(torch.randint(0, h - c + 1, (), generator=g))
                x = int(torch.randint(0, w - c + 1, (), generator=g))
            else:
                y, x = (h - c) // 2, (w - c) // 2
            ir, vis = ir[y:y + c, x:x + c], vis[y:y + c, x:x + c]
        if self.train:
            g = generator if generator is not None else torch.Generator().manual_seed(index)
            flips = torch.rand(2, generator=g)
            if flips[0] < 0.5:
                ir, vis = ir[:, ::-1], vis[:, ::-1]
            if flips[1] < 0.5:
                ir, vis = ir[::-1], vis[::-1]
            if self.rot90:
                # Drawn after the flips, so runs without rot90 keep their exact samples.
                k = int(torch.randint(0, 4, (), generator=g))
                ir, vis = np.rot90(ir, k), np.rot90(vis, k)
        return {"vis": torch.from_numpy(np.ascontiguousarray(vis))[None],
                "ir": torch.from_numpy(np.ascontiguousarray(ir))[None]}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.get(index)
