"""medkit.paths: a bad input path is named for what it is (loop, folder, FIFO, device...), never opened first."""

import os
import sys

import pytest

from medkit.data import load_image
from medkit.deploy import deidentify_file
from medkit.errors import DataError
from medkit.paths import check_dir, check_file, check_output_file

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
