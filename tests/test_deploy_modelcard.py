"""Model cards: provenance with checksums, intervals, subgroups and the monitoring plan, rendered as Markdown."""

import numpy as np
import pytest

from medkit.cache import sha256sum
from medkit.data import sample_path
from medkit.deploy import ModelCard, dataset_provenance, subgroup_results, validation_results
from medkit.errors import DataError


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
