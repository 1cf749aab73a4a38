"""Lesson 12's helpers (medkit.methods.second_site), the bundled second site and the 224 px lever table reader."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from medkit import data
from medkit.base.errors import DataError
from medkit.core.features import split_at_group
from medkit.fit import table
from medkit.methods import second_site as site2
from medkit.models import get_backbone


def test_second_site_is_whole_and_grouped_by_patient():
    site = data.second_site(64)
    assert len(site) == 301 and int(site.labels.sum()) == 182 and site.images.shape[1:] == (64, 64)
    assert len(set(site.groups)) == 203
    assert site.classes == ["NORMAL", "PNEUMONIA"]


def test_equalize_flattens_the_histogram_and_refuses_floats():
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 60, (2, 32, 32)).astype(np.uint8)
    out = site2.equalize(dark)
    assert out.dtype == np.uint8 and out.shape == dark.shape
    assert out.max() > 200 and dark.max() < 60  # stretched over the whole range
    with pytest.raises(DataError, match="uint8"):
        site2.equalize(dark.astype(np.float32))


def test_best_threshold_in_hindsight_reads_the_labels():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([0.6, 0.7, 0.75, 0.8, 0.9, 0.95])  # a home threshold of 0.5 would call every normal sick
    best = site2.best_threshold_in_hindsight(labels, probs)
    assert best["acc"] == 1.0 and 0.75 < best["threshold"] <= 0.8


def _home_model(seed=0):
    torch.manual_seed(seed)
    _, upper = split_at_group(get_backbone("efficientnet_lite0", num_classes=2), 3)
    return site2.HomeModel(upper.eval(), 0.5, {}, seed, 0.0)


def test_adapt_batchnorm_moves_the_statistics_and_keeps_the_weights():
    model = _home_model()
    acts = torch.randn(40, 192, 2, 2) * 3 + 1
    adapted = site2.adapt_batchnorm(model, acts, batch_size=16)
    bn_before = [m for m in model.upper.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    bn_after = [m for m in adapted.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bn_after) == len(bn_before) > 0
    assert not torch.allclose(bn_before[0].running_mean, bn_after[0].running_mean)
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(bn_before, bn_after))
    assert not adapted.training


def test_site_probe_tells_shifted_embeddings_apart_and_not_identical_ones():
    rng = np.random.default_rng(0)
    home, shifted, same = rng.normal(size=(60, 8)), rng.normal(size=(60, 8)) + 1.5, rng.normal(size=(60, 8))
    groups = np.arange(60).astype(str)
    assert site2.site_probe(home, shifted, groups, groups, k=3) > 0.9
    assert site2.site_probe(home, same, groups, groups, k=3) < 0.75


def test_lever_verdicts_need_a_change_beyond_the_noise():
    levers = pd.DataFrame([
        {"lever": "home model", "external_acc": 0.80, "external_acc_sd": 0.01, "external_spec": 0.5, "internal_auc": 0.99},
        {"lever": "better", "external_acc": 0.85, "external_acc_sd": 0.0, "external_spec": 0.7, "internal_auc": 0.99},
        {"lever": "same", "external_acc": 0.81, "external_acc_sd": 0.0, "external_spec": 0.5, "internal_auc": 0.99},
        {"lever": "worse", "external_acc": 0.70, "external_acc_sd": 0.0, "external_spec": 0.3, "internal_auc": 0.98},
    ]).set_index("lever")
    verdicts = site2.lever_verdicts(levers)
    assert verdicts["better"].startswith("narrows") and verdicts["same"].startswith("no clear")
    assert verdicts["worse"].startswith("widens")
    with pytest.raises(DataError, match="baseline"):
        site2.lever_verdicts(levers, baseline="missing")


def test_cache_sites_needs_every_part():
    with pytest.raises(DataError, match="site"):
        site2.cache_sites({"train": None, "val": None, "test": None}, image_size=64)


def test_second_site_table_missing_is_a_note_and_malformed_an_error(tmp_path):
    missing = table.second_site_table(tmp_path / "none.json")
    assert missing.empty and list(missing.columns) == list(table.SECOND_SITE_COLUMNS)
    assert "bench_second_site.py" in missing.attrs["note"]
    row = {c: 1.0 for c in table.SECOND_SITE_COLUMNS} | {"lever": "base", "external_auc_ci": [0.9, 0.97]}
    good = tmp_path / "good.json"
    good.write_text(json.dumps([row]))
    assert table.second_site_table(good).loc[0, "lever"] == "base"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{k: v for k, v in row.items() if k != "peak_gb"}]))
    with pytest.raises(DataError, match="peak_gb"):
        table.second_site_table(bad)
