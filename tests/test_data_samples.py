"""Every bundled sample file is listed in data_samples/SHA256SUMS, with its README entry, and matches its hash."""

import hashlib
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
NOT_DATA = {"README.md", "SHA256SUMS", "make_chest_xray_sample.py", "make_second_site_sample.py", "make_volume_samples.py",
            "make_modality_samples.py", "make_nih_sample.py"}
FOLDERS = ("chest_xray/", "chest_xray_external/", "isic_dermoscopy/", "nih_cxr14/")  # sample folders: README names the folder, SHA256SUMS every file in it


def _sums() -> dict:
    sums = {}
    for line in (SAMPLES / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def _data_files() -> set:
    return {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*")
            if p.is_file() and p.name not in NOT_DATA and "__pycache__" not in p.parts}


def test_every_sample_file_has_a_checksum_and_readme_entry():
    assert _data_files() == set(_sums()), "data_samples/ and SHA256SUMS disagree; add the file's sha256 (sha256sum FILE)"
    readme = (SAMPLES / "README.md").read_text()
    for name, digest in _sums().items():
        if name.startswith(FOLDERS):
            assert name.split("/")[0] + "/" in readme, f"README.md lacks the folder of {name}"
        else:
            assert name in readme and digest in readme, f"README.md lacks {name} or its sha256"


def test_no_hidden_files_in_samples():
    hidden = [p for p in SAMPLES.rglob(".*")]
    assert not hidden, f"hidden files would be shipped: {hidden[:3]}"


@pytest.mark.parametrize("name", sorted(n for n in _sums() if not n.startswith(FOLDERS)))
def test_sample_checksum(name):
    digest = hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest()
    assert digest == _sums()[name], f"{name} does not match its published sha256"


@pytest.mark.parametrize("folder", FOLDERS)
def test_sample_folder_checksums(folder):
    wrong = [name for name, digest in _sums().items() if name.startswith(folder)
             and hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest() != digest]
    assert not wrong, f"{len(wrong)} file(s) under {folder} do not match SHA256SUMS, e.g. {wrong[:3]}"


def test_pneumonia_sample_hash_is_the_published_one():
    assert _sums()["pneumoniamnist_28_trainval.npz"] == \
        "a2b9d70b5afc41006ddf0df6eca7ed7ae1680467335a5e12272ec3e4995cfb2a"


def test_chest_xray_sample_is_small_and_patient_grouped():
    from medkit.data import patient_key

    files = sorted((SAMPLES / "chest_xray" / "train").rglob("*.jpeg"))
    assert 1200 <= len(files) <= 1400
    assert sum(p.stat().st_size for p in files) < 8e6
    assert all(patient_key(p.name) for p in files), "every file name must carry its patient key"


def test_second_site_sample_is_the_whole_external_dev_half_and_small():
    from medkit.data import patient_key

    files = {cls: sorted((SAMPLES / "chest_xray_external" / cls).glob("*.jpeg")) for cls in ("NORMAL", "PNEUMONIA")}
    assert {cls: len(f) for cls, f in files.items()} == {"NORMAL": 119, "PNEUMONIA": 182}
    every = files["NORMAL"] + files["PNEUMONIA"]
    assert sum(p.stat().st_size for p in every) < 2e6
    assert len({patient_key(p.name) for p in every}) == 203, "the external dev half holds 203 patients"


def test_nih_sample_is_small_grey_and_names_its_provider():
    from PIL import Image

    images = sorted((SAMPLES / "nih_cxr14" / "images").glob("*.png"))
    table = (SAMPLES / "nih_cxr14" / "metadata.csv").read_text().splitlines()
    assert len(images) == 1000 and len(table) == 1001 and table[0].startswith("image,findings,follow_up,patient_id")
    assert sum(p.stat().st_size for p in images) < 3e6
    with Image.open(images[0]) as img:
        assert img.mode == "L" and img.size == (64, 64)
    readme = (SAMPLES / "README.md").read_text()  # NIH's terms: the provider, the download site and the citation
    assert all(s in readme for s in ("NIH Clinical Center", "nihcc.app.box.com/v/ChestXray-NIHCC", "ChestX-ray8"))
