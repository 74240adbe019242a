r"""Multimodal segmentation folders: the MSRS and WHU-OPT-SAR layouts of the LEAF authors'
loaders, and a generic layout with any number of modalities, 2-D slices or NIfTI volumes.

Layouts (``layout="auto"`` picks by the folder names, in this order):

* ``"msrs"``: ``vi/``, ``ir/``, ``Segmentation_labels/`` (``.png``, same names); images to RGB
  (IR repeated to 3 channels), labels 0..8 as stored (9 classes).
* ``"whu"``: ``optical256/``, ``sar256/``, ``label256/`` (``.tif``); images to RGB, labels
  **divided by 10** (0..7, 8 classes); a label value that is not a multiple of 10 is an error.
* ``"generic"``: one folder per modality plus a label folder (``label/``, or another of
  :data:`LABEL_NAMES` up to case, or ``label=``); ``M >= 2`` modalities, in sorted order
  unless ``modalities=`` gives it; files matched by name.
* ``"flat"``: files named ``CASE_MODALITY.ext`` (split at the last ``_``), either all in the
  folder itself (``p07_FLAIR.nii.gz``, ``p07_T1.nii.gz``, ``p07_GT.nii.gz``) or in one
  sub-folder per case (``case1/case1_flair.nii.gz``, ...); the label is the suffix named as in
  :data:`LABEL_NAMES` (``GT``, ``seg``, ``label``, ...; up to case) or ``label=``.

Files are 2-D images (``.png``, ``.tif``, ``.jpg``, ``.bmp``: grey -> 1 channel, colour -> 3)
or NIfTI volumes (``.nii``, ``.nii.gz``, read with nibabel, scaled per volume to [0, 1] by its
maximum, -> ``(1, D, H, W)``).

The number of classes: MSRS 9 and WHU-OPT-SAR 8 (:data:`LAYOUT_NUM_CLASSES`); the generic and
flat layouts infer it from the labels (largest value + 1) unless ``num_classes`` is given.

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
from PIL import Image
from torch import Tensor

__all__ = ["SegmentationFolder", "SegmentationDataError", "LAYOUTS", "LAYOUT_NUM_CLASSES",
           "LABEL_NAMES", "group_modalities", "default_groups", "SegmentationItems",
           "SegmentationCrops"]

#: The fixed layouts: ``name -> (modality folders, label folder)``.
LAYOUTS = {
    "msrs": (("vi", "ir"), "Segmentation_labels"),
    "whu": (("optical256", "sar256"), "label256"),
}
#: The class count each fixed layout declares (the default ``num_classes``).
LAYOUT_NUM_CLASSES = {"msrs": 9, "whu": 8}
#: Names (compared in lower case) a generic layout's label folder or a flat layout's label
#: suffix may have, when ``label=`` does not name it.
LABEL_NAMES = ("label", "labels", "seg", "segmentation", "gt", "mask", "masks")
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


def _data_files(folder: Path) -> dict[str, Path]:
    return {_stem(p): p for p in folder.iterdir() if _is_data(p)}


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


def _resolve_names(wanted: Sequence[str], available: Sequence[str], where: str) -> tuple:
    # exact name first, else the one name equal up to case (FLAIR for flair); else an error
    # naming what exists
    out = []
    for w in wanted:
        if w in available:
            out.append(w)
            continue
        same = [a for a in available if a.lower() == str(w).lower()]
        if len(same) != 1:
            raise SegmentationDataError(f"{where}: no modality {w!r} (found "
                                        f"{', '.join(sorted(available)) or 'none'})")
        out.append(same[0])
    return tuple(out)


def _pick_label(names: Sequence[str], label: str | None, where: str, what: str) -> str:
    """The label folder/suffix among ``names``: ``label`` (up to case) or the one of
    :data:`LABEL_NAMES` present."""
    if label is not None:
        return _resolve_names([label], names, where)[0]
    found = [n for n in names if n.lower() in LABEL_NAMES]
    if len(found) != 1:
        raise SegmentationDataError(
            f"{where}: {'no' if not found else 'more than one'} label {what} "
            f"({', '.join(found) if found else 'expected one named ' + '/'.join(LABEL_NAMES)}); "
            f"name it with label=")
    return found[0]


class SegmentationFolder(torch.utils.data.Dataset):
    """A folder of co-registered modalities and labels (see the module docstring).

    Args:
        root: the folder.
        layout: ``"auto"``, ``"msrs"``, ``"whu"``, ``"generic"`` or ``"flat"``.
        modalities: generic / flat layouts: the modality folder names (suffixes) in order,
            matched exactly or else up to case (default: every one but the label, sorted); at
            least 2.
        num_classes: labels must lie in ``[0, num_classes)``. Default: the layout's count
            (:data:`LAYOUT_NUM_CLASSES`: MSRS 9, WHU-OPT-SAR 8); generic and flat layouts infer
            it from the labels (largest value + 1, at least 2; labels that leave more than half
            of those values unused, such as 0/255 masks, are refused: give it then).
        size: ``(H, W)`` to resize 2-D items to (the authors: 256x256), or ``None``.
        check: ``"all"`` reads every file once at construction (sizes, partners, label range);
            ``"names"`` only matches names (files are checked when read; an inferred
            ``num_classes`` still reads every label once).
        label: generic / flat layouts: the label folder (suffix); default the one named as in
            :data:`LABEL_NAMES`, up to case.
    """

    def __init__(self, root: str | Path, layout: str = "auto",
                 modalities: Sequence[str] | None = None, num_classes: int | None = None,
                 size: tuple[int, int] | None = None, check: str = "all",
                 label: str | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SegmentationDataError(f"{self.root}: no such data folder")
        if check not in ("all", "names"):
            raise ValueError(f"check must be 'all' or 'names', got {check!r}")
        if num_classes is not None and (isinstance(num_classes, bool)
                                        or not isinstance(num_classes, int) or num_classes < 2):
            raise ValueError(f"num_classes must be an int >= 2 or None, got {num_classes!r}")
        if size is not None and (len(size) != 2 or not all(int(s) >= 1 for s in size)):
            raise ValueError(f"size must be (H, W) of ints >= 1, got {size!r}")
        if layout == "auto":
            layout = self._detect()
        if layout in LAYOUTS:
            mods, label_key = LAYOUTS[layout]
            if modalities is not None and tuple(modalities) != mods:
                raise ValueError(f"layout {layout!r} has the modalities {mods}")
            for d in (*mods, label_key):
                if not (self.root / d).is_dir():
                    raise SegmentationDataError(f"{self.root / d}: missing folder (layout "
                                                f"{layout!r})")
            files = {d: _data_files(self.root / d) for d in (*mods, label_key)}
        elif layout == "generic":
            mods, label_key, files = self._generic(modalities, label)
        elif layout == "flat":
            mods, label_key, files = self._flat(modalities, label)
        else:
            raise ValueError(f"layout must be 'auto', 'msrs', 'whu', 'generic' or 'flat', got "
                             f"{layout!r}")
        if len(mods) < 2:
            raise SegmentationDataError(f"{self.root}: needs at least 2 modality "
                                        f"{'suffixes' if layout == 'flat' else 'folders'}, found "
                                        f"{list(mods)}")
        self.layout, self.modalities, self.label_dir = layout, mods, label_key
        self.size = None if size is None else tuple(size)

        names = sorted(files[mods[0]])  # sorted: the authors' os.listdir order is arbitrary
        if not names:
            raise SegmentationDataError(f"{self._where(mods[0])}: no image or NIfTI files")
        for d in (*mods[1:], label_key):
            for n in names:
                if n not in files[d]:
                    raise SegmentationDataError(f"{files[mods[0]][n]}: no partner in "
                                                f"{self._where(d)} (expected a file named "
                                                f"{self._file_name(n, d)}.*)")
            extra = sorted(set(files[d]) - set(names))
            if extra:
                raise SegmentationDataError(f"{files[d][extra[0]]}: no partner in "
                                            f"{self._where(mods[0])}")
        self.items = [([files[d][n] for d in mods], files[label_key][n]) for n in names]
        self.names = names
        self.num_classes = num_classes if num_classes is not None else (
            LAYOUT_NUM_CLASSES.get(layout))
        #: True when ``num_classes`` was inferred from the labels (generic / flat layouts)
        self.num_classes_inferred = self.num_classes is None
        if self.num_classes is None:
            self.num_classes = self._infer_num_classes()
        if check == "all":
            for i in range(len(self.items)):
                self[i]

    def _detect(self) -> str:
        for name, (mods, lab) in LAYOUTS.items():
            if all((self.root / d).is_dir() for d in (*mods, lab)):
                return name
        subdirs = [d.name for d in self.root.iterdir() if d.is_dir()
                   and not d.name.startswith(".")]
        if any(d.lower() in LABEL_NAMES for d in subdirs):
            return "generic"
        if any(_is_data(p) for p in self.root.iterdir()):
            return "flat"  # files CASE_MODALITY.ext in the folder itself
        if subdirs and all(any(_is_data(p) and "_" in _stem(p)
                               for p in (self.root / d).iterdir()) for d in subdirs):
            return "flat"  # one folder per case of CASE_MODALITY.ext files
        raise SegmentationDataError(
            f"{self.root}: no segmentation layout recognised: expected MSRS (vi/ ir/ "
            f"Segmentation_labels/), WHU-OPT-SAR (optical256/ sar256/ label256/), modality "
            f"folders + a label folder ({'/'.join(LABEL_NAMES)}), or CASE_MODALITY files")

    def _generic(self, modalities, label):
        subdirs = sorted(d.name for d in self.root.iterdir()
                         if d.is_dir() and not d.name.startswith("."))
        label_key = _pick_label(subdirs, label, str(self.root), "folder")
        rest = [d for d in subdirs if d != label_key]
        mods = tuple(rest) if modalities is None else _resolve_names(modalities, rest,
                                                                      str(self.root))
        return mods, label_key, {d: _data_files(self.root / d) for d in (*mods, label_key)}

    def _flat(self, modalities, label):
        paths = [p for p in self.root.iterdir() if _is_data(p)]
        if not paths:  # one sub-folder per case
            paths = [p for d in sorted(self.root.iterdir()) if d.is_dir()
                     and not d.name.startswith(".") for p in d.iterdir() if _is_data(p)]
        files: dict[str, dict[str, Path]] = {}
        for p in sorted(paths):
            case, sep, key = _stem(p).rpartition("_")
            if not sep or not case or not key:
                raise SegmentationDataError(f"{p}: expected a name CASE_MODALITY.ext (flat "
                                            f"layout), e.g. p01_flair.nii.gz")
            if case in files.setdefault(key, {}):
                raise SegmentationDataError(f"{p}: a second file of case {case!r}, modality "
                                            f"{key!r} (also {files[key][case]})")
            files[key][case] = p
        label_key = _pick_label(sorted(files), label, str(self.root), "suffix")
        rest = sorted(k for k in files if k != label_key)
        mods = tuple(rest) if modalities is None else _resolve_names(modalities, rest,
                                                                      str(self.root))
        return mods, label_key, {k: files[k] for k in (*mods, label_key)}

    def _where(self, key: str) -> str:
        return f"{self.root}/ (_{key} files)" if self.layout == "flat" else f"{self.root / key}/"

    def _file_name(self, name: str, key: str) -> str:
        return f"{name}_{key}" if self.layout == "flat" else name

    def _infer_num_classes(self) -> int:
        top, seen, worst = 0, set(), None
        for _, label_path in self.items:
            lab = self._read_label(label_path, check_range=False)
            if lab.numel():
                values = torch.unique(lab).tolist()
                seen.update(values)
                if values[0] < 0:
                    raise SegmentationDataError(f"{label_path}: label values must be >= 0, "
                                                f"found {values[0]}")
                if values[-1] >= top:
                    top, worst = values[-1], label_path
        k = max(2, top + 1)
        if k > 2 and 2 * len(seen) < k:
            raise SegmentationDataError(
                f"{worst}: label value {top} but only {len(seen)} distinct values in "
                f"{self.root} ({', '.join(map(str, sorted(seen)[:6]))}...): give the number "
                f"of classes (num_classes), or store the classes as 0..K-1")
        return k

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

    def _read_label(self, path: Path, check_range: bool = True) -> Tensor:
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
        if check_range and lab.size and (lab.min() < 0
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


class SegmentationItems(torch.utils.data.Dataset):
    """Whole items of a :class:`SegmentationFolder` as the two inputs of a dual-encoder network:
    ``{"vis": x1, "ir": x2, "mask": label}`` (the key names of hyperleaf's two-modality tasks;
    ``x1``/``x2`` concatenate the modality ``groups``), at the items' own size (evaluation cuts
    them into tiles, :func:`hyperleaf.tasks.segment.tile_logits`). Decoded items are kept in
    memory up to ``cache_bytes`` (default 2 GiB; later items are read from disk each time).

    Args:
        folder: the data.
        indices: which of ``folder``'s items (a split).
        groups: modality indices of ``x1`` and ``x2`` (see :func:`group_modalities`).
    """

    def __init__(self, folder: SegmentationFolder, indices: Sequence[int],
                 groups: Sequence[Sequence[int]], cache_bytes: int = 2 << 30):
        if not indices:
            raise ValueError("indices: the split is empty")
        self.folder, self.indices = folder, list(indices)
        self.groups = [list(g) for g in groups]
        self.pairs = [Path(folder.names[i]) for i in self.indices]  # names for val samples
        self._cache: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        self._cache_left = int(cache_bytes)

    def __len__(self) -> int:
        return len(self.indices)

    def _prepare(self, x1: Tensor, x2: Tensor, label: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return x1, x2, label

    def _item(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        if index in self._cache:
            return self._cache[index]
        mods, label = self.folder[self.indices[index]]
        item = self._prepare(*group_modalities(mods, self.groups), label)
        nbytes = sum(t.numel() * t.element_size() for t in item)
        if nbytes <= self._cache_left:
            self._cache[index] = item
            self._cache_left -= nbytes
        return item

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        x1, x2, y = self._item(index)
        return {"vis": x1, "ir": x2, "mask": y}


class SegmentationCrops(SegmentationItems):
    """Crops of a :class:`SegmentationFolder` as the two inputs of a dual-encoder network.

    Items are those of :class:`SegmentationItems` cropped to ``crop`` pixels (or voxels) per
    side: ``get(index, generator)`` draws a random crop (training), ``__getitem__`` takes
    the centre crop. Items smaller than ``crop`` are zero-padded (background).

    Lesion-centred sampling (``lesion_fraction`` > 0; small foreground classes such as MS
    lesions, ~0.5 % of open_ms's voxels, are otherwise almost never seen): with probability
    ``lesion_fraction`` (drawn from the generator) the crop is centred on a voxel drawn
    uniformly among the item's foreground voxels (label > 0), shifted by up to ``crop // 4``
    per axis, then moved inside the item; otherwise, and for items without foreground, it is
    uniform. Every draw comes from ``generator``, so a seed gives the same crops.

    Args:
        folder: the data.
        indices: which of ``folder``'s items (a split).
        crop: side of the crops.
        groups: modality indices of ``x1`` and ``x2`` (see :func:`group_modalities`).
        lesion_fraction: share of lesion-centred crops, in [0, 1].
    """

    def __init__(self, folder: SegmentationFolder, indices: Sequence[int], crop: int,
                 groups: Sequence[Sequence[int]], cache_bytes: int = 2 << 30,
                 lesion_fraction: float = 0.0):
        super().__init__(folder, indices, groups, cache_bytes)
        self.crop = int(crop)
        if not 0.0 <= float(lesion_fraction) <= 1.0:
            raise ValueError(f"lesion_fraction: expected a value in [0, 1], got "
                             f"{lesion_fraction!r}")
        self.lesion_fraction = float(lesion_fraction)
        self._foreground: dict[int, Tensor] = {}

    def _prepare(self, x1: Tensor, x2: Tensor, label: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        size = [self.crop] * label.dim()
        return _pad_to(x1, size), _pad_to(x2, size), _pad_to(label, size)

    def _cut(self, index: int, starts: Sequence[int]) -> dict[str, Tensor]:
        x1, x2, y = self._item(index)
        sl = tuple(slice(a, a + self.crop) for a in starts)
        return {"vis": x1[(slice(None), *sl)].contiguous(),
                "ir": x2[(slice(None), *sl)].contiguous(), "mask": y[sl].contiguous()}

    def foreground(self, index: int) -> Tensor:
        """``(P, dims)`` positions of item ``index``'s voxels with label > 0 (after padding)."""
        if index not in self._foreground:
            self._foreground[index] = (self._item(index)[2] > 0).nonzero()
        return self._foreground[index]

    def get(self, index: int, generator: torch.Generator) -> dict[str, Tensor]:
        y = self._item(index)[2]
        if self.lesion_fraction > 0:
            lesion = float(torch.rand((), generator=generator)) < self.lesion_fraction
            fg = self.foreground(index) if lesion else None
            if fg is not None and len(fg):
                centre = fg[int(torch.randint(0, len(fg), (1,), generator=generator))]
                j = self.crop // 4
                starts = []
                for c, s in zip(centre.tolist(), y.shape, strict=True):
                    shift = int(torch.randint(-j, j + 1, (1,), generator=generator)) if j else 0
                    starts.append(min(max(c + shift - self.crop // 2, 0), s - self.crop))
                return self._cut(index, starts)
        starts = [int(torch.randint(0, s - self.crop + 1, (1,), generator=generator))
                  for s in y.shape]
        return self._cut(index, starts)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        y = self._item(index)[2]
        return self._cut(index, [(s - self.crop) // 2 for s in y.shape])
