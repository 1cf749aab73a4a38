"""medkit.cam: library CAMs vs the from-scratch one, hooks and memory, bad input, faithfulness, sanity, overlays."""

import gc

import numpy as np
import pytest
import torch
from torch import nn

from medkit import MedkitError, cam, data, models
from medkit.base.errors import DataError, UnknownNameError


@pytest.fixture(scope="module")
def lite0():
    torch.manual_seed(0)
    return models.get_backbone("efficientnet_lite0", num_classes=2).eval()


@pytest.fixture(scope="module")
def xrays(pneumonia):
    test = pneumonia["test"]
    return models.get_spec("efficientnet_lite0").preprocess(64)(data.to_tensor(test)[:4])


def tiny(num_classes=3):
    """A small CNN with no registry entry: its CAM layer must be named."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, stride=2),
                         nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, num_classes)).eval()


def corr(a, b):
    """Return the correlation of two stacks of maps, pooled over images (a single map may be all zeros)."""
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_scratch_gradcam_matches_library(lite0, xrays):
    for target in (None, 0, [1, 0, 1, 0]):
        library = cam.cams(lite0, xrays, "gradcam", target=target)
        scratch = cam.ScratchGradCAM(lite0)(xrays, target=target)
        assert corr(library, scratch) >= 0.99
        np.testing.assert_allclose(library, scratch, atol=1e-3)


def test_methods_give_one_map_per_image_in_unit_range(lite0, xrays):
    for method in ("gradcam", "gradcam++", "eigencam"):
        maps = cam.cams(lite0, xrays[:3], method)
        assert maps.shape == (3, 64, 64) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    model, x = tiny(), torch.randn(2, 3, 16, 16)
    maps = cam.cams(model, x, "scorecam", layer="3")  # gradient-free: forwards masked copies per channel
    assert maps.shape == (2, 16, 16) and np.isfinite(maps).all()


def test_default_layer_comes_from_the_registry(lite0):
    assert cam.resolve_layer(lite0)[0] == models.get_spec("efficientnet_lite0").cam_layer == "bn2"
    assert cam.Explainer(lite0).layer is lite0.bn2


def test_batched_equals_one_pass(lite0, xrays):
    with cam.Explainer(lite0, batch_size=2) as explain:
        small = explain(xrays)
        assert len(explain.targets) == len(xrays)
    np.testing.assert_allclose(small, cam.cams(lite0, xrays, batch_size=64), atol=1e-5)


def test_chosen_class_is_explained(lite0, xrays):
    with cam.Explainer(lite0) as explain:
        predicted = explain(xrays)
        classes = explain.targets
        other = explain(xrays, target=list(1 - classes))
        np.testing.assert_array_equal(explain.targets, 1 - classes)
    # For two classes the logits' gradients are opposite, so the maps must differ.
    assert np.abs(predicted - other).mean() > 0.05
    np.testing.assert_allclose(cam.cams(lite0, xrays, target=list(classes)), predicted, atol=1e-5)


def test_no_hook_survives_use_or_errors(lite0, xrays):
    assert cam.count_hooks(lite0) == 0
    cam.cams(lite0, xrays[:2])
    cam.ScratchGradCAM(lite0)(xrays[:2])
    seen = []

    class Boom(nn.Module):
        def forward(self, x):
            seen.append(cam.count_hooks(model))
            raise RuntimeError("boom")

    model = nn.Sequential(*tiny(), Boom())
    for explain in (cam.Explainer(model, layer="3"), cam.ScratchGradCAM(model, layer="3")):
        with pytest.raises(RuntimeError, match="boom"):
            explain(torch.randn(2, 3, 16, 16))
    assert seen[0] == 2 and seen[1] == 1  # hooks are there while in use...
    assert cam.count_hooks(model) == 0 and cam.count_hooks(lite0) == 0  # ...and gone after, even after an error
    with pytest.raises(DataError):
        cam.ScratchGradCAM(model, "3")(torch.randn(2, 3, 16, 16), target=7)
    with pytest.raises(DataError):
        cam.Explainer(model, layer="3")(torch.randn(2, 3, 16, 16), target=7)
    assert cam.count_hooks(model) == 0
    assert all(p.grad is None for p in lite0.parameters()), "CAMs must not leave parameter gradients behind"


def test_model_mode_is_restored(xrays):
    model = tiny().train()
    cam.cams(model, torch.randn(2, 3, 16, 16), layer="3")
    cam.ScratchGradCAM(model, "3")(torch.randn(2, 3, 16, 16))
    assert model.training


def test_frozen_body_still_gets_gradients(lite0, xrays):
    for p in lite0.parameters():
        p.requires_grad_(False)
    try:
        maps = cam.cams(lite0, xrays[:2])
        assert maps.max() > 0.99  # a real map, not zeros from missing gradients
        assert corr(maps, cam.ScratchGradCAM(lite0)(xrays[:2])) >= 0.99
    finally:
        for p in lite0.parameters():
            p.requires_grad_(True)


def _live_tensors():
    gc.collect()
    return sum(1 for o in gc.get_objects() if torch.is_tensor(o))


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.parametrize("how", ["cams", "explainer", "scratch"])
def test_memory_does_not_grow_over_200_calls(how):
    model, x = tiny(), torch.randn(4, 3, 32, 32)
    explainer, scratch = cam.Explainer(model, layer="3"), cam.ScratchGradCAM(model, "3")

    def call():
        if how == "cams":
            return cam.cams(model, x, layer="3")
        if how == "explainer":
            return explainer(x)
        return scratch(x)

    for _ in range(10):
        call()
    tensors, rss = _live_tensors(), _rss_mb()
    for _ in range(200):
        call()
        model(x)  # the user's own forward passes between CAMs must not be recorded either
    assert _live_tensors() <= tensors + 2
    assert _rss_mb() - rss < 20
    assert cam.count_hooks(model) == 0


def test_leak_check_catches_unreleased_library_cams():
    # The failure the tests above guard against: pytorch-grad-cam objects that are never released.
    from pytorch_grad_cam import GradCAM

    model = tiny()
    kept = [GradCAM(model, [model[3]]) for _ in range(5)]
    assert cam.count_hooks(model) == 10
    for c in kept:
        c.activations_and_grads.release()
    assert cam.count_hooks(model) == 0


def test_unknown_layer_lists_candidates(lite0):
    with pytest.raises(UnknownNameError) as err:
        cam.cams(lite0, torch.randn(1, 3, 64, 64), layer="bn3")
    message = str(err.value)
    assert "'bn3'" in message and "bn2" in message and "conv_head" in message
    with pytest.raises(UnknownNameError, match="not a registry backbone"):
        cam.Explainer(tiny())
    with pytest.raises(UnknownNameError, match="CAM method"):
        cam.Explainer(lite0, method="gradcam+++")


@pytest.mark.parametrize("target", [2, -1, [0, 5], [0], 1.5])
def test_class_index_out_of_range(lite0, target):
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(DataError):
        cam.cams(lite0, x, target=target)
    with pytest.raises(MedkitError):
        cam.ScratchGradCAM(lite0)(x, target=target)


@pytest.mark.parametrize("batch, match", [
    (torch.randn(3, 64, 64), "x\\[None\\]"),
    (torch.randn(2, 1, 64, 64), "3 channels"),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "float"),
    (torch.randn(0, 3, 64, 64), "non-empty"),
    (np.zeros((2, 3, 64, 64), np.float32), "torch.Tensor"),
])
def test_batch_of_the_wrong_shape(lite0, batch, match):
    with pytest.raises(DataError, match=match):
        cam.cams(lite0, batch)
    with pytest.raises(DataError, match=match):
        cam.ScratchGradCAM(lite0)(batch)


def test_vit_reshapes_tokens_and_checks_size():
    tokens = torch.arange(2 * 17 * 5, dtype=torch.float32).reshape(2, 17, 5)
    grid = cam.tokens_to_grid(tokens)
    assert grid.shape == (2, 5, 4, 4) and torch.equal(grid[0, :, 0, 1], tokens[0, 2])
    vit = models.get_backbone("vit_b_16", weights=None, num_classes=2).eval()
    with pytest.raises(DataError, match="224"):
        cam.cams(vit, torch.randn(1, 3, 64, 64))
    maps = cam.cams(vit, torch.randn(1, 3, 224, 224))
    assert maps.shape == (1, 224, 224) and np.isfinite(maps).all()
    assert cam.count_hooks(vit) == 0


class LeftHalf(nn.Module):
    """A model whose class-1 logit is the texture (pixel-to-pixel contrast) of the left half: its evidence is known."""

    def forward(self, x):
        left = x[:, :, :, : x.shape[-1] // 2]
        s = 3 * ((left[..., 1:] - left[..., :-1]).abs().mean(dim=(1, 2, 3)) - 1 / 6)  # ROAD's imputation smooths it away
        return torch.stack([-s, s], 1)


def test_faithfulness_ranks_true_evidence_over_random_over_wrong():
    torch.manual_seed(0)
    model, x = LeftHalf(), torch.rand(6, 3, 16, 16)
    left = np.zeros((6, 16, 16), np.float32)
    left[:, :, :8] = np.linspace(1, 0.5, 8)
    right = left[:, :, ::-1].copy()
    good = cam.faithfulness(model, x, left, 1, percentiles=(25, 50, 75), n_random=2)
    bad = cam.faithfulness(model, x, right, 1, percentiles=(25, 50, 75))
    assert good.gain > 0 and good.win_rate == 1
    assert bad.gain < 0 and bad.cam.mean() < good.random.mean()
    reused = cam.faithfulness(model, x, right, 1, percentiles=(25, 50, 75), baseline=good)
    np.testing.assert_array_equal(reused.random, good.random)
    np.testing.assert_allclose(reused.cam, bad.cam)
    with pytest.raises(DataError, match="baseline"):
        cam.faithfulness(model, x[:3], right[:3], 1, percentiles=(25, 50, 75), baseline=good)


def test_road_curves_agree_with_pytorch_grad_cam(lite0, xrays):
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    x, maps = xrays[:2], cam.random_maps(2, (64, 64), grid=4, seed=3)
    ours = cam.faithfulness(lite0, x, maps, [0, 1], percentiles=(30, 70), seed=5).cam
    torch.manual_seed(5)
    theirs = ROADCombined(percentiles=[30, 70])(x, maps, [ClassifierOutputSoftmaxTarget(k) for k in (0, 1)], lite0)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)  # the imputer's noise is drawn in another order


def test_random_maps_are_seeded_and_smooth():
    a, b = cam.random_maps(3, (32, 32), grid=2, seed=1), cam.random_maps(3, (32, 32), grid=2, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 32, 32) and a.min() == 0 and a.max() == pytest.approx(1, abs=1e-5)
    assert not np.array_equal(a, cam.random_maps(3, (32, 32), grid=2, seed=2))
    assert np.abs(np.diff(a, axis=-1)).max() < 0.1  # as smooth as a 2 x 2 CAM upsampled


def test_with_maps_of_the_wrong_shape(lite0, xrays):
    with pytest.raises(DataError, match="one map per image"):
        cam.faithfulness(lite0, xrays[:2], np.zeros((3, 64, 64)), 0)


def test_randomize_top_and_sanity_check(lite0, xrays):
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    shuffled = cam.randomize_top(lite0, 2, seed=0)
    for k, v in lite0.state_dict().items():
        assert torch.equal(v, before[k]), "the trained model must be left untouched"
    after = shuffled.state_dict()
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])
    assert not torch.equal(after["conv_head.weight"], before["conv_head.weight"])
    assert torch.equal(after["blocks.5.0.conv_pw.weight"], before["blocks.5.0.conv_pw.weight"])
    with pytest.raises(DataError):
        cam.randomize_top(lite0, 9)

    def gradcam(model, x, targets):
        return cam.cams(model, x, target=targets)

    targets = [0] * len(xrays)
    result = cam.sanity_check(lite0, xrays, gradcam, targets, groups=(1, 2))
    assert set(result) == {1, 2} and all(-1 <= r <= 1 for r in result.values())
    assert result[2] < 0.9
    # A "map" that ignores the model (the image itself) passes no sanity check: correlation 1.
    brightness = cam.sanity_check(lite0, xrays, lambda m, x, t: x.mean(1).numpy(), targets, groups=(2,))
    assert brightness[2] == pytest.approx(1.0)


def test_rank_correlation():
    a = np.random.default_rng(0).random((2, 8, 8))
    np.testing.assert_allclose(cam.rank_correlation(a, a), 1)
    np.testing.assert_allclose(cam.rank_correlation(a, -a), -1)
    assert np.isnan(cam.rank_correlation(a, np.zeros_like(a))).all()


def test_overlay_windows_grey_images():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (28, 28)).astype(np.uint8)
    heat = rng.random((64, 64)).astype(np.float32)
    out = cam.overlay(image, heat)
    assert out.shape == (64, 64, 3) and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, cam.overlay(image.astype(np.float32) / 255, heat), atol=1e-5)  # windowing
    plain = cam.overlay(image, heat, alpha=0)
    np.testing.assert_allclose(plain[..., 0], plain[..., 2])  # alpha 0: the grey image, untouched
    hu = np.full((8, 8), -600.0)
    assert data.window(hu, (-600, 1500))[0, 0] == pytest.approx(0.5)
    with pytest.raises(DataError):
        cam.overlay(image, heat, alpha=2)
    with pytest.raises(DataError):
        cam.overlay(image, heat, window=(-600,))


def test_grid_and_browser(lite0, xrays, pneumonia):
    import matplotlib.pyplot as plt

    images = pneumonia["test"].images[:2]
    maps = {m: cam.cams(lite0, xrays[:2], m) for m in ("gradcam", "eigencam")}
    fig = cam.show_cams(images, maps, titles=["a", "b"])
    assert len(fig.axes) == 2 * 5
    plt.close(fig)
    widget = cam.browser(lite0, images, xrays[:2], ["normal", "pneumonia"], labels=[0, 1])
    assert [c.description for c in widget.children[:4]] == ["image", "class", "method", "layer"]
    plt.close("all")
    assert cam.count_hooks(lite0) == 0


def test_log_odds_target_is_the_logit_of_the_softmax_probability():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    p = torch.softmax(logits, 1)
    for k in range(3):
        expected = torch.log(p[:, k] / (1 - p[:, k]))
        torch.testing.assert_close(cam.LogOddsTarget(k)(logits), expected)
        torch.testing.assert_close(cam.LogOddsTarget(k)(logits[0]), expected[0])  # one image, as ROAD calls it


def test_road_on_log_odds_ranks_evidence_and_refuses_unknown_scores():
    torch.manual_seed(0)
    model, x = LeftHalf(), torch.rand(6, 3, 16, 16)
    left = np.zeros((6, 16, 16), np.float32)
    left[:, :, :8] = np.linspace(1, 0.5, 8)
    good = cam.faithfulness(model, x, left, 1, percentiles=(25, 50, 75), n_random=2, score="log_odds")
    assert good.gain > 0 and good.win_rate == 1
    with pytest.raises(DataError, match="score"):  # a probability baseline cannot be reused for log-odds
        cam.faithfulness(model, x, left, 1, percentiles=(25, 50, 75), baseline=good)
    with pytest.raises(DataError, match="Unknown ROAD score"):
        cam.faithfulness(model, x, left, 1, percentiles=(25, 50, 75), score="logit")


def test_layer_group_finds_the_registry_group(lite0):
    assert cam.layer_group(lite0, "blocks.4") == 2 and cam.layer_group(lite0) == 3  # bn2, the default, is in group 3
    with pytest.raises(DataError, match="spans several layer groups"):
        cam.layer_group(lite0, "blocks")


def test_pointing_game_hits_inside_and_within_tolerance_only():
    maps, masks = np.zeros((3, 16, 16)), np.zeros((3, 16, 16), bool)
    masks[:, 4:8, 4:8] = True
    maps[0, 5, 5] = maps[1, 4, 10] = maps[2, 14, 14] = 1  # inside; 3 px right of the mask; far away
    assert cam.pointing_game(maps, masks).tolist() == [True, False, False]
    assert cam.pointing_game(maps, masks, tolerance=3).tolist() == [True, True, False]


def test_energy_inside_is_the_share_of_the_map_in_the_mask():
    masks = np.zeros((2, 8, 8), bool)
    masks[:, :4] = True  # the top half
    maps = np.stack([np.ones((8, 8)), np.where(masks[0], 3.0, 1.0)])
    assert cam.energy_inside(maps, masks) == pytest.approx([0.5, 0.75])
    assert cam.energy_inside(np.ones((2, 8, 8)), masks[0]) == pytest.approx([0.5, 0.5])  # one mask for every map


def test_localisation_refuses_empty_masks_and_mismatched_shapes():
    with pytest.raises(DataError, match="empty"):
        cam.pointing_game(np.ones((2, 8, 8)), np.zeros((2, 8, 8)))
    with pytest.raises(DataError, match="alike"):
        cam.energy_inside(np.ones((2, 8, 8)), np.ones((2, 4, 4)))


def test_centre_prior_and_random_maps_score_as_their_geometry_says():
    centre, corner = np.zeros((16, 16), bool), np.zeros((16, 16), bool)
    centre[6:10, 6:10], corner[:4, :4] = True, True
    prior = cam.centre_prior(4, 16)
    assert prior.shape == (4, 16, 16) and prior.max() == pytest.approx(1.0)
    assert cam.pointing_game(prior, centre).all() and not cam.pointing_game(prior, corner).any()
    # random maps put about the mask's share of the image on it: the chance level a CAM must beat
    share = cam.energy_inside(cam.random_maps(400, (16, 16), grid=4, seed=0), corner).mean()
    assert share == pytest.approx(corner.mean(), abs=0.02)


def test_burn_marker_draws_an_l_in_the_corner_box_only_where_asked():
    images = np.full((3, 64, 64), 128, np.uint8)
    marked = cam.burn_marker(images, [True, False, True])
    top, bottom, left, right = cam.marker_box(64)
    box = cam.box_mask(64, (top, bottom, left, right))
    assert (images == 128).all(), "the input is not changed"
    assert (marked[1] == 128).all() and (marked[0] == marked[2]).all()
    assert (marked[0][~box] == 128).all() and set(np.unique(marked[0][box])) == {0, 255}
    assert 0.1 < (marked[0][box] == 255).mean() < 0.6  # a letter's strokes, not a filled block
    with pytest.raises(DataError, match="one flag per image"):
        cam.burn_marker(images, [True])
    with pytest.raises(DataError, match="fraction"):
        cam.marker_box(64, fraction=0.9)
