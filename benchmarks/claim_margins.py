"""Measure the margins of lessons 02 and 04-09's claims over several seeds, and pick the learning rates on validation.

Runs each lesson's core computation (not the whole notebook) with the lesson's profile settings and prints one
row per seed: the numbers `tests/claims.py` asserts on, so the margins written beside each assert can be re-made.
Learning rates are chosen on a validation split (never the held-out test set) by `--tune`.

    python benchmarks/claim_margins.py --lesson 09 --profile smoke --seeds 0 1 2 3 4
    python benchmarks/claim_margins.py --lesson 07 --profile workshop --tune     # random encoder's lr on validation
    python benchmarks/claim_margins.py --lesson 05 --profile workshop --seeds 0 1 2   # runs the notebook itself
    python benchmarks/claim_margins.py --lesson 04 --profile smoke --seeds 0 1 2      # so does lesson 04
    python benchmarks/claim_margins.py --lesson 06 --profile smoke --seeds 0 1 2      # so does lesson 06
    python benchmarks/claim_margins.py --lesson 02 --profile workshop --tune     # lesson 02's fine-tuning lr grid
    python benchmarks/claim_margins.py --lesson 02 --profile smoke              # fine-tuned - scratch, curve seeds
    python benchmarks/claim_margins.py --lesson 10 --profile workshop --tune --seeds 0 2   # its scratch lr grid
    python benchmarks/claim_margins.py --lesson 02 --set scratch_lrs=[1e-3,1e-2,3e-2]     # a profile knob changed

One thread per run (the lessons' workshop target is one CPU); other jobs on the machine slow it, not its numbers.
"""

import argparse
import ast
import time

import numpy as np
import pandas as pd
import torch

from medkit import data
from medkit.course import profiles

LESSON_05_KEYS = ("cv_auc_mean", "cv_auc_std", "single_split_auc_min", "single_split_auc_max", "loso_auc_mean",
                  "auc_worst_one_site", "auc_worst_diverse", "auc_gap_one_site", "auc_gap_diverse", "eod_one_site",
                  "eod_diverse", "ece_before", "ece_after", "auc_before_scaling", "auc_after_scaling",
                  "patients_at_two_sites", "nih_image_split_patients_on_both_sides", "nih_follow_up_share")


def lesson_05(cfg, seed: int, tune: bool = False) -> dict:
    """Run lesson 05 itself (its cost is feature extraction; the probes are instant) and return its claim numbers."""
    import tempfile
    from pathlib import Path

    from medkit.course.notebooks import run_notebook

    if tune:
        raise SystemExit("lesson 05 has no learning rate: its probe's C is a parameter of the notebook.")
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "05_validation_and_fairness.ipynb"
    with tempfile.TemporaryDirectory() as out:
        m = run_notebook(notebook, out, profile=cfg.profile, seed=seed)
    row = {key: m[key] for key in LESSON_05_KEYS}
    row["nih_macro_auc"], row["nih_macro_low"] = m["nih_macro_auc_ci"][0], m["nih_macro_auc_ci"][1]
    row["nih_widen"] = (m["nih_macro_auc_patient_ci"][2] - m["nih_macro_auc_patient_ci"][1]
                        - (m["nih_macro_auc_ci"][2] - m["nih_macro_auc_ci"][1]))
    row["nih_eod_width"] = m["nih_eod_sex_ci"][2] - m["nih_eod_sex_ci"][1]
    row["nih_widest_finding"] = max(r["high"] - r["low"] for r in m["nih_finding_auc"])
    return row


LESSON_04_KEYS = ("test_auc", "road_gradcam", "road_random", "lesion_val_auc", "pointing_gradcam", "pointing_random",
                  "pointing_centre", "energy_gradcam", "energy_random", "energy_centre", "lesion_area", "shortcut_val_acc",
                  "shortcut_acc_as", "shortcut_acc_no", "shortcut_acc_marker", "clean_acc", "marker_energy_shortcut",
                  "marker_energy_section", "marker_energy_random", "marker_area")


def _run_lesson(stem: str, cfg, seed: int) -> dict:
    """Run a lesson notebook at `cfg`'s profile and seed and return its metrics."""
    import tempfile
    from pathlib import Path

    from medkit.course.notebooks import run_notebook

    notebook = Path(__file__).resolve().parents[1] / "notebooks" / f"{stem}.ipynb"
    with tempfile.TemporaryDirectory() as out:
        return run_notebook(notebook, out, profile=cfg.profile, seed=seed)


def lesson_04(cfg, seed: int, tune: bool = False) -> dict:
    """Run lesson 04 itself (three small fine-tunes; its settings are lesson 03's recipe) and return its claim numbers."""
    if tune:
        raise SystemExit("lesson 04 tunes nothing: its three models share section 1's recipe.")
    m = _run_lesson("04_grad_cam", cfg, seed)
    return {key: m[key] for key in LESSON_04_KEYS}


LESSON_06_KEYS = ("onnx_max_abs_diff", "n_refused", "false_alarm_rate", "n_clean_batches", "detection_rate",
                  "auc_test", "auc_test_shifted", "gate_false_alarm_rate", "gate_drift_false_alarm_rate",
                  "gate_drift_detection_rate", "gate_decision")


def lesson_06(cfg, seed: int, tune: bool = False) -> dict:
    """Run lesson 06 itself (its model, export, drift streams and gate are one chain) and return its claim numbers."""
    if tune:
        raise SystemExit("lesson 06 fixes its lr (2e-3, lesson 03's head setting); it chooses only its threshold, on val.")
    m = _run_lesson("06_deployment_and_monitoring", cfg, seed)
    row = {key: m[key] for key in LESSON_06_KEYS}
    row["hostile_flagged"] = sum(m["gate_hostile_flagged"].values())
    return row


FINETUNE_LRS_02 = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # lesson 02's fine-tuning lr grid, widened until its best is inside
_SCRATCH_VAL_02: dict = {}  # (grid and sizes) -> lesson SEED 0's scratch val AUC per lr, shared by the curve seeds


def lesson_02(cfg, seed: int, tune: bool = False, lrs=FINETUNE_LRS_02) -> dict:
    """Fine-tuned - scratch test AUC at the smallest budget for curve seed `seed`, as lesson 02 runs it (lesson SEED 0:
    the scratch lr chosen on val among cfg.scratch_lrs); or, with `tune`, validation AUC of fine-tuning per lr."""
    from medkit.core import features

    splits = data.chest_xrays(image_size=cfg.image_size, n_train=cfg.n_train, seed=0 if not tune else seed)
    smallest = min(cfg.budgets)
    run = dict(image_size=cfg.image_size, batch_size=cfg.max_batch, progress=False)
    if tune:
        return {f"finetune_lr{lr:g}": features.budget_curve(
            {"train": splits["train"], "test": splits["val"]}, [smallest], seeds=[seed], lr=lr, methods=["finetune"],
            **run)["auc"].item() for lr in lrs}
    key = (cfg.image_size, cfg.n_train, smallest, tuple(cfg.scratch_lrs))  # lesson SEED 0's choice: once per grid
    if key not in _SCRATCH_VAL_02:
        _SCRATCH_VAL_02[key] = {lr: features.budget_curve(
            {"train": splits["train"], "test": splits["val"]}, [smallest], seeds=[0], methods=["scratch"], scratch_lr=lr,
            **run)["auc"].item() for lr in cfg.scratch_lrs}
    val_auc = _SCRATCH_VAL_02[key]
    scratch_lr = max(val_auc, key=val_auc.get)
    curve = features.budget_curve({"train": splits["train"], "test": splits["test"]}, [smallest], seeds=[seed],
                                  lr=cfg.finetune_lr, scratch_lr=scratch_lr, methods=["finetune", "scratch"], **run)
    auc = dict(zip(curve["method"], curve["auc"]))
    return {"scratch_lr": scratch_lr, **{f"val_lr{lr:g}": a for lr, a in val_auc.items()},
            "finetune": auc["finetune"], "scratch": auc["scratch"], "finetune_minus_scratch": auc["finetune"] - auc["scratch"]}


LRS_07 = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # lesson 07's lr grid, widened until each encoder's best lies inside it


def lesson_07_sets(cfg, seed: int) -> dict:
    """Lesson 07's lesion sets (cell 6 and section 4) on the patient-grouped Kermany parts: {"": ..., "small": ...}."""
    from medkit import segmentation as seg

    xrays = data.chest_xrays(image_size=cfg.image_size, seed=seed)
    sizes = {"train": max(cfg.budgets + [cfg.loss_budget]), "val": cfg.n_val, "test": cfg.n_test}
    small = {"train": cfg.loss_budget, "val": cfg.n_val, "test": cfg.n_test}
    return {"": seg.lesion_splits(xrays, seg.LesionSpec(radius=cfg.radius), sizes, seed=seed),
            "small": seg.lesion_splits(xrays, seg.LesionSpec(radius=cfg.small_radius), small, seed=seed, stream=1)}


def lesson_07(cfg, seed: int, tune: bool = False) -> dict:
    """Pretrained vs random encoder (curve), Dice vs BCE on small lesions; or, with `tune`, validation Dice per lr."""
    from medkit import segmentation as seg

    sets = lesson_07_sets(cfg, seed)
    pool, val, test = (sets[""][part] for part in ("train", "val", "test"))
    common = dict(steps=cfg.steps, batch_size=cfg.batch_size, encoder_depth=cfg.encoder_depth, seed=seed, n_boot=10)
    if tune:  # validation lesions in the validation children's X-rays: the test part is never looked at
        smallest = pool.subset(np.arange(min(cfg.budgets)))
        return {f"{name}_lr{lr:g}": seg.train_and_evaluate(smallest, val, weights=weights, lr=lr, **common)["dice"].estimate
                for name, weights in (("pretrained", "DEFAULT"), ("random", None)) for lr in LRS_07}
    out = {}
    for budget in cfg.budgets:
        for name, weights, lr in (("pretrained", "DEFAULT", cfg.lr), ("random", None, cfg.lr_random)):
            run = seg.train_and_evaluate(pool.subset(np.arange(budget)), test, weights=weights, lr=lr, **common)
            out[f"dice_{name}_{budget}"] = run["dice"].estimate
    small_train, small_val, small_test = (sets["small"][part] for part in ("train", "val", "test"))
    has_lesion = small_test.masks.reshape(len(small_test), -1).any(1)
    for loss in ("dice", "bce"):
        run = seg.train_and_evaluate(small_train, small_test, loss=loss, lr=cfg.lr, val=small_val, **common)
        predicted = (run["probs"] >= 0.5).reshape(len(small_test), -1)
        out[f"dice_{loss}_small"] = run["dice"].estimate
        out[f"val_dice_{loss}_small"] = run["val_dice"]
        out[f"fg_pred_{loss}_small"] = float(predicted.mean())
        out[f"missed_{loss}_small"] = int((has_lesion & ~predicted.any(1)).sum())
    out["fg_true_small"] = small_test.foreground_fraction()
    return out


def parts_08(cfg, seed: int) -> dict:
    """Return lesson 08's parts: unlabelled and labelled halves of the training patients, and the fixed val and test."""
    splits = data.chest_xrays(cfg.image_size, seed=seed)
    train = splits["train"]
    unlabelled_index = data.subsample(train.labels, cfg.n_unlabelled, seed=seed, groups=train.groups)
    labelled_index = np.setdiff1d(np.arange(len(train)), unlabelled_index)
    return {"unlabelled": train.subset(unlabelled_index, "chest_xray:unlabelled"),
            "labelled": train.subset(labelled_index, "chest_xray:labelled"), "val": splits["val"],
            "test": splits["test"]}


def lesson_08(cfg, seed: int, tune: bool = False) -> dict:
    """SimCLR's loss and probes (self-supervised, random, ImageNet), fine-tuning, and CNN vs ViT from scratch."""
    from medkit import models
    from medkit.core import features
    from medkit.core.train import seed_everything
    from medkit.methods import ssl
    from medkit.methods.vit import small_vit

    parts = parts_08(cfg, seed)
    unlabelled, labelled, val, test = (parts[k] for k in ("unlabelled", "labelled", "val", "test"))
    seed_everything(seed)
    random_encoder = ssl.SmallCNN(width=cfg.ssl_width).eval()
    seed_everything(seed)
    encoder = ssl.SmallCNN(width=cfg.ssl_width)
    losses = ssl.pretrain(encoder, unlabelled, epochs=cfg.ssl_epochs, batch_size=cfg.ssl_batch, seed=seed)
    imagenet = features.feature_extractor("efficientnet_lite0")
    feats = {"ssl": (ssl.encode(encoder, labelled), ssl.encode(encoder, test)),
             "random": (ssl.encode(random_encoder, labelled), ssl.encode(random_encoder, test)),
             "imagenet": tuple(features.extract_features(imagenet, ds, image_size=cfg.image_size, progress=False)[0]
                               for ds in (labelled, test))}
    probes = ssl.probe_budgets(feats, labelled.labels, test.labels, cfg.probe_budgets, cfg.probe_seeds)
    out = {"loss_drop": losses[0] - losses[-1],
           **{f"probe_{k}": float(probes[probes.features == k].auc.mean()) for k in feats}}
    grey = ssl.grey_preprocess(cfg.image_size)
    few = labelled.subset(data.subsample(labelled.labels, cfg.finetune_labels, seed=seed))
    starts = {"ssl": (lambda: ssl.classifier(encoder), grey), "random": (lambda: ssl.classifier(random_encoder), grey),
              "imagenet": (lambda: models.get_backbone("efficientnet_lite0", num_classes=2),
                           models.get_spec("efficientnet_lite0").preprocess(cfg.image_size))}
    for name, (build, pre) in starts.items():
        run = dict(preprocess=pre, epochs=cfg.finetune_epochs, seed=seed)
        lr, scores = ssl.choose_lr(build, few, val, lrs=cfg.lrs, **run)
        out[f"finetune_{name}_lr"] = lr
        out[f"finetune_{name}"] = ssl.fit_and_score(build, few, test, lr=lr, **run)[1]
    smallest = labelled.subset(data.subsample(labelled.labels, min(cfg.vit_budgets), seed=seed))
    for name, build in (("cnn", lambda: ssl.SmallCNN(width=32, num_classes=2)),
                        ("vit", lambda: small_vit(image_size=cfg.image_size, patch_size=cfg.patch_size))):
        run = dict(preprocess=grey, epochs=cfg.vit_epochs, batch_size=64, seed=seed)
        lr, scores = ssl.choose_lr(build, smallest, val, lrs=cfg.lrs, **run)
        out[f"scratch_{name}_lr"] = lr
        out[f"scratch_{name}"] = ssl.fit_and_score(build, smallest, test, lr=lr, **run)[1]
    return out


SCANNERS_09, LABEL_MIX_09 = ("reference", "high_contrast", "soft_low_dose"), (0.5, 0.75, 0.9)  # the notebook's
LRS_09 = (0.01, 0.02, 0.05, 0.1, 0.2)  # lesson 09's SGD lr grid (--tune), widened until each arm's best is inside


def hospitals_09(cfg, seed: int):
    """Return lesson 09's (pooled site data, {site: data}, val sites, test sites): whole patients dealt out."""
    from medkit.data import sites as shift
    from medkit.methods import federated as fed

    splits = data.chest_xrays(cfg.image_size, n_train=cfg.n_pool, seed=seed)
    site_data = shift.make_sites(splits["train"], SCANNERS_09, label_mix=LABEL_MIX_09, seed=seed)
    val = shift.make_sites(splits["val"], SCANNERS_09, seed=seed + 1)
    test = shift.make_sites(splits["test"], SCANNERS_09, seed=seed + 2)
    return site_data, fed.split_sites(site_data), val, test


def lesson_09(cfg, seed: int, tune: bool = False, lrs=LRS_09) -> dict:
    """Federated vs each site alone vs centralised, FedAvg with DP, and the case-mix leak, as lesson 09 runs them.

    The per-round curve is on the validation sites; test is read once per arm, at the end. With `tune`: validation
    AUC per lr of `LRS_09` for FedAvg, each site alone (mean) and the centralised model.
    """
    from flwr.server.strategy import DifferentialPrivacyServerSideFixedClipping
    from scipy.stats import spearmanr

    from medkit.core.train import seed_everything
    from medkit.methods import federated as fed

    site_data, sites, val, test = hospitals_09(cfg, seed)
    model_fn = lambda: fed.site_model(cfg.width)  # noqa: E731
    epochs = cfg.rounds * cfg.local_epochs
    if tune:
        out = {}
        for lr in lrs:
            seed_everything(seed)
            out[f"federated_lr{lr:g}"] = fed.run_federated(sites, val, model_fn=model_fn, rounds=cfg.rounds,
                                                           local_epochs=cfg.local_epochs, lr=lr, seed=seed).auc_per_round[-1]
            out[f"alone_lr{lr:g}"] = float(np.mean([fed.evaluate(fed.train_alone(
                ds, model_fn=model_fn, epochs=epochs, lr=lr, seed=seed), val) for ds in sites.values()]))
            out[f"centralised_lr{lr:g}"] = fed.evaluate(fed.train_alone(site_data, model_fn=model_fn, epochs=epochs,
                                                                        lr=lr, seed=seed), val)
        return out
    run = dict(model_fn=model_fn, rounds=cfg.rounds, local_epochs=cfg.local_epochs, lr=cfg.lr, seed=seed)
    seed_everything(seed)
    federated = fed.run_federated(sites, val, **run)
    alone = [fed.evaluate(fed.train_alone(ds, model_fn=model_fn, epochs=epochs, lr=cfg.lr_alone, seed=seed), test)
             for ds in sites.values()]
    centralised = fed.evaluate(fed.train_alone(site_data, model_fn=model_fn, epochs=epochs, lr=cfg.lr_centralised,
                                               seed=seed), test)
    probe = model_fn()
    received = federated.strategy.received[1]  # by site name, in the order the sites answered
    predicted = [fed.positive_rate(fed.set_weights(probe, received[name]), val) for name in sites]
    share = [float(ds.labels.mean()) for ds in sites.values()]
    seed_everything(seed)
    private = fed.run_federated(sites, val, **run, wrap_strategy=lambda s: DifferentialPrivacyServerSideFixedClipping(
        s, noise_multiplier=cfg.dp_noise, clipping_norm=cfg.dp_clip, num_sampled_clients=len(sites)))
    curve = federated.auc_per_round
    return {"federated": fed.evaluate(federated.model, test), "alone_mean": float(np.mean(alone)),
            "alone_best": max(alone), "centralised": centralised, "dp": fed.evaluate(private.model, test),
            "val_round_1": curve[1], "val_half": curve[len(curve) // 2], "val_last": curve[-1],
            "leak_rho": float(spearmanr(share, predicted).statistic),
            "leak_high_minus_low": predicted[int(np.argmax(share))] - predicted[int(np.argmin(share))]}


SCRATCH_LRS_10 = (3e-3, 1e-2, 3e-2, 1e-1)  # lesson 10's scratch lr grid to score with --tune (widened on val)


def lesson_10(cfg, seed: int, tune: bool = False) -> dict:
    """Validation AUC of lesson 10's scratch network per lr and modality at seed `seed` (only `--tune` is defined)."""
    from medkit.methods import transfer

    if not tune:
        raise SystemExit("lesson 10's claims run in its notebook (workshop tier); here only --tune (its scratch lr grid)")
    loaders = {"chest X-ray": data.chest_xrays, "breast ultrasound": data.breast_ultrasound,
               "dermoscopy": data.dermoscopy}
    out = {}
    for name, load in loaders.items():
        splits = transfer.draw_train(load(cfg.image_size), cfg.n_train, seed, n_held_out=cfg.n_held_out)
        _, runs = transfer.choose_lr(splits, SCRATCH_LRS_10, weights=None, seed=seed, epochs=cfg.epochs,
                                     batch_size=cfg.batch_size, image_size=cfg.image_size)
        out.update({f"{name.split()[-1]}_lr{lr:g}": run["val_auc"] for lr, run in runs.items()})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", required=True, choices=["02", "04", "05", "06", "07", "08", "09", "10"])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tune", action="store_true", help="validation score per learning rate instead of claims")
    parser.add_argument("--lrs", type=float, nargs="+", help="lessons 02 and 09 --tune: the lrs to score "
                        f"(default {' '.join(map(str, FINETUNE_LRS_02))} and {' '.join(map(str, LRS_09))})")
    parser.add_argument("--set", nargs="+", default=[], metavar="KNOB=VALUE",
                        help="override profile knobs, VALUE a Python literal (e.g. scratch_lrs=[3e-3,1e-2,3e-2])")
    args = parser.parse_args()
    overrides = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.set)}
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        cfg = profiles.resolve(args.profile, args.lesson, seed=seed, **overrides)
        extra = {"lrs": tuple(args.lrs)} if args.lrs and args.lesson in ("02", "09") else {}
        row = globals()[f"lesson_{args.lesson}"](cfg, seed, tune=args.tune, **extra)
        rows.append({"seed": seed, **row, "seconds": round(time.perf_counter() - start, 1)})
        print(pd.DataFrame(rows[-1:]).round(4).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).set_index("seed")
    print(f"\nlesson {args.lesson}, profile {args.profile}{', tuning on validation' if args.tune else ''}:")
    print(table.round(4).to_string())
    print("\nmin over seeds:\n" + table.min().round(4).to_string())


if __name__ == "__main__":
    main()
