"""What each lesson claims, checked on the numbers it recorded (smoke profile).

One function per lesson, keyed by its number. Smoke runs on tiny data, so a claim that only holds
at workshop size is checked here as "the mechanics produce valid numbers" and stated in full in the
lesson itself.
"""

import math


def claims_for(lesson: str):
    """Return the check function of a lesson number ("02"), or None."""
    return globals().get(f"check_{lesson}")


def _finite(m, *keys):
    for key in keys:
        assert key in m, f"lesson did not record {key!r}"
        assert isinstance(m[key], (int, float)) and math.isfinite(m[key]), f"{key}={m[key]!r} is not a finite number"


def check_00(m):
    # The bundled ImageNet backbone recognises natural images: the cat and the espresso.
    assert 281 <= m["chelsea_class"] <= 285, m["chelsea_class"]
    assert m["coffee_class"] == 967, m["coffee_class"]
    # ...and a real X-ray lands in some ImageNet class with low confidence: the head is useless, the reason to transfer.
    # Deterministic (fixed weights, images and 224 px input: the same in every profile and seed): the espresso 0.898,
    # the eight validation X-rays 0.12-0.46, mean 0.232 (margin 0.27 below 0.5).
    _finite(m, "xray_top_prob", "pneumonia_share_train")
    assert m["xray_top_prob"] < min(0.5, m["coffee_prob"]), (m["xray_top_prob"], m["coffee_prob"])
    # The real X-rays are split by patient (the notebook checks no child is in two parts): every part holds
    # patients, and pneumonia outnumbers normal in train (the imbalance the lesson names).
    for part in ("train", "val", "test"):
        assert m[f"n_patients_{part}"] > 0, (part, m[f"n_patients_{part}"])
    assert 0.5 < m["pneumonia_share_train"] < 1, m["pneumonia_share_train"]
    _solutions_right(m, "00", 1)


def check_01(m):
    # Three sources give the same images; a non-image file in a folder is counted, not silently dropped.
    assert m["sources_agree"] is True
    assert m["n_ignored"] == 1
    # CT_small.dcm in HU obeys physics: nothing below air (-1000, the scale's floor at -1024), lung mostly
    # air, fat below water, muscle near water, bone well above; the stored values are HU + 1024.
    assert m["hu_min"] > -1024 - 50, m["hu_min"]
    assert -950 < m["hu_lung"] < -650, m["hu_lung"]
    assert -150 < m["hu_fat"] < -50, m["hu_fat"]
    assert -30 < m["hu_muscle"] < 80, m["hu_muscle"]
    assert m["hu_bone"] > 150 and m["hu_max"] > 700, (m["hu_bone"], m["hu_max"])
    for tissue in ("lung", "fat", "muscle", "bone"):
        assert abs(m[f"stored_{tissue}"] - m[f"hu_{tissue}"] - 1024) < 1e-3
    assert m["stored_lung"] > 0  # raw stored values would make lung denser than water
    # The wrong window destroys information: the brain window clips most of a chest slice and all lung contrast.
    clipped, lung = m["clipped_fraction"], m["lung_contrast"]
    assert clipped["brain"] > 2 * clipped["lung"]
    assert lung["lung"] > 0.01 and lung["brain"] == 0.0
    # MR: every normalisation cuts the two-session disagreement several-fold; histogram matching most.
    d = m["mr_disagreement"]
    assert all(d["raw"] > 3 * d[k] for k in d if k != "raw"), d
    assert d["histogram match"] == min(d.values()), d
    # Augmentation: per-image parameters, reproducible under a seed.
    assert m["augment_deterministic"] is True and m["augment_views_distinct"] >= 8
    # The real X-rays name the patient in the file name: some children have several images.
    assert m["xray_patients"] < m["xray_images"] and m["xray_patients_with_several"] > 0, m["xray_patients"]
    assert m["xray_most_images_per_patient"] > 1
    # Group-aware splits keep every patient on one side; an image-level split does not.
    assert m["leaked_patients_grouped"] == 0 and m["leaked_patients_stratified"] > 0
    # The leakage measurement (same probe, image-level vs patient-grouped split, repeated over split seeds):
    # every image-level split leaked test patients into train (92-120 per split, about half of the test images:
    # 0.51-0.53 in workshop for lesson seeds 0-4; smoke 0.53), no grouped split did.
    assert all(n > 0 for n in m["leaked_patients_image_level"]), m["leaked_patients_image_level"]
    assert all(n == 0 for n in m["leaked_patients_patient_level"]), m["leaked_patients_patient_level"]
    assert m["leaked_test_image_share"] > 0.45, m["leaked_test_image_share"]  # margin 0.06 below the lowest seed
    _finite(m, "auc_image_level", "auc_patient_level", "auc_gap_mean", "auc_gap_se")
    if m["profile"] != "smoke":
        # The image-level split does not score lower beyond noise. Workshop (10 split seeds per lesson seed, seeds
        # 0-4): mean gap +0.0001..+0.0038, standard error 0.0017-0.0028, so gap + 2 SE >= +0.004. Smoke (400 images,
        # 3 split seeds, 80 test images from 48 patients) cannot tell: seed 0 gives -0.016 +- 0.003, the grouped
        # split's test set simply holds fewer, easier patients.
        assert m["auc_gap_mean"] > -2 * m["auc_gap_se"], (m["auc_gap_mean"], m["auc_gap_se"])
        # ...and, with a frozen body and a linear head, the inflation is small on this sample (the lesson says so):
        # |gap| <= 0.004 for lesson seeds 0-4, against a bound of 0.02.
        assert abs(m["auc_gap_mean"]) < 0.02, m["auc_gap_mean"]
    assert m["steps_match_preprocess"] is True
    # Timings: reported, never asserted (a rate is > 0 anyway, and its size is the machine's). "Data is not the
    # bottleneck" is worded as this run's reading: the data path / training ratio measured 193 and 267 (smoke) and 90
    # (workshop) on 2 shared cores at load 30-35, where training slows more than the data path; not measured unloaded.
    _finite(m, "data_images_per_s", "train_images_per_s")


def check_05(m):
    # Margins: benchmarks/claim_margins.py --lesson 05 (the notebook itself), bundled Kermany X-rays split by patient,
    # smoke seeds 0-3 and workshop seeds 0-4. Cross-validation is seeded: the same seed gave the same per-fold table.
    assert m["cv_reproducible"] is True
    _finite(m, "single_split_auc_min", "single_split_auc_max", "cv_auc_mean", "cv_auc_std", "loso_auc_mean",
            "loso_auc_min", "auc_gap_one_site", "auc_gap_diverse", "eod_one_site", "eod_diverse", "temperature",
            "ece_before", "ece_after", "val_nll_before", "val_nll_after", "auc_home_diverse", "patients_at_two_sites")
    # The sites deal out children: none is at two sites or in two of train / val / test. Dealing images instead put
    # 144-147 of the 564 training children at two sites (seeds 0-2).
    assert m["patients_at_two_sites"] == 0, m["patients_at_two_sites"]
    # Temperature scaling minimises the validation NLL (a fit that raised it would be broken) and keeps the ranking:
    # the AUC moves only where probabilities that rounded to exactly 1.0 were tied before scaling (at most 0.004).
    assert m["temperature"] > 0 and m["val_nll_after"] <= m["val_nll_before"] + 1e-9
    assert abs(m["auc_after_scaling"] - m["auc_before_scaling"]) < 0.01
    # Bootstrap intervals are valid: ordered, inside [0, 1], and bracketing their estimate.
    for point in ("screening", "confirmation"):
        for metric in ("sensitivity", "specificity", "auc"):
            est, low, high = m[f"{point}_{metric}_ci"]
            assert 0 <= low <= est <= high <= 1, (point, metric, m[f"{point}_{metric}_ci"])
    # The probe learns: patient-grouped CV AUC 0.796-0.861 in smoke (48 px, 120 images), 0.930-0.952 in workshop.
    assert m["cv_auc_mean"] > (0.7 if m["profile"] == "smoke" else 0.88), m["cv_auc_mean"]
    # One split can mislead: single 80/20 splits by patient spread 0.073-0.141 AUC in smoke, 0.042-0.069 in workshop.
    assert m["single_split_auc_max"] - m["single_split_auc_min"] > 0.02, (m["single_split_auc_min"],
                                                                          m["single_split_auc_max"])
    # Temperature scaling, fitted on validation, lowers the test ECE (every seed, both profiles: workshop 0.10-0.16
    # -> 0.04-0.08, smoke 0.17-0.20 -> 0.09-0.15).
    assert m["ece_after"] < m["ece_before"], (m["ece_before"], m["ece_after"])
    _solutions_right(m, "05", 3)
    if m["profile"] != "smoke":  # smoke's test sites hold about 20 images each: too few to rank them (seeds 0-3 disagree)
        # Workshop, seeds 0-4: trained at one site the probe's worst test site scores 0.44-0.60 AUC, trained at all
        # four 0.68-0.85; the AUC gap between sites (0.36-0.48 -> 0.06-0.30) and the equalized-odds difference
        # (0.72-0.86 -> 0.21-0.38) shrink; leaving whole sites out of CV is more pessimistic than patient-grouped
        # random folds (0.885-0.903 against 0.930-0.952).
        assert m["auc_gap_diverse"] < m["auc_gap_one_site"], (m["auc_gap_one_site"], m["auc_gap_diverse"])
        assert m["auc_worst_diverse"] > m["auc_worst_one_site"], (m["auc_worst_one_site"], m["auc_worst_diverse"])
        assert m["eod_diverse"] < m["eod_one_site"], (m["eod_one_site"], m["eod_diverse"])
        assert m["loso_auc_mean"] < m["cv_auc_mean"], (m["cv_auc_mean"], m["loso_auc_mean"])
    _check_05_nih(m)  # the bundled NIH subset: every run has real findings, sex and age


def _check_05_nih(m):
    # Margins from benchmarks/nih_section_margins.py, seeds 0-3, smoke (48 px, 200 replicates) and workshop (64 px,
    # 1000 replicates), on the development copy whose pixels the bundled subset keeps (tests/test_multilabel.py); the
    # lesson's own runs (claim_margins.py --lesson 05) agree. The split is by patient: no patient on two sides.
    assert m["nih_patients_on_both_sides"] == 0
    # ...while the same split drawn by image puts 101-118 patients on both sides (seeds 0-4).
    assert m["nih_image_split_patients_on_both_sides"] > 50, m["nih_image_split_patients_on_both_sides"]
    assert m["nih_follow_up_share"] > 0.5, m["nih_follow_up_share"]  # 0.746 of the images are follow-ups
    for row in m["nih_finding_auc"]:
        assert 0 <= row["low"] <= row["auc"] <= row["high"] <= 1, row
        assert row["positives"] >= 10, row  # rarer findings are skipped, not scored on a handful of positives
    assert "Hernia" in m["nih_skipped"], m["nih_skipped"]  # 9 images in all: never 10 positives in a test part
    for key in ("nih_macro_auc_ci", "nih_macro_auc_patient_ci", "nih_eod_sex_ci"):
        est, low, high = m[key]
        assert 0 <= low <= est <= high <= 1, (key, m[key])
    macro, by_image, by_patient = m["nih_macro_auc_ci"][0], m["nih_macro_auc_ci"], m["nih_macro_auc_patient_ci"]
    # Frozen ImageNet features at 48-64 px carry some signal: macro AUC 0.581-0.714 (smoke seeds 0-3, workshop 0-4:
    # seed 4 is the low one), and the image-resampled interval excludes chance (its low end 0.534-0.670).
    assert macro > 0.55, macro
    assert by_image[1] > 0.5, by_image
    # Follow-ups are not independent: resampling patients widens the interval (0.113-0.243 against 0.082-0.120).
    assert by_patient[2] - by_patient[1] > by_image[2] - by_image[1], (by_image, by_patient)
    # What a thousand images cannot tell: the widest per-finding interval spans 0.261-0.357, and the equalized-odds
    # difference by sex spans 0.424-0.802 (patients resampled), far too wide to call the model fair or unfair.
    assert max(row["high"] - row["low"] for row in m["nih_finding_auc"]) > 0.2, m["nih_finding_auc"]
    assert m["nih_eod_sex_ci"][2] - m["nih_eod_sex_ci"][1] > 0.3, m["nih_eod_sex_ci"]


MARGIN_07_LOSS = 0.05  # Dice - BCE loss on small lesions, val and test: smoke seeds 0-2 no less than +0.07


def check_07(m):
    # Lesions inserted into the bundled Kermany X-rays at 64 px, train / val / test children split by patient.
    # Transfer works for segmentation: at the smallest mask budget the ImageNet encoder gives the better U-Net, each
    # encoder with its own learning rate chosen on validation lesions (profiles: lr, lr_random).
    # Smoke (64 px, 8 masks, 30 steps), seeds 0-2 (benchmarks/claim_margins.py --lesson 07): pretrained - random test
    # Dice +0.328, +0.007, +0.111. The direction held on every seed but seed 1's margin is thin, so only the direction
    # is asserted (the lesson renders the two numbers and asks where, if anywhere, the random encoder catches up).
    # Workshop seed 0, measured at the earlier lr 3e-3 for both (the profile's val-tuned 1e-2 / 3e-2 not yet rerun
    # there): +0.26 at 8 masks, +0.14 at 32, +0.12 at 128; Dice - BCE loss +0.28 on val, +0.31 on test.
    _finite(m, "dice_pretrained_smallest", "dice_random_smallest", "dice_frozen", "dice_trainable",
            "dice_dice_small", "dice_bce_small", "val_dice_dice_small", "val_dice_bce_small", "fg_pred_dice_small",
            "fg_pred_bce_small", "fg_true_small")
    assert m["encoder_weights_match"] is True
    assert m["dice_pretrained_smallest"] > m["dice_random_smallest"], (m["dice_pretrained_smallest"],
                                                                       m["dice_random_smallest"])
    assert m["dice_empty_empty"] == 1.0  # an empty prediction on an empty mask is a correct answer
    # On small lesions the Dice loss beats cross-entropy, on validation (where the loss is chosen) and on test (read
    # once), and why, mechanically: cross-entropy predicts fewer lesion pixels and misses whole lesions.
    # Smoke seeds 0-2: Dice - BCE validation Dice +0.209, +0.215, +0.093, test Dice +0.197, +0.232, +0.072; lesion
    # share predicted by BCE 0.0001, 0.0, 0.0 against 0.0010, 0.0010, 0.0004 (true 0.0033, 0.0031, 0.0032); lesion
    # images missed outright 55, 58, 61 of the 64 test images against 23, 23, 43.
    assert m["val_dice_dice_small"] > m["val_dice_bce_small"] + MARGIN_07_LOSS, (m["val_dice_dice_small"],
                                                                               m["val_dice_bce_small"])
    assert m["dice_dice_small"] > m["dice_bce_small"] + MARGIN_07_LOSS, (m["dice_dice_small"], m["dice_bce_small"])
    assert m["fg_pred_bce_small"] < m["fg_pred_dice_small"], (m["fg_pred_bce_small"], m["fg_pred_dice_small"])
    assert m["missed_bce_small"] > m["missed_dice_small"], (m["missed_bce_small"], m["missed_dice_small"])
    # A frozen encoder trains a small share of the U-Net (the decoder only): 0.21 would mean freezing missed a part.
    assert m["trainable_share_frozen"] < 0.2, m["trainable_share_frozen"]
    assert m["liver_pixels"] > 0
    _solutions_right(m, "07", 2)


def check_06(m):
    # The exported ONNX file (preprocessing inside) agrees with PyTorch on real held-out images.
    _finite(m, "onnx_max_abs_diff", "torch_ms_batch1", "onnx_ms_batch1", "torch_ms_batch32", "onnx_ms_batch32",
            "false_alarm_rate", "detection_rate", "auc_test", "auc_test_shifted", "deid_n_changed", "drift_alpha",
            "gate_false_alarm_rate")
    assert m["onnx_max_abs_diff"] <= 1e-4, m["onnx_max_abs_diff"]
    assert m["onnx_same_classes"] is True
    # The predictor refuses a CT slice, a colour photo and a wrong-size image. (Latencies are timings: reported by
    # the lesson and benchmarks/bench_latency.py, never asserted.)
    assert m["n_refused"] == 3
    # The drift monitor's false alarms are what its alpha promises (smoke seeds 0-2: 0 of 8 each time): on n clean
    # batches the count is Binomial(n, alpha) for a valid test, so a count that a valid test exceeds less than once
    # in 1000 runs fails it (n=8: at most 3; n=40: at most 7). The old bound, 25 %, was five times alpha and could
    # hide a broken p-value.
    n, alarms = m["n_clean_batches"], round(m["false_alarm_rate"] * m["n_clean_batches"])
    assert binomial_tail(alarms, n, m["drift_alpha"]) >= 1e-3, (alarms, n, m["drift_alpha"])
    # It flags the simulated scanner change. Lesson 06 on the patient-grouped Kermany parts (128 px files, 64 px
    # model), smoke seeds 0-2: every batch (8 of 8) each time; the bound leaves two batches of room.
    assert m["detection_rate"] >= 0.75, m["detection_rate"]
    # The sanity gate flags every hostile file: flat (range 0 vs 2 levels), too small (1 px vs 7), aspect (10:1 vs
    # 2:1) by fixed rules, and noise, inverted and contrast / 16 by their statistics and embeddings (smoke seeds
    # 0-2: all seven each time). On clean held-out test children it flags few (smoke seeds 0-2: 5, 8 and 6 of
    # 260; its threshold is the 99th percentile of val scores, so a valid gate flags about 1 %, a broken one many).
    hostile = m["gate_hostile_flagged"]
    assert all(hostile[k] for k in ("black", "white", "noise", "inverted", "contrast / 16", "1x1", "strip")), hostile
    assert m["gate_false_alarm_rate"] <= 0.1, m["gate_false_alarm_rate"]
    # De-identification changes attributes and keeps the pixels byte for byte.
    assert m["deid_n_changed"] > 10 and m["deid_pixels_identical"] is True
    _solutions_right(m, "06", 1)
    _check_06_gate(m)


def _check_06_gate(m):
    # Lesson 06's retraining gate (section 8). Only its mechanics are asserted: the drift rates and the gate's
    # decision on the CLAHE candidate are not yet measured over seeds (worded as this run's own numbers).
    _finite(m, "gate_drift_false_alarm_rate", "gate_drift_detection_rate")
    verdicts = [m[f"gate_{kind}_verdict"] for kind in ("locked", "external")]
    # PROMOTE exactly when every part is non-inferior or better (medkit.evaluation.compare)
    assert (m["gate_decision"] == "PROMOTE") == all(v in ("superior", "non-inferior") for v in verdicts), verdicts
    for kind in ("locked", "external"):
        low, high = m[f"gate_{kind}_ci95"]
        assert low <= m[f"gate_{kind}_difference"] <= high, (kind, low, high)
        assert 0 < m[f"gate_{kind}_patients"] <= m[f"gate_{kind}_n"]
        assert math.isclose(m[f"gate_{kind}_difference"], m[f"gate_{kind}_auc_candidate"] - m[f"gate_{kind}_auc_current"],
                            abs_tol=1e-9)
    assert m["gate_external_n"] == 301  # the whole second site: data_samples/chest_xray_external


def check_04(m):
    # The from-scratch Grad-CAM (hooks in a context manager) gives the library's maps, and leaves no hook behind.
    assert m["scratch_vs_library_corr"] >= 0.99, m["scratch_vs_library_corr"]
    assert m["medkit_scratch_vs_library_corr"] >= 0.99, m["medkit_scratch_vs_library_corr"]
    assert m["hooks_left"] == 0
    _finite(m, "test_auc", "road_gradcam", "road_random", "road_win_rate_gradcam")
    # ROAD mechanics (log-odds): random maps remove pixels as often from the evidence as from elsewhere, so their
    # MoRF and LeRF nearly cancel. Measured: smoke seeds 0-2 -0.11, +0.03, -0.02; workshop seeds 0-4 -0.07, -0.05,
    # +0.14, +0.06, -0.05.
    assert abs(m["road_random"]) < 0.25, m["road_random"]
    # Sanity check: with the top 1, 2 or 3 layer groups re-initialised the maps lose the trained model's ranking.
    # The MEAN over those depths must stay low (a method that ignores the model scores about 1: EigenCAM with the
    # head re-initialised scores exactly 1). Measured: smoke seeds 0-2 +0.09, -0.07, +0.01; workshop seeds 0, 1, 2, 4
    # +0.01, -0.04, +0.04, +0.03.
    sanity = m["sanity_rank_corr"]
    assert len(sanity) == 3 and sum(sanity.values()) / len(sanity) < 0.5, sanity
    _finite(m, "pointing_gradcam", "pointing_random", "pointing_centre", "energy_gradcam", "energy_random",
            "energy_centre", "shortcut_val_acc", "shortcut_acc_as", "shortcut_acc_no", "shortcut_acc_marker", "clean_acc",
            "marker_energy_shortcut", "marker_energy_section", "marker_area")
    # The shortcut (section 8): trained with the marker on 90 % of pneumonia and 10 % of normal films, the model
    # loses accuracy on the same test patients when the marker is removed, and falls below the section 1 model
    # (never shown a marker) when it is moved to the normal films; its own marked validation patients hide it.
    # Smoke, seeds 0-1: marked as in training 0.842, 0.896; no marker 0.662, 0.638 (drop 0.18, 0.26); marker on
    # normals only 0.458, 0.442 against the clean model's 0.696, 0.723 (0.24, 0.28 below it); val 0.916, 0.908.
    # Workshop (128 px, all training patients) learns the lungs as well, so the shortcut costs less there: seed 0,
    # notebook: 0.969 marked, 0.904 unmarked (drop 0.065), 0.854 marker on normals against the clean model's 0.958
    # (0.10 below), val 0.954 (0.05 above unmarked); a benchmark rerun with other marker draws: 0.973, 0.892, 0.865.
    # Only seed 0 was measured at workshop (CPU time), so its margin there is 0.03, under the smallest seen.
    margin = 0.1 if m["profile"] == "smoke" else 0.03
    assert m["shortcut_acc_no"] < m["shortcut_acc_as"] - margin, (m["shortcut_acc_no"], m["shortcut_acc_as"])
    assert m["shortcut_acc_marker"] < m["clean_acc"] - margin, (m["shortcut_acc_marker"], m["clean_acc"])
    assert m["shortcut_val_acc"] > m["shortcut_acc_no"] + margin, (m["shortcut_val_acc"], m["shortcut_acc_no"])
    # Whether Grad-CAM puts more than the marker's share on it is reported, not asserted: it did not (smoke seeds
    # 0-1: 2.5 %, 2.2 % of the map on a square of 4.1 %; workshop seed 0: 3.5 %, random maps 3.9 %; the section 1
    # model 1.3 %). At a 16-pixel CAM cell the marker's evidence is not where the map's mass goes. What held is the
    # comparison on the same marked normal films: the shortcut model's maps put more on the marker than the
    # section 1 model's, 1.6x, 3.7x (smoke seeds 0-1) and 2.7x (workshop seed 0).
    assert m["marker_energy_shortcut"] > 1.3 * m["marker_energy_section"], (m["marker_energy_shortcut"],
                                                                             m["marker_energy_section"])
    if m["profile"] != "smoke":
        # Real X-rays at 128 px: the blocks.4 map has 8 x 8 cells, fine enough to point at a lung zone.
        assert min(m["cam_grid"]) >= 7, m["cam_grid"]
        assert m["test_auc"] > 0.9, m["test_auc"]  # seeds 0, 1, 2, 4: 0.993, 0.995, 0.995, 0.992
        # Faithfulness: the trained model's Grad-CAM beats random maps of the same smoothness, in log-odds (the
        # probability saturates on a model this confident). Only a model trained past smoke shows it (smoke, 12
        # images, seeds 0-2: -0.03, -0.18, -0.24 against random -0.11, +0.03, -0.02: not asserted there).
        # How much it wins by belongs to the trained model, not to the method: workshop, 32 test images, torch
        # 2.14.1, seeds 0-3 gain +0.03, +0.77, +0.73, +0.55, win rate 0.50, 0.78, 0.66, 0.63. Seed 0's margin is
        # thin, so only the direction is asserted, and the lesson's text says when the margin is thin. (An earlier
        # build measured +0.35 for seed 0; a 0.1 margin asserted then failed on this one.)
        assert m["road_gradcam"] > m["road_random"], (m["road_gradcam"], m["road_random"])
        assert m["road_win_rate_gradcam"] >= 0.5, m["road_win_rate_gradcam"]
        # Where the lesion detector's map points (section 7): 64 test images with an inserted lesion, workshop seed 0
        # in the notebook and in a benchmark rerun with other lesion draws: validation AUC 0.966, 0.983; pointing
        # game 0.172, 0.173 against random maps 0.016, 0.038 and the centre prior 0.094, 0.105; energy inside the
        # lesion 0.026, 0.023 against random 0.014, 0.014 (1.9x, 1.6x) and the centre prior 0.025, 0.025. Grad-CAM
        # beats random clearly and the centre prior only thinly on pointing (about 1.5 standard errors at 64
        # images), not at all on energy: only the direction over the centre prior is asserted, and the energy
        # against random. Smoke (64 px, a 4 x 4 grid, a weak detector: val AUC 0.69, 0.62) beats neither.
        assert m["lesion_val_auc"] > 0.9, m["lesion_val_auc"]
        assert m["pointing_gradcam"] > m["pointing_random"] + 0.05, (m["pointing_gradcam"], m["pointing_random"])
        assert m["pointing_gradcam"] > m["pointing_centre"], (m["pointing_gradcam"], m["pointing_centre"])
        assert m["energy_gradcam"] > 1.3 * m["energy_random"], (m["energy_gradcam"], m["energy_random"])


def check_02(m):
    # ImageNet's first-layer filters are smooth detectors; a random init's are noise.
    _finite(m, "filter_smoothness_pretrained", "filter_smoothness_random", "probe_auc_pretrained", "probe_auc_random")
    assert m["filter_smoothness_pretrained"] > m["filter_smoothness_random"] + 0.2, m
    # A linear probe on frozen ImageNet features separates pneumonia from normal on held-out children, better than
    # the same probe on the features of one random-init network (workshop, 96 px, all 913 training images: 0.979
    # against 0.952, 0.933, 0.935 for the random inits of seeds 0-2; smoke, 64 px, 200 images, seeds 0-4: 0.938,
    # 0.958, 0.943, 0.960, 0.937 against 0.885-0.914). The bound sits 0.037 below the lowest seed, not 0.19.
    assert m["probe_auc_pretrained"] > 0.9, m["probe_auc_pretrained"]
    assert m["probe_auc_pretrained"] > m["probe_auc_random"], (m["probe_auc_pretrained"], m["probe_auc_random"])
    # (The scratch lr is the val argmax by the lesson's own code: asserting that would compare it with itself.)
    # The grid has an inside (smoke: 1e-3, 1e-2, 3e-2; workshop: 3e-3, 1e-2, 3e-2) and the best lr is not on its
    # edge, so the baseline's own lr was found rather than cut off by the grid.
    val_auc = {float(lr): auc for lr, auc in m["scratch_val_auc"].items()}
    if len(val_auc) >= 3:
        assert min(val_auc) < max(val_auc, key=val_auc.get) < max(val_auc), val_auc
    # The curve: every method at every budget and seed.
    curve = m["curve"]
    assert {row["method"] for row in curve} == {"probe", "finetune", "scratch"}
    per_method = {method: sum(row["method"] == method for row in curve) for method in ("probe", "finetune", "scratch")}
    assert len(set(per_method.values())) == 1, per_method
    _finite(m, "small_budget_auc_probe", "small_budget_auc_finetune", "small_budget_auc_scratch", "pca_knn_auc_pretrained",
            "pca_knn_auc_random")
    # The headline: with the smallest label budget, fine-tuning from ImageNet beats the same network from scratch with
    # its own val-chosen lr (mean over the curve's seeds). The probe is reported, not asserted: at 24 labels (workshop)
    # it scores 0.74-0.89 over seeds 0-4, around the scratch network.
    gain = m["small_budget_auc_finetune"] - m["small_budget_auc_scratch"]
    if m["profile"] == "smoke":
        # Smoke (64 px, 20 labels, scratch lr 1e-2 chosen on val, lesson SEED 0; benchmarks/claim_margins.py --lesson 02,
        # curve seeds 0-4): fine-tuned - scratch +0.240, +0.227,
        # +0.208, +0.238, +0.110 (margin 0.060 over 0.05).
        assert gain > 0.05, (m["small_budget_auc_finetune"], m["small_budget_auc_scratch"])
    else:
        # Workshop, 96 px, 24 labels, scratch lr 1e-2 chosen on val, fine-tune lr 3e-3, per curve seed 0-4: +0.13,
        # +0.01, +0.07, +0.07, +0.19 (one seed is thin, so only the direction); the lesson's mean over seeds 0-1: 0.923
        # against 0.855 (+0.068).
        assert gain > 0, (m["small_budget_auc_finetune"], m["small_budget_auc_scratch"])
        # In 2-D (a 15-NN classifier in the PCA plane of the test features, deterministic for ImageNet: 0.950 at 96 px)
        # ImageNet's features separate the classes better than a random network's (three random inits 0.842, 0.652,
        # 0.608; margin 0.108). Not at smoke's 64 px: 0.707 against 0.608, 0.814, 0.706.
        assert m["pca_knn_auc_pretrained"] > m["pca_knn_auc_random"], (m["pca_knn_auc_pretrained"], m["pca_knn_auc_random"])
    # "The pretrained advantage shrinks as the budget grows" does not hold steadily at this compute, so the lesson
    # asks it as a question: workshop seed 0 (curve seeds 0-1) with batches of at most 16 gave +0.07 at 24 labels,
    # +0.35 at 72 and +0.06 at 216, following the optimiser steps each budget got (27, 12, 26), not the labels; with
    # batches of at most 8 (the workshop since the 1 GB budget; torch 2.13 CPU build) +0.14, +0.13, +0.04.
    assert len(m["pretrained_advantage"]) >= 2


def check_03(m):
    # Every experiment produced a valid AUC, scored on the validation part (choices are never made on test).
    sweep = {row["frozen_groups"]: row["auc"] for row in m["sweep"]}
    assert len(sweep) >= 3, sweep
    _finite(m, "gradual_auc", "all_at_once_auc", "fastai_val_auc", "gradual_seconds", "all_at_once_seconds")
    assert set(m["losses"]) == {"ce", "weighted_ce", "focal", "weighted_focal"}
    # The lesson's claims on the bundled real X-rays, every run from the same seeded head. Measured in smoke
    # (48 px, 256 images) on seeds 0-2 and in workshop (64 px, 400 images, one epoch in batches of 16) on seeds 0-1
    # (torch 2.13 CPU build): fine-tuning everything learns (k=0 val AUC 0.80, 0.68, 0.69; workshop 0.875, 0.832)
    # and beats the head alone at the same lr (+0.33, +0.13, +0.13; workshop +0.19, +0.07); a head alone needs the
    # larger lr (+0.30, +0.14, +0.12; workshop +0.16, +0.11). Two epochs of 16 narrowed that to +0.03 (seed 0).
    # Confounded, so only stated at the same lr: the sweep's head-only row is the head at 1e-3. Against the head at
    # its own lr (1e-2), k=0 leads by +0.03, -0.01, +0.01 (smoke seeds 0-2) and +0.03, -0.04 (workshop seeds 0-1),
    # derived from the margins above: not a claim, and the lesson's "What we saw" renders this run's lead and says so.
    # The head's need for the larger lr depends on the steps it gets: two epochs of 16 in workshop narrowed it from
    # +0.16 to +0.03 (seed 0), so only the direction is asserted (smallest measured margin +0.03).
    head, top = m["head_only_auc"], max(sweep)
    assert sweep[0] > 0.6 and sweep[0] > sweep[top] + 0.05, sweep
    assert head["0.01"] > head["0.001"], head
    # Class weights win back the specificity cross-entropy gives up on a skewed set (about 13:1 in smoke, 16:1 in
    # workshop): +0.40, +0.29, +0.40; workshop +0.50, +0.15.
    losses = m["losses"]
    assert losses["weighted_ce"]["specificity"] > losses["ce"]["specificity"], losses
    # Full fine-tuning moves the ImageNet stem least and the fresh head most: smoke seeds 0-2 stem 0.0028-0.0029,
    # next smallest 0.0074-0.0077, head 0.17-0.18; workshop seeds 0-1 0.0022/0.0036, 0.0077/0.0091 and 0.22. The middle groups need not
    # be in order (group 3 moved less than group 2 in every run).
    change = m["relative_change"]
    assert len(change) == 5 and change[0] == min(change) and change[-1] == max(change), change


def check_08(m):
    # The bundled chest X-rays at 64 px, split by patient: SimCLR's unlabelled children, the labelled pool, val and test
    # are four disjoint sets of children.
    assert m["patients_in_two_parts"] == 0, m["patients_in_two_parts"]
    # SimCLR learns without labels: its loss goes down, and its frozen features beat the same CNN at random init on a
    # linear probe (mean over label budgets and draws). Smoke, seeds 0-2 (seed 0 the notebook, 1-2
    # benchmarks/claim_margins.py --lesson 08): loss drop 0.249, 0.294, 0.277; self-supervised - random probe +0.016,
    # +0.010, +0.003 (thin: asserted without a margin, and the lesson asks rather than claims "at every budget");
    # self-supervised - ImageNet +0.113, +0.074, +0.078; CNN - ViT from scratch +0.103, +0.253, +0.126.
    # Workshop: not yet measured on the chest X-rays (CPU time).
    _finite(m, "ssl_loss_first", "ssl_loss_last", "probe_auc_ssl_mean", "probe_auc_random_mean",
            "probe_auc_imagenet_mean", "params_ratio")
    assert m["ssl_loss_last"] < m["ssl_loss_first"] - 0.1, (m["ssl_loss_first"], m["ssl_loss_last"])
    assert m["probe_auc_ssl_mean"] > m["probe_auc_random_mean"], (m["probe_auc_ssl_mean"], m["probe_auc_random_mean"])
    # At 64 px the in-domain encoder's features still beat ImageNet's on a probe, and a CNN from scratch beats a ViT
    # from scratch with the fewest labels (each with its own validation-chosen lr).
    assert m["probe_auc_ssl_mean"] > m["probe_auc_imagenet_mean"] + 0.04, (m["probe_auc_ssl_mean"],
                                                                           m["probe_auc_imagenet_mean"])
    assert m["scratch_auc_cnn"][0] > m["scratch_auc_vit"][0] + 0.05, (m["scratch_auc_cnn"], m["scratch_auc_vit"])
    # The ImageNet body is far larger than the small CNN: the lesson renders the measured ratio (about 36x in workshop,
    # width 32; 144x in smoke, width 16), so the prose cannot overstate it.
    assert m["params_ratio"] > 10 and m["params_imagenet"] > m["params_ssl_cnn"], m["params_ratio"]
    assert len(m["probe_auc_ssl"]) == len(m["probe_budgets"]) == len(m["probe_auc_imagenet"])
    assert set(m["finetune_lr"]) == set(m["finetune_auc"]) and set(m["scratch_lr"]) == {"CNN", "ViT"}
    _solutions_right(m, "08", 2)


def check_09(m):
    # The hospitals deal out children: none is at two hospitals (train, val and test dealt out alike).
    assert m["patients_at_two_sites"] == 0, m["patients_at_two_sites"]
    # Federated averaging beats the average hospital training alone (test, once, at the end; each arm at its own
    # validation-chosen lr) and improves with rounds (validation curve). Smoke (12 rounds, the workshop's own length),
    # seeds 0-2 (seed 0 the notebook, 1-2 benchmarks/claim_margins.py --lesson 09): federated - mean alone +0.034,
    # +0.187, +0.359; last round - round 1 (validation) +0.57, +0.52, +0.57. Not claimed: that federated stays below
    # the centralised model (federated - centralised -0.092, +0.261, +0.184: with a few hundred images the pooled run is
    # no stable upper bound at smoke size), DP's cost (DP - federated -0.29, -0.27, -0.01) and an exact case-mix ranking
    # (Spearman 0.5, 1, 1); the lesson shows them and asks. Workshop (all 912 training images), first with the smoke-chosen
    # lrs, seed 0: federated 0.607, mean alone 0.667, centralised 0.529 (untrained). With each arm's lr chosen at
    # workshop size on val (profiles.py "09"), seeds 0, 1, 2: federated 0.729, 0.810, 0.798; mean alone 0.710, 0.620,
    # 0.655 (federated - mean alone +0.019, +0.190, +0.143); centralised 0.889, 0.850, 0.866 (above federated at all
    # three); validation curve 0.35 -> 0.73, 0.43 -> 0.86, 0.26 -> 0.83 (+0.38, +0.43, +0.57); drift +0.37, +0.43,
    # +0.44. So at workshop the curve and drift checks hold with margin, the headline's margin does not: seed 0, the
    # notebook's own, misses +0.02 by 0.001 (federated still beats the mean alone there, barely). Open: a local-steps
    # change (batch size) measured on val; lrs tuned at seed 0 only.
    _finite(m, "federated_auc", "alone_auc_mean", "centralised_auc", "dp_auc")
    assert m["federated_auc"] > m["alone_auc_mean"] + 0.02, (m["federated_auc"], m["alone_auc_mean"])
    curve = m["federated_val_auc_per_round"]  # [initial model, after round 1, ...]
    assert len(curve) >= 3 and curve[-1] > curve[1] + 0.3, curve
    # Each round-1 model drifts towards its own hospital's class balance: run on the validation images, the model of
    # the hospital with the most pneumonia predicts more of it than that of the hospital with the least. Smoke, seeds
    # 0-2: +0.10, +0.83, +0.83.
    share, predicted = m["leak_true_share"], m["leak_predicted_share"]
    most, least = max(share, key=share.get), min(share, key=share.get)
    assert predicted[most] > predicted[least] + 0.05, (share, predicted)
    # (The gradient inversion and the masked sum are identities, tested in tests/test_federated.py, not claims.)
    _solutions_right(m, "09", 2)


def binomial_tail(k: int, n: int, p: float) -> float:
    """Return P(X >= k) for X ~ Binomial(n, p): how surprising k events are if each happens with probability p."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p))


def _solutions_right(m, lesson: str, n_checks: int):
    """The lesson's solution cells ran and every checked answer was judged right (medkit.course.check.results)."""
    checks = m["exercise_checks"]
    assert len(checks) == n_checks and all(checks.values()), (lesson, checks)


MODALITIES_10 = ("chest X-ray", "breast ultrasound", "dermoscopy")


def check_10(m):
    # Mechanics, every profile: three modalities, each method once per seed, valid AUCs; grey stays grey and colour
    # colour, and both conversions were said (warned), not done silently.
    seeds = m["seeds"]
    assert set(m["test_auc"]) == set(MODALITIES_10), sorted(m["test_auc"])
    assert m["channels"] == {"chest X-ray": 1, "breast ultrasound": 1, "dermoscopy": 3}, m["channels"]
    assert m["channel_conversions_said"] == 2, m["channel_conversions_said"]
    for name in MODALITIES_10:
        for method in ("probe", "finetune", "scratch"):
            aucs = m["test_auc"][name][method]
            assert len(aucs) == len(seeds), (name, method, aucs)
        # (The scratch lr and the freeze depth are the val argmax by the lesson's own code: not re-asserted here.)
        depth_val = m["freeze_val_auc"][name]
        assert set(m["freeze_test_auc"][name]) == set(depth_val) and "0" in depth_val, depth_val
    # Where the scratch lr grid has an inside (workshop: 3e-3, 1e-2, 3e-2, 1e-1), the X-rays' best on val is inside
    # it, so the baseline's own lr was found, not cut off by the grid (claim_margins.py --lesson 10 --tune, seed 0 /
    # seed 2: 3e-3 0.800 / 0.758, 1e-2 0.857 / 0.751, 3e-2 0.473 / 0.758, 1e-1 0.500 / 0.658; seed 2 is flat, its best
    # 3e-2 by 0.0003). Not asserted for ultrasound (best 3e-3, the low edge, at both seeds: 1e-3 not yet measured)
    # nor dermoscopy (scratch near chance at every lr: 0.37-0.59, no best to find). The workshop margins below were
    # measured with the grid 1e-2, 3e-2, before it was widened.
    val_auc = {float(lr): auc for lr, auc in m["scratch_val_auc"]["chest X-ray"].items()}
    if len(val_auc) >= 3:
        assert min(val_auc) < max(val_auc, key=val_auc.get) < max(val_auc), val_auc
    # Every trained run (scratch, fine-tuning, every freeze depth) took the same number of optimiser steps.
    assert len(m["steps_per_run"]) == 1 and m["steps_per_run"][0] > 0, m["steps_per_run"]
    _solutions_right(m, "10", 2)
    # The CI-sized half of the headline: the frozen ImageNet body carries signal on X-rays and ultrasound at every
    # size. Smoke (48 px, 64 training and about 64 held-out images), probe test AUC over seeds 0-4: X-ray 0.904,
    # 0.895, 0.912, 0.752, 0.855; ultrasound 0.687, 0.742, 0.612, 0.650, 0.642 (margins 0.052 over 0.7 and 0.062 over
    # 0.55). Not dermoscopy at smoke size: 0.591, 0.630, 0.630, 0.472, 0.554.
    probe_low = {name: min(m["test_auc"][name]["probe"]) for name in MODALITIES_10}
    assert probe_low["chest X-ray"] > 0.7 and probe_low["breast ultrasound"] > 0.55, probe_low
    if m["profile"] == "smoke":  # 64 images, 2 steps, one seed: scratch barely trains, so nothing is ranked
        return
    # Workshop (64 px, 200 training images, 24 steps per run), measured on seeds 0-3 (lesson SEED 0 and SEED 2).
    # The frozen ImageNet body (the probe) beats the same network from scratch on every modality and seed:
    # probe - scratch X-ray +0.091, +0.167, +0.219, +0.453; ultrasound +0.135, +0.238, +0.255, +0.230;
    # dermoscopy +0.135, +0.202, +0.157, +0.099.
    for name in MODALITIES_10:
        probe, scratch = m["test_auc"][name]["probe"], m["test_auc"][name]["scratch"]
        assert all(p > s for p, s in zip(probe, scratch)), (name, probe, scratch)
    # Fine-tuning everything beats scratch at every seed on X-rays and ultrasound: +0.105, +0.171, +0.192, +0.440 and
    # +0.113, +0.221, +0.230, +0.202. NOT claimed on dermoscopy (+0.106, +0.101, -0.032, -0.074): at the X-rays' lr,
    # fine-tuning all layers on 200 dermoscopy images did worse than freezing some, and the lesson shows it.
    for name in ("chest X-ray", "breast ultrasound"):
        assert min(m["finetune_minus_scratch"][name]) > 0, (name, m["finetune_minus_scratch"][name])
    # The claim, tested by depth (AUC lost against training everything, mean over the run's two seeds).
    # Early layers are reusable: freezing the first group costs less than 0.05 on every modality. Seeds 0-1 / 2-3:
    # X-ray +0.013 / -0.018, ultrasound +0.016 / -0.048, dermoscopy -0.091 / -0.105 (per seed at most +0.032).
    # "Only the early layers": fails at 200 images. Freezing all but the top group costs less than 0.05 too:
    # X-ray +0.010 / -0.011, ultrasound -0.000 / -0.039, dermoscopy -0.026 / -0.097 (per seed at most +0.044).
    assert m["early_k"] == 1 and m["deep_k"] == 3, (m["early_k"], m["deep_k"])
    for what in ("early", "deep"):
        for name, cost in m[f"{what}_freeze_cost"].items():
            assert sum(cost) / len(cost) < 0.05, (what, name, cost)


def check_11(m):
    # Files: the bundled T1 is 62 x 80 x 70 voxels of 2 mm, RAS; written as a DICOM series with shuffled names and
    # read back it is the same volume (measured: intensities identical, affine within 2.9e-7 mm).
    assert m["t1_shape"] == [62, 80, 70] and m["t1_orientation"] == "RAS", (m["t1_shape"], m["t1_orientation"])
    assert all(abs(s - 2.0) < 1e-4 for s in m["t1_spacing"]), m["t1_spacing"]
    assert m["dicom_max_abs_diff"] < 1e-3 and m["dicom_affine_max_diff"] < 1e-4, (m["dicom_max_abs_diff"],
                                                                                  m["dicom_affine_max_diff"])
    # Every broken input is refused (9 of 9), none is read as a plausible volume.
    assert m["n_hostile"] >= 9 and m["n_refused"] == m["n_hostile"], m["hostile_refused"]
    assert all(m["hostile_refused"].values()), m["hostile_refused"]
    # Resampling thick (6 mm) slices back to 2 mm: interpolation beats repeating slices. Measured (0-255 scale,
    # inside the brain; deterministic, the same for every seed and profile): nearest 12.59, linear 10.32, cubic 10.53.
    assert abs(m["thick_spacing"][2] - 3 * m["t1_spacing"][2]) < 1e-4, m["thick_spacing"]
    mae = m["resample_mae"]
    assert mae["linear"] < mae["nearest"] - 1.0 and mae["cubic"] < mae["nearest"] - 1.0, mae
    # Standardisation across T1, T2, FLAIR (deterministic): gap raw 0.087, z-score 0.067, percentile 0.084, Nyúl
    # 0.0097 (fitted on the same volumes, which the lesson says). Nyúl aligns the histograms far better than the rest.
    gap = m["standardisation_gap"]
    assert gap["Nyúl"] < 0.25 * min(gap["raw"], gap["z-score"], gap["percentile"]), gap
    assert gap["z-score"] < gap["raw"], gap
    # Inflation keeps the 2-D response on a depth-constant volume up to float rounding (measured 8.7e-7 to 9.1e-7).
    assert m["inflation_gap"] < 1e-5, m["inflation_gap"]
    # Transfer: valid AUCs for each seed and init. Not claimed: that inflation beats scratch (see the margins in
    # check_11_workshop and the lesson's own verdict, which is rendered from the run).
    for key in ("test_auc_scratch", "test_auc_inflated"):
        assert len(m[key]) == m["n_seeds"] >= 1, (key, m[key])
    if m["profile"] != "smoke":
        check_11_workshop(m)
    # The Med3D checkpoint has no verified sha256: refused before any download.
    assert m["checkpoint_unverified_refused"] is True
    _solutions_right(m, "11", 2)


def check_11_workshop(m):
    # 400 training volumes at 24^3, 3 epochs, seeds SEED..SEED+2. Measured test AUC, workshop, SEED=0 (seeds 0-2):
    # scratch 0.768, 0.786, 0.830; inflated 0.818, 0.813, 0.812 (inflated - scratch +0.049, +0.026, -0.019).
    # SEED=3 (seeds 3-5, another training subset): scratch 0.756, 0.747, 0.775; inflated 0.814, 0.816, 0.820
    # (+0.058, +0.069, +0.045). Both networks learn (lowest AUC 0.747, margin 0.097 over 0.65).
    assert min(m["test_auc_scratch"]) > 0.65 and min(m["test_auc_inflated"]) > 0.65, (m["test_auc_scratch"],
                                                                                       m["test_auc_inflated"])
    # (The lesson's "one init's test AUC can move by several hundredths from seed to seed": scratch's range 0.062 and
    # 0.028 over the two runs, inflated's 0.006 and 0.006; rendered per run, not asserted.)
    # Inflation does not hurt on average (mean gain +0.019 and +0.058 over the two runs; margin 0.049 over -0.03).
    # Not claimed: that it wins on every seed (it lost on seed 2, by 0.019); the lesson renders that verdict per run.
    gain = m["test_auc_inflated_mean"] - m["test_auc_scratch_mean"]
    assert gain > -0.03, gain


def _interval_ok(m, key):
    est, low, high = m[key]
    assert 0 <= low <= est <= high <= 1, (key, m[key])
    return est


def check_12(m):
    # Mechanics, every profile: valid intervals around their estimates at both sites, one lever row per lever,
    # the few-label curve for three methods from k = 0, a lever table that is either there or said to be missing.
    for where in ("internal", "external"):
        for metric in ("auc", "acc", "sensitivity", "specificity"):
            _interval_ok(m, f"{where}_{metric}_ci")
    _finite(m, "ece_test", "ece_site", "hindsight_acc", "hindsight_threshold", "site_probe_auc", "control_probe_auc",
            "normal_median_score_test", "normal_median_score_site", "prevalence_home", "prevalence_site")
    assert len(m["levers"]) == 4 and all(r["seeds"] >= 1 for r in m["levers"]), m["levers"]
    assert set(m["lever_verdicts"]) == {r["lever"] for r in m["levers"][1:]}, m["lever_verdicts"]
    assert set(m["few_label_acc"]) == {"threshold", "temperature+threshold", "prior"}, m["few_label_acc"]
    # k = 0 is the home model on every site image, whichever method: the same accuracy as section 3's
    for curve in m["few_label_acc"].values():
        assert abs(curve["0"] - m["external_acc_ci"][0]) < 1e-9, (curve, m["external_acc_ci"])
    # hindsight reads the site's labels, so it can only match or beat the home threshold's accuracy there
    assert m["hindsight_acc"] >= m["external_acc_ci"][0] - 1e-9, (m["hindsight_acc"], m["external_acc_ci"])
    assert m["lever_table_rows"] >= 0
    # "Global intensity statistics hardly differ" (section 5): mean grey value 125.3 on the home test part against 122.0
    # at the site, at 64 and at 128 px (fixed images, so the same for every seed); margin 6.7 under 10 of 255 levels.
    assert abs(m["intensity_mean"]["home"] - m["intensity_mean"]["site"]) < 10, m["intensity_mean"]
    _solutions_right(m, "12", 2)
    if m["profile"] != "smoke":
        check_12_workshop(m)


def check_12_workshop(m):
    # Workshop (128 px, bundled home and second site, seeds SEED..SEED+2), measured for SEED = 0 / 1 / 2 (the first
    # model is seed SEED's). The AUC drops at the second site: home test 0.997 / 0.996 / 0.997, site 0.956 / 0.942 /
    # 0.939; gap 0.041 / 0.054 / 0.058 (margin 0.021 over 0.02).
    assert m["external_auc_ci"][0] < m["internal_auc_ci"][0] - 0.02, (m["internal_auc_ci"], m["external_auc_ci"])
    # ...but the operating point drops far more: specificity 1.000 / 1.000 / 0.990 at home against 0.731 / 0.723 /
    # 0.605 at the site (gap 0.27 / 0.28 / 0.39, margin 0.12 over 0.15); accuracy 0.954 / 0.935 / 0.973 against
    # 0.870 / 0.864 / 0.834 (gap 0.083 / 0.071 / 0.139, margin 0.031 over 0.04).
    assert m["external_specificity_ci"][0] < m["internal_specificity_ci"][0] - 0.15, (
        m["internal_specificity_ci"], m["external_specificity_ci"])
    assert m["external_acc_ci"][0] < m["internal_acc_ci"][0] - 0.04, (m["internal_acc_ci"], m["external_acc_ci"])
    # Why: the site's healthy children score higher (median P(pneumonia) 0.31 / 0.36 / 0.51 against below 0.001 at
    # home; margin 0.21 over 0.1) and the model is worse calibrated there (ECE 0.127 / 0.134 / 0.144 against 0.021 /
    # 0.017 / 0.021: ratio at least 6, against 2).
    assert m["normal_median_score_site"] > m["normal_median_score_test"] + 0.1, (m["normal_median_score_site"],
                                                                                m["normal_median_score_test"])
    assert m["ece_site"] > 2 * m["ece_test"], (m["ece_site"], m["ece_test"])
    # The images: a probe on the embeddings tells the sites apart (AUC 0.612 / 0.652 / 0.607) better than two home
    # parts (control 0.489 / 0.461 / 0.490): difference 0.12 / 0.19 / 0.12, margin 0.04 over 0.08; the control stays
    # near chance (at most 0.490, against 0.6). Not claimed: that the sites are easy to tell apart (AUC ~0.6).
    assert m["site_probe_auc"] > m["control_probe_auc"] + 0.08, (m["site_probe_auc"], m["control_probe_auc"])
    assert m["control_probe_auc"] < 0.6, m["control_probe_auc"]
    # Levers (means over the three seeds). BatchNorm re-estimated on the unlabelled site images raises the site's
    # specificity: 0.686 -> 0.832, 0.611 -> 0.801, 0.543 -> 0.773 (+0.15 / +0.19 / +0.23, margin 0.10 over 0.05).
    # NOT claimed: that it raises accuracy beyond the seeds' noise (+0.019 / +0.032 / +0.055), nor anything about the
    # seed ensemble, whose threshold re-chosen on a nearly separable home val part gave site specificity 0.30 / 0.62 /
    # 0.52, nor histogram equalisation (site AUC 0.936 / 0.929 / 0.922 against 0.946 / 0.940 / 0.936, accuracy within
    # +-0.025 of the home model): the lesson renders those verdicts. Nor the few-label curve: re-choosing the
    # threshold on k = 100 site images gave 0.876 / 0.856 / 0.861 against 0.870 / 0.864 / 0.834 at the home threshold.
    levers = {r["lever"]: r for r in m["levers"]}
    base, adabn = levers["home model"], levers["BatchNorm re-estimated on the site"]
    assert adabn["external_spec"] > base["external_spec"] + 0.05, (adabn["external_spec"], base["external_spec"])
