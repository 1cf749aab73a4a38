"""`medkit evaluate`: score a `medkit fit` checkpoint on held-out images, with 95% bootstrap intervals."""

HELP = ("Evaluate a checkpoint on a folder, CSV or .npz; print one JSON line (auc, acc, sensitivity, specificity "
        "with 95% CIs, n, patients, role internal/external).")

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

role: every result says whether it is "internal" (the checkpoint's own source: its carved test part)
or "external" (another source: a second site). --internal-too scores --data (external) and the
checkpoint's own held-out test part side by side (the training data recorded in the checkpoint must be
on this machine; if it is not, that is said and the external result is still reported), with the gap
(external minus internal) and its 95% interval from resampling each set on its own.
--record appends each result (role, data path and fingerprint, part, n, patients, metrics with
intervals, threshold, date) to the checkpoint's config.json `validation` list; the weights and their
sha256 are untouched. The model card lists internal and external records separately.
The sanity gate (medkit.deploy.gate; fit stores its reference in the checkpoint as gate.npz) checks every
scored image: flat or low-contrast, inverted relative to the training images, too small, aspect ratio far
from training, and an out-of-distribution score (distance of the normalised embedding to its 10th nearest
training embedding, thresholded at the 99% quantile of fit's val images). The metrics are over all images; `gate` says how many were flagged
and by which check, `not_flagged` repeats the metrics over the rest. --allow-ood skips the gate.
--device auto runs on cuda if torch sees one, else mps, else cpu.
A summary table goes to stderr; stdout is one JSON line.
"""

_METRICS = ("auc", "acc", "sensitivity", "specificity")


def add_arguments(parser):
    import argparse

    from . import DEVICE_CHOICES, value_range_arg

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--checkpoint", required=True, help="folder written by `medkit fit --out`")
    parser.add_argument("--data", required=True, help="class-folder tree, folder of split folders, CSV or .npz")
    parser.add_argument("--split", default="auto", choices=("auto", "train", "val", "test", "all"),
                        help="part to score (default auto: see below)")
    parser.add_argument("--backbone", default=None, help="refuse a checkpoint of another backbone")
    parser.add_argument("--value-range", type=value_range_arg, default=None, metavar="LOW,HIGH",
                        help="the range float images were saved in (default: the checkpoint's own, else 0,1); a pixel outside it is refused, never rescaled")
    parser.add_argument("--internal-too", action="store_true",
                        help="also score the checkpoint's own held-out test part; print both and the gap")
    parser.add_argument("--record", action="store_true",
                        help="append the result(s) to the checkpoint's config.json `validation` records")
    parser.add_argument("--allow-ood", action="store_true",
                        help="skip the sanity gate (flat, contrast, inverted, size, aspect, OOD score): the old behaviour")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="where to run the model (default auto: cuda if present, else mps, else cpu)")


def _summary(result) -> str:
    lines = [f"{result.get('role', '?')}: {result['split']} part ({result['source']}): {result['n']} images"
             + (f", {result['patients']} patients" if result.get("patients") else "")
             + (f" ({result['adaptation_images_skipped']} used by `medkit adapt` not scored)"
                if result.get("adaptation_images_skipped") else "")]
    for key in _METRICS:
        if key in result:
            low, high = result.get("ci95", {}).get(key, (None, None))
            lines.append(f"  {key:<12} {result[key]:.3f}" + (f"  [{low:.3f}, {high:.3f}]" if low is not None else ""))
    if result.get("task") == "multilabel":  # medkit.fit.multilabel: one line per finding, macro AUC above
        lines[1:] = [f"  macro AUC    {result['macro_auc']:.3f}" if result["macro_auc"] is not None else "  macro AUC    -"]
        for name, row in result["findings"].items():
            ci = f"  [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]" if row["ci95"] else ""
            lines.append(f"  {name:<20} AUC {row['auc']:.3f}{ci}  ({row['positives']} positive)")
        lines += [f"  {name:<20} skipped: {why}" for name, why in result["skipped"].items()]
    gate = result.get("gate")
    if gate:
        lines.append(f"  sanity gate: {gate['flagged']} of {gate['n']} flagged"
                     + (f" ({', '.join(f'{k} {v}' for k, v in gate['by_check'].items())})" if gate["flagged"] else "")
                     + ("" if gate.get("ood_available") else "; OOD score unavailable (no gate.npz)"))
        rest = result.get("not_flagged")
        if rest:
            lines.append(f"  not flagged ({rest['n']} images): "
                         + ", ".join(f"{k} {rest[k]:.3f}" for k in _METRICS if k in rest))
    return "\n".join(lines)


def _cell(result, key, signed: bool = False) -> str:
    if not result or result.get(key) is None:
        return "-"
    low, high = (result.get("ci95") or {}).get(key, (None, None))
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return fmt.format(result[key]) + (f" [{fmt.format(low)}, {fmt.format(high)}]" if low is not None else "")


def side_by_side(both: dict) -> str:
    """Return the internal / external / gap table `--internal-too` prints (metric, each with its 95% interval)."""
    internal, external, gap = both["internal"], both["external"], both["gap"]
    lines = []
    for role, result in (("internal", internal), ("external", external)):
        if result.get("available") is False:
            lines.append(f"{role}: not scored: {result['reason']}")
        else:
            lines.append(f"{role}: {result['split']} part of {result['data']} ({result['source']}): {result['n']} "
                         "images" + (f", {result['patients']} patients" if result.get("patients") else ""))
    lines.append(f"{'metric':<12} {'internal [95% CI]':<24} {'external [95% CI]':<24} gap, external - internal [95% CI]")
    for key in _METRICS:
        if key in external:
            lines.append(f"{key:<12} {_cell(internal, key):<24} {_cell(external, key):<24} {_cell(gap, key, True)}")
    if external.get("task") == "multilabel":
        lines.append("thresholds: one per finding, chosen by fit on the internal val part")
    elif external.get("threshold") is not None:
        lines.append(f"threshold {external['threshold']:.4f} on both: chosen by fit on the internal val part")
    return "\n".join(lines)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def run(args) -> int:
    import json

    from ..fit import evaluate_checkpoint, evaluate_internal_and_external, record
    from . import emit, log, to_jsonable

    if args.internal_too:
        result = evaluate_internal_and_external(args.checkpoint, args.data, args.split, backbone=args.backbone,
                                                log=log, device=args.device, value_range=args.value_range,
                                                allow_ood=args.allow_ood)
        log(side_by_side(result))
        scored = [r for r in (result["internal"], result["external"]) if r.get("available") is not False]
    else:
        result = evaluate_checkpoint(args.checkpoint, args.data, args.split, backbone=args.backbone, log=log,
                                     device=args.device, value_range=args.value_range, allow_ood=args.allow_ood)
        log(_summary(result))
        scored = [result]
    if args.record:
        for one in scored:
            entry = record(args.checkpoint, one)
            log(f"recorded: {entry['role']} {entry['part']} part of {entry['data']} in {args.checkpoint}/config.json")
    rounded = _rounded(to_jsonable(result))
    emit(args, rounded, json.dumps(rounded))  # one JSON line either way; the summary went to stderr
    return 0
