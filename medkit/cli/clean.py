"""`medkit clean`: strip outputs from notebooks (and give cells ids) before committing them."""

HELP = "Strip outputs, execution counts and widget state from notebooks and give every cell an id (default: every lesson)."


def add_arguments(parser):
    parser.add_argument("notebooks", nargs="*", help="notebooks to clean (default: every lesson)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook needs cleaning")


def run(args) -> int:
    from ..course import clean_notebooks
    from . import emit

    dirty = [str(p) for p in clean_notebooks(args.notebooks or None, check=args.check)]
    emit(args, {"check": args.check, "dirty" if args.check else "cleaned": dirty},
         "\n".join(f"{'needs cleaning' if args.check else 'cleaned'}: {path}" for path in dirty))
    return 1 if (args.check and dirty) else 0
