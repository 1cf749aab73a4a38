"""`medkit adapt`: adapt a checkpoint to a new site with k of that site's labelled images, into a new folder."""

HELP = ("Adapt a binary checkpoint to a new site using k labelled images from it (threshold, temperature, prior or "
        "head); write a NEW checkpoint whose config lists those images, so evaluate never scores them.")

EPILOG = """\
This uses labels from the new site. --k images (whole patients when file names carry patient keys,
both classes where possible, drawn with --seed) are taken from --data; the home model is adapted on
them and those k images are held out of scoring: their paths are stored in the new checkpoint's config
(`adaptation`), and `medkit evaluate --checkpoint OUT --data SITE` skips them (it says how many).

methods:
  threshold              re-choose the decision threshold on the k images (Youden, the rule fit uses)
  temperature            fit a temperature on them (calibration only: the decisions stay the home model's)
  temperature+threshold  both
  prior                  shift the logits to the site's share of positives among the k (Saerens et al. 2002)
                         and decide at 0.5
  head                   fine-tune only the classifier head on the k images' features, backbone frozen
  batchnorm              no labels read (--k ignored): re-estimate the BatchNorm statistics of the layers fit
                         trained on every image of --data (AdaBN); the frozen ImageNet groups keep theirs.
                         Scores on that same site are then transductive (the statistics saw those images).
                         At the Kermany second site it raised accuracy 0.797 -> 0.870 (3 seeds,
                         benchmarks/bench_second_site.py --levers bn_adapt, chosen on that site)

The input checkpoint is never modified: --out must be a new or empty folder. Do not report accuracy on the
k images themselves; benchmarks/bench_few_labels.py shows what each method buys against k.
stdout is one JSON line (the adaptation record, without the image list); logs go to stderr.
"""


# medkit.evaluation.adapt.METHODS, repeated here: importing medkit.evaluation loads scikit-learn (3-8 s), and
# `--help` must stay under half a second (tests keep the two equal)
METHODS = ("threshold", "temperature", "temperature+threshold", "prior")


def add_arguments(parser):
    import argparse

    from . import value_range_arg

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--checkpoint", required=True, help="the home checkpoint (`medkit fit --out`); never modified")
    parser.add_argument("--data", required=True, help="the new site's images: class-folder tree or CSV")
    parser.add_argument("--out", required=True, help="a NEW folder for the adapted checkpoint")
    parser.add_argument("--k", type=int, default=25, help="labelled images to use from the site (default 25)")
    parser.add_argument("--seed", type=int, default=0, help="which k images are drawn (default 0)")
    parser.add_argument("--method", default="threshold", choices=(*METHODS, "head", "batchnorm"),
                        help="what to adapt (default threshold; see below)")
    parser.add_argument("--epochs", type=int, default=None, help="head: full-batch steps (default 30)")
    parser.add_argument("--lr", type=float, default=None, help="head: peak lr (default 1e-3)")
    parser.add_argument("--value-range", type=value_range_arg, default=None, metavar="LOW,HIGH",
                        help="the range float images were saved in (default: the checkpoint's own, else 0,1); a pixel "
                        "outside it is refused, never rescaled")


def run(args) -> int:
    import json

    from ..fit.adapt import HEAD_EPOCHS, HEAD_LR, adapt_checkpoint
    from . import emit, log

    record = adapt_checkpoint(args.checkpoint, args.data, args.out, args.k, args.seed, args.method,
                              epochs=HEAD_EPOCHS if args.epochs is None else args.epochs,
                              lr=HEAD_LR if args.lr is None else args.lr, log=log, value_range=args.value_range)
    shown = {key: value for key, value in record.items() if key not in ("images", "patients")}
    shown["out"] = str(args.out)
    emit(args, shown, json.dumps(shown))
    return 0
