"""`medkit fetch`: pre-download weights and datasets into the cache."""

HELP = "Download weights and datasets into medkit's cache (run online, e.g. in Binder's postBuild)."


def add_arguments(parser):
    parser.add_argument("--weights", nargs="*", metavar="NAME", help="backbones to fetch (no names: all of them)")
    parser.add_argument("--data", nargs="*", metavar="NAME", help="datasets to fetch (no names: PneumoniaMNIST 28 and 64 px)")


def run(args) -> int:
    from ..fetch import fetch_data, fetch_weights

    if args.weights is None and args.data is None:
        args.weights, args.data = [], []  # no flag at all: fetch the defaults of both
    if args.weights is not None:
        for name, path in fetch_weights(args.weights or None).items():
            print(f"weights {name}: {path}")
    if args.data is not None:
        for name, path in fetch_data(args.data or None).items():
            print(f"data {name}: {path}")
    return 0
