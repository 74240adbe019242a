"""``hyperleaf train``: train a registered task (fuse, segment, pansharpen) with a Riemannian
optimizer; every task runs through the same engine (:mod:`hyperleaf.train.trainer`)."""

from __future__ import annotations

import argparse
import os
import sys

from hyperleaf.cli.flags import flag_message

#: The configuration keys the parser has a flag for (their ``dest``), filled by :func:`register`:
#: the engine's keys, and once prepared every registered task's.
_KEY_DESTS: list[str] = []

#: What :func:`prepare` found on the command line: the task whose flags and defaults the
#: parser shows, its effective defaults and the keys it declares (None: not prepared).
_PREPARED: tuple[str, dict, dict] | None = None


def _flag_value(argv: list[str], flag: str) -> str | None:
    """The value given to ``flag`` on the command line (``--flag V`` or ``--flag=V``; None:
    not given), read before the parser exists."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _config_task(path: str) -> str | None:
    """The ``task`` the ``--config`` file ``path`` names (None: none readable; the
    configuration check reports a bad file later)."""
    from hyperleaf.train.config import ConfigError, flatten_config, load_yaml

    try:
        task = flatten_config(load_yaml(path), path).get("task")
    except ConfigError:
        return None
    return task if isinstance(task, str) else None


def prepare(argv: list[str]) -> None:
    """Called with ``train``'s arguments before the parser is built: the task they name
    (``--task T``, else the ``--config`` file's, else fuse) brings its own flags
    (``Task.config_keys``), and ``--help`` shows that task's defaults. (Without it, as in
    ``hyperleaf --help``, the parser has the engine's flags only and imports no torch.)"""
    global _PREPARED
    _PREPARED = None
    from hyperleaf.tasks import get_task, list_tasks
    from hyperleaf.train.config import recipe_owner, task_defaults

    config, recipe = _flag_value(argv, "--config"), _flag_value(argv, "--recipe")
    name = _flag_value(argv, "--task") or (_config_task(config) if config else None)
    if name is None and recipe is not None:
        name = recipe_owner(recipe)  # a recipe that names its task (leaf-authors: segment)
    name = name or "fuse"
    if name not in list_tasks():
        return  # the configuration check names it
    _PREPARED = (name, task_defaults(name), dict(get_task(name).config_keys))


def _foreign_keys() -> frozenset[str]:
    """Keys the prepared task does not read: other tasks' own keys and the engine keys it
    declares unused (their flags are hidden from its --help)."""
    if _PREPARED is None:
        return frozenset()
    from hyperleaf.tasks import get_task

    task = get_task(_PREPARED[0])
    return frozenset({*task.foreign_keys, *task.unused_keys})


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


def _add_key_flag(p: argparse.ArgumentParser, key: str, typ: str, help: str,
                  default: object = None) -> None:
    """The flag of configuration key ``key`` (``--key-with-dashes``; a bool gets ``--key`` and
    ``--no-key``, the one that changes its ``default`` first: errors name that one); lists and
    mappings have none (set them in a ``--config`` file). Every flag defaults to None, so that
    only the ones given override ``--config`` and the defaults."""
    kind = typ.removesuffix(" | None")
    if kind.startswith(("list", "dict")):
        return
    if help is not argparse.SUPPRESS:  # argparse formats help with %; docs quote keys in `...`
        help = help.replace("%", "%%").replace("`", "")
    flag = "--" + key.replace("_", "-")
    if kind == "bool":
        action = p.add_argument(flag, dest=key, action=argparse.BooleanOptionalAction,
                                default=None, help=help)
        if default is True:  # --no-key first
            action.option_strings.reverse()
    else:
        p.add_argument(flag, dest=key, type={"int": int, "float": float}.get(kind, str),
                       default=None, help=help)
    _KEY_DESTS.append(key)


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
    _KEY_DESTS.clear()
    foreign = _foreign_keys()
    from hyperleaf.train.config import engine_keys, key_doc

    task = _PREPARED[0] if _PREPARED is not None else None
    for key, (typ, _, default) in engine_keys().items():
        # an engine key the task does not read stays accepted (its use is refused by name)
        _add_key_flag(p, key, typ, argparse.SUPPRESS if key in foreign
                      else _with_default(key, key_doc(key, task)), default)
    if _PREPARED is not None:
        from hyperleaf.tasks import get_task, list_tasks

        declared = _PREPARED[2]
        for key, k in declared.items():  # the flags of the keys the named task declares
            if k.flag:
                _add_key_flag(p, key, k.type, _with_default(key, k.doc), k.default)
        # Other tasks' keys: accepted, hidden, and refused by name by the configuration check.
        for other in list_tasks():
            for key, k in get_task(other).config_keys.items():
                if k.flag and key not in _KEY_DESTS and key in foreign:
                    _add_key_flag(p, key, k.type, argparse.SUPPRESS, k.default)
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
    return [k for k in _KEY_DESTS if getattr(args, k, None) is not None]


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
