r"""Pan-sharpening data: PanCollection HDF5, MATLAB ``.mat`` and GeoTIFF PAN + MS pairs.

:class:`PanCollection` reads every layout the community uses into one form: per sample
``{"pan": (1, H, W), "ms": (C, H/r, W/r), "lms": (C, H, W)[, "gt": (C, H, W)]}`` float tensors
divided by the sensor's scale (the largest digital number: 2047 for 11-bit WorldView-3 or
QuickBird, 1023 for 10-bit GaoFen-2, 255 for 8-bit products), ``r`` the resolution ratio.

Layouts (``path``):

* HDF5 (``.h5``/``.hdf5``), the PanCollection layout: datasets ``pan`` (N, 1, H, W), ``ms``
  (N, C, h, w; or ``lrms``), ``lms`` (N, C, H, W) and, at reduced resolution, ``gt``
  (N, C, H, W); attributes ``scale``/``max_value``/``L``; read one sample at a time (files of
  several GB stay on disk).
* MATLAB ``.mat`` (v5 through SciPy, v7.3 through h5py), bands last: the toolbox's / Z-PNN's
  ``I_PAN`` (H, W), ``I_MS_LR`` (h, w, C), ``I_MS`` (H, W, C, the MS interpolated to the PAN
  grid, or at MS size when ``I_MS_LR`` is absent) and, at reduced resolution, ``I_GT``; or the
  PanCollection names ``pan``, ``ms`` or ``lrms`` (the low-resolution MS), ``lms``, ``gt``.
  A variable ``L`` (bits per pixel) gives the scale ``2**L - 1``; ``sensor`` is read into
  :attr:`PanCollection.sensor`.
* A PAN + MS pair, as a tuple ``(pan_file, ms_file)`` or a folder: GeoTIFF (``.tif``, read with
  tifffile, the ``pan`` extra) or one-array ``.mat`` files (e.g. ``K_pan.mat`` + ``K_ms.mat``).
  A folder holds ``pan.tif`` + ``ms.tif`` or any number of ``*pan*`` / ``*ms*`` partners.
  Full resolution: no ``gt``; ``lms`` is computed with the 23-tap interpolation.

Scale (``scale=None``): the HDF5/``.mat`` attribute or variable ``scale`` (or ``max_value``, or
``2**L - 1`` from a bit depth ``L``) when present; otherwise ``2**k - 1`` for the smallest
``k`` in 8, 10, 11, 12, 14, 16 that covers the largest MS value (``uint8`` data: 255).
``scale_source`` says which rule applied. Data already in [0, 1] (floating point, largest MS
value <= 1, e.g. the CDIF Pleiades file) are not divided again (``scale`` 1); their
digital-number scale :attr:`PanCollection.dn_scale` (what the toolbox's Q2n rounds) is then
the explicit ``scale=`` or ``2**L - 1``, else unknown (None). For any other data ``dn_scale``
equals ``scale``.

Example::

    >>> ds = PanCollection("wv3_rr100.h5")                       # doctest: +SKIP
    >>> ds.scale, ds.ratio, ds[0]["lms"].shape                   # doctest: +SKIP
    (2047.0, 4, torch.Size([8, 64, 64]))
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hyperleaf.pansharpen.filters import interp23, interpolate

__all__ = ["FUSED_SUFFIXES", "PanCollection", "infer_scale", "match_files", "read_image"]

#: File types of fused images that :func:`read_image` reads.
FUSED_SUFFIXES = (".npy", ".mat", ".tif", ".tiff", ".h5", ".hdf5")

_BITS = (8, 10, 11, 12, 14, 16)
_H5 = (".h5", ".hdf5")
_TIF = (".tif", ".tiff")


def _need(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"reading this file needs {module}: pip install 'hyperleaf[pan]'"
                          ) from exc


def infer_scale(max_value: float, dtype: np.dtype | None = None) -> float:
    """``2**k - 1`` for the smallest ``k`` in (8, 10, 11, 12, 14, 16) with ``2**k - 1 >= max``.

    >>> infer_scale(2047.0), infer_scale(900), infer_scale(3, np.dtype("uint8"))
    (2047.0, 1023.0, 255.0)
    """
    if dtype is not None and np.dtype(dtype) == np.uint8:
        return 255.0
    if not np.isfinite(max_value) or max_value < 0:
        raise ValueError(f"cannot infer a scale from a largest value of {max_value}")
    for k in _BITS:
        if max_value <= 2 ** k - 1:
            return float(2 ** k - 1)
    raise ValueError(f"largest value {max_value} exceeds 16 bits: pass scale=")


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


class _Source:
    """One readable collection of samples (numpy float64 arrays, channels first, DN units)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, i: int) -> dict[str, np.ndarray]:
        raise NotImplementedError


class _H5Source(_Source):
    def __init__(self, path: Path) -> None:
        h5py = _need("h5py")
        self.path = path
        with h5py.File(path, "r") as f:
            #: sample key -> dataset name (``lrms`` is read as ``ms`` when ``ms`` is absent)
            self.names = {k: k for k in ("gt", "lms", "ms", "pan") if k in f}
            if "ms" not in f and "lrms" in f:
                self.names["ms"] = "lrms"
            missing = [k for k in ("pan", "ms") if k not in self.names]
            if missing:
                raise ValueError(f"{path}: not a PanCollection file (missing datasets "
                                 f"{missing}; has {sorted(f)})")
            self.keys = list(self.names)
            n = f["pan"].shape[0]
            for k in self.keys:
                d = f[self.names[k]]
                if d.ndim != 4 or d.shape[0] != n:
                    raise ValueError(f"{path}: dataset {self.names[k]!r} has shape {d.shape}, "
                                     f"expected (N={n}, C, H, W)")
            if f["pan"].shape[1] != 1:
                raise ValueError(f"{path}: 'pan' must have one band, got {f['pan'].shape}")
            self.n = n
            self.attr_scale = _mat_scale({k: f.attrs[k] for k in f.attrs})
            self.dtype = f[self.names["ms"]].dtype
            self._max = None
        self._file = None

    def max_ms(self) -> float:
        if self._max is None:
            h5py = _need("h5py")
            with h5py.File(self.path, "r") as f:
                d, m = f[self.names["ms"]], -np.inf
                step = max(1, 4096 // max(1, int(np.prod(d.shape[1:])) // 4096 + 1))
                for s in range(0, d.shape[0], step):
                    m = max(m, float(np.max(d[s:s + step])))
            self._max = m
        return self._max

    def __len__(self) -> int:
        return self.n

    def read(self, i: int) -> dict[str, np.ndarray]:
        if self._file is None:
            self._file = _need("h5py").File(self.path, "r")
        return {k: np.asarray(self._file[self.names[k]][i], dtype=np.float64)
                for k in self.keys}

    def __getstate__(self) -> dict:  # DataLoader workers reopen the file
        st = dict(self.__dict__)
        st["_file"] = None
        return st


class _MemorySource(_Source):
    def __init__(self, samples: list[dict[str, np.ndarray]], dtype, attr_scale=None) -> None:
        self.samples = samples
        self.dtype = dtype
        self.attr_scale = attr_scale

    def max_ms(self) -> float:
        return max(float(np.max(s["ms"])) for s in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, i: int) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float64) for k, v in self.samples[i].items()}


def _loadmat(path: Path) -> dict[str, np.ndarray]:
    """Variables of a .mat file, bands last as MATLAB stores them (v7.3 transposed back)."""
    h5py = None
    try:
        import h5py  # noqa: F811 - optional
    except ImportError:
        pass
    if h5py is not None and h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            return {k: np.asarray(f[k]).T for k in f if isinstance(f[k], h5py.Dataset)}
    sio = _need("scipy.io")
    try:
        m = sio.loadmat(path)
    except Exception as exc:  # scipy raises several types for corrupt files
        raise ValueError(f"{path}: not a readable .mat file ({exc})") from exc
    return {k: v for k, v in m.items() if not k.startswith("__")}


def _chw(a: np.ndarray, name: str, bands_last: bool) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        return a[None]
    if a.ndim != 3:
        raise ValueError(f"{name}: expected a 2-D or 3-D image, got shape {a.shape}")
    return np.moveaxis(a, -1, 0) if bands_last else a


def _mat_sample(path: Path) -> tuple[dict[str, np.ndarray], float | None, np.dtype]:
    m = _loadmat(path)
    if "I_PAN" not in m:
        lower = {k.lower(): k for k in m}
        if "pan" in lower and ("ms" in lower or "lrms" in lower):
            scale = _mat_scale(m)
            m = {k.lower(): v for k, v in m.items()}
            if "ms" not in m:
                m["ms"] = m["lrms"]
            out = {k: _chw(m[k], f"{path}:{k}", True) for k in ("gt", "lms", "ms", "pan")
                   if k in m}
            return out, scale, np.asarray(m["ms"]).dtype
        raise ValueError(f"{path}: expected variables I_PAN and I_MS/I_MS_LR (toolbox, Z-PNN) or "
                         f"pan and ms/lrms (PanCollection), got {sorted(m)}")
    pan = _chw(m["I_PAN"], f"{path}:I_PAN", True)
    out: dict[str, np.ndarray] = {"pan": pan}
    if "I_MS_LR" in m:
        out["ms"] = _chw(m["I_MS_LR"], f"{path}:I_MS_LR", True)
        if "I_MS" in m:
            out["lms"] = _chw(m["I_MS"], f"{path}:I_MS", True)
    elif "I_MS" in m:
        ms = _chw(m["I_MS"], f"{path}:I_MS", True)
        out["lms" if ms.shape[-2:] == pan.shape[-2:] else "ms"] = ms
    else:
        raise ValueError(f"{path}: has I_PAN but neither I_MS_LR nor I_MS")
    if "ms" not in out:
        raise ValueError(f"{path}: I_MS is at PAN size and I_MS_LR is missing (the "
                         "low-resolution MS is needed)")
    if "I_GT" in m:
        out["gt"] = _chw(m["I_GT"], f"{path}:I_GT", True)
    return out, _mat_scale(m), np.asarray(m.get("I_MS_LR", m.get("I_MS"))).dtype


def _mat_scale(m: dict[str, Any]) -> float | None:
    """``scale`` / ``max_value`` when stored, else ``2**L - 1`` from a bit depth ``L``."""
    for key in ("scale", "max_value"):
        if key in m:
            return float(np.asarray(m[key]).ravel()[0])
    if "L" in m:
        bits = float(np.asarray(m["L"]).ravel()[0])
        if not (bits.is_integer() and 1 <= bits <= 32):
            raise ValueError(f"L: expected the bit depth (an integer 1..32), got {bits}")
        return float(2 ** int(bits) - 1)
    return None


def _mat_sensor(m: dict[str, Any]) -> str | None:
    v = m.get("sensor")
    if v is None:
        return None
    a = np.asarray(v).ravel()
    if a.dtype.kind in "US":
        return "".join(str(x) for x in a).strip() or None
    if a.dtype.kind in "iu":  # v7.3 files store MATLAB chars as uint16 codes
        return "".join(chr(int(x)) for x in a).strip() or None
    return None


def _read_single(path: Path, role: str) -> tuple[np.ndarray, dict | None]:
    """One image of a pair, channels first; GeoTIFF tags returned for the PAN."""
    suffix = path.suffix.lower()
    if suffix in _TIF:
        tifffile = _need("tifffile")
        with tifffile.TiffFile(path) as t:
            a = t.asarray()
            page = t.pages[0]
            geo = {tag.code: (tag.dtype, tag.count, tag.value) for tag in page.tags.values()
                   if tag.code in (33550, 33922, 34264, 34735, 34736, 34737)}
            planar = page.planarconfig
        if a.ndim == 3:
            # PLANARCONFIG 2 (separate) reads as (C, H, W); contiguous as (H, W, C).
            a = a if int(planar) == 2 else np.moveaxis(a, -1, 0)
        return _chw(a, str(path), False), (geo or None)
    if suffix == ".mat":
        m = _loadmat(path)
        arrays = [v for v in m.values() if isinstance(v, np.ndarray) and v.ndim in (2, 3)
                  and v.size > 1]
        if len(arrays) != 1:
            raise ValueError(f"{path}: expected exactly one image variable for the {role}, got "
                             f"{sorted(m)}")
        return _chw(arrays[0], str(path), True), None
    raise ValueError(f"{path}: unsupported {role} file type {suffix!r} (expected .tif or .mat)")


def _pair_sample(pan_path: Path, ms_path: Path) -> tuple[dict[str, np.ndarray], np.dtype, Any]:
    for p in (pan_path, ms_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
    pan, geo = _read_single(pan_path, "PAN")
    ms, _ = _read_single(ms_path, "MS")
    if pan.shape[0] != 1:
        raise ValueError(f"{pan_path}: the PAN image must have one band, got {pan.shape}")
    return {"pan": pan, "ms": ms}, ms.dtype, geo


def _find_pairs(folder: Path) -> list[tuple[Path, Path]]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in (*_TIF, ".mat")]
    pairs = []
    for p in sorted(files, key=lambda q: _natural(q.name)):
        stem = p.stem
        if "pan" not in stem.lower():
            continue
        i = stem.lower().rfind("pan")
        partner = stem[:i] + "ms" + stem[i + 3:]
        match = [q for q in files if q.stem == partner and q.suffix.lower() == p.suffix.lower()]
        if match:
            pairs.append((p, match[0]))
    if not pairs:
        raise ValueError(f"{folder}: no PAN + MS pairs (expected pan.tif + ms.tif or files "
                         "like K_pan.mat + K_ms.mat)")
    return pairs


class PanCollection(Dataset):
    """Pan-sharpening samples (see the module docstring for the layouts).

    Args:
        path: an ``.h5``/``.mat`` file, a ``(pan, ms)`` pair of files, or a folder of pairs.
        scale: divide digital numbers by this (``None``: from the file, else inferred); for
            data already in [0, 1], their largest digital number (not divided again).
        dtype: dtype of the returned tensors (float32 by default; metrics use float64).

    Attributes:
        scale, scale_source: the divisor and how it was chosen (1 for data already in [0, 1]).
        dn_scale: the digital number of 1.0 in the returned tensors (the toolbox's Q2n rounds
            ``dn_scale * x``): ``scale``, or for data already in [0, 1] the explicit ``scale``
            or ``2**L - 1``; None when unknown.
        names: one name per sample (what external results are matched to).
        sensor: the file's ``sensor`` variable (``.mat``), else None.
        ratio: PAN-to-MS resolution ratio (from the shapes).
        bands: number of MS bands. ``reduced``: True when samples carry ``gt``.
        geo: GeoTIFF georeferencing tags of the PAN (pairs of GeoTIFFs only), else None.

    Raises:
        FileNotFoundError: ``path`` does not exist. ValueError: unknown layout, missing
        variables or datasets, inconsistent shapes (the message names the file).
    """

    def __init__(self, path: str | Path | Sequence[str | Path], scale: float | None = None,
                 *, dtype: torch.dtype = torch.float32) -> None:
        self.geo = None
        self.sensor: str | None = None
        if isinstance(path, (tuple, list)):
            if len(path) != 2:
                raise ValueError(f"path: a pair is (pan_file, ms_file), got {len(path)} items")
            sample, dt, self.geo = _pair_sample(Path(path[0]), Path(path[1]))
            self.source: _Source = _MemorySource([sample], dt)
            self.path = Path(path[0])
            names = [_pair_name(Path(path[0]))]
        else:
            p = Path(path)
            self.path = p
            if not p.exists():
                raise FileNotFoundError(f"path: {p} does not exist")
            if p.is_dir():
                if _tiff_folders(p):
                    samples, dt, names, self.geo = _folder_samples(p)
                    self.source = _MemorySource(samples, dt)
                else:
                    if (p / "pan.tif").is_file() and (p / "ms.tif").is_file():
                        pairs = [(p / "pan.tif", p / "ms.tif")]
                        names = [p.name]
                    else:
                        pairs = _find_pairs(p)
                        names = [_pair_name(a) for a, _ in pairs]
                    samples, dt = [], None
                    for a, b in pairs:
                        s, dt, geo = _pair_sample(a, b)
                        samples.append(s)
                        self.geo = self.geo or geo
                    self.source = _MemorySource(samples, dt)
            elif p.suffix.lower() in _H5:
                self.source = _H5Source(p)
                names = [str(i) for i in range(len(self.source))]
            elif p.suffix.lower() == ".mat":
                s, attr, dt = _mat_sample(p)
                self.source = _MemorySource([s], dt, attr)
                self.sensor = _mat_sensor(_loadmat(p))
                names = [p.stem]
            else:
                raise ValueError(f"path: {p} is not a PanCollection file (.h5, .mat), a pair "
                                 "or a folder of pairs")
        if len(self.source) == 0:
            raise ValueError(f"path: {self.path} holds no samples")
        #: One name per sample (file stems, or the index for multi-sample HDF5 files): what
        #: fused files are matched to (:func:`match_files`).
        self.names: list[str] = names
        first = self.source.read(0)
        self.bands = int(first["ms"].shape[0])
        h, w = first["pan"].shape[-2:]
        mh, mw = first["ms"].shape[-2:]
        if h % mh or w % mw or h // mh != w // mw:
            raise ValueError(f"{self.path}: PAN {h}x{w} is not an integer multiple of MS "
                             f"{mh}x{mw}")
        self.ratio = h // mh
        self.reduced = "gt" in first
        self.dtype = dtype
        if scale is not None and not float(scale) > 0:
            raise ValueError(f"scale: expected a positive number, got {scale}")
        top = self.source.max_ms()
        unit = np.dtype(self.source.dtype).kind == "f" and top <= 1.0
        if unit:  # already in [0, 1]: not divided again
            self.scale, self.scale_source = 1.0, "data already in [0, 1]"
            self.dn_scale = float(scale) if scale is not None else self.source.attr_scale
        else:
            if scale is not None:
                self.scale, self.scale_source = float(scale), "argument"
            elif self.source.attr_scale is not None:
                self.scale, self.scale_source = self.source.attr_scale, "file attribute"
            else:
                self.scale = infer_scale(top, self.source.dtype)
                self.scale_source = "inferred from the data's range"
            self.dn_scale = self.scale

    def __len__(self) -> int:
        return len(self.source)

    def raw(self, index: int) -> dict[str, np.ndarray]:
        """Sample ``index`` as float64 numpy arrays in digital numbers (no scaling)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        s = self.source.read(index % len(self))
        for k in ("pan", "ms", "lms", "gt"):
            if k in s and k != "ms" and s[k].shape[-2:] != s["pan"].shape[-2:]:
                raise ValueError(f"{self.path}: sample {index}: {k} {s[k].shape} does not match "
                                 f"pan {s['pan'].shape}")
        return s

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        s = self.raw(index)
        out = {k: torch.from_numpy(v / self.scale).to(self.dtype) for k, v in s.items()}
        if "lms" not in out:
            ms64 = torch.from_numpy(s["ms"] / self.scale)
            up = interp23(ms64, self.ratio) if self.ratio & (self.ratio - 1) == 0 else \
                interpolate(ms64, self.ratio, "bicubic")
            out["lms"] = up.to(self.dtype)
        return out

    def read_fused(self, path: str | Path, index: int, scale: float | None = None) -> Tensor:
        """An external fused image for sample ``index``, ``(C, H, W)`` float64 in the units of
        ``self[index]`` (see :func:`read_image`; ``scale``: divide by this, default: the
        data's digital-number scale when the image's mean exceeds ``lms``' mean times its
        square root -- digital numbers --, else 1)."""
        ref = self[index]
        want = ref["gt"].shape if "gt" in ref else ref["lms"].shape
        a = read_image(path, tuple(want))
        if scale is None:
            d = self.dn_scale or self.scale  # the digital number of 1.0 in self[index]
            unit_mean = float(ref["lms"].double().mean())
            big = d > 1 and float(np.mean(a)) > unit_mean * np.sqrt(d)
            scale = d if big else 1.0
        elif not float(scale) > 0:
            raise ValueError(f"scale: expected a positive number, got {scale}")
        return torch.from_numpy(a / float(scale))

    def __repr__(self) -> str:
        kind = "reduced resolution (gt)" if self.reduced else "full resolution"
        return (f"PanCollection({str(self.path)!r}: {len(self)} samples, {self.bands} bands, "
                f"ratio {self.ratio}, {kind}, scale {self.scale:g} [{self.scale_source}])")


def _pair_name(pan_path: Path) -> str:
    """A scene's name from its PAN file: the stem without ``pan`` and separators."""
    stem = pan_path.stem
    i = stem.lower().rfind("pan")
    name = (stem[:i] + stem[i + 3:]).strip("_-. ")
    return name or pan_path.parent.name


def _tiff_folders(p: Path) -> bool:
    return (p / "pan").is_dir() and (p / "ms").is_dir()


def _folder_samples(p: Path) -> tuple[list[dict[str, np.ndarray]], Any, list[str], Any]:
    """The SHIP++ benchmark layout: ``pan/``, ``ms/`` and optionally ``gt/`` (and ``lms/``)
    sub-folders of TIFF (or .mat) files with the same names."""
    def files(d: Path) -> dict[str, Path]:
        return {f.stem: f for f in d.iterdir() if f.suffix.lower() in (*_TIF, ".mat")}

    pans, mss = files(p / "pan"), files(p / "ms")
    extra = {k: files(p / k) for k in ("gt", "lms") if (p / k).is_dir()}
    names = sorted(set(pans) & set(mss), key=_natural)
    if not names:
        raise ValueError(f"{p}: pan/ and ms/ hold no files with the same name (pan: "
                         f"{sorted(pans)[:5]}, ms: {sorted(mss)[:5]})")
    samples, dt, geo0 = [], None, None
    for n in names:
        s, dt, geo = _pair_sample(pans[n], mss[n])
        for k, d in extra.items():
            if n not in d:
                raise ValueError(f"{p / k}: no file for scene {n!r} (present in pan/ and ms/)")
            s[k] = _read_single(d[n], k.upper())[0]
        samples.append(s)
        geo0 = geo0 or geo
    return samples, dt, names, geo0


def read_image(path: str | Path, shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """One image file as float64 ``(C, H, W)``: ``.npy``, ``.mat`` (the one image variable,
    or ``I_F`` / ``fused`` / ``sr`` / ``output`` among several), GeoTIFF ``.tif``, ``.h5``
    (the one image dataset). ``shape``: the expected ``(C, H, W)``, which decides between
    bands-first and bands-last layouts (a leading batch dimension of 1 is dropped).

    Raises ValueError naming the file and, for several candidate variables, the keys found.

    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp(); f = os.path.join(d, "x.npy")
    >>> np.save(f, np.zeros((8, 8, 4)))
    >>> read_image(f, (4, 8, 8)).shape
    (4, 8, 8)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        a = np.load(path, allow_pickle=False)
    elif suffix in _TIF:
        tifffile = _need("tifffile")
        a = tifffile.imread(path)
    elif suffix in (".mat", *_H5):
        if suffix == ".mat":
            m = _loadmat(path)
        else:
            h5py = _need("h5py")
            with h5py.File(path, "r") as f:
                m = {k: np.asarray(f[k]) for k in f if isinstance(f[k], h5py.Dataset)}
        images = {k: v for k, v in m.items() if isinstance(v, np.ndarray) and v.ndim >= 2
                  and v.size > 1 and v.dtype.kind in "fiu"}
        known = [k for k in ("I_F", "fused", "sr", "output", "I_Fus") if k in images]
        if len(images) == 1:
            a = next(iter(images.values()))
        elif len(known) == 1:
            a = images[known[0]]
        else:
            raise ValueError(f"{path}: expected one image variable (or one of I_F, fused, sr, "
                             f"output), got keys {sorted(m)}")
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r} (expected one of "
                         f"{', '.join(FUSED_SUFFIXES)})")
    a = np.asarray(a, dtype=np.float64)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{path}: expected an image (C, H, W) or (H, W, C), got shape {a.shape}")
    if shape is not None:
        shape = tuple(int(v) for v in shape)
        if a.shape == shape:
            return a
        moved = np.moveaxis(a, -1, 0)
        if moved.shape == shape:
            return np.ascontiguousarray(moved)
        raise ValueError(f"{path}: shape {a.shape} is neither {shape} (C, H, W) nor "
                         f"{shape[1:] + shape[:1]} (H, W, C)")
    return a


def _tokens(stem: str) -> list[str]:
    return [t for t in re.split(r"[^0-9A-Za-z]+", stem) if t]


def match_files(names: Sequence[str], folder: str | Path) -> list[Path]:
    """One file of ``folder`` per scene name: the file whose stem is the name; else the one
    whose stem holds the name as a token (``fused_3``, ``3_out``; integer names match by
    value, so ``0003.npy`` is scene ``3``). Raises ValueError naming the scene when none or
    several files match.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("0000.npy", "0001.npy"): (d / n).write_bytes(b"")
    0
    0
    >>> [p.name for p in match_files(["0", "1"], d)]
    ['0000.npy', '0001.npy']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    files = sorted((f for f in folder.iterdir() if f.suffix.lower() in FUSED_SUFFIXES
                    and f.is_file()), key=lambda q: _natural(q.name))
    out = []
    for name in names:
        exact = [f for f in files if f.stem == name]
        if len(exact) == 1:
            out.append(exact[0])
            continue

        def hit(f: Path, name: str = name) -> bool:
            toks = _tokens(f.stem)
            if name.isdigit():
                return any(t.isdigit() and int(t) == int(name) for t in toks)
            want = _tokens(name)
            return any(toks[i:i + len(want)] == want for i in range(len(toks)))

        found = [f for f in files if hit(f)]
        if len(found) != 1:
            what = "no file" if not found else f"{len(found)} files ({[f.name for f in found]})"
            raise ValueError(f"{folder}: {what} for scene {name!r}; name fused files after the "
                             f"scenes ({', '.join(list(names)[:5])}...)")
        out.append(found[0])
    return out
