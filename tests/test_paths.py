"""medkit.base.paths: a bad input path is named for what it is (loop, folder, FIFO, device...), never opened first."""

import os
import sys

import numpy as np
import pytest

from medkit.base.errors import DataError
from medkit.base.paths import check_dir, check_file, check_output_file
from medkit.data import load_image
from medkit.deploy import deidentify_file

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")


@pytest.fixture
def bad(tmp_path):
    """Return {kind: path} for each kind of unusable input."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.png").touch()
    return {"symbolic link loop": tmp_path / "loop", "broken symbolic link": tmp_path / "broken",
            "named pipe": tmp_path / "fifo", "is a folder": tmp_path / "folder", "character device": "/dev/zero",
            "is empty": tmp_path / "empty.png", "does not exist": tmp_path / "missing.png"}


@pytest.mark.timeout(20)  # a reader that opened the FIFO would block here forever
def test_each_bad_input_is_named_by_every_reader(bad, tmp_path):
    readers = [check_file, load_image, lambda p: deidentify_file(p, tmp_path / "out.dcm", salt="paths-salt-0123456789")]
    for cause, path in bad.items():
        for read in readers:
            if cause == "is empty" and read is load_image:
                cause_here = "empty, 0 bytes"  # the image reader's own wording for an empty file
            else:
                cause_here = cause
            with pytest.raises(DataError, match=cause_here):
                read(path)
    assert not (tmp_path / "out.dcm").exists()


def test_only_a_missing_path_is_said_not_to_exist(bad):
    for cause, path in bad.items():
        with pytest.raises(DataError) as exc:
            check_file(path)
        assert ("does not exist" in str(exc.value)) == (cause in ("does not exist", "broken symbolic link"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_says_permission(tmp_path):
    path = tmp_path / "secret.png"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(DataError, match="permission denied"):
        check_file(path)


def test_folders_and_outputs(bad, tmp_path):
    assert check_dir(bad["is a folder"]) == bad["is a folder"]
    with pytest.raises(DataError, match="named pipe.*not a folder"):
        check_dir(bad["named pipe"])
    with pytest.raises(DataError, match="symbolic link loop"):
        check_dir(bad["symbolic link loop"])
    with pytest.raises(DataError, match="is a folder; pass the name of a file"):
        check_output_file(bad["is a folder"])
    with pytest.raises(DataError, match="character device"):
        check_output_file("/dev/zero")
    assert check_output_file(tmp_path / "new.dcm") == tmp_path / "new.dcm"


# --- issue 23: every reader a user points at a path, times every cause, each with its own error ------------------


def _checkpoint_config(folder):
    """Write a hand-made config.json that passes the schema, so the weights file is what gets checked."""
    import json

    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "backbone": "efficientnet_lite0", "num_classes": 2, "classes": ["a", "b"], "image_size": 48,
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}))


def _image_beside(folder):
    """Write a.png beside the mask under test (a_mask.png)."""
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")


def _readers():
    """Return {reader: (file name, setup(folder) or None, read(path), own message for a missing file or None)}."""
    from medkit.core.checkpoint import load_checkpoint, read_config
    from medkit.data import load_source, load_splits
    from medkit.data.audit import audit_source
    from medkit.data.dicom import open_dicom
    from medkit.data.table import read_table
    from medkit.deploy import DriftMonitor, OnnxPredictor
    from medkit.deploy.gate import SanityGate
    from medkit.segmentation.io import load_png_masks
    from medkit.volumes import adrenal3d, load_dicom_series, load_nifti

    return {
        "dicom": ("x.dcm", None, open_dicom, None),
        "image": ("x.png", None, load_image, None),
        "nifti": ("x.nii.gz", None, load_nifti, None),
        "dicom series": ("x.dcm", None, lambda p: load_dicom_series([p, p]), None),
        "npz": ("x.npz", None, load_splits, None),
        "csv": ("x.csv", None, read_table, None),
        "data source": ("x.csv", None, load_source, None),
        "audited source": ("x.npz", None, audit_source, None),
        "3-D npz": ("x.npz", None, lambda p: adrenal3d(path=p), None),
        "checkpoint config": ("config.json", None, lambda p: read_config(p.parent), "config.json is missing"),
        "checkpoint weights": ("model.pt", _checkpoint_config, lambda p: load_checkpoint(p.parent), None),
        "onnx": ("m.onnx", None, OnnxPredictor, None),
        "onnx sidecar": ("m.onnx.json", lambda d: (d / "m.onnx").write_bytes(b"onnx"),
                         lambda p: OnnxPredictor(p.with_suffix("")), "has no sidecar"),
        "drift reference": ("drift.npz", None, DriftMonitor.load, None),
        "gate reference": ("gate.npz", None, SanityGate.load, None),
        "mask": ("a_mask.png", _image_beside, lambda p: load_png_masks(p.parent), "has no mask"),
    }


_CAUSES = {"missing": "does not exist", "folder": "is a folder, not a file", "fifo": r"is a named pipe \(FIFO\)",
           "symlink loop": "is a symbolic link loop", "device": "is a character device",
           "unreadable": "is not readable: permission denied"}
# a folder is itself a valid data source (a class-folder tree): for these readers "a folder" is no fault
_FOLDER_IS_VALID = {"data source", "audited source"}


def _place(cause: str, path, monkeypatch) -> None:
    """Make `path` the bad kind of thing `cause` names (skipping what this OS or user cannot make)."""
    if cause == "folder":
        path.mkdir()
    elif cause == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no os.mkfifo here")
        os.mkfifo(path)
    elif cause == "symlink loop":
        path.symlink_to(path)
    elif cause == "device":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero here")
        path.symlink_to("/dev/zero")  # named like the file the reader expects; stat follows it to the device
    elif cause == "unreadable":
        path.write_bytes(b"\x00" * 64)
        path.chmod(0)
        if os.access(path, os.R_OK):  # root reads any file: say the OS refused, as it would for another user
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(path) else real(p, mode, **kw))


@pytest.mark.timeout(60)  # a reader that opened the FIFO would block here, one reading /dev/zero never end
@pytest.mark.parametrize("cause", list(_CAUSES))
@pytest.mark.parametrize("reader", list(_readers()))
def test_every_reader_names_the_real_cause(reader, cause, tmp_path, monkeypatch):
    if cause == "folder" and reader in _FOLDER_IS_VALID:
        pytest.skip("a folder is a valid source")
    name, setup, read, own_missing = _readers()[reader]
    folder = tmp_path / "in"
    folder.mkdir()
    if setup is not None:
        setup(folder)
    path = folder / name
    _place(cause, path, monkeypatch)
    expected = own_missing if cause == "missing" and own_missing else _CAUSES[cause]
    with pytest.raises(DataError, match=expected) as caught:
        read(path)
    assert cause == "missing" or "does not exist" not in str(caught.value)  # only a missing file is said to be missing
