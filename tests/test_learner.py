import math

import pytest

from medkit.base.errors import DataError, UnknownNameError
from medkit.core import freeze
from medkit.data import subsample


@pytest.fixture(scope="module")
def learn(pneumonia):
    from medkit.methods.learner import medical_learner

    small = {k: pneumonia[k].subset(subsample(pneumonia[k].labels, 64, 0)) for k in ("train", "val")}
    return medical_learner(small, "efficientnet_lite0", image_size=48, batch_size=32)


def test_learner_uses_registry_groups_and_starts_frozen(learn):
    from medkit.models import parameter_groups

    groups = learn.splitter(learn.model)
    assert [len(g) for g in groups] == [len(g) for g in parameter_groups(learn.model)]
    head = {id(p) for p in groups[-1]}
    trainable_non_bn = [n for n, p in learn.model.named_parameters() if p.requires_grad and "bn" not in n]
    assert trainable_non_bn and all(id(dict(learn.model.named_parameters())[n]) in head for n in trainable_non_bn)


def test_fastai_freeze_to_matches_medkit(learn):
    learn.freeze_to(2)
    fastai_trainable = {n for n, p in learn.model.named_parameters() if p.requires_grad}
    freeze.freeze_to(learn.model, 2)
    assert fastai_trainable == {n for n, p in learn.model.named_parameters() if p.requires_grad}


def test_fit_one_cycle_records_medical_metrics(learn):
    learn.fit_one_cycle(1, 1e-3)
    names = list(learn.recorder.metric_names)
    for name in ("auroc", "balanced_accuracy_score", "sensitivity", "specificity"):
        assert name in names
    values = learn.recorder.values[-1]
    assert all(math.isfinite(v) for v in values) and 0 <= values[2] <= 1
    from medkit.methods.learner import epoch_metrics

    by_name = epoch_metrics(learn)[-1]  # the same numbers, by name
    assert by_name["auroc"] == pytest.approx(values[2]) and by_name["valid_loss"] == pytest.approx(values[1])
    assert set(by_name) >= {"train_loss", "valid_loss", "auroc", "sensitivity", "specificity"}
    probs, labels = learn.get_preds()
    assert probs.shape == (64, 2) and len(labels) == 64


def test_bad_input(pneumonia):
    from medkit.methods.learner import medical_learner

    with pytest.raises(DataError):
        medical_learner({"train": pneumonia["train"]})
    with pytest.raises(UnknownNameError):
        medical_learner({"train": pneumonia["val"], "val": pneumonia["val"]}, "alexnet")
