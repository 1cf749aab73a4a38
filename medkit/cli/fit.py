"""`medkit fit`: train the lesson 03 recipe on a MedMNIST-format file and write a checkpoint."""

HELP = "Fine-tune a pretrained backbone on a MedMNIST .npz (the lesson 03 recipe); write checkpoint + metrics.json."

EPILOG = """\
splits: a file with train/val/test uses them as they are. A file with only train and val (like the
bundled PneumoniaMNIST) holds out a fixed, stratified part of train as its test split (624 images, at
most a fifth of train, seed 20240: the same images medkit.data.pneumonia() tests on); fit trains on the
rest of train, validates on val, and never sees the held-out part. A file without val also carves a
validation part from train. The decision threshold is chosen on val only and stored in the checkpoint,
so `medkit evaluate --checkpoint DIR --data FILE --split test` measures images never trained or tuned on.

freeze strategies: gradual (default: head only for 1 epoch, then the top half of the body, then all
with discriminative lrs), head, all, discriminative, freeze_to:K (keep the first K groups frozen).
"""


def add_arguments(parser):
    import argparse

    from ..recipe import RecipeConfig

    d = RecipeConfig()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--data", required=True, help="MedMNIST-format .npz ({split}_images, {split}_labels)")
    parser.add_argument("--out", required=True, help="output folder: config.json, model.pt, metrics.json")
    parser.add_argument("--backbone", default=d.backbone, help=f"registry name (default {d.backbone}; see medkit doctor)")
    parser.add_argument("--image-size", type=int, default=d.image_size, help=f"input side in px (default {d.image_size})")
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs over all stages (default {d.epochs})")
    parser.add_argument("--freeze", default=d.freeze, help=f"freezing strategy (default {d.freeze}; see below)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak lr of the head group (default {d.lr})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    parser.add_argument("--loss", default=d.loss, help="ce, weighted_ce, focal or weighted_focal (default ce)")
    parser.add_argument("--no-pretrained", action="store_true", help="random initialisation instead of ImageNet")
    parser.add_argument("--no-augment", action="store_true", help="switch off the affine + intensity augmentation")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    import json

    from ..recipe import RecipeConfig, fit_recipe

    cfg = RecipeConfig(backbone=args.backbone, image_size=args.image_size, epochs=args.epochs, freeze=args.freeze,
                       seed=args.seed, lr=args.lr, batch_size=args.batch_size, loss=args.loss,
                       weights=None if args.no_pretrained else "DEFAULT", augment=not args.no_augment,
                       threads=args.threads)
    metrics = fit_recipe(args.data, args.out, cfg, progress=not args.quiet)
    summary = {k: metrics["val"][k] for k in ("auc", "acc", "sensitivity", "specificity", "n") if k in metrics["val"]}
    print(json.dumps({"out": str(args.out), "threshold": round(metrics["threshold"], 4),
                      "train_seconds": round(metrics["train_seconds"], 1), "val": summary}))
    return 0
