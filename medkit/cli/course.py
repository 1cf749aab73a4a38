"""`medkit course`: run every lesson and print one table of the numbers each recorded."""

HELP = "Run the lesson notebooks (default profile: workshop) and print a table of every lesson's recorded numbers."


def add_arguments(parser):
    parser.add_argument("--profile", default="workshop", choices=["smoke", "workshop", "full"])
    parser.add_argument("--out", default="outputs/course", help="folder for executed notebooks and metrics (default: %(default)s)")
    parser.add_argument("--lessons", nargs="*", metavar="NN", help="only these lessons, by number or name")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from ..course import run_course, summary_table

    results = run_course(args.out, profile=args.profile, lessons=args.lessons, seed=args.seed)
    print()
    print(summary_table(results))
    print(f"\nExecuted notebooks and metrics are in {args.out}/")
    return 1 if any(r["error"] for r in results) else 0
