"""``hyperleaf evaluate --task segment``: scores of a trained segmentation run on a data folder.

    hyperleaf evaluate --task segment --weights runs/msrs --data MSRS_test/ --out scores.json

The run folder (``config.yaml`` + ``model.safetensors`` of ``hyperleaf train --task segment``)
rebuilds its network; ``--data`` is any layout :class:`hyperleaf.data.segmentation.SegmentationFolder`
reads (MSRS, WHU-OPT-SAR, generic modality folders + label folder, flat ``CASE_MODALITY``
files; 2-D images or NIfTI volumes), with the run's modality groups, input channels and number
of classes (labels outside them stop with the file named). Every item is predicted whole, tile
by tile as training's validation does (:func:`hyperleaf.tasks.segment.tile_logits`: tiles of
the run's ``val_crop`` for 2-D, ``crop`` for volumes). Printed and, with ``--out``, written as
JSON (atomically): mIoU, mDice, OA, per-class IoU and Dice (torchmetrics confusion matrix over
all pixels of all items), and the LEAF authors' validation mIoU / mPA, labelled as theirs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

AUTHORS_NOTE = ("the LEAF authors' validation metric, not the standard mIoU: per batch of {b} "
                "items, the mean IoU over the classes with IoU > 0 (missed classes left out), "
                "then the batch-size-weighted mean; never below the per-batch standard mIoU, "
                "not comparable with it")


def _error(exc: BaseException | str) -> int:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    print(f"hyperleaf evaluate: error: {text}", file=sys.stderr)
    return 2


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def segment_report(args: argparse.Namespace) -> dict[str, Any]:
    """The scores of ``args.weights`` on ``args.data`` as a JSON-ready dict (module docstring);
    raises ``ValueError``/``FileNotFoundError``/``ImportError`` naming what is wrong."""
    import torch

    from hyperleaf.data.segmentation import SegmentationItems
    from hyperleaf.runs import load_run
    from hyperleaf.tasks.segment import eval_tile, open_segment_data, segment_scores
    from hyperleaf.train.config import load_run_config

    if not args.weights:
        raise ValueError("--weights: --task segment needs a run folder of hyperleaf train "
                         "--task segment")
    if not args.data:
        raise ValueError("--data: --task segment needs a segmentation data folder")
    run = Path(args.weights)
    if not run.is_dir():
        raise FileNotFoundError(f"--weights: not a run folder: {run}")
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"--weights: {run} has no config.yaml (expected a hyperleaf "
                                f"train run folder)")
    cfg = load_run_config(run / "config.yaml")
    if cfg.task != "segment":
        raise ValueError(f"--weights: {run} is a {cfg.task!r} run, not a segmentation run")
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f"--data: no such folder: {args.data}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_run(run, device, task="segment")  # the network alone: no loss is built
    objective, cfg = loaded.model, loaded.config
    if cfg.data is None and cfg.model == "leafseg":
        raise ValueError(f"--weights: {run} trained leafseg on the embedded synthetic set; "
                         f"only leaf-unet / leaf-unet3d runs evaluate on data folders")
    folder, groups, volumes, _ = open_segment_data(cfg, args.data)
    tile = eval_tile(cfg, volumes)
    items = SegmentationItems(folder, range(len(folder)), groups, cache_bytes=0)
    r = segment_scores(objective, items, device, cfg.num_classes, tile=tile,
                       chunk=cfg.batch_size)
    from hyperleaf.tasks.segment import AUTHORS_VAL_BATCH

    return {
        "run": str(run), "data": str(folder.root), "layout": folder.layout,
        "modalities": list(folder.modalities), "modality_groups": groups,
        "items": r["items"], "num_classes": cfg.num_classes, "model": cfg.model,
        "tile": tile, "device": str(device),
        "miou": _num(r["miou"]), "mdice": _num(r["mdice"]), "oa": _num(r["oa"]),
        "iou": [_num(v) for v in r["iou"]], "dice": [_num(v) for v in r["dice"]],
        "cross_entropy": _num(r["loss"]),
        "authors": {"miou": _num(r["authors_miou"]), "mpa": _num(r["authors_mpa"]),
                    "batch": AUTHORS_VAL_BATCH,
                    "note": AUTHORS_NOTE.format(b=AUTHORS_VAL_BATCH)},
    }


def format_report(rep: dict[str, Any]) -> str:
    """The printed form of :func:`segment_report`'s dict."""
    def f(x):
        return "  n/a " if x is None else f"{x:.4f}"

    lines = [f"segmentation scores of {rep['run']} on {rep['data']} (layout {rep['layout']}, "
             f"{rep['items']} items, {rep['num_classes']} classes, tiles of {rep['tile']})",
             f"mIoU   {f(rep['miou'])}",
             f"mDice  {f(rep['mdice'])}",
             f"OA     {f(rep['oa'])}",
             "class   IoU     Dice"]
    for k, (iou, dice) in enumerate(zip(rep["iou"], rep["dice"], strict=True)):
        lines.append(f"{k:>5}  {f(iou)}  {f(dice)}")
    a = rep["authors"]
    lines.append(f"authors' mIoU (theirs) {f(a['miou'])}   authors' mPA (theirs) {f(a['mpa'])}")
    lines.append(f"  ({a['note']}; n/a: class absent from labels and predictions)")
    return "\n".join(lines)


def evaluate_run(args: argparse.Namespace) -> int:
    """``hyperleaf evaluate --task segment`` (module docstring): 0, or 2 with one error line."""
    from hyperleaf.atomic import LocationError, atomic_write_text, check_writable_location

    try:
        if args.out:
            check_writable_location(args.out)
            if Path(args.out).is_dir():
                raise LocationError(f"{args.out} is a folder; give a file name (scores.json)")
        rep = segment_report(args)
    except LocationError as exc:
        return _error(f"--out: {exc}")
    except (ValueError, FileNotFoundError, ImportError) as exc:
        # ValueError includes SegmentationDataError (naming the file) and ConfigError
        return _error(exc)
    except OSError as exc:
        return _error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else exc)
    print(format_report(rep))
    if args.out:
        try:
            atomic_write_text(args.out, json.dumps(rep, indent=2, allow_nan=False) + "\n")
        except OSError as exc:
            return _error(f"--out: {exc.strerror or exc}: {args.out}")
        print(f"wrote {args.out}")
    return 0
