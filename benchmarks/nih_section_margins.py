"""Lesson 05's NIH section for several seeds: the margins behind tests/claims.py's NIH asserts.

    PYTHONPATH=. python benchmarks/nih_section_margins.py [--seeds 0 1 2 3] [--image-size 64] [--n-boot 1000]

Smoke runs the lesson at 48 px with 200 bootstrap replicates, workshop at 64 px with 1000. Reads the bundled
subset the lesson reads (data_samples/nih_cxr14: the pixels and table of ../shared/data/nih_cxr14_1000, unchanged).
"""

import argparse
import time

from medkit.core import features
from medkit.evaluation import evaluate
from medkit.methods import nih as multilabel


def section(nih, X, seed, n_boot, finding="Effusion"):
    """Run the lesson's NIH cells on features `X`; return the numbers its claims read."""
    parts = multilabel.patient_split(nih.patients, nih.Y, seed=seed)
    tr, va, te = parts["train"], parts["val"], parts["test"]
    probes = multilabel.OneVsRestProbe().fit(X[tr], nih.Y[tr])
    P_val, P_test = probes.predict_proba(X[va]), probes.predict_proba(X[te])
    aucs = multilabel.finding_aucs(nih.Y[te], P_test, nih.names, n_boot=n_boot, seed=seed)
    scored = [nih.names.index(n) for n in aucs["scored"]]
    macro = multilabel.macro_auc_ci(nih.Y[te][:, scored], P_test[:, scored], n_boot=n_boot, seed=seed)
    by_patient = multilabel.macro_auc_ci(nih.Y[te][:, scored], P_test[:, scored], nih.patients[te], n_boot=n_boot,
                                         seed=seed)
    k = nih.names.index(finding)
    thr = evaluate.choose_threshold(nih.Y[va, k], P_val[:, k])
    multilabel.subgroup_metrics(nih.Y[te, k], P_test[:, k], nih.meta["sex"][te], thr)
    multilabel.subgroup_metrics(nih.Y[te, k], P_test[:, k], multilabel.age_bands(nih.meta["age"][te]), thr)
    eo = multilabel.equalized_odds_ci(nih.Y[te, k], P_test[:, k], nih.meta["sex"][te], nih.patients[te], thr,
                                      n_boot=n_boot, seed=seed)
    table = aucs["table"]
    return {"macro": macro, "macro_patients": by_patient, "eod": eo["eod"], "scored": len(table),
            "narrowest": table["width"].min(), "widest": table["width"].max(), "skipped": sorted(aucs["skipped"]),
            "both_sides": multilabel.patients_on_both_sides(nih.patients, parts)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    nih = multilabel.load_nih(None)
    start = time.perf_counter()
    X, _ = features.extract_features("efficientnet_lite0", nih.dataset(), image_size=args.image_size, progress=False)
    print(f"features {X.shape} at {args.image_size} px in {time.perf_counter() - start:.1f} s")
    print("seed  macro [image CI]        macro [patient CI]     EOD sex [patient CI]   scored  narrowest  widest  "
          "seconds")
    for seed in args.seeds:
        start = time.perf_counter()
        r = section(nih, X, seed, args.n_boot)
        assert r["both_sides"] == 0
        print(f"{seed:<5} {r['macro']!s:<23} {r['macro_patients']!s:<22} {r['eod']!s:<22} {r['scored']:<7} "
              f"{r['narrowest']:<10.3f} {r['widest']:<7.3f} {time.perf_counter() - start:.1f}  skipped {r['skipped']}")


if __name__ == "__main__":
    main()
