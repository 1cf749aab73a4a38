"""Property tests (hypothesis) for windowing, normalisation and augmentation, plus their bad-input paths."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medkit.base.errors import DataError
from medkit.data import (
    Augment,
    BatchLoader,
    ImageDataset,
    PerSample,
    foreground_mask,
    histogram_match,
    percentile_clip,
    read_dicom,
    resize,
    sample_path,
    to_three_channels,
    window,
    zscore,
)

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
hu_images = arrays(np.float32, st.tuples(st.integers(1, 16), st.integers(1, 16)),
                   elements=st.floats(-3000, 3000, width=32))


@FAST
@given(hu_images, st.floats(-1500, 1500), st.floats(0.5, 4000))
def test_window_in_unit_range_and_monotone(image, center, width):
    out = window(image, (center, width))
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    order = np.argsort(image.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[order]) >= 0)  # windowing never reorders intensities
    torch_out = window(torch.from_numpy(image), (center, width))
    np.testing.assert_allclose(torch_out.numpy(), out, atol=1e-5)


batches = st.tuples(st.integers(1, 5), st.sampled_from([1, 3]), st.integers(4, 20), st.integers(4, 20))
augments = st.builds(Augment, rotate=st.floats(0, 45), hflip=st.booleans(), vflip=st.booleans(),
                     elastic=st.floats(0, 3), scale=st.floats(0, 0.3), brightness=st.floats(0, 0.5),
                     contrast=st.floats(0, 0.9), gamma=st.floats(0, 1), noise=st.floats(0, 0.2),
                     padding=st.sampled_from(["zeros", "border", "reflection"]), seed=st.integers(0, 2**31))


@FAST
@given(batches, augments, st.sampled_from([torch.float32, torch.float64]))
def test_augment_keeps_shape_dtype_and_range(shape, augment, dtype):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    y = augment(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


@FAST
@given(batches, augments)
def test_augment_is_deterministic_under_a_seed(shape, augment):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    first = [augment(x) for _ in range(2)]
    augment.reset()
    second = [augment(x) for _ in range(2)]
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_augment_draws_per_sample_parameters():
    x = torch.rand(1, 1, 16, 16).expand(8, -1, -1, -1).contiguous()  # 8 copies of one image
    y = Augment(rotate=30, brightness=0.2, seed=0)(x)
    assert len({round(float(v), 5) for v in y.mean(dim=(1, 2, 3))}) == 8  # each copy got its own draw


def test_identity_augment_and_exact_flip():
    x = torch.rand(4, 1, 6, 9)
    torch.testing.assert_close(Augment(rotate=0, brightness=0, contrast=0)(x), x)
    flipped = Augment(rotate=0, brightness=0, contrast=0, hflip=True, seed=3)(x)
    for a, b in zip(flipped, x):  # each image is either untouched or mirrored exactly, never anything else
        assert torch.allclose(a, b, atol=1e-6) or torch.allclose(a, b.flip(-1), atol=1e-6)


def test_flips_are_off_by_default():
    assert not Augment().hflip and not Augment().vflip


def test_augment_bad_input():
    with pytest.raises(DataError, match="float tensor batch"):
        Augment()(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(DataError, match="float tensor batch"):
        Augment()(torch.zeros(8, 8))
    with pytest.raises(DataError, match="rotate"):
        Augment(rotate=-1)
    with pytest.raises(DataError, match="padding"):
        Augment(padding="wrap")


def test_per_sample_torchvision_is_seeded_and_per_image():
    from torchvision.transforms import v2

    transform = PerSample(v2.RandomRotation(30), seed=0)
    x = torch.rand(1, 1, 16, 16).expand(6, -1, -1, -1).contiguous()
    state = torch.get_rng_state()
    a = transform(x)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    transform.reset()
    torch.testing.assert_close(transform(x), a)
    assert len({round(float(v), 5) for v in a.mean(dim=(1, 2, 3))}) > 1


def test_batch_loader_augments_on_the_fly_reproducibly():
    ds = ImageDataset(np.random.default_rng(0).integers(0, 255, (20, 12, 12), dtype=np.uint8), np.arange(20) % 2)

    def epoch(seed):
        loader = BatchLoader(ds, 8, shuffle=True, seed=seed, augment=Augment(rotate=20, seed=seed))
        return [x for x, _ in loader] + [x for x, _ in loader]  # two epochs

    a, b = epoch(0), epoch(0)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    assert not torch.equal(a[0], a[3])  # epoch 2 is augmented differently


# --- MRI normalisation on the real MR slice -----------------------------------------------------------------

def test_mri_normalisations():
    mr = read_dicom(sample_path("MR_small.dcm"))
    z = zscore(mr)
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-3
    mask = foreground_mask(mr)
    assert 0.05 < mask.mean() < 0.95
    zm = zscore(mr, mask)
    assert abs(zm[mask].mean()) < 1e-4 and abs(zm[mask].std() - 1) < 1e-3
    p = percentile_clip(mr, 1, 99)
    assert p.min() == 0 and p.max() == 1
    # another "scanner": a nonlinear intensity curve; histogram matching undoes most of it
    other = 3000 * (mr / mr.max()) ** 1.7 + 50
    matched = histogram_match(other, mr)
    assert np.abs(matched - mr).mean() < 0.1 * np.abs(other - mr).mean()


@FAST
@given(arrays(np.float32, st.tuples(st.integers(2, 12), st.integers(2, 12)), elements=st.floats(0, 5000, width=32)))
def test_normalisations_keep_shape_and_dtype(image):
    for out in (percentile_clip(image), histogram_match(image, image[::-1])):
        assert out.shape == image.shape and out.dtype == np.float32
    assert 0 <= percentile_clip(image).min() and percentile_clip(image).max() <= 1
    if image.std() > 1e-3:
        assert zscore(image).dtype == np.float32


def test_normalisation_bad_input():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    with pytest.raises(DataError, match="constant"):
        zscore(np.ones((4, 4)))
    with pytest.raises(DataError, match="Mask shape"):
        zscore(image, np.ones((3, 3), bool))
    with pytest.raises(DataError, match="Percentiles"):
        percentile_clip(image, 50, 10)
    with pytest.raises(DataError, match="finite"):
        zscore(np.array([[np.nan, 1.0]]))
    with pytest.raises(DataError, match="same number of dimensions"):
        histogram_match(image, image.ravel())


# --- conversions for pretrained backbones ------------------------------------------------------------------

def test_conversions_match_the_backbone_preprocess():
    from medkit.data import normalize
    from medkit.models import get_spec
    from medkit.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    steps = normalize(resize(to_three_channels(x.float() / 255), 64), IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(steps, get_spec("efficientnet_lite0").preprocess(64)(x))
    with pytest.raises(DataError, match="1 or 3"):
        to_three_channels(torch.zeros(1, 2, 4, 4))
