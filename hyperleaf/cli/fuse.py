"""``hyperleaf fuse``: fuse infrared/visible pairs with SHIP and write 8-bit PNGs.

    hyperleaf fuse --weights ship_irvis_official.pth --ir IR8.png --vis VIS8.png --out OUT
    hyperleaf fuse --weights runs/demo --data TNO_DIR --out OUT
    hyperleaf fuse --weights runs/demo/model.safetensors --ir IR --vis VIS --out fused.png

--weights: the SHIP authors' checkpoint (.pth), a `hyperleaf train` run folder, or a run's
model.safetensors (the config.yaml beside it rebuilds the network, LEAF's HDGFB blocks
included). IR and VIS are two files or two folders of matching names; --data takes the
TNO/MSRS layout (ir/ + vi/) or the flat IRk.png / VISk.png naming. Each pair is written as
OUT/<pair>.png, named as the folder modes name it (IR8.png + VIS8.png -> OUT/8.png), or, for a
single pair, to the --out FILE.png given. Colour visible images are fused in YCrCb: the
network fuses Y, Cr/Cb are kept, the result goes back to RGB. Options, inputs, the device and
the weights are all checked before anything is written, and each output is written atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hyperleaf.cli.flags import flag_message

#: Overlap chosen when --tile is given without --overlap: min(DEFAULT_OVERLAP, tile // 4)
#: (the library's value; written out here so ``--help`` needs no torch import).
DEFAULT_OVERLAP = 32


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fuse", help="fuse infrared/visible pairs with SHIP", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, metavar="PATH",
                   help="the SHIP authors' .pth, a hyperleaf train run folder, or a run's "
                        "model.safetensors")
    p.add_argument("--ir", help="infrared image or folder")
    p.add_argument("--vis", help="visible image or folder (grey or colour)")
    p.add_argument("--data", help="dataset folder: ir/ + vi/, or IRk/VISk files")
    p.add_argument("--out", required=True,
                   help="output folder (created if needed), or FILE.png for a single pair")
    p.add_argument("--tile", type=int, default=0,
                   help="fuse in overlapping tiles of this size, at least 8; 0 is off (bounds "
                        "memory for very large images; changes results slightly, see "
                        "docs/ship.md)")
    p.add_argument("--overlap", type=int, default=None,
                   help=f"tile overlap in pixels, below TILE/2 (default: min({DEFAULT_OVERLAP}, "
                        "TILE/4))")
    p.add_argument("--exact", action="store_true",
                   help="use the term-by-term path instead of the fast one (same function)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1, as train: on a loaded 2-core machine "
                        "torch's own choice of 2 threads fused a 360x270 pair 4x slower than "
                        "1 thread); 0 for torch's own choice")
    p.add_argument("--compile", action="store_true",
                   help="run the network through torch.compile (pays off on many pairs of "
                        "one size, on a GPU)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _pairs(args):
    from hyperleaf.io import check_pairs, select_pairs

    pairs = select_pairs(ir=args.ir, vis=args.vis, data=args.data)
    check_pairs(pairs, decode=True)
    return pairs


def fuse_arrays(net, ir, vis, device="cpu", tile: int = 0, overlap: int | None = None):
    """Old path of :func:`hyperleaf.models.ship.fuse_arrays` (positional ``ir, vis`` kept for
    old callers; new code passes ``ir=``/``vis=`` to the library function)."""
    from hyperleaf.models.ship import fuse_arrays as fuse

    return fuse(net, ir=ir, vis=vis, device=device, tile=tile, overlap=overlap)


def tiling(tile: int, overlap: int | None) -> tuple[int, int]:
    """``(tile, overlap)`` for :func:`~hyperleaf.models.tiled_forward`: ``tile`` 0 (off) or
    >= 8; ``overlap`` None picks ``min(32, tile // 4)``, an explicit one must be in
    ``[0, tile/2)``. Raises ``ValueError`` naming the flags."""
    if tile < 0 or 0 < tile < 8:
        raise ValueError(f"--tile: expected 0 (off) or at least 8, got {tile}")
    if overlap is None:
        return tile, min(DEFAULT_OVERLAP, tile // 4)
    if tile == 0:
        raise ValueError(f"--overlap {overlap} given without --tile: tiling is off "
                         "(give --tile N too, or leave --overlap out)")
    if overlap < 0 or 2 * overlap >= tile:
        raise ValueError(f"--overlap: expected 0 <= overlap < --tile/2 = {tile / 2:g}, got "
                         f"{overlap} (leave --overlap out for min({DEFAULT_OVERLAP}, tile/4) "
                         f"= {min(DEFAULT_OVERLAP, tile // 4)})")
    return tile, overlap


def resolve_device(name: str):
    """``torch.device(name)`` if this torch can use it; ``ValueError`` naming ``--device``."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device: unknown device {name!r}; expected cpu, cuda or cuda:N"
                         ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available to this torch "
                             f"({torch.__version__}: a CPU-only build, or no GPU visible); "
                             "use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: MPS is not available to this torch")
    elif dev.type != "cpu":
        raise ValueError(f"--device: {name!r} is not supported by fuse; expected cpu, cuda "
                         "or cuda:N")
    return dev


def _output(out: str, n_pairs: int) -> tuple[Path, Path | None]:
    """``(folder, file)``: where outputs go; ``file`` is set when --out names a .png."""
    from hyperleaf.cli.paths import PathError, check_output_dir, check_output_file
    from hyperleaf.io import IMAGE_EXTENSIONS

    p = Path(out)
    suffix = p.suffix.lower()
    if suffix == ".png" and not p.is_dir():
        if n_pairs != 1:
            raise PathError(f"--out {p}: a file name needs exactly one pair, got {n_pairs}; "
                            "give a folder")
        check_output_file(p, "--out")
        return p.parent, p
    if suffix in IMAGE_EXTENSIONS and not p.is_dir():
        raise PathError(f"--out {p}: fused images are written as PNG; give FILE.png or a "
                        "folder")
    return check_output_dir(p, "--out"), None


def run(args) -> int:
    from hyperleaf.io import ImageError

    try:
        tile, overlap = tiling(args.tile, args.overlap)
        if args.threads < 0:
            raise ValueError(f"--threads: expected >= 0, got {args.threads}")
        pairs = _pairs(args)
        out_dir, out_file = _output(args.out, len(pairs))
    except (ImageError, ValueError, FileNotFoundError) as exc:
        print(f"hyperleaf fuse: error: {flag_message(exc)}", file=sys.stderr)
        return 2

    import torch
    from tqdm import tqdm

    from hyperleaf.cli.paths import make_output_dir
    from hyperleaf.io import read_gray, read_image, write_png
    from hyperleaf.models.ship import fuse_arrays as fuse
    from hyperleaf.runs import load_run

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"hyperleaf fuse: error: {flag_message(exc)}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        net = load_run(args.weights, device, task="fuse").model
    except (FileNotFoundError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"hyperleaf fuse: error: --weights: {msg}", file=sys.stderr)
        return 2
    if hasattr(net, "fast"):
        net.fast = not args.exact
    if args.compile:
        net = torch.compile(net)
    total = 0.0
    bar = tqdm(pairs, desc="fusing", unit="pair", disable=args.no_progress, file=sys.stderr)
    for pair in bar:
        try:
            ir, vis = read_gray(pair.ir), read_image(pair.vis)
            fused_dir = make_output_dir(out_dir, "--out")
        except (ImageError, ValueError) as exc:
            print(f"hyperleaf fuse: error: {flag_message(exc)}", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        fused = fuse(net, ir=ir, vis=vis, device=device, tile=tile, overlap=overlap)
        dt = time.perf_counter() - t0
        total += dt
        target = write_png(out_file or fused_dir / f"{pair.name}.png", fused)
        bar.write(f"{pair.name}: {ir.shape[0]}x{ir.shape[1]} {dt:.2f} s -> {target}")
    where = out_file if out_file is not None else out_dir
    print(f"fused {len(pairs)} pair(s) in {total:.2f} s "
          f"({total / max(len(pairs), 1):.2f} s per pair) into {where}")
    return 0
