"""External accuracy against the number of labelled images k a second site gives, for each few-label method.

The checkpoint predicts the site once (pooled features and home probabilities in one backbone pass); then, for
each k and seed, k images are drawn as whole patients (`medkit.evaluation.adapt.draw_labelled`, stratified), the
method is fitted on them, and accuracy, sensitivity, specificity and AUC are measured on the OTHER images only
(no image and no patient of the k is scored). k = 0 is the home model with its home threshold, on every image.
Every method sees the same draws for the same (k, seed). Cells: median [2.5, 97.5 percentile] over seeds: the
spread of which images a site happens to label, not a confidence interval. Numbers chosen on the site are
chosen on it: this is the site's development folder, the withheld half stays withheld.

    python benchmarks/bench_few_labels.py --checkpoint /work/runs/base_s0 \
        --data ../shared/data/chest_xray_224_external_dev [--seeds 20] [--ks 0,10,25,50,100]
"""

import argparse
import time

import numpy as np
import pandas as pd
import torch

from medkit.core.checkpoint import load_checkpoint
from medkit.evaluation.adapt import draw_labelled, few_label_curve, score_held_out, scoring_mask, summarise_curve
from medkit.fit.adapt import HEAD_EPOCHS, HEAD_LR, fit_head, home_prior, site_features, site_images
from medkit.models import get_spec

RECALIBRATIONS = ("threshold", "temperature+threshold", "prior")


def head_curve(feats, probs, ds, head, ks, seeds, home_threshold, epochs, lr) -> pd.DataFrame:
    """Return few_label_curve's rows for fine-tuning the head alone on the k images' features (decide at 0.5)."""
    rows = []
    for k in ks:
        for seed in seeds:
            used = draw_labelled(ds.labels, k, seed, ds.groups)
            if len(used) == 0:
                scores, threshold = probs, home_threshold
            else:
                tuned = fit_head(head, feats[used], ds.labels[used], epochs=epochs, lr=lr, seed=seed)
                with torch.inference_mode():
                    scores = torch.softmax(tuned(torch.from_numpy(feats)), 1).double().numpy()
                threshold = 0.5
            mask = scoring_mask(len(ds.labels), used, ds.groups)
            rows.append({"k": k, "seed": seed, **score_held_out(ds.labels, scores, threshold, mask),
                         "threshold": threshold, "method": "head", "n_labelled": len(used)})
    return pd.DataFrame(rows)


def cell(row, name) -> str:
    return f"{row[name]:.3f} [{row[name + '_lo']:.3f}, {row[name + '_hi']:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--ks", default="0,10,25,50,100")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--head-epochs", type=int, default=HEAD_EPOCHS)
    parser.add_argument("--head-lr", type=float, default=HEAD_LR)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ks, seeds = [int(k) for k in args.ks.split(",")], range(args.seeds)

    start = time.perf_counter()
    config, ds = site_images(args.checkpoint, args.data, log=None)
    model, _ = load_checkpoint(args.checkpoint)
    feats, probs = site_features(model, ds, config)
    predicted = time.perf_counter() - start
    home_threshold, prior = float(config.get("threshold", 0.5)), home_prior(config)
    patients = "?" if ds.groups is None else len(np.unique(ds.groups))
    print(f"{args.data}: {len(ds)} images, {patients} patients, {ds.labels.mean():.3f} positive; home threshold "
          f"{home_threshold:.4f}, home prior {prior:.3f}; one prediction pass {predicted:.0f} s")

    start = time.perf_counter()
    curves = [few_label_curve(probs, ds.labels, ds.groups, ks, seeds, method, home_threshold, home_prior=prior)
              for method in RECALIBRATIONS]
    head = model.get_submodule(get_spec(model).head)
    curves.append(head_curve(feats, probs, ds, head, ks, seeds, home_threshold, args.head_epochs, args.head_lr))
    curve = pd.concat(curves, ignore_index=True)
    summary = summarise_curve(curve)
    print(f"{len(seeds)} seeds per k, scored only on images not drawn; head: {args.head_epochs} full-batch steps at "
          f"lr {args.head_lr}, decision at 0.5; all methods {time.perf_counter() - start:.0f} s\n")
    header = f"{'method':<22} {'k':>4} {'n_scored':>8}  " + "  ".join(f"{m:<21}" for m in
                                                                     ("acc", "sensitivity", "specificity", "auc"))
    print(header)
    print("-" * len(header))
    for _, row in summary.iterrows():
        print(f"{row['method']:<22} {row['k']:>4} {row['n_scored']:>8.0f}  "
              + "  ".join(f"{cell(row, m):<21}" for m in ("acc", "sensitivity", "specificity", "auc")))
    short = curve[curve["n_labelled"] < curve["k"]]
    if len(short):
        print(f"\n{len(short)} draw(s) fell short of k (whole patients did not fit): "
              f"n_labelled {short['n_labelled'].min()}-{short['n_labelled'].max()}")
    notes = curve["note"].dropna() if "note" in curve else pd.Series([], dtype=str)
    notes = notes[(notes != "") & ~notes.str.startswith("k=0")]
    if len(notes):
        print(f"{len(notes)} degenerate draw(s), e.g.: {notes.iloc[0]}")


if __name__ == "__main__":
    main()
