"""``hyperleaf pansharpen``: pan-sharpen PAN + MS data with a trained SHIP run or a baseline.

Training is the engine's ``hyperleaf train --task pansharpen``; ``hyperleaf evaluate --task
pansharpen`` (the tables) is the task's own evaluation (both :mod:`hyperleaf.tasks.pansharpen`).

Examples::

    hyperleaf train --task pansharpen --data wv3.h5 --steps 200 --out runs/ps
    hyperleaf pansharpen --weights runs/ps --data test.h5 --out fused/
    hyperleaf pansharpen --method MTF-GLP --data landsat7/ --sensor landsat7 --out glp/
    hyperleaf evaluate --task pansharpen --data test.h5 --weights runs/ps
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

FORMATS = ("npy", "mat", "tif")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pansharpen", help="pan-sharpen PAN + MS data (a trained SHIP run or a baseline)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="run folder of 'hyperleaf train --task pansharpen'")
    src.add_argument("--method", help="a classical baseline instead, toolbox names: EXP, "
                                      "Brovey, IHS, PCA, GS, GSA, BT-H, BDSD, PRACS, MTF-GLP (unit "
                                      "gains), "
                                      "MTF-GLP-FS, MTF-GLP-HPM; MTF-GLP-REG (hyperleaf's former "
                                      "MTF-GLP)")
    p.add_argument("--data", required=True,
                   help="PanCollection .h5, .mat, a folder of PAN + MS pairs (GeoTIFF/.mat)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="npy (default), mat, or tif (GeoTIFF; georeferenced like the PAN "
                        "when the input is a GeoTIFF pair)")
    p.add_argument("--sensor", default=None, help="sensor for the MTF (WV3, QB, GF2, "
                                                  "landsat7...; default: generic gains)")
    p.add_argument("--scale", type=float, default=None,
                   help="divide digital numbers by this (default: from the file)")
    p.set_defaults(func=run)


def _error(cmd: str, exc: BaseException) -> int:
    print(f"hyperleaf {cmd}: error: {exc}", file=sys.stderr)
    return 2


def _write(path: Path, img, fmt: str, geo) -> None:
    """One (C, H, W) float32 image, atomically."""
    import numpy as np

    from hyperleaf.atomic import atomic_write, atomic_write_path

    arr = np.ascontiguousarray(img, dtype=np.float32)
    if fmt == "npy":
        atomic_write(path, lambda fh: np.save(fh, arr))
    elif fmt == "mat":
        import scipy.io as sio

        atomic_write(path, lambda fh: sio.savemat(fh, {"I_F": np.moveaxis(arr, 0, -1)}))
    else:
        import tifffile

        extratags = [(code, dt, count, value, True) for code, (dt, count, value) in
                     (geo or {}).items()]
        with atomic_write_path(path) as tmp:
            tifffile.imwrite(tmp, arr, photometric="minisblack", planarconfig="separate",
                             extratags=extratags)


def _load(weights: str):
    """The pan-sharpening run ``weights`` (:func:`hyperleaf.runs.load_run`: run folders of the
    engine and of the earlier separate loop), its errors naming ``--weights``."""
    from hyperleaf.runs import load_run

    try:
        return load_run(weights, task="pansharpen")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"--weights: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"--weights: {exc}") from None


def run(args: argparse.Namespace) -> int:
    try:
        import torch

        from hyperleaf.atomic import LocationError, check_writable_location
        from hyperleaf.data import PanCollection
        from hyperleaf.pansharpen import METHODS, fuse
        from hyperleaf.pansharpen.network import sharpen

        if args.method is not None and args.method not in METHODS:
            raise ValueError(f"--method: unknown {args.method!r}; expected one of "
                             f"{', '.join(METHODS)}")
        try:  # before any work: nothing is read, loaded or created for an unusable --out
            out = check_writable_location(args.out, folder=True)
        except LocationError as exc:
            raise ValueError(f"--out: {exc}") from None
        ds = PanCollection(args.data, scale=args.scale, dtype=torch.float64)
        fmt = args.format or "npy"
        if fmt == "tif":
            import tifffile  # noqa: F401 - fail before writing anything
        net = None
        if args.weights is not None:
            loaded = _load(args.weights)
            net, cfg = loaded.model, loaded.config
            if cfg.ms_bands != ds.bands or cfg.ratio != ds.ratio:
                raise ValueError(f"--weights: the model takes {cfg.ms_bands} bands at ratio "
                                 f"{cfg.ratio}, --data has {ds.bands} at ratio {ds.ratio}")
        t0 = time.perf_counter()
        for i in range(len(ds)):
            s = ds[i]
            f = sharpen(net, s["pan"], s["lms"]) if net is not None else \
                fuse(args.method, s["pan"], s["lms"], s["ms"], ds.ratio, args.sensor)
            # named after the scene (what evaluate --fused matches); HDF5 samples by index
            name = ds.names[i]
            stem = f"{i:04d}" if name == str(i) else name
            out.mkdir(parents=True, exist_ok=True)  # with the first image: none on an error
            _write(out / f"{stem}.{fmt}", (f * ds.scale).numpy(), fmt, ds.geo)
    except (ValueError, FileNotFoundError, ImportError, OSError) as exc:
        return _error("pansharpen", exc)
    print(f"wrote {len(ds)} images ({fmt}, digital numbers, scale {ds.scale:g}) to {out} in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


def evaluate_run(args: argparse.Namespace) -> int:
    """Deprecated: ``hyperleaf evaluate --task pansharpen`` is the pansharpen task's own
    evaluation (:meth:`hyperleaf.tasks.pansharpen.PansharpenTask.evaluate_command`), run by
    :func:`hyperleaf.cli.evaluate.run` as every task's."""
    import warnings

    from hyperleaf.cli import evaluate

    warnings.warn("hyperleaf.cli.pansharpen.evaluate_run is deprecated; hyperleaf evaluate "
                  "--task pansharpen runs hyperleaf.cli.evaluate.run", DeprecationWarning,
                  stacklevel=2)
    args.task = "pansharpen"
    return evaluate.run(args)


#: The former name of the external results' scoring (now inside :func:`evaluate_run`).
evaluate_fused = evaluate_run
