"""`medkit compare`: a retraining gate: may the candidate checkpoint replace the current one? PROMOTE or KEEP."""

HELP = ("Score two checkpoints on the same locked data (and external sites) with a paired patient bootstrap of the "
        "AUC difference and a non-inferiority margin; say PROMOTE or KEEP with the numbers.")

EPILOG = """\
What is scored: --data is the locked data. When it is the source either checkpoint was trained on, both
score its patient-grouped test part (the carve `medkit fit` made, never trained on); another source is
scored whole (or its own test/ part). Each --data-external (repeatable: other sites) is one more part.
Each checkpoint reads the images through its own reader (size, contrast step), as `medkit evaluate` does;
the sanity gate is not applied (both models must score every locked image).

The test, per part: patients are resampled with replacement (all images of a drawn patient come along)
and both AUCs are recomputed on each replicate; the 95% percentile interval of AUC(candidate) - AUC(current)
is reported with two bootstrap p-values: p_difference (two-sided, difference 0) and p_noninferior
(one-sided, the candidate worse by --margin or more). Verdict per part: superior (interval above 0),
non-inferior (lower end above -margin), inferior (upper end below -margin), else inconclusive.
Decision: PROMOTE when every part is superior or non-inferior, else KEEP. DeLong's test is not offered:
it treats images as independent, and no maintained implementation was found.

Refused (exit 1, nothing scored): checkpoints with other class lists, more than two classes or multi-label;
a part the two checkpoints read as different images, labels or patients; images without patient keys;
locked images either checkpoint was trained or tuned on (looked up, pixel for pixel, in the train and val
parts of the training source each checkpoint records, which must be on this machine and unchanged: its
fingerprint).

--record appends the decision and its numbers to the candidate's config.json `comparisons` (weights
untouched); its model card (medkit.deploy.ModelCard.from_checkpoint) shows them.
Exit codes: 0 PROMOTE, 1 KEEP or an error (the JSON line says which), 2 usage.
A table goes to stderr; stdout is one JSON line.
"""

# medkit.evaluation.compare.DEFAULT_MARGIN, repeated: importing medkit.evaluation loads scipy and pandas, and `--help`
# imports neither (tests/test_cli_conventions.py keeps the two equal)
DEFAULT_MARGIN = 0.01


def _margin(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be an AUC loss in [0, 1), e.g. 0.01")
    return value


def add_arguments(parser):
    import argparse

    from . import DEVICE_CHOICES, positive_int

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--current", required=True, help="the checkpoint in use (`medkit fit --out`)")
    parser.add_argument("--candidate", required=True, help="the retrained checkpoint that would replace it")
    parser.add_argument("--data", required=True, help="the locked data: a training source (its test part) or another")
    parser.add_argument("--data-external", action="append", default=[], metavar="SITE",
                        help="another site, scored as its own part (repeat for more)")
    parser.add_argument("--margin", type=_margin, default=DEFAULT_MARGIN,
                        help=f"non-inferiority margin: the AUC loss still accepted (default {DEFAULT_MARGIN})")
    parser.add_argument("--n-boot", type=positive_int, default=2000, help="patient bootstrap replicates (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--record", action="store_true", help="append the decision to the candidate's config.json")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="where to run the models (default auto: cuda if present, else mps, else cpu)")


def run(args) -> int:
    import json

    from ..fit.compare import compare_checkpoints, decision_table, record
    from . import emit, log, to_jsonable

    result = compare_checkpoints(args.current, args.candidate, args.data, args.data_external, margin=args.margin,
                                 n_boot=args.n_boot, seed=args.seed, log=log, device=args.device)
    log(decision_table(result))
    if args.record:
        record(args.candidate, result)
        log(f"recorded: {result['decision']} in {args.candidate}/config.json (comparisons)")
    data = to_jsonable(result)
    emit(args, data, json.dumps(data))
    return 0 if result["decision"] == "PROMOTE" else 1
