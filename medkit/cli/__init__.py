"""The `medkit` command: one module per subcommand in this package, found automatically.

A subcommand module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Heavy imports stay inside `run`, so `medkit --help` and `medkit doctor` start fast.
"""

import argparse
import importlib
import pkgutil
import sys

from ..errors import MedkitError

__all__ = ["main", "build_parser"]


def _commands() -> dict:
    return {info.name: importlib.import_module(f"{__name__}.{info.name}")
            for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one subparser per command module."""
    parser = argparse.ArgumentParser(prog="medkit", description="Transfer learning for medical images: lessons and tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in sorted(_commands().items()):
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    """Run the medkit command line; a MedkitError becomes one clear line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except MedkitError as exc:
        print(f"medkit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
