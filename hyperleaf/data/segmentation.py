r"""Multimodal segmentation folders: the MSRS and WHU-OPT-SAR layouts of the LEAF authors'
loaders, and a generic layout with any number of modalities, 2-D slices or NIfTI volumes.

Layouts (``layout="auto"`` picks by the folder names):

* ``"msrs"``: ``vi/``, ``ir/``, ``Segmentation_labels/`` (``.png``, same names); images to RGB
  (IR repeated to 3 channels), labels 0..8 as stored (9 classes).
* ``"whu"``: ``optical256/``, ``sar256/``, ``label256/`` (``.tif``); images to RGB, labels
  **divided by 10** (0..7, 8 classes); a label value that is not a multiple of 10 is an error.
* ``"generic"``: one folder per modality plus ``label/`` (``M >= 2`` modalities, in sorted order
  unless ``modalities=`` gives it); files matched by name. 2-D images (``.png``, ``.tif``,
  ``.jpg``, ``.bmp``: grey -> 1 channel, colour -> 3) or NIfTI volumes (``.nii``, ``.nii.gz``,
  read with nibabel, scaled per volume to [0, 1] by its maximum, -> ``(1, D, H, W)``).

Items are ``(modalities, label)``: a list of ``M`` float tensors in [0, 1], ``(C_m, H, W)`` or
``(C_m, D, H, W)``, and an int64 label ``(H, W)`` / ``(D, H, W)``. ``size=(H, W)`` resizes 2-D
items as the authors' loaders do (images bilinear with antialias, labels nearest). Inputs are
not normalised further (the authors' Q12). Bad data (a missing partner or label, sizes that
differ, label values outside ``[0, num_classes)``) raises :class:`SegmentationDataError` naming
the file, when the folder is opened (``check="all"``, default) or when an item is read.

Example::

    >>> ds = SegmentationFolder("data/open_ms/slices", modalities=["flair", "t1"],
    ...                         num_classes=2)                      # doctest: +SKIP
    >>> (flair, t1), label = ds[0]                                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["SegmentationFolder", "SegmentationDataError", "LAYOUTS", "group_modalities",
           "default_groups", "SegmentationCrops"]

LAYOUTS = {
    "msrs": (("vi", "ir"), "Segmentation_labels"),
    "whu": (("optical256", "sar256"), "label256"),
}
_IMAGE_EXT = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_NIFTI_EXT = (".nii.gz", ".nii")


class SegmentationDataError(ValueError):
    """Bad segmentation data; the message names the file."""


def _stem(p: Path) -> str:
    name = p.name
    for ext in _NIFTI_EXT + _IMAGE_EXT:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return p.stem


def _is_data(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(
        _IMAGE_EXT + _NIFTI_EXT)


def _read_nifti(path: Path) -> np.ndarray:
    try:
        import nibabel as nib
    except ImportError as exc:
        raise SegmentationDataError(f"{path}: reading NIfTI needs nibabel (pip install "
                                    f"nibabel, or hyperleaf[seg])") from exc
    try:
        arr = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float64))
    except Exception as exc:
        raise SegmentationDataError(f"{path}: not a readable NIfTI volume ({exc})") from None
    if arr.ndim != 3:
        raise SegmentationDataError(f"{path}: expected a 3-D volume, got shape {arr.shape}")
    return arr


def _read_image(path: Path, mode: str | None):
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if mode is not None:
                im = im.convert(mode)
            elif im.mode not in ("L", "RGB", "I;16", "I", "F"):
                im = im.convert("RGB")
            return im.copy()
    except (OSError, ValueError) as exc:
        raise SegmentationDataError(f"{path}: not a readable image ({exc})") from None


def _image_tensor(im, size) -> Tensor:
    from PIL import Image

    if size is not None:
        im = im.resize((size[1], size[0]), Image.BILINEAR, reducing_gap=None)
    arr = np.asarray(im)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16 or im.mode.startswith("I;16"):
        arr = arr.astype(np.float32) / 65535.0
    else:
        arr = arr.astype(np.float32)
        top = float(arr.max()) if arr.size else 0.0
        arr = arr / top if top > 0 else arr
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


class SegmentationFolder(torch.utils.data.Dataset):
    """A folder of co-registered modalities and labels (see the module docstring).

    Args:
        root: the folder.
        layout: ``"auto"``, ``"msrs"``, ``"whu"`` or ``"generic"``.
        modalities: generic layout: the modality folder names in order (default: every folder
            but ``label``, sorted); at least 2.
        num_classes: labels must lie in ``[0, num_classes)`` (default: 9 for MSRS, 8 for WHU,
            unchecked for generic unless given).
        size: ``(H, W)`` to resize 2-D items to (the authors: 256x256), or ``None``.
        check: ``"all"`` reads every file once at construction (sizes, partners, label range);
            ``"names"`` only matches names (files are checked when read).
    """

    def __init__(self, root: str | Path, layout: str = "auto",
                 modalities: Sequence[str] | None = None, num_classes: int | None = None,
                 size: tuple[int, int] | None = None, check: str = "all"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SegmentationDataError(f"{self.root}: no such data folder")
        if check not in ("all", "names"):
            raise ValueError(f"check must be 'all' or 'names', got {check!r}")
        if layout == "auto":
            layout = next((name for name, (mods, lab) in LAYOUTS.items()
                           if all((self.root / d).is_dir() for d in (*mods, lab))), "generic")
        if layout in LAYOUTS:
            mods, label_dir = LAYOUTS[layout]
            if modalities is not None and tuple(modalities) != mods:
                raise ValueError(f"layout {layout!r} has the modalities {mods}")
            num_classes = num_classes if num_classes is not None else (
                9 if layout == "msrs" else 8)
        elif layout == "generic":
            label_dir = "label"
            if modalities is None:
                mods = tuple(sorted(d.name for d in self.root.iterdir()
                                    if d.is_dir() and d.name != label_dir
                                    and not d.name.startswith(".")))
            else:
                mods = tuple(modalities)
        else:
            raise ValueError(f"layout must be 'auto', 'msrs', 'whu' or 'generic', got {layout!r}")
        if len(mods) < 2:
            raise SegmentationDataError(f"{self.root}: needs at least 2 modality folders, found "
                                        f"{list(mods)}")
        for d in (*mods, label_dir):
            if not (self.root / d).is_dir():
                raise SegmentationDataError(f"{self.root / d}: missing folder (layout "
                                            f"{layout!r})")
        if size is not None and (len(size) != 2 or not all(int(s) >= 1 for s in size)):
            raise ValueError(f"size must be (H, W) of ints >= 1, got {size!r}")
        self.layout, self.modalities, self.label_dir = layout, mods, label_dir
        self.num_classes, self.size = num_classes, (None if size is None else tuple(size))

        files = {d: {_stem(p): p for p in (self.root / d).iterdir() if _is_data(p)}
                 for d in (*mods, label_dir)}
        names = sorted(files[mods[0]])  # sorted: the authors' os.listdir order is arbitrary
        if not names:
            raise SegmentationDataError(f"{self.root / mods[0]}: no image or NIfTI files")
        for d in (*mods[1:], label_dir):
            for n in names:
                if n not in files[d]:
                    raise SegmentationDataError(f"{files[mods[0]][n]}: no partner in "
                                                f"{self.root / d}/ (expected a file named {n}.*)")
            extra = sorted(set(files[d]) - set(names))
            if extra:
                raise SegmentationDataError(f"{files[d][extra[0]]}: no partner in "
                                            f"{self.root / mods[0]}/")
        self.items = [([files[d][n] for d in mods], files[label_dir][n]) for n in names]
        self.names = names
        if check == "all":
            for i in range(len(self.items)):
                self[i]

    def __len__(self) -> int:
        return len(self.items)

    def _read_modality(self, path: Path, index: int) -> Tensor:
        if path.name.lower().endswith(_NIFTI_EXT):
            arr = _read_nifti(path)
            top = float(np.abs(arr).max())
            arr = arr / top if top > 0 else arr
            return torch.from_numpy(arr.astype(np.float32)).unsqueeze(0)
        mode = "RGB" if self.layout in LAYOUTS else None
        return _image_tensor(_read_image(path, mode), self.size)

    def _read_label(self, path: Path) -> Tensor:
        from PIL import Image

        if path.name.lower().endswith(_NIFTI_EXT):
            arr = _read_nifti(path)
            if not np.all(arr == np.round(arr)):
                raise SegmentationDataError(f"{path}: label values must be integers")
            lab = arr.astype(np.int64)
        else:
            im = _read_image(path, "L")
            if self.size is not None:
                im = im.resize((self.size[1], self.size[0]), Image.NEAREST)
            lab = np.asarray(im).astype(np.int64)
        if self.layout == "whu":
            if np.any(lab % 10):
                bad = sorted(set(np.unique(lab[lab % 10 != 0]).tolist()))[:5]
                raise SegmentationDataError(f"{path}: WHU-OPT-SAR labels are multiples of 10 "
                                            f"(class x 10), found {bad}")
            lab = lab // 10
        if self.num_classes is not None and lab.size and (lab.min() < 0
                                                          or lab.max() >= self.num_classes):
            raise SegmentationDataError(f"{path}: label values must lie in [0, "
                                        f"{self.num_classes}), found [{lab.min()}, {lab.max()}]")
        return torch.from_numpy(lab)

    def __getitem__(self, index: int):
        paths, label_path = self.items[index]
        mods = [self._read_modality(p, index) for p in paths]
        label = self._read_label(label_path)
        for p, m in zip(paths, mods):
            if tuple(m.shape[1:]) != tuple(label.shape):
                raise SegmentationDataError(f"{p}: size {tuple(m.shape[1:])} differs from its "
                                            f"label {label_path} {tuple(label.shape)}")
        return mods, label


def group_modalities(mods: Sequence[Tensor], groups: Sequence[Sequence[int]],
                     channel_dim: int = 0) -> list[Tensor]:
    """Concatenate modalities along ``channel_dim`` (0 for items, 1 for batches) into the inputs
    of a multi-encoder network: ``groups=[[0, 1], [2, 3]]`` makes LEAFUNet's ``x1`` from the
    first two modalities and ``x2`` from the last two.

    >>> a, b, c = torch.zeros(1, 4, 4), torch.ones(1, 4, 4), torch.ones(1, 4, 4)
    >>> [t.shape[0] for t in group_modalities([a, b, c], [[0], [1, 2]])]
    [1, 2]
    """
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError(f"groups must be non-empty lists of modality indices, got {groups!r}")
    out = []
    for g in groups:
        for i in g:
            if not 0 <= i < len(mods):
                raise ValueError(f"group index {i} out of range for {len(mods)} modalities")
        out.append(torch.cat([mods[i] for i in g], dim=channel_dim))
    return out


def default_groups(num_modalities: int) -> list[list[int]]:
    """The two inputs of a dual-encoder network from ``M`` modalities when none are given: the
    first half and the second half (``M`` even; ``[[0], [1]]`` for two).

    >>> default_groups(4)
    [[0, 1], [2, 3]]
    """
    if num_modalities < 2 or num_modalities % 2:
        raise ValueError(f"modality_groups: give the two groups explicitly for {num_modalities} "
                         "modalities (the default splits an even number in halves)")
    h = num_modalities // 2
    return [list(range(h)), list(range(h, num_modalities))]


def _pad_to(x: Tensor, size: Sequence[int]) -> Tensor:
    # zero padding at the end of each trailing dimension up to ``size`` (background)
    pad = [max(0, s - d) for s, d in zip(size, x.shape[-len(size):])]
    if not any(pad):
        return x
    flat = [v for p in reversed(pad) for v in (0, p)]
    return torch.nn.functional.pad(x, flat)


class SegmentationCrops(torch.utils.data.Dataset):
    """Crops of a :class:`SegmentationFolder` as the two inputs of a dual-encoder network.

    Items are ``{"vis": x1, "ir": x2, "mask": label}`` (the key names of hyperleaf's
    two-modality tasks; ``x1``/``x2`` concatenate the modality ``groups``) cropped to ``crop``
    pixels (or voxels) per side: ``get(index, generator)`` draws a uniform random crop (training),
    ``__getitem__`` takes the centre crop (validation). Items smaller than ``crop`` are
    zero-padded (background). Decoded items are kept in memory up to ``cache_bytes`` (default
    2 GiB; later items are read from disk each time).

    Args:
        folder: the data.
        indices: which of ``folder``'s items (a split).
        crop: side of the crops.
        groups: modality indices of ``x1`` and ``x2`` (see :func:`group_modalities`).
    """

    def __init__(self, folder: SegmentationFolder, indices: Sequence[int], crop: int,
                 groups: Sequence[Sequence[int]], cache_bytes: int = 2 << 30):
        if not indices:
            raise ValueError("indices: the split is empty")
        self.folder, self.indices, self.crop = folder, list(indices), int(crop)
        self.groups = [list(g) for g in groups]
        self.pairs = [Path(folder.names[i]) for i in self.indices]  # names for val samples
        self._cache: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        self._cache_left = int(cache_bytes)

    def __len__(self) -> int:
        return len(self.indices)

    def _item(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        if index in self._cache:
            return self._cache[index]
        mods, label = self.folder[self.indices[index]]
        x1, x2 = group_modalities(mods, self.groups)
        size = [self.crop] * label.dim()
        item = (_pad_to(x1, size), _pad_to(x2, size), _pad_to(label, size))
        nbytes = sum(t.numel() * t.element_size() for t in item)
        if nbytes <= self._cache_left:
            self._cache[index] = item
            self._cache_left -= nbytes
        return item

    def _cut(self, index: int, starts: Sequence[int]) -> dict[str, Tensor]:
        x1, x2, y = self._item(index)
        sl = tuple(slice(a, a + self.crop) for a in starts)
        return {"vis": x1[(slice(None), *sl)].contiguous(),
                "ir": x2[(slice(None), *sl)].contiguous(), "mask": y[sl].contiguous()}

    def get(self, index: int, generator: torch.Generator) -> dict[str, Tensor]:
        y = self._item(index)[2]
        starts = [int(torch.randint(0, s - self.crop + 1, (1,), generator=generator))
                  for s in y.shape]
        return self._cut(index, starts)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        y = self._item(index)[2]
        return self._cut(index, [(s - self.crop) // 2 for s in y.shape])
