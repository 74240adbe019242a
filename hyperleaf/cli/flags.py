"""Library errors in command-line words: the one map from argument / configuration keys to flags.

Library code never names a flag. Its messages name the argument or configuration key instead,
in two places a front end can find without guessing:

* a leading ``key: `` (or ``key1, key2: ``): the value at fault, e.g. ``crop: must be >= 16``;
* a key quoted in backticks inside the text, e.g. ``pass `resume` to continue it``.

:func:`flag_message` rewrites both with :data:`KEY_FLAGS`, so ``hyperleaf train --crop 8`` says
``--crop: must be >= 16`` while ``TrainConfig(crop=8).validate()`` says ``crop: ...``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

__all__ = ["KEY_FLAGS", "flag_message"]

#: Library argument or configuration key -> the flag that sets it. Every hyperleaf command
#: spells a key the same way; a key without a flag is absent (its message keeps the key).
KEY_FLAGS: dict[str, str] = {
    # inputs and outputs
    "ir": "--ir", "vis": "--vis", "data": "--data", "data_dir": "--data", "fused": "--fused",
    "out": "--out", "weights": "--weights", "config": "--config", "resume": "--resume",
    # train (hyperleaf/cli/train.py's table) and ablate
    "task": "--task", "steps": "--steps", "batch_size": "--batch-size", "lr": "--lr",
    "seed": "--seed", "save_every": "--save-every", "log_every": "--log-every",
    "eval_every": "--eval-every", "device": "--device", "crop": "--crop",
    "h2fr_weight": "--h2fr-weight", "optimizer": "--optimizer", "threads": "--threads",
    "recipe": "--recipe", "model": "--model", "encoder": "--encoder",
    "num_classes": "--num-classes", "weight_decay": "--weight-decay", "init": "--init",
    "n_feat": "--n-feat", "sensor": "--sensor", "val_crop": "--val-crop",
    "val_fraction": "--val-fraction", "train_index": "--train-index", "val_index": "--val-index",
    "seeds": "--seeds", "arms": "--arms", "workers": "--workers", "metrics": "--metrics",
    "convention": "--convention", "heldout": "--heldout",
    "heldout_fraction": "--heldout-fraction", "level": "--level",
    "leaf": "--no-leaf", "hdgfb": "--no-hdgfb", "normalise": "--no-normalise",
    "precision": "--precision", "compile": "--compile",
    # fuse
    "tile": "--tile", "overlap": "--overlap",
}

_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*): ")
_QUOTED = re.compile(r"`([a-z_][a-z0-9_]*)`")


def flag_message(message: object, flags: Mapping[str, str] = KEY_FLAGS,
                 given: Collection[str] | None = None) -> str:
    """``message`` (an exception or a string) with its keys named as flags.

    The leading ``key: `` becomes the flag when every key there has one in ``flags`` and, if
    ``given`` (the keys set on the command line) is passed, that flag was given: a bad value
    read from a ``--config`` file keeps its key. Each backtick-quoted key becomes its flag, or
    the bare key when it has none.

    Example:

        >>> flag_message("crop: image a.png is 8x8 (HxW), smaller than 32; lower `crop`")
        '--crop: image a.png is 8x8 (HxW), smaller than 32; lower --crop'
        >>> flag_message("ir, vis: give `ir` and `vis`, or `data`")
        '--ir, --vis: give --ir and --vis, or --data'
        >>> flag_message("lr: Lower `lr` or raise `grad_clip`", given=())
        'lr: Lower --lr or raise grad_clip'
    """
    text = str(message)
    m = _PREFIX.match(text)
    if m:
        keys = m.group(1).split(", ")
        given_flags = None if given is None else {flags.get(g) for g in given}
        if all(k in flags and (given_flags is None or flags[k] in given_flags) for k in keys):
            text = ", ".join(flags[k] for k in keys) + ": " + text[m.end():]
    return _QUOTED.sub(lambda q: flags.get(q.group(1), q.group(1)), text)
