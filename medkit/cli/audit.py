"""`medkit audit DATA`: the data audit `medkit fit` runs first, on its own: a readable report, exit 1 on errors."""

HELP = ("Audit a folder, CSV or .npz before training: duplicate paths and images (sha256, dHash), conflicting "
        "labels, label typos, mixed label kinds, classes missing from train, patients across parts.")

EPILOG = """\
Errors (exit 1; `medkit fit` refuses the data): duplicate_path, conflicting_labels, identical_files (byte-identical
copies that can land in train and test), label_typo (a rare class named like another), mixed_label_kinds,
class_not_in_train, too_few_images. Warnings (exit 0; fit prints them and keeps them in the checkpoint's
config.json under "audit"): identical_files_kept (copies one patient key keeps in one part), near_identical,
rare_class, patients_across_parts, undecodable. `--accept CODE,...` (fit: --accept-audit) reports the named
errors as accepted warnings; `all` accepts every error. Near-identical means at most --near-bits of the 256
dHash bits differ (default 6: on the Kermany training X-rays re-encoded copies sit at 0 bits and the
closest distinct films at 13).
"""


def add_arguments(parser):
    import argparse

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("data", help="class-folder tree, folder of split folders, CSV or .npz (what fit --data takes)")
    parser.add_argument("--accept", default="", metavar="CODE,...", help="errors to report as accepted warnings")
    # 6 is audit.NEAR_BITS, repeated so --help imports no torch (tests keep the two equal)
    parser.add_argument("--near-bits", type=int, default=6, help="dHash bits of 256 that still count as near-identical")
    parser.add_argument("--no-near", action="store_true", help="skip the near-identical check (bytes only: faster)")
    parser.add_argument("--multi-label", action="store_true", help="labels are |-separated findings (no class checks)")


def run(args) -> int:
    from ..data.audit import audit_source
    from . import emit

    accept = tuple(c.strip() for c in args.accept.split(",") if c.strip())
    result = audit_source(args.data, accept=accept, near=not args.no_near, max_bits=args.near_bits,
                          multilabel=args.multi_label)
    emit(args, result.to_dict(), result.format())
    return 1 if result.errors else 0
