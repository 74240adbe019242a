"""The ``hyperleaf`` command line: one sub-command per module of this package.

Each sub-command module defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed namespace, returning the exit status). Heavy imports happen
inside ``func`` so that ``hyperleaf --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Sub-command modules of ``hyperleaf.cli``, in the order ``--help`` lists them.
COMMANDS = ["check", "train", "plot", "fuse", "evaluate"]


def build_parser() -> argparse.ArgumentParser:
    from hyperleaf import __version__

    parser = argparse.ArgumentParser(
        prog="hyperleaf",
        description="Hyperbolic geometry for multimodal image fusion (LEAF on geoopt).",
    )
    parser.add_argument("--version", action="version", version=f"hyperleaf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"hyperleaf.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
