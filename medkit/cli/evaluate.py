"""`medkit evaluate`: score a `medkit fit` checkpoint on one split of a MedMNIST-format file."""

HELP = "Evaluate a checkpoint on a split of a MedMNIST .npz; print one JSON line (auc, acc, sensitivity, specificity, n)."

EPILOG = """\
The splits are those `medkit fit` uses: on a file with only train and val, `--split test` is the fixed
held-out part of train (seed 20240) that fit never trains or tunes on. The threshold is the one fit chose
on val, read from the checkpoint. For more than two classes, auc is the one-vs-rest macro AUC and
sensitivity / specificity are one-vs-rest macro averages.
"""


def add_arguments(parser):
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--checkpoint", required=True, help="folder written by `medkit fit --out`")
    parser.add_argument("--data", required=True, help="MedMNIST-format .npz")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="default test")
    parser.add_argument("--backbone", default=None, help="refuse a checkpoint of another backbone")


def run(args) -> int:
    import json

    from ..recipe import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.data, args.split, backbone=args.backbone)
    print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in result.items()}))
    return 0
