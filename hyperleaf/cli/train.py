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
    ("--task", "task", str, "fuse (SHIP + LEAF), segment (LEAFSegNet, LEAFUNet, "
                            "LEAFUNet3D) or pansharpen (SHIP on PAN + MS)"),
    ("--steps", "steps", int, "optimizer steps"),
    ("--batch-size", "batch_size", int, "batch size per process"),
    ("--lr", "lr", float, "peak learning rate"),
    ("--seed", "seed", int, "training seed: initial weights, data order, augmentation"),
    ("--save-every", "save_every", int, "checkpoint every K steps and at the end"),
    ("--log-every", "log_every", int, "log.jsonl record every K steps"),
    ("--eval-every", "eval_every", int, "validate every K steps, at start and at end"),
    ("--device", "device", str, "cpu, cuda or cuda:N"),
    ("--data", "data", str, "folder of real pairs (DIR/ir + DIR/vi, or flat IRk/VISk); "
                            "--task segment: MSRS (vi/ ir/ Segmentation_labels/), WHU-OPT-SAR "
                            "(optical256/ sar256/ label256/) or modality folders + label/ "
                            "(2-D images or NIfTI volumes)"),
    ("--crop", "crop", int, "training crop side in pixels"),
    ("--h2fr-weight", "h2fr_weight", float, "weight of the H2FR loss"),
    ("--optimizer", "optimizer", str, "radam (geoopt RiemannianAdam) or rsgd "
                                      "(RiemannianSGD)"),
    ("--threads", "threads", int, "CPU threads per process"),
    ("--precision", "precision", str, "fp32, bf16 or fp16: the forward under autocast (the "
                                      "hyperbolic parts stay float32); fp16 with a gradient "
                                      "scaler, its skipped steps counted in log.jsonl"),
    ("--out", "out", str, "run folder"),
    ("--recipe", "recipe", str, "a named set of defaults under --config and the flags: "
                                "ship-authors (the SHIP authors' loss, schedule and crops), "
                                "leaf-authors (--task segment: the LEAF authors' network, "
                                "loss, AdamW and cosine schedule)"),
    ("--model", "model", str, "--task segment: leafseg (synthetic set), leaf-unet (the LEAF "
                              "authors' 2-D network) or leaf-unet3d"),
    ("--encoder", "encoder", str, "--model leaf-unet: segmentation-models-pytorch encoder"),
    ("--num-classes", "num_classes", int, "--task segment: classes"),
    ("--weight-decay", "weight_decay", float, "optimizer weight decay"),
    ("--init", "init", str, "initial weights: the SHIP authors' checkpoint (.pth) or a "
                            "hyperleaf run folder; LEAF's added parts start at zero effect"),
    ("--n-feat", "n_feat", int, "SHIP feature channels"),
    ("--val-crop", "val_crop", int, "validation image side / centre crop; "
                                    "--task pansharpen: validation tile side (larger than the "
                                    "scenes: each whole)"),
    ("--val-fraction", "val_fraction", float, "real data: held-out fraction of the samples"),
    ("--sensor", "sensor", str, "--task pansharpen: sensor of the MTF gains for Wald's "
                                "degradation of full-resolution data (WV3, QB, landsat7...)"),
    ("--train-index", "train_index", str, "--task pansharpen: samples of --data that train, "
                                          "e.g. 0-79 or 0-7,9"),
    ("--lesion-fraction", "lesion_fraction", float, "--task segment: share of training "
                                                    "crops centred on a lesion (label > 0) "
                                                    "voxel, +- crop/4"),
    ("--val-index", "val_index", str, "--task pansharpen: samples that validate, e.g. 80-99"),
]

#: Every key a flag of ``hyperleaf train`` sets (the table's and the ``--no-...`` switches').
_KEYS = (*(k for _, k, _, _ in _FLAGS), "leaf", "hdgfb", "normalise", "compile")

#: What :func:`prepare` found on the command line: the task whose flags and defaults the
#: parser shows, its effective defaults and the keys it declares (None: not prepared).
_PREPARED: tuple[str, dict, dict] | None = None


def _task_named(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a == "--task" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--task="):
            return a.split("=", 1)[1]
    return None


def prepare(argv: list[str]) -> None:
    """Called with ``train``'s arguments before the parser is built: the task they name
    (``--task T``, else fuse) brings its own flags (``Task.config_keys``), and ``--help``
    shows that task's defaults. Nothing heavy is imported unless a task or help is asked for."""
    global _PREPARED
    _PREPARED = None
    task = _task_named(argv)
    if task is None and not any(a in ("-h", "--help") for a in argv):
        return
    from hyperleaf.tasks import get_task, list_tasks
    from hyperleaf.train.config import task_defaults

    name = task or "fuse"
    if name not in list_tasks():
        return  # the configuration check names it
    _PREPARED = (name, task_defaults(name), dict(get_task(name).config_keys))


def _foreign_keys() -> frozenset[str]:
    """Keys of other tasks than the prepared one (their flags are hidden from its --help)."""
    if _PREPARED is None:
        return frozenset()
    from hyperleaf.tasks import get_task

    return frozenset(get_task(_PREPARED[0]).foreign_keys)


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "null" if value is None else str(value)


def _with_default(key: str, text: str) -> str:
    """``text`` with the prepared task's default of ``key`` and, for a null or 0 default, what
    it means (from the key's documentation)."""
    if _PREPARED is None or key == "task":
        return text
    from hyperleaf.train.config import key_doc

    task, defaults, _ = _PREPARED
    value = defaults.get(key)
    shown = _shown(value)
    doc = key_doc(key, task)
    for marker in (f"{shown}: ", "null: "):
        if value in (None, 0) and marker in doc:
            shown += " = " + doc.split(marker, 1)[1].split(";")[0].rstrip(")")
            break
    return f"{text} (default for --task {task}: {shown})"


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
    foreign = _foreign_keys()
    for flag, key, typ, hlp in _FLAGS:
        # a flag of another task's key stays accepted (its use is refused by name) but hidden
        shown = argparse.SUPPRESS if key in foreign else _with_default(key, hlp)
        p.add_argument(flag, dest=key, type=typ, default=None, help=shown)
    if _PREPARED is not None:  # the flags of the keys the named task declares
        task, _, declared = _PREPARED
        for key, k in declared.items():
            if k.type in ("list", "dict"):
                continue  # set in a --config file
            flag = "--" + key.replace("_", "-")
            typ = {"int": int, "float": float}.get(k.type, str)
            if k.type == "bool":
                p.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction,
                               default=None, help=_with_default(key, k.doc))
            else:
                p.add_argument(flag, dest=key, type=typ, default=None,
                               help=_with_default(key, k.doc))
    p.add_argument("--no-leaf", dest="leaf", action="store_const", const=False, default=None,
                   help="train plain SHIP (no HDGFB, no H2FR): the ablation")
    p.add_argument("--no-hdgfb", dest="hdgfb", action="store_const", const=False, default=None,
                   help=argparse.SUPPRESS if "hdgfb" in foreign else
                   "no HDGFB blocks (H2FR still on the stages: the h2fr-only ablation arm); the "
                   "LEAF authors' networks replace every HDGFB by the identity")
    p.add_argument("--no-normalise", dest="normalise", action="store_const", const=False,
                   default=None, help=argparse.SUPPRESS if "normalise" in foreign else
                   "--task pansharpen: train SHIP on the raw reflectances (default: per-band "
                   "standardised inputs)")
    p.add_argument("--compile", dest="compile", action="store_const", const=True, default=None,
                   help="run the training objective through torch.compile")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """``(TrainConfig, explicit keys)``: defaults, then ``--config`` YAML, then the flags given."""
    from hyperleaf.train import TrainConfig
    from hyperleaf.train.config import flatten_config, load_yaml

    given = {k: getattr(args, k) for k in _given_keys(args)}
    source = args.config or "command line"
    # the file may be grouped by section (run/task/model/data) or flat: flatten before merging
    base = flatten_config(load_yaml(args.config), source) if args.config else {}
    cfg = TrainConfig.from_dict({**base, **given}, source=source)
    return cfg, frozenset(given)


def _flag_message(exc, args: argparse.Namespace) -> str:
    """The library's message in flags: its leading key (a ConfigError's, or a task's
    ValueError's) becomes the flag when the value came from one (not from the ``--config``
    file), keys quoted inside it always (:func:`hyperleaf.cli.flags.flag_message`)."""
    given = set(_given_keys(args))
    given |= {k for k in ("config", "resume") if getattr(args, k, None)}
    return flag_message(exc, given=given)  # the task's own flags are in the parser


def _given_keys(args: argparse.Namespace) -> list[str]:
    """The configuration keys set by a flag on this command line."""
    declared = _PREPARED[2] if _PREPARED is not None else {}
    return [k for k in (*_KEYS, *declared) if getattr(args, k, None) is not None]


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
        from hyperleaf.tasks import get_task

        print_summary(result, get_task(cfg.task))
    return 0
