"""``hyperleaf train``: train a registered task (fuse, segment, pansharpen) with a Riemannian
optimizer; every task runs through the same engine (:mod:`hyperleaf.train.trainer`)."""

from __future__ import annotations

import argparse
import os
import sys

from hyperleaf.cli.flags import flag_message

# flag -> (TrainConfig key, type, help). Flags default to None so that only the ones given
# override --config (and the defaults).
_FLAGS: list[tuple[str, str, type, str]] = [
    ("--task", "task", str, "fuse (SHIP + LEAF, default), segment (LEAFSegNet, LEAFUNet, "
                            "LEAFUNet3D) or pansharpen (SHIP on PAN + MS)"),
    ("--steps", "steps", int, "optimizer steps (default 100)"),
    ("--batch-size", "batch_size", int, "batch size per process (default 4)"),
    ("--lr", "lr", float, "peak learning rate (default 2e-3; warm-up then cosine)"),
    ("--seed", "seed", int, "training seed: initial weights, data order, augmentation (default 0)"),
    ("--save-every", "save_every", int, "checkpoint every K steps and at the end (default 50)"),
    ("--log-every", "log_every", int, "log.jsonl record every K steps (default 5)"),
    ("--eval-every", "eval_every", int, "validate every K steps, at start and at end (default 50)"),
    ("--device", "device", str, "cpu, cuda or cuda:N (default: cuda when available)"),
    ("--data", "data", str, "folder of real pairs (DIR/ir + DIR/vi, or flat IRk/VISk); "
                            "--task segment: MSRS (vi/ ir/ Segmentation_labels/), WHU-OPT-SAR "
                            "(optical256/ sar256/ label256/) or modality folders + label/ "
                            "(2-D images or NIfTI volumes); default: the embedded synthetic set"),
    ("--crop", "crop", int, "training crop side in pixels (default 32)"),
    ("--h2fr-weight", "h2fr_weight", float, "weight of the H2FR loss (default 0.5)"),
    ("--optimizer", "optimizer", str, "radam (geoopt RiemannianAdam, default) or rsgd "
                                      "(RiemannianSGD)"),
    ("--threads", "threads", int, "CPU threads per process (default 1; 0: torch's default)"),
    ("--out", "out", str, "run folder (default runs/<timestamp>)"),
    ("--recipe", "recipe", str, "a named set of defaults under --config and the flags: "
                                "ship-authors (the SHIP authors' loss, schedule and crops), "
                                "leaf-authors (--task segment: the LEAF authors' network, "
                                "loss, AdamW and cosine schedule)"),
    ("--model", "model", str, "--task segment: leafseg (synthetic set), leaf-unet (the LEAF "
                              "authors' 2-D network) or leaf-unet3d (default: from the data)"),
    ("--encoder", "encoder", str, "--model leaf-unet: segmentation-models-pytorch encoder "
                                  "(default resnet50, the authors')"),
    ("--num-classes", "num_classes", int, "--task segment: classes (default: from the data: "
                                          "MSRS 9, WHU-OPT-SAR 8, other layouts the largest "
                                          "label + 1; the synthetic set 4)"),
    ("--weight-decay", "weight_decay", float, "optimizer weight decay (default 0)"),
    ("--init", "init", str, "initial weights: the SHIP authors' checkpoint (.pth) or a "
                            "hyperleaf run folder; LEAF's added parts start at zero effect"),
    ("--n-feat", "n_feat", int, "SHIP feature channels (default 8)"),
    ("--val-crop", "val_crop", int, "validation image side / centre crop (default 64); "
                                    "--task pansharpen: validation tile side (larger than the "
                                    "scenes: each whole)"),
    ("--val-fraction", "val_fraction", float, "real data: held-out fraction of the samples "
                                              "(default 0.1; --task pansharpen 0.2)"),
    ("--sensor", "sensor", str, "--task pansharpen: sensor of the MTF gains for Wald's "
                                "degradation of full-resolution data (WV3, QB, landsat7...; "
                                "default generic)"),
    ("--train-index", "train_index", str, "--task pansharpen: samples of --data that train, "
                                          "e.g. 0-79 or 0-7,9 (default: all but --val-index)"),
    ("--lesion-fraction", "lesion_fraction", float, "--task segment: share of training "
                                                    "crops centred on a lesion (label > 0) "
                                                    "voxel, +- crop/4 (default 0: uniform)"),
    ("--val-index", "val_index", str, "--task pansharpen: samples that validate, e.g. 80-99 "
                                      "(default: the last --val-fraction of the samples)"),
]

#: Every key a flag of ``hyperleaf train`` sets (the table's and the ``--no-...`` switches').
_KEYS = (*(k for _, k, _, _ in _FLAGS), "leaf", "hdgfb", "normalise")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train fusion (SHIP + LEAF), segmentation or pan-sharpening with a "
                      "Riemannian optimizer",
        description="Train SHIP extended by LEAF (HDGFB per stage, H2FR over the stages) with "
                    "geoopt's RiemannianAdam. With no arguments: a short CPU run (under a minute here) on the "
                    "embedded synthetic infrared-visible set. Outputs in --out: model.safetensors, "
                    "config.yaml, log.jsonl, samples/, leaf.png, checkpoints/.")
    p.add_argument("--config", metavar="FILE", help="YAML file of TrainConfig keys; flags "
                                                    "override it")
    for flag, key, typ, hlp in _FLAGS:
        p.add_argument(flag, dest=key, type=typ, default=None, help=hlp)
    p.add_argument("--no-leaf", dest="leaf", action="store_const", const=False, default=None,
                   help="train plain SHIP (no HDGFB, no H2FR): the ablation")
    p.add_argument("--no-hdgfb", dest="hdgfb", action="store_const", const=False, default=None,
                   help="--model leaf-unet(3d): replace every HDGFB by the identity (ablation; "
                        "--h2fr-weight 0 drops H2FR, --no-leaf both)")
    p.add_argument("--no-normalise", dest="normalise", action="store_const", const=False,
                   default=None, help="--task pansharpen: train SHIP on the raw reflectances "
                                      "(default: per-band standardised inputs)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """``(TrainConfig, explicit keys)``: defaults, then ``--config`` YAML, then the flags given."""
    from hyperleaf.train import TrainConfig
    from hyperleaf.train.config import flatten_config, load_yaml

    given = {k: getattr(args, k) for k in _KEYS if getattr(args, k) is not None}
    source = args.config or "command line"
    # the file may be grouped by section (run/task/model/data) or flat: flatten before merging
    base = flatten_config(load_yaml(args.config), source) if args.config else {}
    cfg = TrainConfig.from_dict({**base, **given}, source=source)
    return cfg, frozenset(given)


def _flag_message(exc, args: argparse.Namespace) -> str:
    """The library's message in flags: its leading key (a ConfigError's, or a task's
    ValueError's) becomes the flag when the value came from one (not from the ``--config``
    file), keys quoted inside it always (:func:`hyperleaf.cli.flags.flag_message`)."""
    given = {k for k in _KEYS if getattr(args, k, None) is not None}
    given |= {k for k in ("config", "resume") if getattr(args, k, None)}
    return flag_message(exc, given=given)


def run(args: argparse.Namespace) -> int:
    from hyperleaf.atomic import LocationError
    from hyperleaf.train import ConfigError, TrainingError, train
    from hyperleaf.train.summary import print_summary

    try:
        cfg, explicit = config_from_args(args)
        result = train(cfg, resume=args.resume, progress=not args.no_progress,
                       report=lambda msg: print(f"hyperleaf train: {flag_message(msg)}",
                                                file=sys.stderr),
                       explicit=explicit)
    except ConfigError as exc:
        print(f"hyperleaf train: error: {_flag_message(exc, args)}", file=sys.stderr)
        return 2
    except LocationError as exc:  # the run folder cannot be created where --out points
        print(f"hyperleaf train: error: --out: {exc}", file=sys.stderr)
        return 2
    except (TrainingError, ValueError, FileNotFoundError) as exc:
        # ValueError includes CheckpointError (damaged or refused checkpoints) and LocationError.
        print(f"hyperleaf train: error: {_flag_message(exc, args)}", file=sys.stderr)
        return 2
    except ImportError as exc:  # an optional extra (e.g. hyperleaf[seg] for leaf-unet) missing
        print(f"hyperleaf train: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, full disk: the OS's words and the file
        where = f": {exc.filename}" if exc.filename else ""
        print(f"hyperleaf train: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 reports
        print_summary(result)
    return 0
