"""`medkit completion bash|zsh`: print the shell script that completes medkit's commands and options."""

HELP = "Print a bash or zsh completion script (needs the `completion` extra); e.g. eval \"$(medkit completion bash)\"."

EPILOG = """\
Completion comes from argcomplete (pip install "medkit[completion]"): the script asks medkit itself for the
words that fit, so new commands and options complete without a new script.

  bash:  echo 'eval "$(medkit completion bash)"' >> ~/.bashrc
  zsh:   echo 'eval "$(medkit completion zsh)"' >> ~/.zshrc
"""


def add_arguments(parser):
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("shell", choices=("bash", "zsh"), help="the shell to print the script for")


def run(args) -> int:
    from ..base._optional import MissingExtraError, install_command
    from . import emit

    try:
        import argcomplete
    except ImportError as exc:
        raise MissingExtraError(f"medkit completion needs 'argcomplete', which is not installed. Install the "
                                f"'completion' extra: {install_command('completion')}.") from exc
    script = argcomplete.shellcode(["medkit"], shell=args.shell)
    emit(args, {"shell": args.shell, "script": script}, script.rstrip("\n"))
    return 0
