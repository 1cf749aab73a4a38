"""`medkit fetch`: pre-download weights and datasets into the cache."""

HELP = "Download weights and datasets into medkit's cache (run online, e.g. before a workshop without internet)."


def add_arguments(parser):
    parser.add_argument("--weights", nargs="*", metavar="NAME", help="backbones to fetch (no names: all of them)")
    parser.add_argument("--data", nargs="*", metavar="NAME", help="datasets to fetch (no names: PneumoniaMNIST 28 and 64 px)")


def run(args) -> int:
    from ..fetch import fetch_data, fetch_weights
    from . import emit

    if args.weights is None and args.data is None:
        args.weights, args.data = [], []  # no flag at all: fetch the defaults of both
    result = {"weights": {}, "data": {}}
    if args.weights is not None:
        result["weights"] = {name: str(path) for name, path in fetch_weights(args.weights or None).items()}
    if args.data is not None:
        result["data"] = {name: str(path) for name, path in fetch_data(args.data or None).items()}
    emit(args, result, "\n".join(f"{kind} {name}: {path}" for kind in ("weights", "data")
                                 for name, path in result[kind].items()))
    return 0
