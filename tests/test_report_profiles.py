"""Lessons record numbers into metrics.json; profiles resolve in one function."""

import json

import numpy as np
import pytest
import torch

from medkit.base.errors import DataError, ProfileError
from medkit.course import profiles, report


def test_record_writes_json_after_every_call(tmp_path):
    report.init(tmp_path, "99_test", profile="smoke")
    report.record("auc", np.float32(0.75))
    report.record("curve", torch.tensor([0.5, 0.25]))
    on_disk = json.loads((tmp_path / report.METRICS_FILE).read_text())
    assert on_disk == {"lesson": "99_test", "profile": "smoke", "auc": 0.75, "curve": [0.5, 0.25]}
    assert report.load(tmp_path) == on_disk


def test_record_refuses_objects_and_missing_init(tmp_path):
    report.init(tmp_path, "99_test")
    with pytest.raises(DataError, match="Cannot record"):
        report.record("model", object())
    with pytest.raises(DataError, match="No metrics.json"):
        report.load(tmp_path / "elsewhere")


def test_profiles_resolve_common_lesson_and_overrides():
    smoke, workshop = profiles.resolve("smoke", "02"), profiles.resolve("workshop", "02")
    assert smoke.image_size <= workshop.image_size and smoke.epochs <= workshop.epochs
    cfg = profiles.resolve("smoke", "02", seed=7, epochs=5, budgets=[10, 20])
    assert (cfg.seed, cfg.epochs, cfg.budgets) == (7, 5, [10, 20])
    with pytest.raises(AttributeError, match="no knob"):
        _ = cfg.not_a_knob


def test_every_lesson_has_every_profile_or_none():
    for lesson, per_profile in profiles.LESSON_SETTINGS.items():
        assert not per_profile or set(per_profile) == set(profiles.PROFILES), f"lesson {lesson} must define all profiles"
        keys = [set(v) for v in per_profile.values()]
        assert all(k == keys[0] for k in keys), f"lesson {lesson}: every profile must set the same knobs"


def test_unknown_profile():
    with pytest.raises(ProfileError, match="smoke, workshop, full"):
        profiles.resolve("tiny", "02")


def test_summary_and_table_render_recorded_values_only(tmp_path):
    report.init(tmp_path, "99_test")
    report.record("auc", 0.93412)
    report.record("per_site", {"reference": 0.5})
    text = report.summary(["AUC {auc:.3f} at {per_site[reference]:.1f}", "{n} images"], n=12).data
    assert text == "- AUC 0.934 at 0.5\n- 12 images"
    assert report.table({"probe": ["auc", "{per_site[reference]:.2f}"]}, ["AUC", "home"]).data.splitlines()[-1] == \
        "| probe | 0.934 | 0.50 |"
    with pytest.raises(DataError, match="'auc_typo', which this run did not record"):
        report.summary(["{auc_typo:.3f}"])
    with pytest.raises(DataError, match="2 columns"):
        report.table({"probe": ["auc"]}, ["AUC", "home"])
