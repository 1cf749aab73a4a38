"""`medkit fit`: train the lesson 03 recipe on an image source and write a checkpoint."""

HELP = ("Fine-tune a pretrained backbone on a folder, CSV or MedMNIST .npz (the lesson 03 recipe); "
        "write checkpoint + metrics.json.")

EPILOG = """\
data: a class-folder tree (DATA/NORMAL/*.jpeg, DATA/PNEUMONIA/...), a folder with train/ val/ test/
subfolders, a CSV (path,label[,patient][,site]) or a MedMNIST .npz. Parts the source lacks are carved
out of train with a fixed seed (val 10%, test 20%): patient-disjoint when every image has a patient key
(--group-by auto; Kermany file names and a `patient` column give one), else stratified by image. fit
trains on train, chooses the decision threshold on val, and never sees test; the split report (images
and patients per part) goes to stderr, metrics.json and the checkpoint config, so
`medkit evaluate --checkpoint DIR --data SAME_DATA` scores exactly the held-out part.

freeze strategies: top (default: the head alone for 1 epoch, then the top layer group and the head),
head, gradual (head 1 epoch, then the top half, then everything with discriminative lrs), all,
discriminative, freeze_to:K (keep the first K groups frozen). --lr is the head group's peak lr in
every stage; --head-lr overrides it for head-only stages. When every stage keeps the lower groups
frozen, they run once per image and the rest trains on their cached outputs (no augmentation there).

multi-label findings: a CSV whose label column holds `|`-separated findings (Effusion|Mass, or
"No Finding" for none) is detected by its `|`s and trained with one sigmoid output per finding (binary
cross-entropy); --multi-label forces it, --findings A,B,C fixes the names and their order (a finding
outside the list is refused). The checkpoint stores the names; evaluate reports per-finding AUC with
95% intervals and the macro AUC, and lists findings it could not score.

validation: the val numbers are internal ("role": "internal", "part": "val": the training source's own
carve, and the part the threshold was chosen on); the checkpoint keeps them as its first `validation`
record. Score another site with `medkit evaluate --internal-too --record` to add an external one.

--device auto trains on cuda if torch sees one, else mps, else cpu; naming one that is not there fails
before any data is read.

data audit: fit first runs `medkit audit DATA` (duplicates by sha256 and dHash, conflicting labels, label
typos, mixed label kinds, classes missing from train, classes too small to carve, patients across parts).
Its errors refuse the fit; --accept-audit CODE,... (or all) accepts named ones, --no-audit skips it.
Warnings and accepted errors are printed and kept in config.json and metrics.json under "audit".

stdout is one JSON line; progress and the split report go to stderr.
"""


def add_arguments(parser):
    import argparse

    from ..fit import RecipeConfig
    from . import DEVICE_CHOICES, value_range_arg

    d = RecipeConfig()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--data", required=True, help="class-folder tree, folder of split folders, CSV or .npz")
    parser.add_argument("--out", required=True, help="output folder: config.json, model.pt, metrics.json")
    parser.add_argument("--overwrite", action="store_true", help="replace the checkpoint in a non-empty --out")
    parser.add_argument("--group-by", default=d.group_by, metavar="{auto,patient,none,COLUMN}",
                        help=f"how carved splits keep images together (default {d.group_by})")
    parser.add_argument("--backbone", default=d.backbone, help=f"registry name (default {d.backbone}; see medkit doctor)")
    parser.add_argument("--image-size", type=int, default=d.image_size, help=f"input side in px (default {d.image_size})")
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs over all stages (default {d.epochs})")
    parser.add_argument("--freeze", default=d.freeze, help=f"freezing strategy (default {d.freeze}; see below)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak lr of the head group, every stage (default {d.lr})")
    parser.add_argument("--head-lr", type=float, default=d.head_lr, help="lr of head-only stages (default: --lr)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    parser.add_argument("--soup", type=int, default=d.soup, metavar="N",
                        help=f"average the weights of N runs (seeds SEED..SEED+N-1) on the same cached features "
                             f"(default {d.soup}; benchmarks/RECIPE.md measures it at a second site)")
    parser.add_argument("--micro-batch", type=int, default=d.micro_batch,
                        help=f"images per forward/backward on image stages, gradients accumulated over a batch "
                             f"(default {d.micro_batch}: bounds memory at 224 px)")
    parser.add_argument("--contrast", default=d.contrast, choices=("clahe", "none"),
                        help=f"contrast step on every image after the resize, kept with the checkpoint and applied by "
                             f"evaluate, adapt, export and predict (default {d.contrast}: raised the AUC at a second site)")
    parser.add_argument("--loss", default=d.loss, help="ce, weighted_ce, focal or weighted_focal (default ce)")
    parser.add_argument("--no-pretrained", action="store_true", help="random initialisation instead of ImageNet")
    parser.add_argument("--no-augment", action="store_true", help="switch off the affine + intensity augmentation")
    parser.add_argument("--no-cache", action="store_true", help="run frozen groups on every batch (allows augmentation)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default=d.device, choices=DEVICE_CHOICES,
                        help="where to train (default auto: cuda if present, else mps, else cpu)")
    parser.add_argument("--value-range", type=value_range_arg, default=d.value_range, metavar="LOW,HIGH",
                        help="the range float images were saved in (default 0,1); a pixel outside it is refused, never rescaled")
    parser.add_argument("--multi-label", action="store_true", default=None,
                        help="labels are `|`-separated findings (auto-detected when some CSV label holds a `|`)")
    parser.add_argument("--no-audit", action="store_true",
                        help="skip the data audit fit runs first (see `medkit audit --help`); recorded in the config")
    parser.add_argument("--accept-audit", default="", metavar="CODE,...",
                        help="audit errors to accept as warnings (e.g. identical_files; all: every one), recorded")
    parser.add_argument("--findings", default=None, metavar="A,B,...",
                        help="finding names in output order (multi-label; default: those in the CSV, sorted)")


def run(args) -> int:
    import json

    from ..fit import RecipeConfig, fit_recipe
    from . import emit, log

    cfg = RecipeConfig(backbone=args.backbone, image_size=args.image_size, epochs=args.epochs, freeze=args.freeze,
                       seed=args.seed, lr=args.lr, head_lr=args.head_lr, batch_size=args.batch_size,
                       micro_batch=args.micro_batch, soup=args.soup, loss=args.loss, contrast=args.contrast,
                       weights=None if args.no_pretrained else "DEFAULT", augment=not args.no_augment,
                       cache_features=not args.no_cache, group_by=args.group_by, threads=args.threads,
                       device=args.device, value_range=args.value_range)
    findings = None if args.findings is None else [f.strip() for f in args.findings.split(",")]
    metrics = fit_recipe(args.data, args.out, cfg, progress=not args.quiet, log=log, overwrite=args.overwrite,
                         multi_label=args.multi_label, findings=findings, audit=not args.no_audit,
                         accept_audit=[c.strip() for c in args.accept_audit.split(",") if c.strip()])
    if metrics.get("task") == "multilabel":
        from ..fit.multilabel import fit_summary

        emit(args, fit_summary(args.out, metrics), json.dumps(fit_summary(args.out, metrics)))
        return 0
    summary = {k: metrics["val"][k] for k in ("role", "part", "auc", "acc", "sensitivity", "specificity", "n", "ci95")
               if k in metrics["val"]}
    result = {"out": str(args.out), "threshold": round(metrics["threshold"], 4),
              "train_seconds": round(metrics["train_seconds"], 1), "device": metrics["device"], "val": summary,
              "n": metrics["n"],
              "patients": {r["part"]: r["groups"] for r in metrics["splits"]["report"]}}
    emit(args, result, json.dumps(result))  # one JSON line either way; the human report went to stderr
    return 0
