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

__all__ = ["KEY_FLAGS", "ARGUMENT_ALIASES", "key_flags", "flag_message"]

#: Library arguments named differently from the option they come from (argument -> option dest).
ARGUMENT_ALIASES: dict[str, str] = {"data_dir": "data"}


def key_flags() -> dict[str, str]:
    """Library argument or configuration key -> the flag that sets it, read from every
    sub-command's parser (an option's ``dest`` is the key it sets; ``--no-leaf`` sets
    ``leaf``; ``train`` with the flags of every task's keys), plus :data:`ARGUMENT_ALIASES`. Every hyperleaf command spells a key the same way
    (``tests/test_architecture.py`` checks that no two commands disagree); a key without a flag
    is absent (its message keeps the key).

    >>> flags = key_flags()
    >>> flags["crop"], flags["leaf"], flags["data_dir"]
    ('--crop', '--no-leaf', '--data')
    """
    import argparse

    from hyperleaf.cli import build_parser
    from hyperleaf.cli import train as train_command

    if train_command._PREPARED is None:  # the tasks' own flags: as `hyperleaf train` has them
        train_command.prepare([])

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    out: dict[str, str] = {}
    for parser in sub.choices.values():
        for action in parser._actions:
            longs = [o for o in action.option_strings if o.startswith("--")]
            if longs and action.dest not in ("help", "version"):
                out.setdefault(action.dest, longs[0])
    out.update({alias: out[dest] for alias, dest in ARGUMENT_ALIASES.items() if dest in out})
    return out


class _KeyFlags(Mapping):
    """:func:`key_flags`, read when first used (building the parsers imports every command
    module: not at import time) and again whenever asked, so a task's own flags are in it."""

    def __getitem__(self, key: str) -> str:
        return key_flags()[key]

    def __iter__(self):
        return iter(key_flags())

    def __len__(self) -> int:
        return len(key_flags())

    def get(self, key, default=None):
        return key_flags().get(key, default)


#: Library argument or configuration key -> the flag that sets it (:func:`key_flags`; no table
#: written by hand).
KEY_FLAGS: Mapping[str, str] = _KeyFlags()

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
        >>> flag_message("lr: Lower `lr` or raise `lr_milestones`", given=())
        'lr: Lower --lr or raise lr_milestones'
    """
    text = str(message)
    if isinstance(flags, _KeyFlags):
        flags = key_flags()  # one reading of the parsers per message
    m = _PREFIX.match(text)
    if m:
        keys = m.group(1).split(", ")
        given_flags = None if given is None else {flags.get(g) for g in given}
        if all(k in flags and (given_flags is None or flags[k] in given_flags) for k in keys):
            text = ", ".join(flags[k] for k in keys) + ": " + text[m.end():]
    return _QUOTED.sub(lambda q: flags.get(q.group(1), q.group(1)), text)
