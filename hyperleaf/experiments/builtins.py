"""hyperleaf's own fusers for a leaderboard, fused once and cached.

:func:`fuse_builtins` writes ``OUT/<method>/<pair>.png`` for the classical fusers of
:mod:`hyperleaf.models.classical` (average, maximum, Laplacian pyramid, GFF, TIF), SHIP with the
authors' weights (``ship_weights``) and SHIP + LEAF from a ``hyperleaf train`` run folder
(``leaf_run``). Each method folder keeps ``sources.json``, the SHA-256 of every pair's
source files (and of the weights); a pair whose fused image exists with the same fingerprint
is not fused again. Every file is written atomically.

Example::

    >>> made = fuse_builtins("data/tno", "board/builtins")           # doctest: +SKIP
    >>> sorted(made)                                                  # doctest: +SKIP
    ['hl-GFF', 'hl-TIF', 'hl-average', 'hl-laplacian', 'hl-maximum']
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hyperleaf.atomic import atomic_write_text, check_writable_location
from hyperleaf.io import ImagePair, find_pairs_in, read_gray, read_image, write_png
from hyperleaf.models.classical import CLASSICAL

__all__ = ["PREFIX", "builtin_names", "fuse_builtins"]

#: Built-in methods are named ``hl-<fuser>`` (``hl-GFF``, ``hl-SHIP``), apart from the
#: published methods' own outputs (VIFB's ``GFF``).
PREFIX = "hl-"


def builtin_names(classical: Sequence[str] | None = None, ship_weights: object = None,
                  leaf_run: object = None) -> list[str]:
    """The method names :func:`fuse_builtins` makes for these arguments.

    >>> builtin_names(["GFF"], ship_weights="ship.pth")
    ['hl-GFF', 'hl-SHIP']
    """
    names = list(CLASSICAL) if classical is None else list(classical)
    bad = [n for n in names if n not in CLASSICAL]
    if bad:
        raise ValueError(f"classical: unknown fusers {', '.join(bad)}; known: "
                         f"{', '.join(CLASSICAL)}")
    names += ["SHIP"] * (ship_weights is not None) + ["SHIP+LEAF"] * (leaf_run is not None)
    return [PREFIX + n for n in names]


def _digest(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:32]


def _uint8(path: Path) -> np.ndarray:
    return np.rint(read_image(path).astype(np.float64) * 255.0).astype(np.uint8)


def fuse_builtins(data: str | Path | Sequence[ImagePair], out: str | Path, *,
                  classical: Sequence[str] | None = None, ship_weights: str | Path | None = None,
                  leaf_run: str | Path | None = None, device: str = "cpu",
                  progress: bool = False) -> dict[str, Path]:
    """Fuse every pair of ``data`` with the built-in methods; ``{method: folder}`` (names
    from :func:`builtin_names`).

    Args:
        data: a dataset folder or the pairs.
        out: folder receiving one sub-folder per method.
        classical: names among :data:`hyperleaf.models.classical.CLASSICAL` (default all).
        ship_weights: the SHIP authors' checkpoint; adds method ``hl-SHIP``.
        leaf_run: a SHIP + LEAF ``hyperleaf train`` run folder; adds method ``hl-SHIP+LEAF``.
        device: torch device of the networks.
        progress: a progress bar on stderr.
    """
    out = check_writable_location(out, folder=True)
    pairs = list(find_pairs_in(data) if isinstance(data, (str, Path)) else data)
    names = builtin_names(classical)
    jobs: dict[str, tuple] = {n: ("classical", CLASSICAL[n[len(PREFIX):]], None) for n in names}
    for name, key, weights in (("SHIP", "ship_weights", ship_weights),
                               ("SHIP+LEAF", "leaf_run", leaf_run)):
        if weights is not None:
            p = Path(weights)
            if not p.exists():
                raise FileNotFoundError(f"{key}: not found: {p}")
            jobs[PREFIX + name] = ("network", None, p)

    from tqdm import tqdm

    made: dict[str, Path] = {}
    with tqdm(total=len(jobs) * len(pairs), desc="fusing built-ins", unit="image",
              file=sys.stderr, disable=not progress) as bar:
        for name, (kind, fn, weights) in jobs.items():
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            manifest_path = folder / "sources.json"
            try:
                manifest = json.loads(manifest_path.read_text())
            except (OSError, ValueError):
                manifest = {}
            extra = [] if weights is None else (
                [weights / "model.safetensors"] if weights.is_dir() else [weights])
            net = None
            for pair in pairs:
                target = folder / f"{pair.name}.png"
                fp = _digest([pair.ir, pair.vis, *extra])
                if target.is_file() and manifest.get(pair.name) == fp:
                    bar.update(1)
                    continue
                if kind == "classical":
                    fused = fn(_uint8(pair.ir), _uint8(pair.vis))
                else:
                    if net is None:
                        from hyperleaf.models.ship import fuse_arrays
                        from hyperleaf.runs import load_run

                        net = load_run(weights, device, task="fuse").model
                    fused = fuse_arrays(net, ir=read_gray(pair.ir), vis=read_image(pair.vis),
                                        device=device)
                write_png(target, fused)
                manifest[pair.name] = fp
                atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
                bar.update(1)
            made[name] = folder
    return made
