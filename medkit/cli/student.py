"""`medkit student`: write student copies of the lessons, without solutions or outputs."""

HELP = "Write student copies of the lessons without solution cells (tag 'solution') or outputs."


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="folder for the student notebooks")
    parser.add_argument("notebooks", nargs="*", help="notebooks to convert (default: every lesson)")


def run(args) -> int:
    from ..course import student_copies
    from . import emit

    paths = [str(p) for p in student_copies(args.out, args.notebooks or None)]
    emit(args, {"written": paths}, "\n".join(paths))
    return 0
