"""``hyperleaf fuse``: fuse infrared/visible pairs with SHIP and write 8-bit PNGs.

    hyperleaf fuse --weights ship_irvis_official.pth --ir IR --vis VIS --out DIR
    hyperleaf fuse --weights ship_irvis_official.pth --data TNO_DIR --out DIR

IR and VIS are two files or two folders of matching names; ``--data`` takes the TNO/MSRS
layout (``ir/`` + ``vi/``) or the flat ``IRk.png`` / ``VISk.png`` naming. Colour visible
images are fused in YCrCb: the network fuses Y, Cr/Cb are kept, the result goes back to RGB.
All inputs are checked (readable, partner present, equal sizes) before anything is written,
and each output is written atomically.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fuse", help="fuse infrared/visible pairs with SHIP", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="SHIP checkpoint (the authors' .pth)")
    p.add_argument("--ir", help="infrared image or folder")
    p.add_argument("--vis", help="visible image or folder (grey or colour)")
    p.add_argument("--data", help="dataset folder: ir/ + vi/, or IRk/VISk files")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--tile", type=int, default=0,
                   help="fuse in overlapping tiles of this size (bounds memory for very large "
                        "images; changes results slightly, see docs/ship.md)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    p.add_argument("--exact", action="store_true",
                   help="use the term-by-term path instead of the fast one (same function)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _pairs(args):
    from hyperleaf.io import check_pairs, select_pairs

    pairs = select_pairs(ir=args.ir, vis=args.vis, data=args.data)
    check_pairs(pairs, decode=True)
    return pairs


def fuse_arrays(net, ir, vis, device: str = "cpu", tile: int = 0, overlap: int = 32):
    """Fuse one pair of images read by :mod:`hyperleaf.io` (``ir`` (H, W); ``vis`` (H, W) or
    (H, W, 3) RGB, floats in [0, 1]). Returns (H, W) or (H, W, 3) in [0, 1], clamped."""
    import numpy as np
    import torch

    from hyperleaf.io import rgb_to_ycrcb, ycrcb_to_rgb
    from hyperleaf.models import tiled_forward

    colour = vis.ndim == 3
    ycc = rgb_to_ycrcb(vis.astype(np.float32)) if colour else None
    y = ycc[..., 0] if colour else vis
    vt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None, None].to(device)
    it = torch.from_numpy(np.ascontiguousarray(ir, dtype=np.float32))[None, None].to(device)
    with torch.inference_mode():
        out = tiled_forward(net, vt, it, tile, overlap) if tile else net(vt, it)
    fused = out[0, 0].clamp(0, 1).float().cpu().numpy()
    if not colour:
        return fused
    ycc = ycc.copy()
    ycc[..., 0] = fused
    return np.clip(ycrcb_to_rgb(ycc), 0.0, 1.0)


def run(args) -> int:
    from hyperleaf.io import ImageError

    try:
        pairs = _pairs(args)
        if args.tile and args.tile < 8:
            raise ValueError(f"--tile: expected 0 (off) or at least 8, got {args.tile}")
        if args.threads < 0:
            raise ValueError(f"--threads: expected >= 0, got {args.threads}")
    except (ImageError, ValueError, FileNotFoundError) as exc:
        print(f"hyperleaf fuse: error: {exc}", file=sys.stderr)
        return 2

    import torch
    from tqdm import tqdm

    from hyperleaf.compat.ship import ship_from_official
    from hyperleaf.io import read_gray, read_image, write_png

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        net = ship_from_official(args.weights).to(args.device)
    except (FileNotFoundError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        print(f"hyperleaf fuse: error: --weights: {exc}", file=sys.stderr)
        return 2
    net.fast = not args.exact
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"hyperleaf fuse: error: --out: {out_dir} exists and is not a folder",
              file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0.0
    bar = tqdm(pairs, desc="fusing", unit="pair", disable=args.no_progress, file=sys.stderr)
    for pair in bar:
        try:
            ir, vis = read_gray(pair.ir), read_image(pair.vis)
        except ImageError as exc:
            print(f"hyperleaf fuse: error: {exc}", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        fused = fuse_arrays(net, ir, vis, args.device, args.tile, args.overlap)
        dt = time.perf_counter() - t0
        total += dt
        target = write_png(out_dir / f"{pair.name}.png", fused)
        bar.write(f"{pair.name}: {ir.shape[0]}x{ir.shape[1]} {dt:.2f} s -> {target}")
    print(f"fused {len(pairs)} pair(s) in {total:.2f} s "
          f"({total / max(len(pairs), 1):.2f} s per pair) into {out_dir}")
    return 0
