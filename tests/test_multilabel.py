"""Multi-label findings: the CSV and NIH readers, their errors, `medkit fit` -> `evaluate` round trip, bias metrics."""

import json

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from medkit.base.errors import ConfigError, DataError, MedkitError, UnknownNameError
from medkit.cli import main
from medkit.data.findings import NIH_COLUMNS, from_findings_csv, nih_findings, parse_findings
from medkit.fit import evaluate_checkpoint
from medkit.methods import nih as multilabel

FAST = ["--epochs", "2", "--image-size", "48", "--quiet", "--batch-size", "16"]
NIH = SHARED_DATA / "nih_cxr14_1000"
LABELS = ["Effusion", "Mass|Effusion", "No Finding", "Mass", "No Finding", "Effusion|Nodule"]


def _csv(folder, labels=None, n=60, size=48, seed=0, header="path,label,patient"):
    """Write n synthetic grey PNGs and a CSV of their findings (two images per patient); return the CSV path."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    labels = labels or [LABELS[i % len(LABELS)] for i in range(n)]
    lines = [header]
    for i, label in enumerate(labels):
        image = rng.integers(0, 80, (size, size)).astype(np.uint8)
        if "Effusion" in label:
            image[size // 2:] += 120  # a bright lower half: something for the Effusion output to learn
        Image.fromarray(image).save(folder / "img" / f"{i}.png")
        lines.append(f"img/{i}.png,{label},p{i // 2}")
    path = folder / "labels.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    data = _csv(tmp_path_factory.mktemp("findings"))
    out = tmp_path_factory.mktemp("ml_ckpt") / "ck"
    assert main(["fit", "--data", str(data), "--out", str(out), *FAST]) == 0
    return data, out


# --- parsing and readers -------------------------------------------------------------------------


def test_parse_findings_multi_hot():
    Y, names = parse_findings(["Effusion|Mass", "No Finding", " Mass "])
    assert names == ["Effusion", "Mass"] and Y.tolist() == [[1, 1], [0, 0], [0, 1]]
    Y, names = parse_findings(["Mass"], names=["Mass", "Effusion"])  # a given order is kept
    assert names == ["Mass", "Effusion"] and Y.tolist() == [[1, 0]]


@pytest.mark.parametrize("raw, names, words", [
    (["Effusion", ""], None, "empty findings on line 3"),
    (["Effusion||Mass"], None, "malformed"),
    (["No Finding|Mass"], None, "malformed"),
    (["Mass|Mass"], None, "malformed"),
    (["No Finding", "No Finding"], None, "no finding to learn"),
    (["Efusion"], ["Effusion", "Mass"], "not among the known findings"),
    (["effusion"], ["Effusion"], "only by case"),
])
def test_parse_findings_refuses_bad_labels(raw, names, words):
    with pytest.raises(DataError, match=words):
        parse_findings(raw, names)


def test_from_findings_csv_reads_patients_and_names_missing_files(tmp_path):
    path = _csv(tmp_path, n=6)
    table = from_findings_csv(path)
    assert table.names == ["Effusion", "Mass", "Nodule"] and table.Y.shape == (6, 3)
    assert table.patients.tolist() == ["p0", "p0", "p1", "p1", "p2", "p2"]
    (tmp_path / "img" / "0.png").unlink()
    with pytest.raises(DataError, match="missing file"):
        from_findings_csv(path)


def test_nih_reader_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        nih_findings(tmp_path / "nope")
    with pytest.raises(DataError, match="no metadata.csv"):
        nih_findings(tmp_path)
    (tmp_path / "metadata.csv").write_text("image,findings\na.png,Mass\n")
    with pytest.raises(DataError, match="lacks column"):
        nih_findings(tmp_path)
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "a.png")
    row = {"image": "a.png", "findings": "Masses", "follow_up": "0", "patient_id": "1", "age": "50", "sex": "F",
           "view": "PA"}
    (tmp_path / "metadata.csv").write_text(",".join(NIH_COLUMNS) + "\n" + ",".join(row[c] for c in NIH_COLUMNS) + "\n")
    with pytest.raises(DataError, match="Masses"):
        nih_findings(tmp_path)
    row["findings"] = ""
    (tmp_path / "metadata.csv").write_text(",".join(NIH_COLUMNS) + "\n" + ",".join(row[c] for c in NIH_COLUMNS) + "\n")
    with pytest.raises(DataError, match="empty findings"):
        nih_findings(tmp_path)


def test_load_nih_without_a_folder_reads_the_bundled_subset_and_refuses_a_missing_one(tmp_path):
    nih = multilabel.load_nih(None)  # what every student's lesson 05 reads
    assert nih.Y.shape == (1000, 14) and (nih.Y.sum(1) == 0).sum() == 499  # README: 499 "No Finding"
    assert nih.images.shape == (1000, 64, 64) and len(np.unique(nih.patients)) == 264
    parts = multilabel.patient_split(nih.patients, nih.Y, seed=0)
    assert multilabel.patients_on_both_sides(nih.patients, parts) == 0
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(1000))
    assert nih.names[nih.column("Effusion")] == "Effusion"
    with pytest.raises(UnknownNameError, match="Unknown finding 'Efusion'"):  # lesson 05's NIH_FINDING, misspelt
        nih.column("Efusion")
    with pytest.raises(DataError, match="nowhere"):
        multilabel.load_nih(tmp_path / "nowhere")


@pytest.mark.skipif(not NIH.is_dir(), reason="needs ../shared/data/nih_cxr14_1000")
def test_bundled_nih_subset_has_the_development_copys_pixels_and_table():
    bundled, source = multilabel.load_nih(None), nih_findings(NIH)  # make_nih_sample.py: grey PNG, lossless
    assert np.array_equal(bundled.images, source.images) and np.array_equal(bundled.Y, source.Y)
    assert np.array_equal(bundled.patients, source.patients)
    assert all(np.array_equal(bundled.meta[k], source.meta[k]) for k in ("age", "sex", "view", "follow_up"))


# --- metrics ---------------------------------------------------------------------------------------


def test_finding_aucs_skip_rare_findings_and_say_why():
    rng = np.random.default_rng(0)
    Y = np.zeros((200, 3), int)
    Y[:60, 0] = 1
    Y[:3, 1] = 1  # too rare to score
    P = np.clip(Y * 0.3 + rng.random((200, 3)) * 0.7, 0, 1)
    P[:, 2] = np.nan  # no probe (never positive in training)
    res = multilabel.finding_aucs(Y, P, ["a", "b", "c"], n_boot=100)
    assert res["scored"] == ["a"] and set(res["skipped"]) == {"b", "c"}
    assert "3 positive(s)" in res["skipped"]["b"] and "no prediction" in res["skipped"]["c"]
    row = res["table"].iloc[0]
    assert row["low"] <= row["auc"] <= row["high"] and res["macro_auc"] == row["auc"]
    ci = multilabel.macro_auc_ci(Y[:, :1], P[:, :1], np.arange(200) // 4, n_boot=100)
    assert ci.low <= ci.estimate <= ci.high and ci.estimate == pytest.approx(row["auc"])


def test_equalized_odds_ci_is_fairlearns_metric_with_a_patient_interval():
    from fairlearn.metrics import equalized_odds_difference

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.35 * y + rng.random(300) * 0.65, 0, 1)
    sex = np.where(rng.random(300) < 0.5, "F", "M")
    patients = np.arange(300) // 3
    res = multilabel.equalized_odds_ci(y, p, sex, patients, 0.5, n_boot=200)
    assert res["eod"].estimate == pytest.approx(equalized_odds_difference(y, (p >= 0.5).astype(int),
                                                                          sensitive_features=sex))
    assert 0 <= res["eod"].low <= res["eod"].high <= 1 and res["patients"] == 100
    with pytest.raises(DataError, match="no positive or no negative"):
        multilabel.equalized_odds_ci(y, p, np.where(y == 1, "F", "M"), patients, 0.5, n_boot=50)


def test_age_bands_and_subgroups():
    assert multilabel.age_bands([30, 59, 60, 90]).tolist() == ["<60", "<60", "60+", "60+"]
    assert multilabel.age_bands([49, 50, 64, 65], edges=(50, 65)).tolist() == ["<50", "50-64", "50-64", "65+"]
    with pytest.raises(DataError, match="missing"):
        multilabel.age_bands([np.nan])
    y = np.array([0, 1, 0, 1, 0, 1])
    table = multilabel.subgroup_metrics(y, np.array([.1, .9, .2, .8, .6, .4]), np.array(list("aabbcc")), 0.5)
    assert table.loc["overall", "n"] == 6 and table.loc["a", "sensitivity"] == 1.0


# --- medkit fit / evaluate -------------------------------------------------------------------------


def test_fit_then_evaluate_multilabel(fitted, capsys):
    data, out = fitted
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "multilabel" and config["findings"] == ["Effusion", "Mass", "Nodule"]
    assert config["num_classes"] == 3 and set(config["thresholds"]) == set(config["findings"])
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(data), "--json"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1  # stdout is the JSON line only; the per-finding table goes to stderr
    assert "macro AUC" in captured.err
    result = json.loads(lines[0])
    assert result["split"] == "test" and result["task"] == "multilabel" and result["patients"] >= 2
    scored = result["findings"]
    assert set(scored) | set(result["skipped"]) == {"Effusion", "Mass", "Nodule"}
    for row in scored.values():
        assert 0 <= row["auc"] <= 1 and (row["ci95"] is None or row["ci95"][0] <= row["auc"] <= row["ci95"][1])
    # each AUC and the macro AUC are stored rounded to 6 decimals
    assert result["macro_auc"] == pytest.approx(np.mean([r["auc"] for r in scored.values()]), abs=2e-6)
    # the whole CSV can be scored too, and the test part is disjoint by patient from what fit trained on
    whole = evaluate_checkpoint(out, data, "all", n_boot=50)
    assert whole["n"] == 60 and whole["split"] == "all"


def test_fit_multilabel_cli_prints_one_json_line(tmp_path, capsys):
    data = _csv(tmp_path / "d", n=40)
    capsys.readouterr()
    assert main(["fit", "--data", str(data), "--out", str(tmp_path / "o"), "--epochs", "1", "--image-size", "48",
                 "--quiet", "--findings", "Nodule,Mass,Effusion,Pneumonia", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert len(lines) == 1 and result["findings"] == ["Nodule", "Mass", "Effusion", "Pneumonia"]
    assert "Pneumonia" in result["val"]["skipped"]  # never present: reported, not scored


def test_evaluate_refuses_findings_the_checkpoint_does_not_know(fitted, tmp_path):
    _, out = fitted
    other = _csv(tmp_path, labels=["Effusion", "Pneumothorax|Mass", "No Finding", "Mass"])
    with pytest.raises(DataError, match=r"'Pneumothorax'.*knows only these findings"):
        evaluate_checkpoint(out, other)
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(other)]) == 1


def test_fit_refuses_a_finding_outside_findings(tmp_path, capsys):
    data = _csv(tmp_path, n=12)
    assert main(["fit", "--data", str(data), "--out", str(tmp_path / "o"), *FAST, "--findings", "Effusion,Mass"]) == 1
    assert "Nodule" in capsys.readouterr().err


def test_fit_refuses_an_empty_label_and_a_class_loss(tmp_path):
    from medkit.fit import RecipeConfig, fit_recipe

    data = _csv(tmp_path, labels=["Effusion", "", "Mass", "No Finding"])
    with pytest.raises(DataError, match="empty"):
        fit_recipe(data, tmp_path / "o", RecipeConfig(image_size=48, epochs=1), log=lambda *_: None)
    data = _csv(tmp_path / "b", n=12)
    with pytest.raises(ConfigError, match="binary cross-entropy"):
        fit_recipe(data, tmp_path / "o", RecipeConfig(image_size=48, epochs=1, loss="focal"), log=lambda *_: None)
    with pytest.raises(ConfigError, match="needs a CSV"):
        fit_recipe(tmp_path, tmp_path / "o", RecipeConfig(image_size=48, epochs=1), multi_label=True)


def test_binary_checkpoint_refuses_findings_csv(tmp_path):
    from medkit.fit import RecipeConfig, fit_recipe

    single = _csv(tmp_path / "s", labels=["Effusion" if i % 2 else "Mass" for i in range(40)])
    ckpt = tmp_path / "ck"
    fit_recipe(single, ckpt, RecipeConfig(image_size=48, epochs=1), progress=False, log=lambda *_: None)
    assert json.loads((ckpt / "config.json").read_text())["task"] == "single_label"  # plain names: one class per image
    findings = _csv(tmp_path / "m", n=12)
    with pytest.raises(MedkitError, match="one class per image"):
        evaluate_checkpoint(ckpt, findings)


def test_export_refuses_a_multilabel_checkpoint(fitted, tmp_path, capsys):
    _, out = fitted
    assert main(["export", "--checkpoint", str(out), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "multi-label" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()


def test_only_a_bar_makes_a_csv_multilabel(tmp_path):
    from medkit.fit.multilabel import wants_multilabel

    plain = _csv(tmp_path / "a", labels=["No Finding", "Effusion"] * 3)  # two classes that happen to be findings
    assert not wants_multilabel(plain) and wants_multilabel(plain, multi_label=True)
    assert wants_multilabel(_csv(tmp_path / "b", n=6))
    assert not wants_multilabel(tmp_path / "missing.csv")
