"""`medkit course`: run every lesson and print one table of the numbers each recorded."""

HELP = "Run the lesson notebooks (default profile: workshop) and print a table of every lesson's recorded numbers."


def add_arguments(parser):
    parser.add_argument("--profile", default="workshop", choices=["smoke", "workshop", "full"])
    parser.add_argument("--out", default="outputs/course", help="folder for executed notebooks and metrics (default: %(default)s)")
    parser.add_argument("--lessons", nargs="*", metavar="NN", help="only these lessons, by number or name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a parameters-cell value in every lesson, e.g. -p BACKBONE resnet18 (repeatable; "
                             "VALUE is read as a Python literal, else as a string)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel to run the lessons in (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="fail a lesson whose cell runs longer than this (default: no limit)")


def run(args) -> int:
    from ..course import parse_value, run_course, summary_table
    from . import emit, log

    parameters = {name: parse_value(value) for name, value in args.parameter}
    results = run_course(args.out, profile=args.profile, lessons=args.lessons, seed=args.seed, echo=log,
                         kernel=args.kernel, timeout=args.timeout, parameters=parameters)
    emit(args, {"out": args.out, "results": results},
         f"\n{summary_table(results)}\n\nExecuted notebooks and metrics are in {args.out}/")
    return 1 if any(r["error"] for r in results) else 0
