"""Model cards: provenance with checksums, intervals, subgroups and the monitoring plan, rendered as Markdown."""

import numpy as np
import pytest

from medkit.base.cache import sha256sum
from medkit.base.errors import DataError
from medkit.data import sample_path
from medkit.deploy import ModelCard, dataset_provenance, subgroup_results, validation_results


def _scores(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    p = np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.2, n), 0, 1)
    return labels, np.stack([1 - p, p], 1)


def test_provenance_of_the_bundled_data():
    path = sample_path("pneumoniamnist_28_trainval.npz")
    row = dataset_provenance(path, n_images=4582)
    assert row["sha256"] == sha256sum(path) and len(row["sha256"]) == 64
    assert row["licence"] == "CC BY 4.0" and "MedMNIST" in row["dataset"]


def test_checksum_checked_against_sha256sums(tmp_path):
    data = tmp_path / "images.npz"
    data.write_bytes(b"some bytes")
    assert dataset_provenance(data)["checksum_verified"] is None  # nothing published
    (tmp_path / "SHA256SUMS").write_text(f"{sha256sum(data)}  images.npz\n")
    assert dataset_provenance(data)["checksum_verified"] is True
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  images.npz\n")
    row = dataset_provenance(data)
    assert row["checksum_verified"] is False and "unknown" in row["licence"]
    with pytest.raises(DataError, match="does not exist"):
        dataset_provenance(tmp_path / "missing.npz")


def test_provenance_of_the_bundled_xray_folder():
    from medkit.data import chest_xray_dir

    row = dataset_provenance(chest_xray_dir(), n_images=1303)
    assert row["checksum_verified"] is True and row["licence"] == "CC BY 4.0" and "Kermany" in row["dataset"]
    assert row["file"] == "chest_xray/train/ (1303 files)" and len(row["sha256"]) == 64


def test_folder_checksum_fails_on_one_changed_file(tmp_path):
    folder = tmp_path / "films" / "NORMAL"
    folder.mkdir(parents=True)
    (folder / "a.jpeg").write_bytes(b"a")
    (folder / "b.jpeg").write_bytes(b"b")
    sums = "".join(f"{sha256sum(folder / n)}  films/NORMAL/{n}\n" for n in ("a.jpeg", "b.jpeg"))
    (tmp_path / "SHA256SUMS").write_text(sums)
    before = dataset_provenance(tmp_path / "films")
    assert before["checksum_verified"] is True and before["file"] == "films/ (2 files)"
    (folder / "b.jpeg").write_bytes(b"changed")
    after = dataset_provenance(tmp_path / "films")
    assert after["checksum_verified"] is False and after["sha256"] != before["sha256"]
    (folder / "a.jpeg").unlink(), (folder / "b.jpeg").unlink()
    with pytest.raises(DataError, match="holds no files"):
        dataset_provenance(tmp_path / "films")


def test_card_renders_every_section(tmp_path):
    labels, probs = _scores()
    groups = np.where(np.arange(len(labels)) % 2, "site A", "site B")
    validation = validation_results(labels, probs, n_boot=200)
    subgroups = subgroup_results(labels, probs, groups, n_boot=200)
    assert [r["group"] for r in subgroups] == ["site A", "site B"]
    assert validation["auc"].low < validation["auc"].estimate < validation["auc"].high
    card = ModelCard(
        name="test model", model={"backbone": "resnet18", "onnx_sha256": "ab" * 32},
        data=[dataset_provenance(sample_path("pneumoniamnist_28_trainval.npz"))],
        validation=validation, validation_set="300 synthetic scores", intended_use="Teaching only.",
        out_of_scope=["clinical use"], subgroups=subgroups, subgroup_note="Simulated sites.",
        limitations=["28 px images"], monitoring={"test": "MMD", "false_alarm_rate": 0.05},
        monitoring_actions=["re-validate on alarm"], training={"epochs": 1})
    text = card.save(tmp_path / "card.md").read_text()
    for heading in ("# Model card: test model", "## Model details", "## Intended use", "## Data provenance",
                    "## Validation results", "## Subgroup results", "## Limitations", "## Post-market monitoring plan"):
        assert heading in text
    assert f"{validation['auc'].estimate:.3f} ({validation['auc'].low:.3f} to {validation['auc'].high:.3f})" in text
    assert sha256sum(sample_path("pneumoniamnist_28_trainval.npz")) in text and "CC BY 4.0" in text
    assert "| site A |" in text and "clinical use" in text


def test_bad_inputs():
    labels, probs = _scores(40)
    with pytest.raises(DataError, match="one of each per image"):
        subgroup_results(labels, probs, ["a"] * 10)
    rows = subgroup_results(labels, probs, np.where(labels == 1, "only positives", "only negatives"), n_boot=50)
    assert all("note" in r for r in rows)  # a one-class subgroup is reported, with why there is no interval
    with pytest.raises(DataError, match="needs validation results"):
        ModelCard(name="x", model={}, data=[], validation={}, validation_set="", intended_use="").to_markdown()


def _checkpoint(tmp_path, records):
    from medkit.core.checkpoint import save_checkpoint
    from medkit.models import get_backbone

    train = str(tmp_path / "hospital_a")
    save_checkpoint(tmp_path, get_backbone("resnet18", weights=None, num_classes=2), image_size=48,
                    classes=["NORMAL", "PNEUMONIA"], threshold=0.7, data={"path": train, "fingerprint": "a" * 64},
                    recipe={"epochs": 3, "weights": "DEFAULT"}, validation=records)
    return train


def _record(role, data, part, auc):
    return {"role": role, "part": part, "data": data, "fingerprint": "b" * 64, "n": 300, "patients": 200, "auc": auc,
            "specificity": 0.479, "ci95": {"auc": [auc - 0.02, auc + 0.01], "specificity": [0.39, 0.57]},
            "threshold": 0.7, "date": "2025-12-07T16:00:00+00:00"}


def test_card_from_checkpoint_lists_internal_and_external_apart(tmp_path):
    from medkit.deploy.modelcard import NO_EXTERNAL

    train = str(tmp_path / "hospital_a")
    records = [_record("internal", train, "val", 0.999), _record("internal", train, "test", 0.995),
               _record("external", "/data/hospital_b", "all", 0.958)]
    _checkpoint(tmp_path, records)
    text = ModelCard.from_checkpoint(tmp_path, intended_use="Teaching only.").to_markdown()
    internal = text[text.index("### Internal validation"):text.index("### External validation")]
    external = text[text.index("### External validation"):]
    assert train in internal and "/data/hospital_b" not in internal and "0.995 (0.975 to 1.005)" in internal
    assert "/data/hospital_b" in external and train not in external and "0.958 (0.938 to 0.968)" in external
    assert "0.479 (0.390 to 0.570)" in external and NO_EXTERNAL not in text
    provenance = text[text.index("## Data provenance"):text.index("## Validation results")]
    assert "external validation" in provenance and "training and internal validation" in provenance
    assert "Teaching only." in text and "resnet18" in text


def test_card_says_plainly_when_no_external_validation_is_recorded(tmp_path):
    from medkit.deploy.modelcard import NO_EXTERNAL

    train = _checkpoint(tmp_path, [_record("internal", str(tmp_path / "hospital_a"), "val", 0.999)])
    text = ModelCard.from_checkpoint(tmp_path, intended_use="Teaching only.").to_markdown()
    assert NO_EXTERNAL in text[text.index("### External validation"):] and train in text
    # a card built by hand from in-memory results (lesson 06) says it too
    labels, probs = _scores()
    card = ModelCard(name="x", model={}, data=[], validation=validation_results(labels, probs, n_boot=50),
                     validation_set="held-out test", intended_use="")
    assert NO_EXTERNAL in card.to_markdown()


def test_card_is_a_hugging_face_model_card_with_its_results(tmp_path):
    from huggingface_hub import ModelCard as HubCard

    labels, probs = _scores()
    validation = validation_results(labels, probs, n_boot=200)
    card = ModelCard(name="test model", model={"backbone": "resnet18"}, data=[], validation=validation,
                     validation_set="300 synthetic scores", intended_use="Teaching only.",
                     records=[{"role": "external", "data": "site_b/", "part": "all", "n": 40, "auc": 0.81,
                               "ci95": {"auc": [0.70, 0.90]}}])
    loaded = HubCard.load(card.save(tmp_path / "README.md"))
    assert loaded.data.library_name == "medkit" and "# Model card: test model" in loaded.text
    results = {(r.dataset_split, r.metric_type): r for r in loaded.data.eval_results}
    assert results[("internal", "roc_auc")].metric_value == pytest.approx(validation["auc"].estimate)
    assert results[("external all", "roc_auc")].dataset_name == "site_b/"
    assert "0.700 to 0.900" in results[("external all", "roc_auc")].metric_name
