"""The data audit (medkit.data.audit, `medkit audit`, and the gate in front of every `medkit fit`)."""

import json
import shutil

import numpy as np
import pytest
from folders import kermany_folder
from PIL import Image

from medkit.base.errors import DataError
from medkit.cli import main
from medkit.data.audit import NEAR_BITS, audit_source
from medkit.data.splits import group_split
from medkit.fit import RecipeConfig, fit_recipe


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean Kermany-style class-folder tree: 2 classes x 16 patients x 2 images (48 px noise)."""
    return kermany_folder(tmp_path_factory.mktemp("clean") / "train")


def _codes(audit, level=None) -> list:
    return sorted(f.code for f in audit.findings if level is None or f.level == level)


def _csv(tmp_path, clean, labels=None, paths=None, name="labels.csv"):
    """Write a CSV over the clean folder's images; `labels` / `paths` override the folder's own."""
    files = sorted(clean.rglob("*.png"))
    paths = paths or [str(f) for f in files]
    labels = labels or [f.parent.name for f in files]
    path = tmp_path / name
    path.write_text("path,label\n" + "".join(f"{p},{lab}\n" for p, lab in zip(paths, labels)))
    return path


def test_a_clean_folder_passes(clean):
    audit = audit_source(clean)
    assert audit.findings == [] and not audit.errors
    assert audit.stats["items"] == 64 and audit.stats["classes"] == ["NORMAL", "PNEUMONIA"]
    audit.raise_on_errors()  # nothing to raise


def test_every_path_listed_twice(tmp_path, clean):
    files = [str(f) for f in sorted(clean.rglob("*.png"))]
    labels = [p.split("/")[-2] for p in files]
    audit = audit_source(_csv(tmp_path, clean, labels * 2, files * 2))
    assert _codes(audit, "error") == ["duplicate_path"]
    assert audit.errors[0].count == 64 and "on lines [2, 66]" in audit.errors[0].examples[0]


def test_one_path_with_two_labels(tmp_path, clean):
    files = [str(f) for f in sorted(clean.rglob("*.png"))]
    labels = [p.split("/")[-2] for p in files]
    audit = audit_source(_csv(tmp_path, clean, labels + ["PNEUMONIA"], files + [files[0]]))
    assert _codes(audit, "error") == ["conflicting_labels"]
    assert "NORMAL" in audit.errors[0].examples[0] and "PNEUMONIA" in audit.errors[0].examples[0]


def test_byte_identical_copies_under_new_names(tmp_path, clean):
    data = shutil.copytree(clean, tmp_path / "train")
    original = next((data / "NORMAL").glob("*.png"))
    shutil.copy(original, data / "NORMAL" / "IM-0999-0001.png")  # another patient key: the carve may split them
    audit = audit_source(data)
    assert _codes(audit, "error") == ["identical_files"]
    assert original.name in audit.errors[0].examples[0]


def test_copies_across_train_and_test_and_with_two_labels(tmp_path, clean):
    root = tmp_path / "xray"
    shutil.copytree(clean, root / "train")
    kermany_folder(root / "test", n_patients=4, seed=1, start=100)
    normal, pneumonia = sorted((root / "train" / "NORMAL").glob("*.png"))[0], sorted(
        (root / "train" / "PNEUMONIA").glob("*.png"))[0]
    shutil.copy(normal, root / "test" / "NORMAL" / "IM-0500-0001.png")
    shutil.copy(pneumonia, root / "test" / "NORMAL" / "IM-0501-0001.png")  # a pneumonia film filed as normal
    audit = audit_source(root)
    assert _codes(audit, "error") == ["conflicting_labels", "identical_files"]
    assert "1 already do" in next(f for f in audit.errors if f.code == "identical_files").message


def test_near_identical_copy_is_a_warning(tmp_path, clean):
    data = shutil.copytree(clean, tmp_path / "train")
    y, x = np.mgrid[0:96, 0:96]
    film = (120 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0)).astype(int)  # smooth, like an X-ray at 17 x 16 px
    Image.fromarray(film.astype(np.uint8)).save(data / "PNEUMONIA" / "person998_virus_1.png")
    Image.fromarray(np.clip(film + 3, 0, 255).astype(np.uint8)).save(data / "PNEUMONIA" / "person999_virus_1.jpeg",
                                                                      quality=90)  # brighter, re-encoded
    audit = audit_source(data)
    assert _codes(audit) == ["near_identical"] and not audit.errors
    assert "1 of them under two patient keys" in audit.findings[0].message
    assert audit_source(data, near=False).findings == []  # bytes differ: only the perceptual hash sees it


def test_label_typo_names_the_intended_class(tmp_path, clean):
    files = sorted(clean.rglob("*.png"))
    labels = [f.parent.name for f in files]
    for i in (40, 41, 42):
        labels[i] = "PNEUMONA"
    audit = audit_source(_csv(tmp_path, clean, labels))
    typo = audit.errors[0]
    assert typo.code == "label_typo" and typo.count == 3  # (too_few_images follows: 3 images cannot be carved)
    assert "misspelling of 'PNEUMONIA'" in typo.message


def test_numbered_classes_are_not_typos(tmp_path, clean):
    files = sorted(clean.rglob("*.png"))
    labels = ["grade1"] * 30 + ["grade2"] * 30 + ["grade3"] * 4
    assert "label_typo" not in _codes(audit_source(_csv(tmp_path, clean, labels, [str(f) for f in files])))


def test_mixed_label_kinds(tmp_path, clean):
    files = sorted(clean.rglob("*.png"))
    labels = ["0" if f.parent.name == "NORMAL" else "PNEUMONIA" for f in files]
    audit = audit_source(_csv(tmp_path, clean, labels))
    assert _codes(audit, "error") == ["mixed_label_kinds"] and audit.errors[0].count == 32


def test_test_class_missing_from_train_and_patients_across_parts(tmp_path, clean):
    root = tmp_path / "xray"
    shutil.copytree(clean, root / "train")
    kermany_folder(root / "test", n_patients=3, seed=2, start=0, classes=("NORMAL", "PNEUMONIA", "COVID"))
    audit = audit_source(root)
    assert _codes(audit, "error") == ["class_not_in_train"] and "COVID" in audit.errors[0].message
    assert "patients_across_parts" in _codes(audit, "warning")  # start=0: the test patients reuse train keys


def test_one_image_per_class_is_a_clear_error(tmp_path, clean):
    data = tmp_path / "tiny"
    for cls in ("NORMAL", "PNEUMONIA"):
        (data / cls).mkdir(parents=True)
        shutil.copy(sorted((clean / cls).glob("*.png"))[0], data / cls)
    audit = audit_source(data)
    assert _codes(audit, "error") == ["too_few_images"] and "fewer than 3" in audit.errors[0].message
    with pytest.raises(DataError, match="too_few_images"):
        fit_recipe(data, tmp_path / "o", RecipeConfig(image_size=48, epochs=1), progress=False, log=lambda *_: None)
    with pytest.raises(DataError, match="Each class needs several images"):  # the split itself, audit or not
        group_split(np.array(["a", "b"]), 0.2, 0, np.array([0, 1]))


def test_npz_copies_across_parts(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 28, 28), dtype=np.uint8)
    labels = np.arange(40)[:, None] % 2
    val = images[:10].copy()
    path = tmp_path / "m.npz"
    np.savez(path, train_images=images, train_labels=labels, val_images=val, val_labels=labels[:10])
    audit = audit_source(path)
    assert _codes(audit, "error") == ["identical_files"] and audit.errors[0].count == 10


def test_accept_turns_an_error_into_a_recorded_warning(tmp_path, clean):
    files = sorted(clean.rglob("*.png"))
    labels = ["0" if f.parent.name == "NORMAL" else "PNEUMONIA" for f in files]
    path = _csv(tmp_path, clean, labels)
    audit = audit_source(path, accept=("mixed_label_kinds",))
    assert not audit.errors and audit.warnings[0].accepted
    assert audit.record()["warnings"][0]["code"] == "mixed_label_kinds"
    with pytest.raises(DataError, match="unknown audit code"):
        audit_source(path, accept=("mixed",))


def test_cli_report_exit_codes_and_json(tmp_path, clean, capsys):
    assert main(["audit", str(clean)]) == 0
    assert "no findings" in capsys.readouterr().out
    data = shutil.copytree(clean, tmp_path / "train")
    shutil.copy(next((data / "NORMAL").glob("*.png")), data / "NORMAL" / "copy.png")
    assert main(["audit", str(data), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 1 and report["findings"][0]["code"] == "identical_files"
    assert main(["audit", str(data), "--accept", "identical_files"]) == 0
    assert "accepted error" in capsys.readouterr().out


def test_cli_near_bits_default_is_the_audits():
    from medkit.cli import build_parser

    args = build_parser(only="audit").parse_args(["audit", "x"])
    assert args.near_bits == NEAR_BITS


def test_fit_refuses_errors_and_records_warnings_and_accepted_errors(tmp_path, clean):
    data = shutil.copytree(clean, tmp_path / "train")
    normal = sorted((data / "NORMAL").glob("*.png"))
    shutil.copy(normal[0], data / "NORMAL" / "IM-0999-0001.png")  # an error: a copy under another patient key
    shutil.copy(normal[1], data / "NORMAL" / (normal[0].stem[:-1] + "7.png"))  # a warning: kept within patient 0
    cfg = RecipeConfig(image_size=48, epochs=1, batch_size=16, freeze="head")
    lines = []
    with pytest.raises(DataError, match="identical_files"):
        fit_recipe(data, tmp_path / "refused", cfg, progress=False, log=lines.append)
    assert not (tmp_path / "refused" / "config.json").exists()
    fit_recipe(data, tmp_path / "ok", cfg, progress=False, log=lines.append, accept_audit=["identical_files"])
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    warned = {(w["code"], w["accepted"]) for w in config["audit"]["warnings"]}
    assert warned == {("identical_files", True), ("identical_files_kept", False)}
    assert any("identical_files_kept" in line for line in lines)  # printed, not only recorded
    metrics = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert metrics["audit"] == config["audit"]
