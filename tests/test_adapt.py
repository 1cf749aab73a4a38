"""A new site with a few labels: recalibration on k images, scored only on the others (medkit.evaluation.adapt)."""

import warnings

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.metrics import roc_auc_score

from medkit.base.errors import DataError
from medkit.evaluation import adapt
from medkit.evaluation.evaluate import choose_threshold


def site(n=400, prior=0.6, shift=1.5, seed=0, per_patient=2):
    """A second site: scores rank well but sit `shift` logits too high; `per_patient` images per patient key."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n // per_patient), per_patient)
    y = (rng.random(n // per_patient) < prior).astype(int)[patients]  # one diagnosis per patient
    z = np.where(y == 1, 1.5, -1.5) + rng.normal(0, 1.2, n) + shift
    return expit(z), y, np.array([f"person{p}" for p in patients])


def test_the_k_labelled_images_and_their_patients_are_never_scored():
    probs, y, groups = site(per_patient=3, n=300)
    for k in (10, 25, 50):
        used = adapt.draw_labelled(y, k, seed=3, groups=groups)
        mask = adapt.scoring_mask(len(y), used, groups)
        assert len(used) == 3 * (k // 3)  # whole 3-image patients: short of k only by what no patient fits
        assert not mask[used].any()
        assert not set(groups[used]) & set(groups[mask])  # no patient on both sides
        assert mask.sum() == len(y) - len(set(groups[used])) * 3
    curve = adapt.few_label_curve(probs, y, groups, ks=(0, 25), seeds=range(3), home_threshold=0.5)
    assert (curve["n_scored"] == len(y) - curve["n_labelled"]).all()


def test_patients_that_cannot_fit_leave_the_draw_short_rather_than_split():
    probs, y, groups = site(n=300, per_patient=2)
    used = adapt.draw_labelled(y, 25, seed=0, groups=groups)
    assert len(used) == 24 and len(set(groups[used])) == 12  # 12 whole patients; the 25th image would split one


def test_draw_is_stratified_and_reproducible():
    probs, y, groups = site(n=400, prior=0.6)
    a = adapt.draw_labelled(y, 50, seed=7, groups=groups)
    assert np.array_equal(a, adapt.draw_labelled(y, 50, seed=7, groups=groups))
    assert not np.array_equal(a, adapt.draw_labelled(y, 50, seed=8, groups=groups))
    assert abs(y[a].mean() - y.mean()) <= 0.05
    # even 2 images hold both classes when the site has both
    assert set(y[adapt.draw_labelled(y, 2, seed=1)]) == {0, 1}
    c1 = adapt.few_label_curve(probs, y, groups, ks=(10, 50), seeds=range(3), home_threshold=0.5)
    c2 = adapt.few_label_curve(probs, y, groups, ks=(10, 50), seeds=range(3), home_threshold=0.5)
    assert c1.equals(c2)
    assert list(c1.columns[:8]) == ["k", "seed", "acc", "sensitivity", "specificity", "auc", "threshold", "n_scored"]


def test_k_zero_keeps_the_home_model_and_says_so():
    probs, y, _ = site()
    rec = adapt.recalibrate(probs[:0], y[:0], "temperature+threshold", home_threshold=0.7)
    assert (rec.temperature, rec.threshold, rec.prior_shift, rec.k) == (1.0, 0.7, 0.0, 0)
    assert "k=0" in rec.note and np.allclose(rec.apply(probs), probs)
    row = adapt.few_label_curve(probs, y, ks=(0,), seeds=(0,), home_threshold=0.7).iloc[0]
    assert row["n_scored"] == len(y) and row["acc"] == pytest.approx(((probs >= 0.7) == y).mean())


@pytest.mark.parametrize("method", ["threshold", "temperature", "temperature+threshold"])
def test_one_class_among_the_k_keeps_the_home_model_and_warns(method):
    probs, y, _ = site()
    ones = np.flatnonzero(y == 1)[:8]
    with pytest.warns(UserWarning, match="all class 1"):
        rec = adapt.recalibrate(probs[ones], y[ones], method, home_threshold=0.7)
    assert rec.temperature == 1.0 and rec.threshold == 0.7 and "both classes" in rec.note


def test_prior_with_one_class_stays_finite_and_warns():
    probs, y, _ = site()
    ones = np.flatnonzero(y == 1)[:3]
    with pytest.warns(UserWarning, match="one class"):
        rec = adapt.recalibrate(probs[ones], y[ones], "prior", home_prior=0.5)
    assert rec.new_prior == pytest.approx(3.5 / 4) and np.isfinite(rec.prior_shift)


def test_bad_inputs_say_what_to_do():
    probs, y, groups = site()
    with pytest.raises(DataError, match="home_prior"):
        adapt.recalibrate(probs[:20], y[:20], "prior")
    with pytest.raises(DataError, match="Unknown method"):
        adapt.recalibrate(probs[:20], y[:20], "platt")
    with pytest.raises(DataError, match="nothing to score"):
        adapt.draw_labelled(y, len(y), 0)
    with pytest.raises(DataError, match="group ids"):
        adapt.draw_labelled(y, 10, 0, groups=groups[:-1])
    with pytest.raises(DataError, match="0/1"):
        adapt.recalibrate(probs[:4], [0, 1, 2, 1])


def test_prior_shift_improves_accuracy_under_a_pure_label_shift():
    # calibrated at home (prior 0.5); the new site has 10% positives: the same scores, a different case mix
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(int)
    z = np.where(y == 1, 1.0, -1.0) + rng.normal(0, 1.0, 2000)
    probs = expit(2 * z)  # P(y=1 | z) when both classes are equally likely and the class means are +-1, sd 1
    home = adapt.few_label_curve(probs, y, ks=(0,), seeds=(0,), home_threshold=0.5)
    prior = adapt.few_label_curve(probs, y, ks=(100,), seeds=range(5), method="prior", home_threshold=0.5,
                                  home_prior=0.5)
    assert prior["acc"].min() > home["acc"].iloc[0] + 0.05  # measured, data seeds 0-2: 0.92-0.93 vs 0.83-0.85
    assert np.allclose(prior["auc"], prior["auc"].iloc[0], atol=0.01)  # a logit shift keeps the ranking


@pytest.mark.parametrize("method", ["threshold", "temperature", "temperature+threshold", "prior"])
def test_recalibration_never_changes_the_ranking(method):
    probs, y, groups = site()
    rec = adapt.recalibrate(probs[:60], y[:60], method, home_threshold=0.5, home_prior=0.74)
    assert roc_auc_score(y, rec.apply(probs)) == pytest.approx(roc_auc_score(y, probs), abs=1e-12)
    table = np.stack([1 - probs, probs], axis=1)
    assert np.allclose(rec.apply(table)[:, 1], rec.apply(probs))  # (N, 2) in, (N, 2) out


def test_threshold_is_the_kits_rule_and_fixes_a_shifted_site():
    probs, y, groups = site(shift=1.5)
    used = adapt.draw_labelled(y, 50, 0, groups)
    rec = adapt.recalibrate(probs[used], y[used], "threshold", home_threshold=0.5)
    assert rec.threshold == choose_threshold(y[used], probs[used])
    curve = adapt.few_label_curve(probs, y, groups, ks=(0, 50), seeds=range(5), home_threshold=0.5)
    by_k = curve.groupby("k")["acc"].median()
    assert by_k[50] > by_k[0] + 0.05  # measured, data seeds 0-2: 0.89-0.92 vs 0.78-0.82


def test_temperature_alone_keeps_the_home_decisions():
    rng = np.random.default_rng(0)
    probs = rng.random(1000)
    y = (rng.random(1000) < probs).astype(int)  # calibrated by construction
    over = expit(3 * logit(probs))  # overconfident: a temperature about 3 undoes it
    rec = adapt.recalibrate(over[:400], y[:400], "temperature", home_threshold=0.6)
    assert rec.temperature == pytest.approx(3, rel=0.25)
    assert np.array_equal(rec.predict(over), (over >= 0.6).astype(int))
    both = adapt.recalibrate(over[:200], y[:200], "temperature+threshold", home_threshold=0.6)
    same = adapt.recalibrate(over[:200], y[:200], "threshold", home_threshold=0.6)
    # Youden's rule depends only on the ranking, so both cut the labelled images in the same place
    assert np.array_equal(both.predict(over), same.predict(over))


def test_summary_gives_median_and_percentiles_per_k():
    probs, y, groups = site()
    curve = adapt.few_label_curve(probs, y, groups, ks=(0, 10, 25), seeds=range(5), home_threshold=0.5)
    summary = adapt.summarise_curve(curve)
    assert list(summary["k"]) == [0, 10, 25] and (summary["seeds"] == 5).all()
    for _, row in summary.iterrows():
        part = curve[curve["k"] == row["k"]]["acc"]
        assert row["acc_lo"] <= row["acc"] <= row["acc_hi"]
        assert row["acc"] == pytest.approx(part.median())
        assert part.min() <= row["acc_lo"] and row["acc_hi"] <= part.max()


def test_curve_reports_degenerate_draws_in_a_column_not_warnings():
    probs, y, _ = site()
    y = np.ones_like(y)
    y[:3] = 0  # a site with three normals: most small draws hold positives only
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        curve = adapt.few_label_curve(probs, y, ks=(1,), seeds=range(3), home_threshold=0.5)
    assert curve["note"].str.contains("all class").all()


# --- medkit adapt: a new checkpoint folder, and evaluate that skips the adaptation images ---------------------

import json  # noqa: E402

from folders import kermany_folder  # noqa: E402

from medkit.base.errors import ConfigError  # noqa: E402
from medkit.cli import main  # noqa: E402
from medkit.core.checkpoint import CONFIG_FILE, WEIGHTS_FILE  # noqa: E402


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home checkpoint (ImageNet body, random 2-class head, 48 px) and a second site of 24 patients, 48 images."""
    from medkit.core.checkpoint import save_checkpoint
    from medkit.core.train import seed_everything
    from medkit.models import get_backbone

    seed_everything(0)
    model = get_backbone("efficientnet_lite0", num_classes=2)
    ck = tmp_path_factory.mktemp("home") / "ck"
    report = [{"part": "train", "images": 100, "groups": 50, "classes": {"NORMAL": 25, "PNEUMONIA": 75}}]
    save_checkpoint(ck, model, image_size=48, classes=["NORMAL", "PNEUMONIA"], threshold=0.5, input_size=48,
                    channels=1, recipe={"group_by": "auto", "threshold": "youden"}, splits={"report": report},
                    data={"path": "/elsewhere/home_train", "cached_groups": 3})
    return ck, kermany_folder(tmp_path_factory.mktemp("site") / "site_b", n_patients=12)


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_adapt_writes_a_new_checkpoint_that_records_the_k_images(home, tmp_path):
    from medkit.fit.adapt import adapt_checkpoint, home_prior

    ck, site_dir = home
    before = _files(ck)
    record = adapt_checkpoint(ck, site_dir, tmp_path / "adapted", k=10, seed=1, method="threshold", log=None)
    assert _files(ck) == before  # the input checkpoint is untouched
    config = json.loads((tmp_path / "adapted" / CONFIG_FILE).read_text())
    info = config["adaptation"]
    assert info == record and (info["method"], info["k"], info["seed"]) == ("threshold", 10, 1)
    assert len(info["images"]) == info["n_labelled"] == 10 and all(site_dir.as_posix() in p for p in info["images"])
    assert config["threshold"] == info["threshold"] and info["home_threshold"] == 0.5
    assert home_prior(config) == 0.75  # the home split report travels with the checkpoint
    # the same seed draws the same images
    again = adapt_checkpoint(ck, site_dir, tmp_path / "again", k=10, seed=1, method="threshold", log=None)
    assert again["images"] == info["images"]


def test_evaluate_skips_the_adaptation_images_and_says_so(home, tmp_path, capsys):
    from medkit.fit import evaluate_checkpoint

    ck, site_dir = home
    assert main(["adapt", "--checkpoint", str(ck), "--data", str(site_dir), "--k", "8", "--out",
                 str(tmp_path / "ad")]) == 0
    capsys.readouterr()
    lines = []
    result = evaluate_checkpoint(tmp_path / "ad", site_dir, n_boot=50, log=lines.append)
    assert result["n"] == 48 - 8 and result["adaptation_images_skipped"] == 8
    assert any("not scored" in line for line in lines)
    assert evaluate_checkpoint(ck, site_dir, n_boot=50)["n"] == 48  # the home checkpoint scores every image
    assert main(["evaluate", "--checkpoint", str(tmp_path / "ad"), "--data", str(site_dir)]) == 0
    assert "8 used by `medkit adapt` not scored" in capsys.readouterr().err


def test_folded_recalibration_matches_the_library(home, tmp_path):
    from medkit.core.checkpoint import load_checkpoint
    from medkit.evaluation.adapt import recalibrate
    from medkit.fit.adapt import adapt_checkpoint, site_features, site_images

    ck, site_dir = home
    config, ds = site_images(ck, site_dir)
    _, before = site_features(load_checkpoint(ck)[0], ds, config)
    record = adapt_checkpoint(ck, site_dir, tmp_path / "tt", k=16, seed=0, method="temperature+threshold", log=None)
    _, after = site_features(load_checkpoint(tmp_path / "tt")[0], ds, config)
    used = np.isin([str(p) for p in ds.meta["paths"]], record["images"])
    rec = recalibrate(before[used], ds.labels[used], "temperature+threshold", home_threshold=0.5)
    assert record["temperature"] == pytest.approx(rec.temperature) and record["temperature"] != 1.0
    assert np.allclose(after[:, 1], rec.apply(before)[:, 1], atol=1e-5)  # T folded into the head's weights


def test_head_method_changes_the_head_only(home, tmp_path):
    import torch

    from medkit.base.atomic import read_state_dict
    from medkit.fit.adapt import adapt_checkpoint

    ck, site_dir = home
    adapt_checkpoint(ck, site_dir, tmp_path / "head", k=16, seed=0, method="head", epochs=5, log=None)
    old, new = read_state_dict(ck / WEIGHTS_FILE), read_state_dict(tmp_path / "head" / WEIGHTS_FILE)
    changed = {name for name in old if not torch.equal(old[name], new[name])}
    assert changed == {"classifier.weight", "classifier.bias"}


def test_adapt_refuses_to_overwrite_or_misuse(home, tmp_path, capsys):
    from medkit.fit.adapt import adapt_checkpoint

    ck, site_dir = home
    before = _files(ck)
    assert main(["adapt", "--checkpoint", str(ck), "--data", str(site_dir), "--out", str(ck)]) == 1
    assert "never overwrites" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        adapt_checkpoint(ck, site_dir, tmp_path / "full", k=8, log=None)
    adapt_checkpoint(ck, site_dir, tmp_path / "once", k=8, log=None)
    with pytest.raises(ConfigError, match="already adapted"):
        adapt_checkpoint(tmp_path / "once", site_dir, tmp_path / "twice", k=8, log=None)
    with pytest.raises(DataError, match="Unknown method"):
        adapt_checkpoint(ck, site_dir, tmp_path / "m", k=8, method="finetune_all", log=None)
    assert _files(ck) == before


def test_adapt_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom medkit.cli import main\ntry:\n    main(['adapt', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("False")
    assert "labels from the new site" in proc.stdout and "held out of scoring" in proc.stdout


def test_batchnorm_method_moves_only_the_trained_layers_statistics(home, tmp_path, capsys):
    """AdaBN: only the running statistics of BatchNorms above the cached groups change; every site image is scored."""
    import torch

    from medkit.base.atomic import read_state_dict
    from medkit.core.checkpoint import read_config
    from medkit.fit.adapt import adapt_checkpoint

    ck, site_dir = home
    record = adapt_checkpoint(ck, site_dir, tmp_path / "bn", method="batchnorm", log=None)
    assert record["labels_used"] is False and record["images"] == [] and record["n_unlabelled"] > 0
    old, new = read_state_dict(ck / WEIGHTS_FILE), read_state_dict(tmp_path / "bn" / WEIGHTS_FILE)
    changed = {name for name in old if not torch.equal(old[name], new[name])}
    cut = read_config(ck)["data"]["cached_groups"]
    assert changed and all(name.endswith(("running_mean", "running_var", "num_batches_tracked")) for name in changed)
    assert all(name.startswith(("blocks.6", "conv_head", "bn2")) for name in changed), (cut, sorted(changed))
    assert main(["evaluate", "--checkpoint", str(tmp_path / "bn"), "--data", str(site_dir)]) == 0
    assert '"adaptation_images_skipped": 0' in capsys.readouterr().out


def test_adapt_reads_the_site_in_the_checkpoints_value_range(home, tmp_path, capsys):
    """A checkpoint fit on float images saved in 0-1000 (--value-range) reads the new site in that range too."""
    from PIL import Image

    from medkit.base.errors import DataError
    from medkit.core.checkpoint import load_checkpoint, save_checkpoint
    from medkit.fit.adapt import adapt_checkpoint

    ck, _ = home
    model, config = load_checkpoint(ck)
    wide = tmp_path / "wide"
    save_checkpoint(wide, model, image_size=48, classes=config["classes"], threshold=0.5, input_size=48, channels=1,
                    recipe={**config["recipe"], "value_range": [0.0, 1000.0]}, splits=config["splits"],
                    data=config["data"])
    rng = np.random.default_rng(0)
    for label, level in (("NORMAL", 200.0), ("PNEUMONIA", 700.0)):
        (tmp_path / "site" / label).mkdir(parents=True)
        for i in range(6):
            image = np.clip(rng.normal(level, 80.0, (48, 48)), 0, 1000).astype(np.float32)
            Image.fromarray(image).save(tmp_path / "site" / label / f"{label}{i}.tif")
    record = adapt_checkpoint(wide, tmp_path / "site", tmp_path / "ad", k=6, log=None)
    assert record["n_labelled"] == 6 and json.loads((tmp_path / "ad" / CONFIG_FILE).read_text())["recipe"]["value_range"] == [0.0, 1000.0]
    with pytest.raises(DataError, match=r"outside the declared value range \[0, 1\]"):  # the range is applied, not ignored
        adapt_checkpoint(wide, tmp_path / "site", tmp_path / "ad01", k=6, log=None, value_range=(0.0, 1.0))
    assert main(["adapt", "--checkpoint", str(wide), "--data", str(tmp_path / "site"), "--k", "6",
                 "--out", str(tmp_path / "ad_cli")]) == 0
    capsys.readouterr()
