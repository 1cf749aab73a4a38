"""`medkit fetch`: pre-download weights, datasets and 3-D checkpoints into the cache."""

HELP = "Download weights and datasets into medkit's cache (run online, e.g. before a workshop without internet)."


def add_arguments(parser):
    parser.add_argument("--weights", nargs="*", metavar="NAME", help="backbones to fetch (no names: all of them)")
    parser.add_argument("--data", nargs="*", metavar="NAME", help="datasets to fetch (no names: PneumoniaMNIST 28 and 64 px)")
    parser.add_argument("--checkpoints", nargs="+", metavar="NAME",
                        help="medical 3-D checkpoints to fetch (lesson 11); an entry without a verified sha256 "
                             "needs --sha256")
    parser.add_argument("--sha256", metavar="HASH", help="with one --checkpoints name: the sha256 you verified")


def run(args) -> int:
    from ..core.fetch import fetch_data, fetch_weights
    from . import emit

    if args.weights is None and args.data is None and args.checkpoints is None:
        args.weights, args.data = [], []  # no flag at all: fetch the defaults of both
    result = {"weights": {}, "data": {}}
    if args.weights is not None:
        result["weights"] = {name: str(path) for name, path in fetch_weights(args.weights or None).items()}
    if args.data is not None:
        result["data"] = {name: str(path) for name, path in fetch_data(args.data or None).items()}
    if args.checkpoints is not None:
        from ..base.errors import ConfigError
        from ..volumes.checkpoints import checkpoint_path

        if args.sha256 and len(args.checkpoints) != 1:
            raise ConfigError("--sha256 names the hash of one file: pass exactly one --checkpoints name with it.")
        result["checkpoints"] = {name: str(checkpoint_path(name, sha256=args.sha256)) for name in args.checkpoints}
    emit(args, result, "\n".join(f"{kind} {name}: {path}" for kind in result for name, path in result[kind].items()))
    return 0
