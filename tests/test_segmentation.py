"""Lesson 07's package: synthetic lesions, masks, metrics, losses, the U-Net encoder and the loaders."""

import numpy as np
import pytest
import torch
from PIL import Image

from medkit.base.errors import DataError, MedkitError, UnknownNameError, WeightsError
from medkit.segmentation import (
    LesionSpec,
    MaskLoader,
    SegmentationDataset,
    build_segmenter,
    dice_per_image,
    freeze_encoder,
    get_loss,
    hd95_per_image,
    insert_lesions,
    iou_per_image,
    load_dicom_seg,
    load_encoder_weights,
    load_png_masks,
    mean_ci,
    parameter_counts,
    predict_masks,
    segmentation_metrics,
    show_overlays,
    train_and_evaluate,
)

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def one_thread():
    """Run these tiny models on one thread: faster than two, and immune to a busy machine's oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _square(size=16, top=4, left=4, side=6):
    mask = np.zeros((size, size), np.uint8)
    mask[top:top + side, left:left + side] = 1
    return mask


# --- the dataset and its checks --------------------------------------------------------------


def test_dataset_refuses_misaligned_masks():
    images = RNG.integers(0, 255, (3, 16, 16), dtype=np.uint8)
    with pytest.raises(DataError, match=r"do not align"):
        SegmentationDataset(images, np.zeros((3, 16, 12), np.uint8))


def test_dataset_refuses_unexpected_labels():
    images = RNG.integers(0, 255, (2, 8, 8), dtype=np.uint8)
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[0, 2, 2] = 255
    with pytest.raises(DataError, match=r"\[255\].*expected labels \[0, 1\]"):
        SegmentationDataset(images, masks)
    with pytest.raises(MedkitError, match="non-integer"):
        SegmentationDataset(images, np.full((2, 8, 8), 0.4))


def test_dataset_refuses_an_empty_set():
    with pytest.raises(DataError, match="no images"):
        SegmentationDataset(np.zeros((0, 8, 8), np.uint8), np.zeros((0, 8, 8), np.uint8))


def test_mask_loader_fixed_steps_and_joint_flip():
    images = np.zeros((3, 8, 8), np.uint8)
    images[:, :, :2] = 255  # bright left edge, and the mask marks exactly that edge
    ds = SegmentationDataset(images, (images > 0).astype(np.uint8))
    batches = list(MaskLoader(ds, batch_size=2, steps=5, flip=True, seed=0))
    assert len(batches) == 5 and all(x.shape == (2, 1, 8, 8) for x, _ in batches)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(x > 0, y > 0), "a flip must move image and mask together"
    assert (x[:, 0, 0, 0] == 0).any() and (x[:, 0, 0, 0] == 1).any(), "some batches should be mirrored"


# --- synthetic lesions -----------------------------------------------------------------------


def test_insert_lesions_is_seeded_and_exact(pneumonia):
    xrays = pneumonia["train"].images[:20]
    spec = LesionSpec(radius=(3, 5), contrast=(0.3, 0.3), count=(1, 1), empty_fraction=0.0, profile=0.5)
    a = insert_lesions(xrays, spec, image_size=64, seed=3)
    b = insert_lesions(xrays, spec, image_size=64, seed=3)
    c = insert_lesions(xrays, spec, image_size=64, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.masks, c.masks)
    assert a.image_size == (64, 64) and len(a.meta["lesions"]) == 20
    plain = insert_lesions(xrays, LesionSpec(empty_fraction=1.0), image_size=64, seed=3)
    assert plain.masks.max() == 0
    delta = a.images.astype(int) - plain.images.astype(int)
    # the mask is exactly the ellipse: every pixel inside got brighter, nothing outside changed
    i, cx, cy, semi_a, semi_b = a.meta["lesions"][0][:5]
    inside = a.masks.astype(bool)
    assert (delta[~inside] == 0).all()
    assert (delta[inside & (delta > 0)].size > 0.9 * inside.sum())
    area = a.masks[int(i)].sum()
    assert abs(area - np.pi * semi_a * semi_b) < 0.35 * np.pi * semi_a * semi_b + 6


def test_lesion_spec_checks_ranges():
    with pytest.raises(DataError, match="low <= high"):
        LesionSpec(radius=(5, 2))
    with pytest.raises(DataError, match="no images"):
        insert_lesions(np.zeros((0, 28, 28), np.uint8))


# --- metrics ---------------------------------------------------------------------------------


def test_dice_and_iou_known_values_and_empty_conventions():
    true = np.stack([_square(), _square(), np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8), _square()])
    pred = np.stack([_square(), _square(left=7), np.zeros((16, 16), np.uint8), _square(), np.zeros((16, 16), np.uint8)])
    dice, iou = dice_per_image(pred, true), iou_per_image(pred, true)
    # shifted by 3 of 6 columns: overlap 18 of 36 + 36 pixels
    np.testing.assert_allclose(dice, [1.0, 0.5, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(iou, [1.0, 1 / 3, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(iou, dice / (2 - dice))


def test_hd95_matches_a_known_shift_and_scipy():
    from scipy.spatial.distance import directed_hausdorff

    true, pred = _square(32, 8, 8, 10), _square(32, 8, 11, 10)
    hd = hd95_per_image(pred, true)
    assert hd[0] == pytest.approx(3.0)
    assert hd95_per_image(pred, true, spacing=(0.5, 0.5))[0] == pytest.approx(1.5)
    # HD95 never exceeds the full Hausdorff distance of the two masks' pixels
    pts_t, pts_p = np.argwhere(true), np.argwhere(pred)
    full = max(directed_hausdorff(pts_t, pts_p)[0], directed_hausdorff(pts_p, pts_t)[0])
    assert hd[0] <= full + 1e-9
    empty = np.zeros((32, 32), np.uint8)
    assert hd95_per_image(empty, empty)[0] == 0.0
    assert np.isnan(hd95_per_image(empty, true)[0]) and np.isnan(hd95_per_image(pred, empty)[0])


def test_metrics_refuse_bad_masks():
    with pytest.raises(DataError, match="do not align"):
        dice_per_image(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))
    with pytest.raises(DataError, match=r"\[2\]"):
        dice_per_image(np.full((1, 4, 4), 2), np.zeros((1, 4, 4)))
    with pytest.raises(DataError, match="non-integer"):
        iou_per_image(np.full((1, 4, 4), 0.7), np.zeros((1, 4, 4)))


def test_segmentation_metrics_intervals_and_undefined_count():
    true = np.stack([_square(left=k % 6) for k in range(12)] + [np.zeros((16, 16), np.uint8)])
    pred = np.stack([_square(left=(k + k % 3) % 8) for k in range(12)] + [_square()])
    m = segmentation_metrics(pred, true, n_boot=300, seed=1)
    again = segmentation_metrics(pred, true, n_boot=300, seed=1)
    assert m["dice"] == again["dice"]
    for key in ("dice", "iou", "hd95"):
        assert m[key].low <= m[key].estimate <= m[key].high
    assert 0 <= m["dice"].low and m["dice"].high <= 1
    assert m["hd95_undefined"] == 1 and m["n"] == 13
    assert mean_ci([0.5, 0.5, 0.5]).width == 0


# --- losses ----------------------------------------------------------------------------------


def test_losses_and_why_dice_helps_with_small_lesions():
    target = torch.zeros(2, 1, 32, 32)
    target[:, :, 10:13, 10:13] = 1  # 9 of 1024 pixels: a small lesion
    background = torch.full_like(target, -4.0)  # a model that says "background" everywhere
    perfect = target * 8 - 4
    for name in ("dice", "dice_bce", "focal", "bce"):
        loss = get_loss(name)
        assert loss(perfect, target) < loss(background, target), name
    # cross-entropy barely minds missing the lesion; Dice gives it the worst score there is
    assert get_loss("bce")(background, target) < 0.1
    assert get_loss("dice")(background, target) > 0.9
    with pytest.raises(UnknownNameError, match="dice_bce"):
        get_loss("jaccard")


# --- the model -------------------------------------------------------------------------------


def test_pretrained_encoder_weights_really_land():
    from medkit.models import get_backbone

    backbone = get_backbone("efficientnet_lite0")
    pretrained = build_segmenter("efficientnet_lite0", "DEFAULT")
    random = build_segmenter("efficientnet_lite0", None)
    stem = pretrained.encoder.model.conv_stem.weight
    assert torch.equal(stem, backbone.conv_stem.weight)
    assert torch.equal(pretrained.encoder.model.blocks[3][0].bn1.running_var, backbone.blocks[3][0].bn1.running_var)
    assert not torch.equal(random.encoder.model.conv_stem.weight, backbone.conv_stem.weight)
    assert pretrained.encoder_weights == "IMAGENET1K_LITE0" and random.encoder_weights is None
    out = pretrained(torch.randint(0, 255, (2, 1, 32, 32), dtype=torch.uint8))
    assert out.shape == (2, 1, 32, 32)
    with pytest.raises(DataError, match="multiple of 16"):
        pretrained(torch.zeros(1, 1, 28, 28))


def test_encoder_weights_of_another_architecture_are_refused():
    from medkit.models import get_backbone

    model = build_segmenter("efficientnet_lite0", None)
    with pytest.raises(WeightsError, match="not the same architecture"):
        load_encoder_weights(model.encoder, get_backbone("resnet18", weights=None))


def test_unknown_encoder_or_architecture():
    with pytest.raises(UnknownNameError, match="efficientnet_lite0"):
        build_segmenter("vit_b_16", None)
    with pytest.raises(UnknownNameError, match="unet"):
        build_segmenter("efficientnet_lite0", None, arch="deeplab")
    with pytest.raises(DataError, match="encoder_depth=5"):
        build_segmenter("efficientnet_lite0", None, arch="fpn", encoder_depth=4)
    fpn = build_segmenter("efficientnet_lite0", None, arch="fpn", encoder_depth=5)
    assert fpn(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_frozen_encoder_stays_put():
    model = freeze_encoder(build_segmenter("efficientnet_lite0", "DEFAULT"))
    counts = parameter_counts(model)
    assert counts["encoder"][0] == 0 and counts["decoder"][0] == counts["decoder"][1] > 0
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model.train()
    assert not model.encoder.training and model.net.decoder.training
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = get_loss("dice")(model(torch.rand(4, 1, 32, 32)), (torch.rand(4, 1, 32, 32) > 0.9).float())
    loss.backward()
    opt.step()
    after = model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights and batch-norm statistics must not move"
    freeze_encoder(model, False)
    assert model.encoder.training and parameter_counts(model)["encoder"][0] > 0


def test_train_and_evaluate_is_reproducible(pneumonia):
    spec = LesionSpec(radius=(3, 5))
    train = insert_lesions(pneumonia["train"].images[:8], spec, image_size=32, seed=0)
    test = insert_lesions(pneumonia["test"].images[:6], spec, image_size=32, seed=1)
    runs = [train_and_evaluate(train, test, steps=2, batch_size=4, seed=5, n_boot=50, keep_model=True) for _ in range(2)]
    assert runs[0]["dice"] == runs[1]["dice"]
    np.testing.assert_array_equal(runs[0]["probs"], runs[1]["probs"])
    assert runs[0]["probs"].shape == (6, 32, 32)
    assert np.array_equal(predict_masks(runs[0]["model"], test), runs[0]["probs"])
    assert all(p.grad is None for p in runs[0]["model"].parameters())  # trained models do not keep gradients
    assert "model" not in train_and_evaluate(train, test, steps=1, batch_size=4, n_boot=10)  # not kept by default


# --- loading real segmentations --------------------------------------------------------------


def test_load_dicom_seg_liver():
    from pydicom.data import get_testdata_file

    seg = load_dicom_seg(get_testdata_file("liver_1frame.dcm"))
    assert seg.segments == {1: "Liver"}
    assert seg.frames.shape == (1, 512, 512)
    mask = seg.mask(1)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1} and mask.sum() > 1000
    assert seg.referenced[0] is not None
    with pytest.raises(DataError, match="segment 2"):
        seg.mask(2)


def test_load_dicom_seg_refuses_images_and_missing_files(tmp_path):
    from pydicom.data import get_testdata_file

    with pytest.raises(DataError, match="not 'SEG'"):
        load_dicom_seg(get_testdata_file("CT_small.dcm"))
    with pytest.raises(DataError, match="does not exist"):
        load_dicom_seg(tmp_path / "nope.dcm")


def _write_pair(folder, stem, image, mask, suffix="_mask"):
    Image.fromarray(image).save(folder / f"{stem}.png")
    Image.fromarray(mask).save(folder / f"{stem}{suffix}.png")


def test_load_png_masks_next_to_images_and_in_a_folder(tmp_path):
    image = RNG.integers(0, 255, (16, 16), dtype=np.uint8)
    _write_pair(tmp_path, "a", image, _square() * 255)  # how most tools save a binary mask
    _write_pair(tmp_path, "b", image, np.zeros((16, 16), np.uint8))
    ds = load_png_masks(tmp_path)
    assert len(ds) == 2 and ds.meta["files"] == ["a.png", "b.png"]
    assert np.array_equal(ds.masks[0], _square()) and ds.masks[1].max() == 0
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    Image.fromarray(image).save(tmp_path / "img" / "c.png")
    Image.fromarray(_square() * 2).save(tmp_path / "msk" / "c.png")
    three = load_png_masks(tmp_path / "img", tmp_path / "msk", classes=("background", "left lung", "right lung"))
    assert three.masks.max() == 2


def test_load_png_masks_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="No PNG images"):
        load_png_masks(tmp_path)
    image = RNG.integers(0, 255, (16, 16), dtype=np.uint8)
    _write_pair(tmp_path, "a", image, np.zeros((16, 12), np.uint8))
    with pytest.raises(DataError, match=r"\(16, 12\).*\(16, 16\)"):
        load_png_masks(tmp_path)
    _write_pair(tmp_path, "a", image, np.full((16, 16), 7, np.uint8))
    with pytest.raises(DataError, match=r"\[7\]"):
        load_png_masks(tmp_path)
    Image.fromarray(image).save(tmp_path / "b.png")
    _write_pair(tmp_path, "a", image, np.zeros((16, 16), np.uint8))
    with pytest.raises(DataError, match="has no mask"):
        load_png_masks(tmp_path)


def test_overlays_draw_and_check_alignment():
    images = RNG.integers(0, 255, (3, 16, 16), dtype=np.uint8)
    true = np.stack([_square()] * 3)
    fig = show_overlays(images, true, np.zeros_like(true), titles=["a", "b", "c"], ncols=3)
    assert len(fig.axes) == 3
    with pytest.raises(DataError, match="align"):
        show_overlays(images, true[:, :8], true)


def test_resized_keeps_labels_and_split_is_seeded():
    images = RNG.integers(0, 255, (10, 16, 16), dtype=np.uint8)
    masks = np.stack([_square() * (1 + k % 2) for k in range(10)])
    ds = SegmentationDataset(images, masks, ["background", "a", "b"])
    big = ds.resized(32)
    assert big.image_size == (32, 32) and set(np.unique(big.masks)) == {0, 1, 2}
    assert big.masks[0].sum() == 4 * masks[0].sum()  # nearest-neighbour: every label pixel becomes 2 x 2
    train, test = ds.split(3, seed=1)
    again = ds.split(3, seed=1)[1]
    assert len(train) == 7 and len(test) == 3 and np.array_equal(test.images, again.images)
    with pytest.raises(DataError, match="hold out 10 of 10"):
        ds.split(10)


def test_lesion_splits_keep_children_apart_and_are_seeded():
    from medkit.data import chest_xrays
    from medkit.segmentation import LesionSpec, lesion_splits

    xrays = chest_xrays(image_size=64, seed=0)
    sizes = {"train": 12, "val": 6, "test": 6}
    parts = lesion_splits(xrays, LesionSpec(), sizes, seed=0)
    assert {p: len(ds) for p, ds in parts.items()} == sizes and parts["test"].image_size == (64, 64)
    again = lesion_splits(xrays, LesionSpec(), sizes, seed=0)
    assert all(np.array_equal(parts[p].masks, again[p].masks) for p in sizes)  # same seed, same lesions
    other = lesion_splits(xrays, LesionSpec(), sizes, seed=1)
    assert not np.array_equal(other["train"].images, parts["train"].images)  # another seed draws other training films
    small = lesion_splits(xrays, LesionSpec(radius=(1.0, 2.0)), sizes, seed=0, stream=1)
    assert not np.array_equal(small["test"].masks, parts["test"].masks)  # another stream, another draw
    # the test films are the first of the patient-grouped test part, whatever the seed: no child of train or val
    assert not set(xrays["test"].groups[:6]) & (set(xrays["train"].groups) | set(xrays["val"].groups))
