"""The simulated scanners and sites: documented, seeded, and honest about what they cannot do."""

import numpy as np
import pytest

from medkit.base.errors import DataError, UnknownNameError
from medkit.data import ImageDataset
from medkit.data import sites as shift


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(120, 16, 16), dtype=np.uint8)
    labels = np.r_[np.zeros(40, int), np.ones(80, int)]
    return ImageDataset(images, labels, ["normal", "pneumonia"], name="toy")


def test_reference_scanner_is_the_identity(toy):
    assert np.array_equal(shift.SCANNERS["reference"](toy.images), toy.images)


@pytest.mark.parametrize("name", ["high_contrast", "soft_low_dose", "low_resolution"])
def test_scanners_change_images_reproducibly(toy, name):
    scanner = shift.SCANNERS[name]
    out = scanner(toy.images, seed=1)
    assert out.dtype == np.uint8 and out.shape == toy.images.shape
    assert not np.array_equal(out, toy.images)
    assert np.array_equal(out, scanner(toy.images, seed=1))
    assert not np.array_equal(out, scanner(toy.images, seed=2))  # the noise is seeded


def test_lower_resolution_keeps_a_flat_image_flat():
    flat = np.full((3, 28, 28), 200, dtype=np.uint8)
    out = shift.Scanner("blurry", downsample=0.5)(flat)
    assert out.shape == flat.shape and out.min() == out.max() == 200  # no dark bars at the edges


def test_colour_images_keep_their_shape(toy):
    rgb = np.repeat(toy.images[..., None], 3, axis=-1)
    assert shift.SCANNERS["low_resolution"](rgb).shape == rgb.shape


def test_scanner_refuses_float_images(toy):
    with pytest.raises(DataError, match="uint8"):
        shift.SCANNERS["high_contrast"](toy.images / 255.0)


def test_sites_partition_the_images(toy):
    sites = shift.make_sites(toy, ("reference", "high_contrast", "soft_low_dose"), seed=0)
    assert len(sites) == 120 and sites.meta["simulated"] and sites.meta["sites"][0] == "reference"
    assert [int((sites.groups == s).sum()) for s in sites.meta["sites"]] == [40, 40, 40]
    ref = sites.images[sites.groups == "reference"]
    # reference images are originals, each used once
    originals = {im.tobytes() for im in toy.images}
    assert all(im.tobytes() in originals for im in ref)
    assert len({im.tobytes() for im in ref}) == len(ref)
    again = shift.make_sites(toy, ("reference", "high_contrast", "soft_low_dose"), seed=0)
    assert np.array_equal(again.images, sites.images) and np.array_equal(again.groups, sites.groups)


def test_label_mix_is_met_for_every_site(toy):
    # 80 positives / 40 negatives: the old dealing ran out of negatives for the last site
    mix = (0.5, 0.6, 0.9)
    sites = shift.make_sites(toy, ("reference", "high_contrast", "low_resolution"), label_mix=mix, seed=0)
    sizes = {s: int((sites.groups == s).sum()) for s in sites.meta["sites"]}
    assert len(set(sizes.values())) == 1  # every site the same size
    n = sizes["reference"]
    for share, site in zip(mix, sites.meta["sites"]):
        assert sites.labels[sites.groups == site].sum() == round(n * share)
    assert sum(sizes.values()) <= len(toy)


def test_custom_scanner_and_bad_sites(toy):
    mine = shift.Scanner("mine", gamma=2.0)
    sites = shift.make_sites(toy, ("reference", mine), seed=0)
    assert set(sites.groups) == {"reference", "mine"}
    with pytest.raises(UnknownNameError, match="Unknown scanner 'ct'"):
        shift.make_sites(toy, ("reference", "ct"))
    with pytest.raises(DataError, match="2 entries for 3 sites"):
        shift.make_sites(toy, ("reference", "high_contrast", "soft_low_dose"), label_mix=(0.5, 0.5))
    with pytest.raises(DataError, match=r"in \[0, 1\]"):
        shift.make_sites(toy, ("reference", "high_contrast"), label_mix=(0.5, 75))
    with pytest.raises(DataError, match="cannot be met"):
        shift.make_sites(toy.subset(np.arange(40, 120)), ("reference", "high_contrast"), label_mix=(0.0, 0.5))
    with pytest.raises(DataError, match="too few"):
        shift.make_sites(toy.subset(np.arange(3)), ("reference", "high_contrast"))
    with pytest.raises(DataError, match="distinct"):
        shift.make_sites(toy, ("reference", "reference"))


def test_sites_deal_whole_patients_when_groups_are_patient_keys(toy):
    patients = np.array([f"p{i // 4}" for i in range(120)])  # 30 patients of 4 images, each of one class
    sites = shift.make_sites(ImageDataset(toy.images, toy.labels, toy.classes, patients, "toy"),
                             ("reference", "high_contrast", "soft_low_dose"), seed=0)
    where = {}
    for patient, site in zip(sites.meta["patients"], sites.groups):
        where.setdefault(patient, set()).add(site)
    assert len(where) == 30 and all(len(s) == 1 for s in where.values())  # no patient at two sites
    sizes = [int((sites.groups == s).sum()) for s in sites.meta["sites"]]
    assert sum(sizes) == 120 and max(sizes) - min(sizes) <= 4  # balanced to within one patient
    ref = sites.groups == "reference"  # the reference scanner leaves pixels as they were: they match their patient
    assert all(any(np.array_equal(im, o) for o in toy.images[patients == p])
               for im, p in zip(sites.images[ref], np.array(sites.meta["patients"])[ref]))
    mixed = shift.make_sites(ImageDataset(toy.images, toy.labels, toy.classes, patients, "toy"),
                             ("reference", "high_contrast"), label_mix=(0.5, 0.9), seed=0)
    for share, site in zip((0.5, 0.9), mixed.meta["sites"]):
        n = int((mixed.groups == site).sum())
        assert abs(mixed.labels[mixed.groups == site].mean() - share) <= 4 / n  # within one patient of the mix
    both = patients.copy()
    both[39:42] = "x"  # one patient with a normal and two pneumonia images
    with pytest.raises(DataError, match="one class per patient"):
        shift.make_sites(ImageDataset(toy.images, toy.labels, toy.classes, both, "toy"),
                         ("reference", "high_contrast"), label_mix=(0.5, 0.9))
