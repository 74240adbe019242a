"""The ``hyperleaf`` command line: one sub-command per module of this package.

Each sub-command module defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed namespace, returning the exit status). The modules import only
the standard library at the top; torch, geoopt, matplotlib and the rest of hyperleaf are
imported inside ``func``, so that ``hyperleaf --help`` and ``hyperleaf COMMAND --help`` answer
without loading them (``benchmarks/bench_cli.py`` measures it).

Every ``--help`` shows the defaults (:class:`DefaultsHelpFormatter`); ``hyperleaf`` with no
arguments prints the top-level help.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Sub-command modules of ``hyperleaf.cli``, in the order ``--help`` lists them.
COMMANDS = ["check", "train", "plot", "fuse", "evaluate", "leaderboard", "pansharpen", "ablate"]


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help, like argparse's
    ``ArgumentDefaultsHelpFormatter``, but not when there is nothing to say: no default
    (``None``), an off switch (``store_true``), or a help text that already names its default
    (``train``'s flags default to ``None`` so that only the given ones override ``--config``,
    and their help states the effective default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is argparse.SUPPRESS or isinstance(default, bool)
                or "default" in text or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class RawDescriptionDefaultsHelpFormatter(DefaultsHelpFormatter,
                                          argparse.RawDescriptionHelpFormatter):
    """:class:`DefaultsHelpFormatter` that keeps the description's line breaks (for
    sub-commands whose description is their module docstring, with example commands)."""


class _Parser(argparse.ArgumentParser):
    """Every (sub-)parser shows defaults; a sub-command that asked for a raw description keeps
    it raw."""

    def __init__(self, *args, formatter_class=argparse.HelpFormatter, **kwargs):
        raw = issubclass(formatter_class, argparse.RawDescriptionHelpFormatter)
        kwargs["formatter_class"] = (RawDescriptionDefaultsHelpFormatter if raw
                                     else DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from hyperleaf import __version__

    parser = _Parser(
        prog="hyperleaf",
        description="Hyperbolic geometry for multimodal image fusion (LEAF on geoopt). "
                    "Workflow: hyperleaf train -> hyperleaf fuse -> hyperleaf evaluate -> "
                    "hyperleaf plot (see README.md).",
    )
    parser.add_argument("--version", action="version", version=f"hyperleaf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"hyperleaf.cli.{name}").register(sub)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The namespace of the command line ``argv``, parsed as :func:`main` parses it: the
    sub-command first shapes its parser from its arguments (``train``: the flags of the task
    it names, else fuse's, and that task's defaults in ``--help``), then
    :func:`build_parser`'s parser reads them. (``build_parser()`` alone has ``train``'s engine
    flags only: it imports no torch.)

    >>> parse_args(["train", "--no-leaf", "--steps", "3"]).leaf
    False
    """
    argv = list(argv)
    if argv and argv[0] in COMMANDS:
        prepare = getattr(importlib.import_module(f"hyperleaf.cli.{argv[0]}"), "prepare", None)
        if prepare is not None:
            prepare(argv[1:])
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # a bare `hyperleaf` is a request for help, not a mistake
        build_parser().print_help()
        return 0
    args = parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
