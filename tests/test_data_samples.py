"""Every bundled sample file is listed in data_samples/SHA256SUMS, with its README entry, and matches its hash."""

import hashlib
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
NOT_DATA = {"README.md", "SHA256SUMS"}


def _sums() -> dict:
    sums = {}
    for line in (SAMPLES / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def test_every_sample_file_has_a_checksum_and_readme_entry():
    files = {p.name for p in SAMPLES.iterdir() if p.is_file() and p.name not in NOT_DATA}
    assert files == set(_sums()), "data_samples/ and SHA256SUMS disagree; add the file's sha256 (sha256sum FILE)"
    readme = (SAMPLES / "README.md").read_text()
    for name, digest in _sums().items():
        assert name in readme and digest in readme, f"README.md lacks {name} or its sha256"


@pytest.mark.parametrize("name", sorted(_sums()))
def test_sample_checksum(name):
    digest = hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest()
    assert digest == _sums()[name], f"{name} does not match its published sha256"


def test_pneumonia_sample_hash_is_the_published_one():
    assert _sums()["pneumoniamnist_28_trainval.npz"] == \
        "a2b9d70b5afc41006ddf0df6eca7ed7ae1680467335a5e12272ec3e4995cfb2a"
