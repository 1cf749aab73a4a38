"""The `medkit` command: one module per subcommand in this package, found automatically.

A subcommand module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`, and
reports its result with `emit(args, data, text)`. Conventions every command shares:

- `--json`: stdout holds exactly one JSON document; progress and logs go to stderr (`log`), and so
  does anything else the command prints. A failure prints `{"error": ..., "type": ...}` instead.
- Exit codes: 0 success, 1 a medkit error (one line on stderr, no traceback) or a failed check,
  2 a usage error (argparse).
- `--quiet`: no progress bars and no log lines on stderr (the result on stdout and errors still print).
  Progress bars are drawn only on a terminal or in a notebook; elsewhere (a file, a CI log) a plain line
  every few seconds (`medkit.base.progress`). `TQDM_DISABLE=1` hides bars and lines alike, logs stay.
- `--json` and `--quiet` go before or after the command (`medkit --json doctor`, `medkit doctor --json`).
- Only the chosen command's `add_arguments` runs, and heavy imports stay inside `run`, so every
  `--help` returns in well under a second and imports no torch (tests/test_cli_conventions.py).
- Shell completion through argcomplete (the `completion` extra): `eval "$(medkit completion bash)"`.
"""

import argparse
import contextlib
import importlib
import json
import math
import os
import pkgutil
import sys
import traceback

from .. import __version__
from ..base.errors import MedkitError

__all__ = ["main", "build_parser", "emit", "log", "to_jsonable", "positive_int", "positive_float", "DEVICE_CHOICES",
           "value_range_arg"]

# `--device` of fit and evaluate: medkit.core.train.DEVICES, repeated here so `--help` imports no torch (tests keep
# the two equal); whether a device is present is asked only when the command runs (medkit.core.train.pick_device)
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def value_range_arg(text: str) -> tuple[float, float]:
    """Parse `--value-range LOW,HIGH` for fit, evaluate and predict (medkit.data.pixels), imported only when given."""
    from ..data.pixels import parse_value_range

    try:
        return parse_value_range(text)
    except MedkitError as exc:  # argparse shows only ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a size or a count), refused as a usage error otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a tolerance), refused as a usage error otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a finite number > 0")
    return value


def _commands() -> dict:
    return {info.name: importlib.import_module(f"{__name__}.{info.name}")
            for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")}


def to_jsonable(value):
    """Return `value` with paths, numpy scalars and arrays made plain, and NaN/inf as None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return to_jsonable(value.tolist())
    return str(value)  # Path and the like


def _write_json(stream, data) -> None:
    stream.write(json.dumps(to_jsonable(data)) + "\n")
    stream.flush()


def emit(args, data, text: str | None = None) -> None:
    """Print a command's result: `data` as one JSON line with --json, else `text` (default: indented JSON)."""
    out = getattr(args, "_stdout", None) or sys.stdout
    if getattr(args, "json", False):
        _write_json(out, data)
        args._emitted = True
    elif text != "":  # an empty text (nothing to report) prints nothing
        out.write((text if text is not None else json.dumps(to_jsonable(data), indent=2)) + "\n")
        out.flush()


# set by `main` for the command it runs: --quiet silences `log` (one command runs per process, tests run them in turn)
_quiet = False


def log(message: str) -> None:
    """Print a progress or log line on stderr (stdout is for results), unless the command runs with --quiet."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _quiet_mode(quiet: bool):
    """Silence `log` and every tqdm bar (medkit's, a library's, a lesson kernel's) while a --quiet command runs."""
    global _quiet
    saved = os.environ.get("TQDM_DISABLE")
    _quiet = quiet
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"  # tqdm reads it in every bar it builds; child processes inherit it
    try:
        yield
    finally:
        _quiet = False
        if quiet:
            if saved is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = saved


def _parser_class(json_errors: bool):
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            if json_errors:
                _write_json(sys.stdout, {"error": message, "type": "UsageError"})
            super().error(message)  # usage on stderr, exit code 2

    return Parser


def _add_shared_options(parser, default) -> None:
    """Add --json and --quiet, which every command takes, before or after its name."""
    parser.add_argument("--json", action="store_true", default=default,
                        help="print only JSON on stdout (logs go to stderr); a failure prints {error, type}, exit 1")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="no progress bars or log lines on stderr; the result and errors still print")


def build_parser(only: str | None = None, json_errors: bool = False) -> argparse.ArgumentParser:
    """Return the argument parser with one subparser per command module.

    Every command's arguments are added, or, with `only`, that command's alone (building some
    commands' options imports torch; `medkit --help` needs none of them).
    """
    parser_class = _parser_class(json_errors)
    parser = parser_class(prog="medkit", description="Transfer learning for medical images: lessons and tools.",
                          epilog="--json and --quiet go before or after the command. Progress bars show on a "
                                 "terminal only (a plain line every few seconds elsewhere; TQDM_DISABLE=1 hides "
                                 "both). Exit codes: 0 ok, 1 error, 2 usage. Completion: medkit completion bash|zsh.")
    parser.add_argument("--version", action="version", version=f"medkit {__version__}")
    _add_shared_options(parser, default=False)
    common = parser_class(add_help=False)
    # SUPPRESS: a subcommand's own default must not overwrite `medkit --json CMD`'s value (argparse copies
    # every attribute of the subcommand's namespace over the main one)
    _add_shared_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    for name, module in sorted(_commands().items()):
        p = sub.add_parser(name, help=module.HELP.replace("%", "%%"), description=module.HELP, parents=[common])
        if only is None or only == name:
            module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _command_in(argv: list[str]) -> str:
    """Return the subcommand named in `argv` (the first word that is not an option), or ""."""
    return next((word for word in argv if not word.startswith("-")), "")


def _complete() -> None:
    """Hand the whole parser (every command's options: none imports torch) to argcomplete, which exits."""
    try:
        import argcomplete
    except ImportError:
        return  # completion was set up, then the extra removed: complete nothing rather than fail the shell
    argcomplete.autocomplete(build_parser())


def _run(args) -> int:
    with _quiet_mode(args.quiet):
        return _run_command(args)


def _run_command(args) -> int:
    if not args.json:
        return int(args._run(args) or 0)
    with contextlib.redirect_stdout(sys.stderr):  # stray prints of the command or a library never corrupt the JSON
        code = int(args._run(args) or 0)
    if not getattr(args, "_emitted", False):
        emit(args, {"command": args.command, "exit_code": code})
    return code


def main(argv=None) -> int:
    """Run the medkit command line and return its exit code (0 ok, 1 medkit error, 2 usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (medkit completion): answer, then exit
        _complete()
    json_mode = "--json" in argv
    parser = build_parser(only=_command_in(argv), json_errors=json_mode)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    args._stdout = sys.stdout
    try:
        return _run(args)
    except MedkitError as exc:
        print(f"medkit {args.command}: error: {exc}", file=sys.stderr)
        if args.json:
            _write_json(args._stdout, {"error": str(exc), "type": type(exc).__name__})
        return 1
    except Exception as exc:
        if not args.json:
            raise  # a bug, not a user error: keep the traceback
        traceback.print_exc()
        _write_json(args._stdout, {"error": str(exc), "type": type(exc).__name__})
        return 1


if __name__ == "__main__":
    sys.exit(main())
