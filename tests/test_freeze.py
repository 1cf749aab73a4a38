import pytest
import torch

from medkit.base.errors import ConfigError, DataError, MedkitError, UnknownNameError
from medkit.core import freeze as fz
from medkit.data import BatchLoader
from medkit.models import get_backbone, parameter_groups


@pytest.fixture(scope="module")
def model():
    return get_backbone("resnet18", weights=None, num_classes=2)


def _trainable(model):
    return [any(p.requires_grad for _, p in g) for g in parameter_groups(model)]


def test_freeze_to_follows_fastai(model):
    fz.freeze_to(model, 2, train_bn=False)
    assert _trainable(model) == [False, False, True, True, True]
    fz.freeze(model, train_bn=False)
    assert _trainable(model) == [False, False, False, False, True]
    fz.unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())
    fz.freeze_to(model, -2, train_bn=False)
    assert _trainable(model) == [False, False, False, True, True]


def test_train_bn_keeps_batchnorm_trainable(model):
    fz.freeze(model, train_bn=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "bn1.weight" in trainable and "layer1.0.bn1.bias" in trainable
    assert "conv1.weight" not in trainable and "fc.weight" in trainable


def test_freeze_report_counts_every_parameter(model):
    fz.freeze_to(model, 3, train_bn=False)
    report = fz.freeze_report(model)
    total = sum(p.numel() for p in model.parameters())
    assert report.loc["total", "params"] == total
    assert report.loc["total", "trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert report.loc[0, "trainable"] == 0 and report.loc[4, "frozen"] == 0
    fz.unfreeze(model)


def test_discriminative_lrs_are_geometric():
    lrs = fz.discriminative_lrs(1e-3, 5, ratio=100)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1e-3)
    assert all(b / a == pytest.approx(100 ** 0.25) for a, b in zip(lrs, lrs[1:]))


def test_optimizer_gets_only_trainable_params(model):
    fz.freeze_to(model, 3, train_bn=False)
    opt = fz.make_optimizer(model, 1e-3, ratio=10)
    params = [p for g in opt.param_groups for p in g["params"]]
    assert all(p.requires_grad for p in params)
    assert len(params) == sum(p.requires_grad for p in model.parameters())
    assert [g["lr"] for g in opt.param_groups] == pytest.approx(fz.discriminative_lrs(1e-3, 5, 10)[3:])
    fz.unfreeze(model)


def test_schedules():
    stages = fz.schedule("gradual", 4, 1e-3, 1e-4)
    assert [s.freeze_to for s in stages] == [-1, 2, 0] and sum(s.epochs for s in stages) == 4
    assert stages[0].lr == 1e-4
    assert fz.schedule("freeze_to:3", 2, 1e-3) == [fz.Stage(2, 3, 1e-3)]
    assert fz.schedule("head", 3, 1e-3)[0].freeze_to == -1
    assert fz.schedule("top", 4, 1e-3) == [fz.Stage(1, -1, 1e-3), fz.Stage(3, 3, 1e-3)]
    assert fz.schedule("top", 1, 1e-3) == [fz.Stage(1, -1, 1e-3)]


@pytest.mark.parametrize("strategy", ["head", "gradual", "top", "all"])
def test_the_users_lr_is_never_ignored(strategy):
    # issue 18: --lr was ignored under --freeze head and in gradual's first epoch (a separate head_lr won)
    assert all(stage.lr == 5e-4 for stage in fz.schedule(strategy, 3, 5e-4))
    assert fz.schedule(strategy, 3, 5e-4, head_lr=1e-2)[0].lr == (1e-2 if strategy != "all" else 5e-4)


def test_fit_stages_moves_only_unfrozen_groups(pneumonia):
    torch.manual_seed(0)
    model = get_backbone("resnet18", weights=None, num_classes=2)
    ds = pneumonia["val"].subset(range(64))
    from medkit.models import get_spec

    dl = BatchLoader(ds, 32, shuffle=True, preprocess=get_spec("resnet18").preprocess(32))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = fz.fit_stages(model, dl, None, [fz.Stage(1, -1, 1e-3)], progress=False, train_bn=False)
    change = fz.relative_change(before, model)
    assert change[:4] == [0.0] * 4 and change[4] > 0
    assert history.rows[0]["stage"] == 0 and history.rows[0]["freeze_to"] == -1


@pytest.mark.parametrize("call, error", [
    (lambda m: fz.freeze_to(m, 9), DataError),
    (lambda m: fz.freeze_to(m, "2"), DataError),
    (lambda m: fz.schedule("sometimes", 3, 1e-3), UnknownNameError),
    (lambda m: fz.schedule("freeze_to:x", 3, 1e-3), UnknownNameError),
    (lambda m: fz.schedule("gradual", 0, 1e-3), ConfigError),
    (lambda m: fz.schedule("gradual", -2, 1e-3), ConfigError),
    (lambda m: fz.schedule("head", 2, -1e-3), ConfigError),
    (lambda m: fz.schedule("head", 2, 1e-3, head_lr=0.0), ConfigError),
    (lambda m: fz.schedule("head", 2, float("nan")), ConfigError),
    (lambda m: fz.discriminative_lrs(1e-3, 5, ratio=0.5), DataError),
])
def test_bad_input_raises_medkit_errors(model, call, error):
    with pytest.raises(error) as info:
        call(model)
    assert isinstance(info.value, MedkitError) and str(info.value)


def test_all_frozen_optimizer_is_refused():
    m = get_backbone("resnet18", weights=None, num_classes=2)
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(DataError, match="frozen"):
        fz.make_optimizer(m, 1e-3)


def test_unknown_model_is_refused():
    with pytest.raises(UnknownNameError):
        fz.freeze_to(torch.nn.Linear(2, 2), 1)
