"""medkit.volumes (lesson 11): NIfTI and DICOM series, hostile files, resampling, standardisation, inflation,
the AdrenalMNIST3D sample, the slice scroller and the checkpoint download against a local HTTP server."""

import functools
import hashlib
import http.server
import io
import threading

import numpy as np
import pytest
import torch
from torch import nn

import medkit.volumes as vol
from medkit.base.errors import (
    ChecksumError,
    ConfigError,
    DataError,
    MedkitError,
    OfflineError,
    UnknownNameError,
    WeightsError,
)
from medkit.data import sample_path
from medkit.volumes import checkpoints
from medkit.volumes.hostile import hostile_inputs


@pytest.fixture(scope="module")
def t1():
    return vol.load_nifti(sample_path("brain_mri/T1_2mm.nii.gz"))


def oblique(shape=(12, 10, 8), spacing=(1.5, 2.0, 3.0), seed=0) -> vol.Volume:
    """A small random volume whose axes are rotated and scaled, as a tilted acquisition's are."""
    rotation = torch.linalg.matrix_exp(torch.tensor([[0, -0.2, 0.1], [0.2, 0, -0.3], [-0.1, 0.3, 0]])).numpy()
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = (-40, 12.5, 7)
    return vol.Volume(np.random.default_rng(seed).integers(0, 1000, shape), affine, "oblique")


# --- files -------------------------------------------------------------------------------------------------------

def test_bundled_mri_geometry(t1):
    assert t1.shape == (62, 80, 70) and t1.orientation == "RAS"
    assert np.allclose(t1.spacing, 2.0, atol=1e-6)
    assert t1.plane(2) == "axial" and t1.plane(1) == "coronal" and t1.plane(0) == "sagittal"
    sequences = [vol.load_nifti(sample_path(f"brain_mri/{n}_2mm.nii.gz")) for n in ("T2", "FLAIR")]
    assert all(np.allclose(s.affine, t1.affine) and s.shape == t1.shape for s in sequences)  # co-registered


def test_nifti_round_trip_and_singleton_time_axis(tmp_path):
    volume = oblique()
    for name in ("v.nii", "v.nii.gz"):
        back = vol.load_nifti(vol.save_nifti(volume, tmp_path / name))
        assert np.array_equal(back.array, volume.array) and np.allclose(back.affine, volume.affine, atol=1e-5)
    import nibabel as nib

    nib.save(nib.Nifti1Image(volume.array[..., None], volume.affine), tmp_path / "t.nii")
    assert vol.load_nifti(tmp_path / "t.nii").shape == volume.shape


def test_canonical_reorients_without_changing_anatomy():
    volume = oblique()
    flipped = vol.Volume(volume.array[::-1], volume.affine @ np.array([[-1, 0, 0, 11], [0, 1, 0, 0], [0, 0, 1, 0],
                                                                        [0, 0, 0, 1.0]]))
    assert flipped.orientation != volume.orientation
    a, b = volume.canonical(), flipped.canonical()
    assert np.array_equal(a.array, b.array) and np.allclose(a.affine, b.affine)


def test_dicom_series_sorted_by_position_not_name(tmp_path):
    volume = oblique()
    files = vol.write_dicom_series(volume, tmp_path / "series", shuffle_names=True)
    assert [f.name for f in files] != sorted(f.name for f in files)
    back = vol.load_dicom_series(tmp_path / "series")
    assert np.array_equal(back.array, volume.array)
    assert np.allclose(back.affine, volume.affine, atol=1e-4) and back.orientation == volume.orientation
    assert np.array_equal(vol.load_dicom_series(sorted(files)).array, volume.array)  # a list of files works too


def test_dicom_intensities_with_slope_and_intercept(tmp_path):
    volume = vol.Volume(np.linspace(-1024, 3000.5, 6 * 5 * 4).reshape(6, 5, 4), np.diag([0.7, 0.7, 2.5, 1]))
    vol.write_dicom_series(volume, tmp_path / "ct", "CT")
    back = vol.load_dicom_series(tmp_path / "ct")
    assert np.abs(back.array - volume.array).max() < 0.05  # one step of the uint16 quantisation


@pytest.fixture(scope="module")
def hostile(t1, tmp_path_factory):
    crop = vol.Volume(t1.array[20:36, 20:40, 30:40], t1.affine, "crop")
    return hostile_inputs(crop, tmp_path_factory.mktemp("hostile"), min_size=16)


HOSTILE = ["4-D NIfTI where 3-D is expected", "NIfTI with a broken header", "NIfTI with a zero voxel size",
           "truncated NIfTI", "DICOM series with a missing slice", "DICOM series with a duplicated slice",
           "DICOM series with mixed pixel spacing", "DICOM series with uneven slice spacing",
           "volume too small for the network", "gzipped NIfTI with one flipped bit", "NIfTI claiming 30000^3 voxels",
           "NIfTI with a negative dimension", "NIfTI with RGB voxels", "DICOM series with rows and columns at 60 degrees",
           "DICOM series with gantry tilt, read with tilt='refuse'"]
EXPECTED_WORDS = {"4-D": "4-D", "broken header": "sizeof_hdr", "zero voxel": "pixdim", "truncated": "truncated",
                  "missing": "Missing slice", "duplicated": "Duplicated", "mixed pixel": "Mixed pixel spacing",
                  "uneven": "Uneven slice spacing", "too small": "too small", "flipped bit": "gzip stream is damaged",
                  "30000^3": "30000 x 30000 x 30000 voxels", "negative": "size of -20", "RGB": "NIfTI RGB",
                  "60 degrees": "60.00 degrees apart", "gantry tilt": "degrees off the slice normal"}


def test_hostile_cases_are_the_documented_ones(hostile):
    assert sorted(hostile) == sorted(HOSTILE)


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_input_is_refused_with_a_reason(hostile, case):
    with pytest.raises(MedkitError) as caught:
        hostile[case]()
    word = next(w for k, w in EXPECTED_WORDS.items() if k in case)
    assert word in str(caught.value), str(caught.value)


def test_more_bad_files(tmp_path):
    with pytest.raises(DataError, match="NIfTI file .*absent.nii.gz does not exist"):
        vol.load_nifti(tmp_path / "absent.nii.gz")
    (tmp_path / "junk.nii").write_bytes(b"not a nifti" * 10)
    with pytest.raises(DataError):
        vol.load_nifti(tmp_path / "junk.nii")
    one = vol.write_dicom_series(oblique(shape=(4, 4, 1)), tmp_path / "one")
    with pytest.raises(DataError, match="at least 2 slices"):
        vol.load_dicom_series(one)
    a = vol.write_dicom_series(oblique(shape=(4, 4, 3)), tmp_path / "two", series_uid="1.2.3.4")
    b = vol.write_dicom_series(oblique(shape=(4, 4, 3), seed=1), tmp_path / "three", series_uid="1.2.3.5")
    with pytest.raises(DataError, match="SeriesInstanceUID"):
        vol.load_dicom_series(a + b)
    (tmp_path / "two" / "notes.dcm").write_text("hello")
    with pytest.raises(DataError, match="not a readable DICOM"):
        vol.load_dicom_series(tmp_path / "two")
    with pytest.raises(DataError, match="3-D"):
        vol.Volume(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(DataError, match="affine"):
        vol.Volume(np.zeros((4, 4, 4)), np.zeros((4, 4)))


# --- resampling --------------------------------------------------------------------------------------------------

def test_linear_resampling_is_exact_on_a_linear_field():
    volume = oblique(shape=(20, 16, 10))
    world = lambda v: np.einsum("ij,jklm->iklm", v.affine[:3], np.concatenate(  # noqa: E731
        [np.indices(v.shape), np.ones((1, *v.shape))]))
    field = lambda v: (world(v) * np.array([0.3, -0.2, 0.5])[:, None, None, None]).sum(0) + 100  # noqa: E731
    volume = vol.Volume(field(volume), volume.affine)
    fine = vol.resample(volume, 1.0, order=1)
    assert np.allclose(fine.spacing, 1.0) and fine.shape == (30, 32, 30)
    inside = (slice(3, -3),) * 3  # away from the edges, where the field is extended, not extrapolated
    assert np.abs(fine.array - field(fine))[inside].max() < 1e-3
    centre = lambda v: v.affine @ np.array([*(np.array(v.shape) - 1) / 2, 1])  # noqa: E731
    assert np.allclose(centre(fine), centre(volume), atol=1e-6)  # the same field of view, centred


def test_interpolation_beats_repeating_slices(t1):
    thick = vol.Volume(t1.array[:, :, ::3], t1.affine @ np.diag([1, 1, 3, 1]))
    assert thick.spacing[2] == pytest.approx(6.0, abs=1e-5)
    brain = t1.array > 0
    mae = {o: np.abs(vol.resample_to(thick, t1.affine, t1.shape, order=o).array - t1.array)[brain].mean()
           for o in (0, 1)}
    assert mae[1] < mae[0] - 1.0, mae  # measured: linear 10.3, nearest 12.6 (0-255 scale)
    assert vol.isotropic(thick).spacing == pytest.approx((2.0, 2.0, 2.0), abs=1e-5)
    with pytest.raises(ConfigError):
        vol.resample(t1, 0)
    with pytest.raises(ConfigError):
        vol.resample(t1, 2.0, order=2)


# --- standardisation ---------------------------------------------------------------------------------------------

def test_nyul_aligns_monotonic_rescalings(t1):
    mask = t1.array > 0
    other = np.where(mask, 3 * t1.array ** 1.3 + 50, 0).astype(np.float32)  # another scanner's curve
    raw = vol.distribution_gap([t1.array, other], [mask, mask])
    z = vol.distribution_gap([vol.zscore(t1.array, mask), vol.zscore(other, mask)], [mask, mask])
    nyul = vol.NyulStandardiser().fit([t1.array, other], [mask, mask])
    matched = vol.distribution_gap([nyul.transform(t1.array, mask), nyul.transform(other, mask)], [mask, mask])
    assert matched < 0.01 < z < raw, (matched, z, raw)
    out = nyul.transform(t1.array, mask)
    assert np.all(np.diff(out[mask][np.argsort(t1.array[mask], kind="stable")]) >= -1e-4)  # monotonic
    assert np.isclose(np.percentile(out[mask], 1), nyul.standard[0], atol=0.5)


def test_standardise_refuses_what_it_cannot_do():
    with pytest.raises(DataError, match="fit"):
        vol.NyulStandardiser().transform(np.arange(8.0))
    with pytest.raises(DataError, match="contrast"):
        vol.NyulStandardiser().fit([np.ones((4, 4, 4))], [np.ones((4, 4, 4), bool)])
    with pytest.raises(DataError, match="landmarks"):
        vol.NyulStandardiser(landmarks=(50, 10, 90))
    with pytest.raises(DataError, match="two volumes"):
        vol.distribution_gap([np.arange(8.0)])


# --- 2-D to 3-D --------------------------------------------------------------------------------------------------

def test_inflated_conv_keeps_the_2d_response_on_a_depth_constant_volume():
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=True)
    conv3d = vol.inflate_conv(conv)
    image = torch.randn(2, 3, 9, 9)
    out = conv3d(image.unsqueeze(2).expand(-1, -1, 7, -1, -1))
    assert out.shape == (2, 5, 4, 5, 5)
    assert torch.allclose(out[:, :, 1:-1], conv(image).unsqueeze(2).expand(-1, -1, 2, -1, -1), atol=1e-5)


def test_inflated_efficientnet_body_keeps_the_2d_response():
    body2d = vol.efficientnet_body(3)
    assert vol.inflation_gap(body2d, vol.inflate(body2d), torch.rand(1, 3, 16, 16), depth=80) < 1e-5  # measured 8e-7
    with pytest.raises(ConfigError):
        vol.inflate(nn.Linear(3, 2))


def test_volume_net_shapes_and_too_small_volume():
    net = vol.volume_net(pretrained=False, num_blocks=2).eval()
    assert net(torch.rand(2, 1, 16, 16, 16)).shape == (2, 2)
    with pytest.raises(ConfigError, match="too small"):
        net(torch.rand(1, 1, 4, 16, 16))
    with pytest.raises(ConfigError, match="N, 1, D, H, W"):
        net(torch.rand(1, 16, 16, 16))
    with pytest.raises(ConfigError):
        vol.volume_net(pretrained=False, num_blocks=9)


def test_adrenal_sample_keeps_the_official_splits():
    splits = vol.adrenal3d()
    assert {k: len(y) for k, (X, y) in splits.items()} == {"train": 1188, "val": 98, "test": 298}
    X, y = splits["train"]
    assert X.shape[1:] == (1, 32, 32, 32) and X.dtype == torch.float32 and 0 <= X.min() and X.max() <= 1
    small = vol.adrenal3d(16, n_train=100, seed=1)
    assert small["train"][0].shape == (100, 1, 16, 16, 16)
    assert abs(small["train"][1].float().mean() - y.float().mean()) < 0.02  # stratified


# --- widget ------------------------------------------------------------------------------------------------------

def test_slice_scroller_redraws_on_slider_and_plane(t1):
    box = vol.slice_scroller(t1)
    first = box.image.value
    box.slider.value = 10
    assert box.image.value != first and "axial slice 10" in box.caption.value
    box.axis.value = 0
    assert box.slider.max == t1.shape[0] - 1 and "sagittal" in box.caption.value


# --- checkpoints -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A local HTTP server (in a thread) serving a generated MedicalNet-style checkpoint."""
    folder = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in checkpoints.medicalnet_resnet10().state_dict().items() if not k.startswith("fc")}
    buffer = io.BytesIO()
    torch.save({"state_dict": state}, buffer)
    (folder / "resnet_10.pth").write_bytes(buffer.getvalue())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_port}/resnet_10.pth",
           "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(), "state": state}
    httpd.shutdown()
    thread.join()


def _entry(server, sha256):
    return checkpoints.Checkpoint("local_resnet10", server["url"], "local_resnet10.pth", sha256,
                                  build=checkpoints.medicalnet_resnet10)


def test_checkpoint_downloads_checks_and_loads(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDKIT_OFFLINE", raising=False)
    path = checkpoints.checkpoint_path(_entry(server, server["sha256"]), cache=tmp_path)
    assert path == tmp_path / "local_resnet10.pth" and path.stat().st_size > 1e6
    model = checkpoints.load_med3d(_entry(server, server["sha256"]), cache=tmp_path)
    assert torch.equal(model.layer4[0].conv2.weight, server["state"]["module.layer4.0.conv2.weight"])
    assert model.medkit_missing_keys == ["fc.bias", "fc.weight"]  # the new head, left as initialised
    assert model(torch.rand(1, 1, 16, 16, 16)).shape == (1, 2)


def test_checkpoint_with_a_wrong_hash_is_refused_and_not_cached(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDKIT_OFFLINE", raising=False)
    with pytest.raises(ChecksumError):
        checkpoints.checkpoint_path(_entry(server, "0" * 64), cache=tmp_path)
    assert not list(tmp_path.iterdir())  # no partial or wrong file left behind


def test_unverified_checkpoint_is_refused_before_any_download(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDKIT_OFFLINE", raising=False)
    with pytest.raises(WeightsError, match="unverified"):
        checkpoints.checkpoint_path(_entry(server, None), cache=tmp_path)
    assert checkpoints.checkpoint_path(_entry(server, None), sha256=server["sha256"], cache=tmp_path).is_file()
    with pytest.raises(WeightsError, match="differs"):
        checkpoints.checkpoint_path(_entry(server, server["sha256"]), sha256="1" * 64, cache=tmp_path)


def test_checkpoint_offline_and_registry(server, tmp_path):
    with pytest.raises(OfflineError, match="medkit fetch --checkpoints local_resnet10"):
        checkpoints.checkpoint_path(_entry(server, server["sha256"]), cache=tmp_path)  # MEDKIT_OFFLINE=1 (conftest)
    assert "medicalnet_resnet10" in checkpoints.list_checkpoints()
    assert checkpoints.get_checkpoint("medicalnet_resnet10").sha256 is None
    with pytest.raises(WeightsError, match="unverified"):
        checkpoints.checkpoint_path("medicalnet_resnet10")
    with pytest.raises(UnknownNameError):
        checkpoints.get_checkpoint("nope")
    with pytest.raises(ValueError, match="already registered"):
        checkpoints.register_checkpoint(checkpoints.get_checkpoint("medicalnet_resnet10"))


def test_checkpoint_that_does_not_fit_the_model_is_refused(server, tmp_path, monkeypatch):
    monkeypatch.delenv("MEDKIT_OFFLINE", raising=False)
    with pytest.raises(WeightsError, match="does not fit"):
        checkpoints.load_med3d(_entry(server, server["sha256"]), model=nn.Conv3d(1, 2, 3), cache=tmp_path)


def test_fetch_cli_refuses_an_unverified_checkpoint(tmp_cache, capsys):
    from medkit.cli import main

    assert main(["fetch", "--checkpoints", "medicalnet_resnet10"]) == 1
    assert "unverified" in capsys.readouterr().err
