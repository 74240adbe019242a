"""``hyperleaf pansharpen``: pan-sharpen PAN + MS data with a trained SHIP run or a baseline.

Also holds ``hyperleaf evaluate --task pansharpen`` (the tables). Training is the engine's
``hyperleaf train --task pansharpen`` (:mod:`hyperleaf.tasks.pansharpen`).

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

        from hyperleaf.data import PanCollection
        from hyperleaf.pansharpen import METHODS, fuse
        from hyperleaf.pansharpen.network import sharpen

        if args.method is not None and args.method not in METHODS:
            raise ValueError(f"--method: unknown {args.method!r}; expected one of "
                             f"{', '.join(METHODS)}")
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
        from hyperleaf.atomic import check_writable_location

        out = check_writable_location(args.out, folder=True)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        for i in range(len(ds)):
            s = ds[i]
            f = sharpen(net, s["pan"], s["lms"]) if net is not None else \
                fuse(args.method, s["pan"], s["lms"], s["ms"], ds.ratio, args.sensor)
            # named after the scene (what evaluate --fused matches); HDF5 samples by index
            name = ds.names[i]
            stem = f"{i:04d}" if name == str(i) else name
            _write(out / f"{stem}.{fmt}", (f * ds.scale).numpy(), fmt, ds.geo)
    except (ValueError, FileNotFoundError, ImportError, OSError) as exc:
        return _error("pansharpen", exc)
    print(f"wrote {len(ds)} images ({fmt}, digital numbers, scale {ds.scale:g}) to {out} in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


def _need_dn_scale(ds, data: str) -> None:
    if ds.dn_scale is None:
        raise ValueError(f"--scale: {data} is stored in [0, 1] without its bit depth; give the "
                         "largest digital number (e.g. 1023 for 10 bits) for the toolbox's Q2n")


def _fused_files(ds, fused: str) -> list[Path]:
    """``--fused``: a file for a one-scene ``--data``, or a folder matched to the scenes."""
    from hyperleaf.pansharpen.data import FUSED_SUFFIXES, match_files

    p = Path(fused)
    if p.is_dir():
        try:
            return match_files(ds.names, p)
        except ValueError as exc:
            raise ValueError(f"--fused: {exc}") from None
    if not p.is_file():
        raise FileNotFoundError(f"--fused: {p} does not exist")
    if p.suffix.lower() not in FUSED_SUFFIXES:
        raise ValueError(f"--fused: {p} is not one of {', '.join(FUSED_SUFFIXES)}")
    if len(ds) != 1:
        raise ValueError(f"--fused: a single file, but --data holds {len(ds)} scenes (give a "
                         "folder of fused files named after the scenes)")
    return [p]


def _scene_table(part: dict) -> str:
    keys = list(part["mean"])
    rows = {r["scene"]: r for r in part["scenes"]}
    rows["**mean**"] = part["mean"]
    from hyperleaf.pansharpen.evaluation import markdown_tables

    return markdown_tables({k: {m: v[m] for m in keys} for k, v in rows.items()}).replace(
        "| method |", "| scene |", 1)


def evaluate_fused(args: argparse.Namespace) -> int:
    """``hyperleaf evaluate --task pansharpen --fused PATH``: external results scored."""
    import json

    from hyperleaf.atomic import atomic_write_text, check_writable_location

    try:
        import torch

        from hyperleaf.data import PanCollection
        from hyperleaf.pansharpen.evaluation import score_fused

        if not args.data:
            raise ValueError("--data: --task pansharpen needs a PanCollection file or folder")
        if args.methods or args.weights:
            raise ValueError("--fused: scores external results alone; drop --methods/--weights "
                             "(or run without --fused for the baselines' tables)")
        outputs = []
        for flag, x in (("--json", args.json), ("--markdown", args.markdown)):
            if x:
                if Path(x).is_dir():
                    raise ValueError(f"{flag}: {x} is a folder; give a file name")
                try:
                    outputs.append(check_writable_location(x))
                except ValueError as exc:
                    raise ValueError(f"{flag}: {exc}") from None
        ds = PanCollection(args.data, scale=getattr(args, "scale", None), dtype=torch.float64)
        files = _fused_files(ds, args.fused)
        _need_dn_scale(ds, args.data)
        result = score_fused(ds, files, args.sensor)
    except (ValueError, FileNotFoundError, ImportError, OSError) as exc:
        return _error("evaluate", exc)
    record = {"task": "pansharpen", "data": str(args.data), "fused": str(args.fused),
              "ratio": ds.ratio, "sensor": args.sensor, **result}
    text = [f"Convention: {result['convention']} (digital-number scale {ds.dn_scale:g})", ""]
    for key, title in (("reduced_resolution", "Reduced resolution (SAM in degrees):"),
                       ("full_resolution", "Full resolution:")):
        if result[key] is not None:
            text += [title, "", _scene_table(result[key])]
    for line in result["skipped"]:
        text.append(f"skipped: {line}")
    report = "\n".join(text)
    print(report)
    written = []
    if args.json:
        atomic_write_text(outputs[0], json.dumps(record, indent=2) + "\n")
        written.append(args.json)
    if args.markdown:
        atomic_write_text(outputs[-1], report + "\n")
        written.append(args.markdown)
    if written:
        print("wrote " + ", ".join(written))
    return 0


def evaluate_run(args: argparse.Namespace) -> int:
    """``hyperleaf evaluate --task pansharpen``: reduced- and full-resolution tables (of the
    baselines and ``--weights``; of the external results ``--fused`` with
    :func:`evaluate_fused`)."""
    if args.fused:
        return evaluate_fused(args)
    try:
        import torch

        from hyperleaf.data import PanCollection
        from hyperleaf.pansharpen import METHODS
        from hyperleaf.pansharpen.evaluation import evaluate_methods, markdown_tables
        from hyperleaf.pansharpen.patches import patches

        if not args.data:
            raise ValueError("--data: --task pansharpen needs a PanCollection file or folder")
        ds = PanCollection(args.data, scale=getattr(args, "scale", None), dtype=torch.float64)
        _need_dn_scale(ds, args.data)
        names = list(METHODS) if not args.methods else [m.strip() for m in
                                                          args.methods.split(",")]
        bad = [m for m in names if m not in METHODS]
        if bad:
            raise ValueError(f"--methods: unknown {bad}; expected names from {list(METHODS)}")
        methods: dict = {m: m for m in names}
        if args.weights:
            methods["SHIP (" + Path(args.weights).name + ")"] = _load(args.weights).model
        rr = patches(ds, args.sensor, args.patch)
        full = [{k: v.double() for k, v in ds[i].items()} for i in range(len(ds))]
        text = ["Reduced resolution (Wald; SAM in degrees):", "",
                markdown_tables(evaluate_methods(methods, rr, ds.ratio, args.sensor,
                                                 scale=ds.dn_scale)),
                "Full resolution:", "",
                markdown_tables(evaluate_methods(methods, full, ds.ratio, args.sensor,
                                                 full=True, scale=ds.dn_scale))]
    except (ValueError, FileNotFoundError, ImportError) as exc:
        return _error("evaluate", exc)
    report = "\n".join(text)
    print(report)
    if args.markdown:
        from hyperleaf.atomic import atomic_write_text

        atomic_write_text(args.markdown, report)
    return 0
