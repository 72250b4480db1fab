"""`celeblook` command line: one subcommand per module in engine/commands.

Every subcommand follows one rule for bad input: a one-line message on stderr and a non-zero exit,
never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from engine.errors import CelebLookError

# Each module defines register(subparsers) which adds its parser and sets `func`.
COMMAND_MODULES = [
    "engine.commands.generate",
    "engine.commands.bench",
    "engine.commands.align",
    "engine.commands.models",
    "engine.commands.jitter",
    "engine.commands.invert",
    "engine.commands.calibrate",
    "engine.commands.morph",
    "engine.commands.edit",
    "engine.commands.flicker",
    "engine.commands.text",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse with the CLI's rule for bad arguments too: one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="celeblook", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; map CelebLookError (and I/O errors) to a one-line message and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CelebLookError as exc:
        print(f"celeblook {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"celeblook {args.command}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
