"""`medkit evaluate`: score a `medkit fit` checkpoint on held-out images, with 95% bootstrap intervals."""

HELP = ("Evaluate a checkpoint on a folder, CSV or .npz; print one JSON line (auc, acc, sensitivity, specificity "
        "with 95% CIs, n, patients).")

EPILOG = """\
What is scored (--split auto): given the data the checkpoint was trained on, the test part fit carved
and never saw (same carve, same seed); a source with its own test part (a test/ subfolder, an npz
test split) scores that; a folder, CSV or file with no split parts is scored whole (a checkpoint trained
on one folder, scored on another); images a checkpoint was adapted on (`medkit adapt`) are never
scored. Class names must match the checkpoint's. The threshold is the one fit chose on val (or the
one `medkit adapt` chose on the site's k labelled images). Intervals: stratified bootstrap, 1000
replicates (medkit.evaluation.metrics_with_ci).
For more than two classes, auc is the one-vs-rest macro AUC and there are no intervals.
A multi-label checkpoint (|-separated findings) reports each finding's AUC with its interval, the macro
AUC over the findings with positives and negatives in the part, and the findings it skipped.
A summary table goes to stderr; stdout is one JSON line.
"""


def add_arguments(parser):
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--checkpoint", required=True, help="folder written by `medkit fit --out`")
    parser.add_argument("--data", required=True, help="class-folder tree, folder of split folders, CSV or .npz")
    parser.add_argument("--split", default="auto", choices=("auto", "train", "val", "test", "all"),
                        help="part to score (default auto: see below)")
    parser.add_argument("--backbone", default=None, help="refuse a checkpoint of another backbone")


def _summary(result) -> str:
    lines = [f"{result['split']} part ({result['source']}): {result['n']} images"
             + (f", {result['patients']} patients" if result.get("patients") else "")
             + (f" ({result['adaptation_images_skipped']} used by `medkit adapt` not scored)"
                if result.get("adaptation_images_skipped") else "")]
    for key in ("auc", "acc", "sensitivity", "specificity"):
        if key in result:
            low, high = result.get("ci95", {}).get(key, (None, None))
            lines.append(f"  {key:<12} {result[key]:.3f}" + (f"  [{low:.3f}, {high:.3f}]" if low is not None else ""))
    if result.get("task") == "multilabel":  # medkit.fit.multilabel: one line per finding, macro AUC above
        lines[1:] = [f"  macro AUC    {result['macro_auc']:.3f}" if result["macro_auc"] is not None else "  macro AUC    -"]
        for name, row in result["findings"].items():
            ci = f"  [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]" if row["ci95"] else ""
            lines.append(f"  {name:<20} AUC {row['auc']:.3f}{ci}  ({row['positives']} positive)")
        lines += [f"  {name:<20} skipped: {why}" for name, why in result["skipped"].items()]
    return "\n".join(lines)


def run(args) -> int:
    import json

    from ..fit import evaluate_checkpoint
    from . import emit, log

    result = evaluate_checkpoint(args.checkpoint, args.data, args.split, backbone=args.backbone, log=log)
    log(_summary(result))
    rounded = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in result.items()}
    emit(args, rounded, json.dumps(rounded))  # one JSON line either way; the summary went to stderr
    return 0
