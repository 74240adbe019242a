"""SHIP with the authors' weights: the two measured tables of docs/ship.md, as results files.

``results/ship_golden.json``: max |output - golden| on the two TNO pairs the authors' golden
outputs exist for (1 and 8), for ``SHIP(fast=True)`` (default), ``SHIP(fast=False)`` (term by
term) and ``benchmarks/ship_transcription.py`` with and without the centred convolutions of
the interaction InvBlocks' ``F`` branch (the transcription's ``UNetConvBlock.centre``), each
at every thread count of ``--threads`` (float32 rounding depends on it), and the transcription
without the centring in float64.

``results/ship_tiling.json``: how far ``hyperleaf.models.tiled_forward`` is from a whole-image
pass on TNO pair 8, in 8-bit levels (both outputs clamped to [0, 1] and rounded to 8 bits as
``hyperleaf fuse`` writes them), for each ``--tiles T/O``.

Both record the commit, the command, the configuration, the inputs (with SHA-256), the
hardware and the wall time; docs/ship.md renders them (``python -m
hyperleaf.experiments.render``). Run (about three minutes on 2 cores)::

    nice python benchmarks/ship_results.py --shared /work/shared --threads 1,2
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from ship_transcription import ShipTranscription, UNetConvBlock  # noqa: E402

from hyperleaf.atomic import atomic_write_text  # noqa: E402
from hyperleaf.compat import ship_from_official  # noqa: E402
from hyperleaf.compat.ship import load_official_state_dict  # noqa: E402
from hyperleaf.experiments.report import RESULTS_FORMAT, provenance  # noqa: E402
from hyperleaf.io import read_gray, to_uint8  # noqa: E402
from hyperleaf.models import SHIP, tiled_forward  # noqa: E402

GOLDEN_PAIRS = (1, 8)
TILING_PAIR = 8


def transcription(weights: Path, centre: bool) -> ShipTranscription:
    """The spec's direct transcription with the authors' weights; ``centre=False`` turns the
    centred convolutions off (a plain float32 ``conv(x)`` everywhere)."""
    net = ShipTranscription()
    net.load_state_dict(load_official_state_dict(weights), strict=True)
    for m in net.modules():
        if isinstance(m, UNetConvBlock) and m.centre:
            m.centre = centre
    return net.eval()


def _pair(tno: Path, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    vis = torch.from_numpy(read_gray(tno / f"VIS{k}.png"))[None, None]
    ir = torch.from_numpy(read_gray(tno / f"IR{k}.png"))[None, None]
    return vis, ir


def golden_record(shared: Path, threads: list[int], command: str) -> dict:
    """The golden-reproduction table (see the module docstring): every float32 path at each
    of ``threads``, and the transcription evaluated in float64."""
    t0 = time.perf_counter()
    tno, weights = shared / "data" / "tno", shared / "checkpoints" / "ship_irvis_official.pth"
    ship = ship_from_official(weights)

    def with_fast(fast: bool) -> SHIP:
        ship.fast = fast
        return ship

    paths = [
        ("`fast=True` (default)", lambda: with_fast(True), torch.float32),
        ("`fast=False` (term by term)", lambda: with_fast(False), torch.float32),
        ("transcription (`benchmarks/ship_transcription.py`), centred",
         lambda: transcription(weights, True), torch.float32),
        ("transcription without the centring", lambda: transcription(weights, False),
         torch.float32),
    ]
    goldens, inputs = {}, [weights]
    for k in GOLDEN_PAIRS:
        goldens[k] = np.load(shared / "golden" / f"ship_irvis_golden_{k}.npy")
        inputs += [shared / "golden" / f"ship_irvis_golden_{k}.npy", tno / f"VIS{k}.png",
                   tno / f"IR{k}.png"]
    runs = [(label, make, dtype, n) for n in threads for label, make, dtype in paths]
    runs.append(("transcription without the centring, **float64**",
                 lambda: transcription(weights, False).double(), torch.float64, max(threads)))
    rows, values = [], []
    for label, make, dtype, n in runs:
        torch.set_num_threads(n)
        net = make()
        diffs = []
        for k in GOLDEN_PAIRS:
            with torch.inference_mode():
                out = net(*(t.to(dtype) for t in _pair(tno, k)))[0, 0].numpy()
            if out.shape != goldens[k].shape:
                raise ValueError(f"golden {k}: shape {goldens[k].shape}, output {out.shape}")
            diffs.append(float(np.abs(out.astype(np.float64) - goldens[k]).max()))
        values.append({"path": label, "threads": n, "dtype": str(dtype),
                       **{f"pair {k}": d for k, d in zip(GOLDEN_PAIRS, diffs)}})
        rows.append([label, n, *(f"{d:.2g}" for d in diffs)])
        print(label, n, diffs, file=sys.stderr, flush=True)
    ship.fast = True
    return {
        "results_format": RESULTS_FORMAT, "kind": "table",
        "caption": (f"max |hyperleaf − golden| over the pixels of TNO pairs "
                    f"{' and '.join(map(str, GOLDEN_PAIRS))} (authors' weights, output "
                    f"unclamped; float32 unless marked; torch {torch.__version__}, "
                    "`threads` = torch CPU threads)."),
        "columns": ["path", "threads", *(f"pair {k}" for k in GOLDEN_PAIRS)],
        "rows": rows, "values": values,
        "config": {"pairs": list(GOLDEN_PAIRS), "threads": threads},
        "wall_seconds": time.perf_counter() - t0,
        **provenance(inputs, command),
    }


def tiling_record(shared: Path, tiles: list[tuple[int, int]], command: str) -> dict:
    """The tiling table (see the module docstring)."""
    t0 = time.perf_counter()
    tno, weights = shared / "data" / "tno", shared / "checkpoints" / "ship_irvis_official.pth"
    net = ship_from_official(weights)
    vis, ir = _pair(tno, TILING_PAIR)
    with torch.inference_mode():
        whole = to_uint8(net(vis, ir)[0, 0]).astype(np.int16)
    rows, values = [], []
    for tile, overlap in tiles:
        with torch.inference_mode():
            tiled = to_uint8(tiled_forward(net, vis, ir, tile, overlap)[0, 0]).astype(np.int16)
        d = np.abs(tiled - whole)
        mx, mean = int(d.max()), float(d.mean())
        values.append({"tile": tile, "overlap": overlap, "max": mx, "mean": mean})
        rows.append([tile, overlap, f"{mx} / 255", f"{mean:.2f} / 255"])
        print(tile, overlap, mx, mean, file=sys.stderr, flush=True)
    h, w = whole.shape
    return {
        "results_format": RESULTS_FORMAT, "kind": "table",
        "caption": (f"TNO pair {TILING_PAIR} ({h}x{w}), authors' weights: 8-bit output of "
                    "`tiled_forward(net, vis, ir, tile, overlap)` against the whole-image pass "
                    "(both clamped and rounded as `hyperleaf fuse` writes them), in grey "
                    "levels."),
        "columns": ["tile", "overlap", "max difference", "mean difference"],
        "rows": rows, "values": values,
        "config": {"pair": TILING_PAIR, "tiles": [list(t) for t in tiles],
                   "threads": torch.get_num_threads()},
        "wall_seconds": time.perf_counter() - t0,
        **provenance([weights, tno / f"VIS{TILING_PAIR}.png", tno / f"IR{TILING_PAIR}.png"],
                     command),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, required=True,
                    help="the shared folder (data/tno, golden/, checkpoints/)")
    ap.add_argument("--threads", default="1,2",
                    help="torch CPU threads, comma-separated: the golden table measures each; "
                         "the tiling table uses the largest")
    ap.add_argument("--tiles", default="192/32,160/48", help="TILE/OVERLAP, comma-separated")
    ap.add_argument("--golden-out", default="results/ship_golden.json")
    ap.add_argument("--tiling-out", default="results/ship_tiling.json")
    args = ap.parse_args(argv)
    try:
        threads = [int(n) for n in args.threads.split(",")]
        if min(threads) < 1:
            raise ValueError
    except ValueError:
        raise SystemExit(f"--threads: expected integers >= 1, comma-separated, got "
                         f"{args.threads!r}") from None
    try:
        tiles = [tuple(int(v) for v in t.split("/")) for t in args.tiles.split(",")]
        if any(len(t) != 2 for t in tiles):
            raise ValueError
    except ValueError:
        raise SystemExit(f"--tiles: expected TILE/OVERLAP[,TILE/OVERLAP...], got "
                         f"{args.tiles!r}") from None
    command = shlex.join(["python", *sys.argv])
    rec = golden_record(args.shared, threads, command)
    atomic_write_text(args.golden_out, json.dumps(rec, indent=1) + "\n")
    print(f"wrote {args.golden_out}")
    torch.set_num_threads(max(threads))
    rec = tiling_record(args.shared, tiles, command)
    atomic_write_text(args.tiling_out, json.dumps(rec, indent=1) + "\n")
    print(f"wrote {args.tiling_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
