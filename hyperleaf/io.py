"""Image reading and writing, YCrCb conversion, and infrared/visible pair discovery.

Everything here works on NumPy arrays with values in ``[0, 1]``: grey images are ``(H, W)``
float32, colour images ``(H, W, 3)`` float32 RGB. Nothing here imports torch models, so data
loaders and the command line share it.

* :func:`read_gray`, :func:`read_image` -- decode a file (8-bit or 16-bit, grey, palette or
  colour) to float32 in ``[0, 1]``; errors name the file.
* :func:`read_gray_levels` -- for measuring: 8-bit grey files as their exact ``uint8`` levels.
* :func:`rgb_to_ycrcb`, :func:`ycrcb_to_rgb` -- the conversion the SHIP authors use for colour
  visible images (``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cr = 0.713 (R - Y) + 0.5``,
  ``Cb = 0.564 (B - Y) + 0.5`` and back with 1.403 / 0.714 / 0.344 / 1.773).
* :func:`write_png` -- 8-bit PNG, written atomically (temporary file + ``os.replace``).
* :func:`find_pairs`, :func:`find_pairs_in` -- match infrared and visible files: two files, two
  folders of matching names, the TNO/MSRS layout ``DIR/ir/*`` + ``DIR/vi/*``, or the flat
  ``IRk.png`` / ``VISk.png`` naming; :func:`check_pairs` verifies they decode and agree in size.

Example::

    >>> pairs = find_pairs_in("data/tno")          # doctest: +SKIP
    >>> ir = read_gray(pairs[0].ir)                # (H, W) float32 in [0, 1]  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from hyperleaf.atomic import atomic_write
from hyperleaf.deprecation import positional_to_keywords

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageError",
    "ImagePair",
    "check_pairs",
    "find_pairs",
    "find_pairs_in",
    "image_size",
    "is_image_file",
    "list_images",
    "read_gray",
    "read_gray_levels",
    "read_image",
    "rgb_to_ycrcb",
    "to_uint8",
    "write_png",
    "ycrcb_to_rgb",
]

PathLike = Union[str, "os.PathLike[str]"]

#: File name endings treated as images when scanning folders (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# Folder names accepted for the two modalities in the TNO/MSRS layout, most common first.
_IR_DIRS = ("ir", "IR", "infrared", "Infrared", "inf", "lwir")
_VIS_DIRS = ("vi", "VI", "vis", "VIS", "visible", "Visible")
# Flat naming: IR<key>.<ext> beside VIS<key>.<ext> (TNO as shipped in ../shared).
_FLAT_IR = re.compile(r"^(?:IR|ir)(.+)$")
_FLAT_VIS = re.compile(r"^(?:VIS|vis|VI|vi)(.+)$")


class ImageError(ValueError):
    """An image file is missing, unreadable, of an unsupported kind, or has no partner / a
    partner of another size. The message names the file."""


#: "Not passed" for keyword-only modalities (``None`` is a value some callers pass).
_UNSET: Any = object()


@dataclass(frozen=True, init=False)
class ImagePair:
    """One infrared/visible pair: ``name`` is the stem used for outputs (``<name>.png``).

    The modalities are keyword-only, ``ImagePair(name, ir=..., vis=...)``, so that they cannot
    be swapped silently (the networks take the visible image first). The former positional
    ``ImagePair(name, ir, vis)`` still works for one release, with a ``DeprecationWarning``.

    >>> ImagePair("8", ir=Path("IR8.png"), vis=Path("VIS8.png")).vis.name
    'VIS8.png'
    """

    name: str
    ir: Path
    vis: Path

    def __init__(self, name: str, *old: Any, ir: Path = _UNSET, vis: Path = _UNSET):
        if old:
            given = positional_to_keywords("ImagePair", "ImagePair(name, ir=..., vis=...)",
                                           ("ir", "vis"), old, {"ir": ir, "vis": vis},
                                           {"ir": _UNSET, "vis": _UNSET})
            ir, vis = given["ir"], given["vis"]
        if ir is _UNSET or vis is _UNSET:
            raise TypeError("ImagePair: ir and vis are required keywords: "
                            "ImagePair(name, ir=..., vis=...)")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "ir", ir)
        object.__setattr__(self, "vis", vis)


# --------------------------------------------------------------------------- reading


def _decode(path: PathLike) -> Image.Image:
    p = Path(path)
    if not p.exists():
        raise ImageError(f"image file not found: {p}")
    if not p.is_file():
        raise ImageError(f"not a file (expected an image): {p}")
    try:
        im = Image.open(p)
        im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read image {p}: {exc}") from exc
    return im


def _to_float(im: Image.Image, path: PathLike) -> np.ndarray:
    """Decoded PIL image -> float32 in [0, 1], (H, W) for grey or (H, W, 3) for colour."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grey PNG/TIFF; PIL reports some of them as "I" (32-bit container).
        a = np.asarray(im, dtype=np.float64) / 65535.0
        return np.clip(a, 0.0, 1.0).astype(np.float32)
    if mode == "F":
        raise ImageError(f"cannot read image {path}: floating-point images (mode F) are not "
                         "supported; expected 8- or 16-bit grey or RGB")
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.float32) / np.float32(255.0)
    if mode == "LA":
        return np.asarray(im.getchannel("L"), dtype=np.float32) / np.float32(255.0)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    try:
        # RGB, RGBA, CMYK, YCbCr, ...: to 8-bit RGB (alpha dropped).
        return np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    except (ValueError, OSError) as exc:  # exotic PIL modes
        raise ImageError(f"cannot read image {path}: unsupported mode {mode}") from exc


def read_image(path: PathLike) -> np.ndarray:
    """Read an image as float32 in ``[0, 1]``.

    Returns ``(H, W)`` for grey files (8-bit ``L``, 1-bit, 16-bit) and ``(H, W, 3)`` RGB for
    colour or palette files (alpha is dropped). 8-bit values are divided by 255, 16-bit by
    65535. Raises :class:`ImageError` naming the file if it is missing or cannot be decoded.

    Example::

        >>> img = read_image("VIS1.png")   # doctest: +SKIP
        >>> img.shape, img.dtype           # doctest: +SKIP
        ((270, 360), dtype('float32'))
    """
    im = _decode(path)
    return _to_float(im, path)


def read_gray(path: PathLike) -> np.ndarray:
    """Read an image as grey float32 ``(H, W)`` in ``[0, 1]``.

    Grey files are returned as stored (``/255``); colour files are reduced to their luminance
    ``Y = 0.299 R + 0.587 G + 0.114 B`` (the Y of :func:`rgb_to_ycrcb`), computed in float, not
    PIL's rounded 8-bit ``convert("L")``.
    """
    a = read_image(path)
    if a.ndim == 3:
        a = rgb_to_ycrcb(a)[..., 0]
    return np.ascontiguousarray(a, dtype=np.float32)


def read_gray_levels(path: PathLike) -> np.ndarray:
    """Read an image for measuring: exact 8-bit grey levels where the file has them.

    Returns ``(H, W)`` ``uint8`` for 8-bit grey files (``L``, 1-bit, ``LA``, grey palettes):
    the stored integers, with no float round trip, so that metrics computed on them equal the
    metrics of the same ``uint8`` array. Other files give float64 in ``[0, 1]``: colour files
    their luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` computed in float64 from the 8-bit RGB
    values, 16-bit files ``value / 65535``.

    Example::

        >>> levels = read_gray_levels("IR1.png")   # doctest: +SKIP
        >>> levels.dtype                            # doctest: +SKIP
        dtype('uint8')
    """
    im = _decode(path)
    mode = im.mode
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    if mode == "LA":
        return np.asarray(im.getchannel("L"), dtype=np.uint8).copy()
    if mode == "P":
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return rgb[..., 0].copy()  # a grey palette: its levels are the image
    a = _to_float(im, path)
    if a.ndim == 2:  # 16-bit grey (float32 from _to_float): redo in float64
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            return np.clip(np.asarray(im, dtype=np.float64) / 65535.0, 0.0, 1.0)
        return a.astype(np.float64)
    rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(y / 255.0, 0.0, 1.0)


def image_size(path: PathLike) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header (no full decode)."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"image file not found: {p}")
    try:
        with Image.open(p) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot read image {p}: {exc}") from exc
    return int(h), int(w)


# --------------------------------------------------------------------------- colour


def _stack_last(parts: Sequence[Any], like: Any) -> Any:
    if isinstance(like, np.ndarray):
        return np.stack(parts, axis=-1)
    import torch  # only when a tensor was given

    return torch.stack(list(parts), dim=-1)


def _check_rgb(x: Any, name: str) -> None:
    if getattr(x, "ndim", 0) < 1 or x.shape[-1] != 3:
        raise ValueError(f"{name}: expected an array with 3 channels last (..., 3), "
                         f"got shape {tuple(getattr(x, 'shape', ()))}")


def rgb_to_ycrcb(rgb: Any) -> Any:
    """RGB ``(..., 3)`` in ``[0, 1]`` -> YCrCb ``(..., 3)`` (channel order Y, Cr, Cb).

    ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cr = 0.713 (R - Y) + 0.5``,
    ``Cb = 0.564 (B - Y) + 0.5`` -- the SHIP authors' formulas. Works on NumPy arrays and torch
    tensors (channels last) and keeps the input's float dtype.

    Example::

        >>> rgb_to_ycrcb(np.array([1.0, 1.0, 1.0]))  # white: Y = 1, no chroma
        array([1. , 0.5, 0.5])
    """
    _check_rgb(rgb, "rgb")
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = (r - y) * 0.713 + 0.5
    cb = (b - y) * 0.564 + 0.5
    return _stack_last([y, cr, cb], rgb)


def ycrcb_to_rgb(ycrcb: Any) -> Any:
    """YCrCb ``(..., 3)`` (order Y, Cr, Cb) -> RGB ``(..., 3)``, the inverse used by SHIP.

    ``R = Y + 1.403 (Cr - 0.5)``, ``G = Y - 0.714 (Cr - 0.5) - 0.344 (Cb - 0.5)``,
    ``B = Y + 1.773 (Cb - 0.5)``. Not clamped: clamp before writing (:func:`write_png` does).
    """
    _check_rgb(ycrcb, "ycrcb")
    y, cr, cb = ycrcb[..., 0], ycrcb[..., 1], ycrcb[..., 2]
    r = y + 1.403 * (cr - 0.5)
    g = y - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5)
    b = y + 1.773 * (cb - 0.5)
    return _stack_last([r, g, b], ycrcb)


# --------------------------------------------------------------------------- writing


def to_uint8(array: Any) -> np.ndarray:
    """Float image in ``[0, 1]`` (clamped, rounded half to even) or uint8 -> uint8 array."""
    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().cpu().numpy()
    a = np.asarray(array)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"array: expected a float image in [0, 1] or uint8, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"array: integer images must be uint8, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise ValueError("array: image contains NaN or infinite values")
    return np.rint(np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def write_png(path: PathLike, array: Any) -> Path:
    """Write ``array`` as an 8-bit PNG at ``path``, atomically.

    ``array``: ``(H, W)`` grey, ``(H, W, 1)`` or ``(H, W, 3)`` RGB; float in ``[0, 1]`` (clamped
    and rounded to the nearest of 0..255) or uint8; NumPy or torch. The image goes to a
    temporary file in the same folder first and is renamed over ``path`` with ``os.replace``,
    so a reader never sees a half-written file. The parent folder must exist.

    Example::

        >>> write_png(tmp / "fused.png", np.zeros((4, 5), np.float32))   # doctest: +SKIP
    """
    p = Path(path)
    a = to_uint8(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3)) or a.size == 0:
        raise ValueError(f"array: expected (H, W), (H, W, 1) or (H, W, 3), got {a.shape}")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {p.parent}")
    image = Image.fromarray(np.ascontiguousarray(a))
    return atomic_write(p, lambda fh: image.save(fh, format="PNG"))


# --------------------------------------------------------------------------- pairs


def is_image_file(path: PathLike) -> bool:
    """True for a visible (non-dot) file whose name ends in one of :data:`IMAGE_EXTENSIONS`."""
    p = Path(path)
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted naturally (``2`` before ``10``)."""
    d = Path(folder)
    if not d.is_dir():
        raise ImageError(f"not a folder: {d}")
    return sorted((p for p in d.iterdir() if is_image_file(p)), key=lambda p: _natural(p.name))


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _keyed(files: Iterable[Path], pattern: re.Pattern[str] | None) -> dict[str, Path]:
    """Map each file to its matching key (stem, or the part after an IR/VIS prefix)."""
    out: dict[str, Path] = {}
    for f in files:
        key = f.stem
        if pattern is not None:
            m = pattern.match(key)
            if m is None:
                continue
            key = m.group(1)
        if key in out:
            raise ImageError(f"two images share the name {key!r}: {out[key]} and {f}")
        out[key] = f
    return out


def _match(ir: dict[str, Path], vis: dict[str, Path], ir_where: Path, vis_where: Path
           ) -> list[ImagePair]:
    for key, f in ir.items():
        if key not in vis:
            raise ImageError(f"no visible partner for infrared image {f} in {vis_where}")
    for key, f in vis.items():
        if key not in ir:
            raise ImageError(f"no infrared partner for visible image {f} in {ir_where}")
    keys = sorted(ir, key=_natural)
    return [ImagePair(name=k, ir=ir[k], vis=vis[k]) for k in keys]


def _flat(folder: Path) -> list[ImagePair] | None:
    files = list_images(folder)
    ir = _keyed((f for f in files if _FLAT_IR.match(f.stem) and not _FLAT_VIS.match(f.stem)),
                _FLAT_IR)
    vis = _keyed((f for f in files if _FLAT_VIS.match(f.stem)), _FLAT_VIS)
    if not ir and not vis:
        return None
    return _match(ir, vis, folder, folder)


def _pair_name(ir_stem: str, vis_stem: str) -> str:
    """The name of a pair given as two files, as the folder modes would name it: the common
    key of the flat naming (``IR8`` + ``VIS8`` -> ``8``), else the common stem, else the
    visible file's stem."""
    m_ir, m_vis = _FLAT_IR.match(ir_stem), _FLAT_VIS.match(vis_stem)
    if m_ir and m_vis and m_ir.group(1) == m_vis.group(1):
        return m_ir.group(1)
    return vis_stem


def find_pairs(ir: PathLike, vis: PathLike) -> list[ImagePair]:
    """Match infrared and visible images.

    * two files: one pair, named as the folder modes would name it: ``IR8.png`` +
      ``VIS8.png`` -> ``8``, ``ir/00012.png`` + ``vi/00012.png`` -> ``00012``; else after the
      visible file's stem;
    * two folders: files are matched by stem (``ir/00012.png`` with ``vi/00012.jpg``), or, if
      the folders use the flat naming, ``IRk.*`` with ``VISk.*`` (pair name ``k``);
    * the same folder twice: the flat ``IRk`` / ``VISk`` naming inside it.

    Every image must have a partner: otherwise :class:`ImageError` names the file without one.
    Pairs come back in natural order of their names. Sizes are not checked here (see
    :func:`check_pairs`).

    Example::

        >>> find_pairs(ir="MSRS/test/ir", vis="MSRS/test/vi")[0]    # doctest: +SKIP
        ImagePair(name='00001D', ir=PosixPath('MSRS/test/ir/00001D.png'), ...)
    """
    ir_p, vis_p = Path(ir), Path(vis)
    for label, p in (("ir", ir_p), ("vis", vis_p)):
        if not p.exists():
            raise ImageError(f"{label}: no such file or folder: {p}")
    if ir_p.is_file() and vis_p.is_file():
        return [ImagePair(name=_pair_name(ir_p.stem, vis_p.stem), ir=ir_p, vis=vis_p)]
    if ir_p.is_file() != vis_p.is_file():
        raise ImageError(f"ir, vis: must both be files or both folders: got {ir_p} and "
                         f"{vis_p}")
    if ir_p.resolve() == vis_p.resolve():
        pairs = _flat(ir_p)
        if pairs is None:
            raise ImageError(f"{ir_p}: no IRk/VISk image pairs in this folder")
        return pairs
    ir_files, vis_files = list_images(ir_p), list_images(vis_p)
    if not ir_files:
        raise ImageError(f"ir: no images in {ir_p}")
    if not vis_files:
        raise ImageError(f"vis: no images in {vis_p}")
    ir_stems = {f.stem for f in ir_files}
    vis_stems = {f.stem for f in vis_files}
    flat = (
        not (ir_stems & vis_stems)
        and all(_FLAT_IR.match(s) for s in ir_stems)
        and all(_FLAT_VIS.match(s) for s in vis_stems)
    )
    if flat:
        return _match(_keyed(ir_files, _FLAT_IR), _keyed(vis_files, _FLAT_VIS), ir_p, vis_p)
    return _match(_keyed(ir_files, None), _keyed(vis_files, None), ir_p, vis_p)


def find_pairs_in(data_dir: PathLike) -> list[ImagePair]:
    """Pairs in a dataset folder: ``DIR/ir/*`` + ``DIR/vi/*`` (TNO/MSRS layout; ``vis``,
    ``visible``, ``infrared`` ... also accepted) or the flat ``DIR/IRk.*`` + ``DIR/VISk.*``."""
    d = Path(data_dir)
    if not d.is_dir():
        raise ImageError(f"data_dir: not a folder: {d}")
    ir_dir = next((d / n for n in _IR_DIRS if (d / n).is_dir()), None)
    vis_dir = next((d / n for n in _VIS_DIRS if (d / n).is_dir()), None)
    if ir_dir is not None and vis_dir is not None:
        return find_pairs(ir_dir, vis_dir)
    pairs = _flat(d)
    if pairs is None:
        raise ImageError(
            f"data_dir: {d} has neither ir/ + vi/ sub-folders nor IRk/VISk image pairs"
        )
    return pairs


def check_pairs(pairs: Sequence[ImagePair], decode: bool = True) -> None:
    """Verify every file of ``pairs`` can be read and each pair agrees in size.

    ``decode=True`` fully decodes each file (catches truncated files); ``False`` reads headers
    only. Raises :class:`ImageError` naming the first bad file.
    """
    for pair in pairs:
        sizes = []
        for f in (pair.ir, pair.vis):
            if decode:
                im = _decode(f)
                sizes.append((im.size[1], im.size[0]))
            else:
                sizes.append(image_size(f))
        if sizes[0] != sizes[1]:
            raise ImageError(
                f"size mismatch: infrared {pair.ir} is {sizes[0][0]}x{sizes[0][1]} (HxW) but "
                f"visible {pair.vis} is {sizes[1][0]}x{sizes[1][1]}"
            )


def select_pairs(ir: PathLike | None = None, vis: PathLike | None = None,
                 data: PathLike | None = None) -> list[ImagePair]:
    """The pairs a command line names: ``data`` (a dataset folder) or ``ir`` + ``vis``
    (files or folders), never both; raises ``ValueError`` naming the arguments otherwise."""
    if data and (ir or vis):
        raise ValueError("data: give either `data` or `ir` and `vis`, not both")
    if data:
        return find_pairs_in(data)
    if ir and vis:
        return find_pairs(ir=ir, vis=vis)
    raise ValueError("ir, vis: give `ir` and `vis` (files or folders), or `data` (a dataset "
                     "folder)")
