import numpy as np
import pytest
import torch

from medkit.base.errors import DataError, MedkitError, UnknownNameError
from medkit.core import features
from medkit.models import get_backbone


@pytest.fixture(scope="module")
def small(pneumonia):
    from medkit.data import subsample

    train, test = pneumonia["train"], pneumonia["test"]
    return train.subset(subsample(train.labels, 120, 0)), test.subset(subsample(test.labels, 80, 0))


def test_extract_features_shapes_and_no_grad(small):
    X, y = features.extract_features("resnet18", small[1], image_size=32, weights=None, progress=False)
    assert X.shape == (80, 512) and X.dtype == np.float32 and (y == small[1].labels).all()
    assert np.isfinite(X).all()


def test_feature_extractor_leaves_the_model_alone():
    model = get_backbone("resnet18", weights=None, num_classes=2)
    body = features.feature_extractor(model)
    x = torch.randn(2, 3, 32, 32)
    assert body(x).shape == (2, 512) and model(x).shape == (2, 2)


def test_linear_probe_on_pretrained_features_beats_chance(small):
    Xtr, ytr = features.extract_features("efficientnet_lite0", small[0], image_size=64, progress=False)
    Xte, yte = features.extract_features("efficientnet_lite0", small[1], image_size=64, progress=False)
    probe = features.linear_probe(Xtr, ytr)
    m = features.probe_metrics(probe, Xte, yte)
    assert m["auc"] > 0.75 and m["n"] == 80


def test_feature_maps_hooks_are_removed():
    model = get_backbone("resnet18", weights=None).eval()
    layers = features.depth_layers(model)
    assert layers == ["layer1", "layer2", "layer3", "layer4"]
    with features.FeatureMaps(model, layers) as fm:
        model(torch.randn(1, 3, 64, 64))
    assert [fm.maps[k].shape[1] for k in layers] == [64, 128, 256, 512]
    assert all(not m._forward_hooks for m in model.modules())


def test_feature_maps_removed_on_error():
    model = get_backbone("resnet18", weights=None).eval()
    with pytest.raises(RuntimeError):
        with features.FeatureMaps(model, ["layer1"]):
            model(torch.randn(1, 5, 32, 32))
    assert all(not m._forward_hooks for m in model.modules())


def test_first_layer_filters_and_embedding(small):
    f = features.first_layer_filters(get_backbone("efficientnet_lite0"))
    assert f.shape == (32, 3, 3, 3) and f.min() >= 0 and f.max() <= 1
    X = np.random.default_rng(0).normal(size=(40, 16))
    assert features.embed_2d(X).shape == (40, 2)
    assert features.embed_2d(X, "tsne").shape == (40, 2)


@pytest.mark.parametrize("call, error", [
    (lambda s: features.extract_features("alexnet", s[1], progress=False), UnknownNameError),
    (lambda s: features.extract_features("resnet18", s[1].images, weights=None), DataError),
    (lambda s: features.linear_probe(np.zeros((4, 2)), np.zeros(4)), DataError),
    (lambda s: features.linear_probe(np.zeros((4, 2)), np.zeros(3)), DataError),
    (lambda s: features.embed_2d(np.zeros((4, 2)), "umap"), DataError),
    (lambda s: features.FeatureMaps(get_backbone("resnet18", weights=None), ["layer1", "layer9"]).__enter__(), DataError),
])
def test_bad_input_raises_medkit_errors(small, call, error):
    with pytest.raises(error) as info:
        call(small)
    assert isinstance(info.value, MedkitError) and str(info.value)


# --- cached activations: the lower groups run once, the upper groups train on their outputs ---------------


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18"])
def test_split_at_group_composes_to_the_model(name):
    model = get_backbone(name, weights=None, num_classes=2).eval()
    x = torch.randn(2, 3, 48, 48)
    for k in range(1, 5):
        lower, upper = features.split_at_group(model, k)
        assert torch.allclose(upper(lower(x)), model(x), atol=1e-5)
    lower, upper = features.split_at_group(model, 3)
    assert all(any(p is q for q in model.parameters()) for p in upper.parameters())  # shared, not copied


def test_cache_activations_feed_training(small):
    from medkit.data import BatchLoader
    from medkit.models import get_spec

    model = get_backbone("efficientnet_lite0", weights=None, num_classes=2)
    lower, upper = features.split_at_group(model, 3)
    loader = BatchLoader(small[1], 32, preprocess=get_spec(model).preprocess(48))
    acts = features.cache_activations(lower, loader)
    assert acts.dtype == torch.float16 and len(acts) == len(small[1]) and not acts.is_inference()
    with torch.no_grad():
        direct = lower.eval()(next(iter(loader))[0])
    assert torch.allclose(acts[:32].float(), direct, atol=1e-2, rtol=1e-2)
    batches = features.TensorLoader(acts, small[1].labels, 16, shuffle=True, seed=0, drop_last=True)
    assert len(batches) == len(small[1]) // 16
    x, y = next(iter(batches))
    assert x.dtype == torch.float32 and x.shape[0] == 16 and y.dtype == torch.long
    upper.train()
    torch.nn.functional.cross_entropy(upper(x), y).backward()  # autograd works on cached activations
    assert model.classifier.weight.grad is not None and model.conv_stem.weight.grad is None
    again = [b[1] for b in features.TensorLoader(acts, small[1].labels, 16, shuffle=True, seed=0)]
    assert torch.equal(torch.cat(again).sort().values, torch.as_tensor(small[1].labels).sort().values)


def test_cached_features_bad_input():
    with pytest.raises(DataError, match="chains of layers"):
        features.layer_chain(torch.nn.Linear(2, 2))
    model = get_backbone("resnet18", weights=None, num_classes=2)
    for k in (0, 5):
        with pytest.raises(DataError, match="layer groups"):
            features.split_at_group(model, k)
    with pytest.raises(DataError, match="3 labels"):
        features.TensorLoader(torch.zeros(4, 2), [0, 1, 1])


def test_budget_curve_gives_scratch_its_own_lr_and_reuses_features(small):
    train, test = small
    X = (np.zeros((len(train), 4), np.float32), np.zeros((len(test), 4), np.float32))
    X[0][:, 0], X[1][:, 0] = train.labels, test.labels  # a feature that is the label: the probe must use these
    curve = features.budget_curve({"train": train, "test": test}, [16], image_size=48, lr=1e-3, scratch_lr=1e-2,
                                  methods=["probe", "scratch"], features=X, epochs_for=lambda n: 1, progress=False)
    assert list(curve["method"]) == ["probe", "scratch"]
    assert curve.set_index("method").loc["probe", "auc"] == 1.0
    assert curve.set_index("method").loc["scratch", "lr"] == 1e-2
