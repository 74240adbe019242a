"""Training and validation samples of pan-sharpening data: Wald-degraded, tiled, split.

:func:`patches` turns the samples of a :class:`~hyperleaf.pansharpen.data.PanCollection` into
reduced-resolution tiles with ground truth (full-resolution scenes degraded by Wald's protocol,
:func:`hyperleaf.pansharpen.reduced_resolution`); :func:`split_samples` /
:func:`parse_index` choose the training and validation samples; :class:`PanPatches` is the
dataset the engine reads; :func:`band_statistics` the per-band statistics
:class:`~hyperleaf.pansharpen.network.Standardised` normalises with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from hyperleaf.pansharpen.wald import reduced_resolution

__all__ = ["PanPatches", "band_statistics", "parse_index", "patches", "split_indices",
           "split_samples"]


def _tiles(sample: dict[str, Tensor], patch: int, ratio: int) -> list[dict[str, Tensor]]:
    h, w = sample["pan"].shape[-2:]
    if patch % ratio:
        raise ValueError(f"patch: {patch} must be a multiple of ratio {ratio}")
    if h < patch or w < patch:
        return [sample]
    out = []
    for y in range(0, h - patch + 1, patch):
        for x in range(0, w - patch + 1, patch):
            t = {k: v[..., y:y + patch, x:x + patch] for k, v in sample.items() if k != "ms"}
            r = ratio
            t["ms"] = sample["ms"][..., y // r:(y + patch) // r, x // r:(x + patch) // r]
            out.append(t)
    return out


def patches(ds, sensor: Any = None, patch: int = 64, indices: Sequence[int] | None = None,
            convention: str = "toolbox") -> list[dict[str, Tensor]]:
    """Reduced-resolution float64 samples ``{"pan", "lms", "ms", "gt"}`` (C, H, W) of ``ds``.

    Samples with ``gt`` are kept as they are; full-resolution samples are cropped to whole MS
    pixels after degradation and reduced by Wald's protocol
    (:func:`hyperleaf.pansharpen.reduced_resolution` with ``sensor``'s MTF gains; the original
    MS becomes ``gt``; ``convention``: the degradation's, see :func:`hyperleaf.pansharpen.degrade`).
    Each is then tiled into ``patch`` x ``patch`` PAN-grid tiles (a sample
    smaller than ``patch`` stays whole). ``indices``: the samples of ``ds`` to use (default all).
    """
    out: list[dict[str, Tensor]] = []
    for i in (range(len(ds)) if indices is None else indices):
        s = {k: v.double() for k, v in ds[i].items()}
        if "gt" not in s:
            r = ds.ratio
            h, w = s["pan"].shape[-2:]
            hh, ww = h - h % (r * r), w - w % (r * r)  # whole MS pixels after degradation
            pan, ms = s["pan"][..., :hh, :ww], s["ms"][..., :hh // r, :ww // r]
            s = {k: v[0] for k, v in reduced_resolution(pan[None], ms[None], r, sensor,
                                                              convention=convention).items()}
        out.extend(_tiles(s, patch, ds.ratio))
    return out


def split_indices(n: int, test_fraction: float = 0.2) -> tuple[list[int], list[int]]:
    """The first ``n - k`` samples train, the last ``k = max(1, round(n f))`` test.

    >>> split_indices(100, 0.2)[1][:3], len(split_indices(100, 0.2)[0])
    ([80, 81, 82], 80)
    """
    if n < 2:
        raise ValueError(f"need at least 2 samples to split, got {n}")
    k = min(n - 1, max(1, round(n * test_fraction)))
    return list(range(n - k)), list(range(n - k, n))


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_index(spec: str, key: str = "index") -> list[int]:
    """Sample indices of ``spec``: comma-separated indices and inclusive ranges ``a-b``.

    >>> parse_index("0-3, 7,9-10")
    [0, 1, 2, 3, 7, 9, 10]
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{key}: expected indices such as '0-79' or '0-7,9', got {spec!r}")
    out: set[int] = set()
    for part in spec.split(","):
        m = _RANGE.match(part)
        if m is None:
            raise ValueError(f"{key}: expected indices such as '0-79' or '0-7,9', got "
                             f"{spec!r} ({part.strip()!r} is neither an index nor a range a-b)")
        a, b = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if b < a:
            raise ValueError(f"{key}: range {part.strip()!r} ends before it starts")
        out.update(range(a, b + 1))
    return sorted(out)


def split_samples(n: int, train_index: str | None = None, val_index: str | None = None,
                  val_fraction: float = 0.2) -> tuple[list[int], list[int]]:
    """``(train, val)`` sample indices of a dataset of ``n`` samples.

    Both given: those (they must not overlap); one given: the other is every remaining
    sample; none: :func:`split_indices` with ``val_fraction`` (the last samples validate).

    >>> split_samples(10, val_index="0-1")
    ([2, 3, 4, 5, 6, 7, 8, 9], [0, 1])
    >>> split_samples(10)
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    """
    if train_index is None and val_index is None:
        return split_indices(n, val_fraction)
    sets = {}
    for key, spec in (("train_index", train_index), ("val_index", val_index)):
        if spec is None:
            continue
        idx = parse_index(spec, key)
        if idx[-1] >= n:
            raise ValueError(f"{key}: sample {idx[-1]} is out of range for the {n} samples of "
                             f"the data (0-{n - 1})")
        sets[key] = idx
    rest = [i for i in range(n) if i not in set(next(iter(sets.values())))]
    train = sets.get("train_index", rest)
    val = sets.get("val_index", rest)
    both = sorted(set(train) & set(val))
    if both:
        raise ValueError(f"val_index: samples {both[:5]} are also in train_index (validation "
                         "samples must be held out)")
    for key, idx in (("train_index", train), ("val_index", val)):
        if not idx:
            raise ValueError(f"{key}: no samples left (the data hold {n})")
    return train, val


class PanPatches(torch.utils.data.Dataset):
    """A list of ``{"pan", "lms", "ms", "gt"}`` tiles as a map-style dataset (dtype ``dtype``).

    ``scale``: the digital number of 1.0 in the tiles (the data's scale), used by the
    toolbox's Q2n (:func:`hyperleaf.pansharpen.metrics.q2n`); None when unknown.
    """

    def __init__(self, samples: list[dict[str, Tensor]], dtype: torch.dtype = torch.float32,
                 scale: float | None = None):
        if not samples:
            raise ValueError("samples: expected at least one tile")
        self.scale = scale
        self.samples = [{k: v.to(dtype).contiguous() for k, v in s.items()} for s in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.samples[i]


# ----------------------------------------------------------------------------- network


def band_statistics(samples: list[dict[str, Tensor]]) -> dict[str, list[float]]:
    """Mean and standard deviation of ``pan`` and of each ``lms`` band over ``samples``
    (float64; the population spread), the statistics of :class:`Standardised`."""
    lms = torch.stack([s["lms"].double() for s in samples])
    pan = torch.stack([s["pan"].double() for s in samples])
    std = lms.std((0, 2, 3), correction=0)
    pstd = pan.std(correction=0)
    if not (bool((std > 0).all()) and pstd > 0):
        raise ValueError("samples: a band (or the PAN) is constant over the training data; "
                         "train with normalise=False")
    return {"pan_mean": [float(pan.mean())], "pan_std": [float(pstd)],
            "ms_mean": lms.mean((0, 2, 3)).tolist(), "ms_std": std.tolist()}
