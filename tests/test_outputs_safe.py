"""Outputs that cannot lie or vanish: hand-edited checkpoints refused by field, no command writing over what it
reads, a full disk or read-only folder one clear error with every old file intact, bad CLI values usage errors."""

import errno
import json
import pathlib
import tempfile

import nbformat
import pytest
import torch
from test_course import _notebook

from medkit.base.errors import ConfigError, DataError
from medkit.cli import main
from medkit.core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, data_path, load_checkpoint, read_config, save_checkpoint
from medkit.models import get_backbone


@pytest.fixture
def ckpt(tmp_path):
    """A two-class resnet18 checkpoint as fit writes one (recipe trained at 48 px, 28 px grey inputs)."""
    torch.manual_seed(0)
    model = get_backbone("resnet18", weights=None, num_classes=2)
    return save_checkpoint(tmp_path / "ck", model, image_size=48, classes=["normal", "pneumonia"], input_size=28,
                           channels=1, recipe={"image_size": 48}, files={"metrics.json": {"run": 1}})


def _edit(ckpt, keep_digest=False, **fields):
    config = json.loads((ckpt / CONFIG_FILE).read_text())
    config.update(fields)
    if not keep_digest:
        config.pop("settings_sha256")  # as if edited by someone who knows to drop it
    (ckpt / CONFIG_FILE).write_text(json.dumps(config))


@pytest.mark.parametrize("fields, named", [
    ({"threshold": 7.5}, "threshold=7.5"), ({"threshold": "0.5"}, "threshold='0.5'"),
    ({"image_size": 224}, "image_size=224 but the recipe trained the weights at 48"),
    ({"input_size": -64}, "input_size=-64"), ({"mean": [0, 0, 0], "std": [0, 0, 0]}, "std=[0, 0, 0]"),
    ({"std": [float("nan")] * 3}, "std=[nan"), ({"classes": ["a", "a"]}, "unique"), ({"classes": []}, "non-empty"),
    ({"num_classes": 3, "classes": ["a", "b", "c"]}, "do not fit"),
])
def test_hand_edited_config_is_refused_naming_the_field(ckpt, fields, named, capsys):
    _edit(ckpt, **fields)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(ckpt.parent / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not (ckpt.parent / "m.onnx").exists()


def test_swapped_class_order_is_refused_by_the_settings_digest(ckpt):
    _edit(ckpt, keep_digest=True, classes=["pneumonia", "normal"])
    with pytest.raises(ConfigError, match="edited after training"):
        load_checkpoint(ckpt)


def test_data_path_reads_what_fit_writes_and_the_string_form():
    assert data_path({"data": {"path": "/x/train", "fingerprint": "f"}}) == "/x/train"
    assert data_path({"data": "/x/a.npz"}) == "/x/a.npz"
    assert data_path({}) is None and data_path({"data": {"fingerprint": "f"}}) is None


def _disk_full(*_, **__):
    raise OSError(errno.ENOSPC, "No space left on device")


def _read_only(*_, **__):
    raise OSError(errno.EROFS, "Read-only file system")


@pytest.mark.parametrize("fail, why", [(_disk_full, "disk is full"), (_read_only, "read-only")])
def test_save_on_full_disk_or_read_only_keeps_the_old_checkpoint(ckpt, monkeypatch, fail, why):
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    monkeypatch.setattr(pathlib.Path, "write_bytes", fail)  # every medkit writer ends in one write_bytes
    model = get_backbone("resnet18", weights=None, num_classes=2)
    with pytest.raises(DataError, match=why):
        save_checkpoint(ckpt, model, image_size=48, classes=["normal", "pneumonia"], files={"metrics.json": {}})
    monkeypatch.setattr(tempfile, "mkdtemp", fail)  # cannot even make the staging folder
    with pytest.raises(DataError, match=why):
        save_checkpoint(ckpt, model, image_size=48, classes=["normal", "pneumonia"])
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["ck"]


@pytest.mark.parametrize("fail, why", [(_disk_full, "disk is full"), (_read_only, "read-only")])
def test_clean_and_student_on_full_disk_or_read_only_change_nothing(tmp_path, monkeypatch, capsys, fail, why):
    src = _notebook(tmp_path / "01_x.ipynb")
    (tmp_path / "st").mkdir()
    old_copy = (tmp_path / "st" / "01_x.ipynb")
    old_copy.write_text("previous copy")
    before = src.read_bytes()
    monkeypatch.setattr(pathlib.Path, "write_bytes", fail)
    assert main(["clean", str(src)]) == 1
    assert main(["student", "--out", str(tmp_path / "st"), str(src)]) == 1
    err = capsys.readouterr().err
    assert err.count(why) == 2 and "Traceback" not in err
    assert src.read_bytes() == before and old_copy.read_text() == "previous copy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01_x.ipynb", "st"]


def test_student_never_writes_over_an_input(tmp_path, capsys):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    a, b = _notebook(tmp_path / "a" / "01_x.ipynb"), _notebook(tmp_path / "b" / "01_x.ipynb")
    before = a.read_bytes()
    assert main(["student", "--out", str(a.parent), str(a)]) == 1  # the hostile tester's `--out nb nb/lesson`
    assert "over a notebook it reads" in capsys.readouterr().err and a.read_bytes() == before
    assert main(["student", "--out", str(tmp_path / "st"), str(a), str(b)]) == 1
    assert "same name" in capsys.readouterr().err and not (tmp_path / "st").exists()


def _v3(path):
    nb = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": ""}, "worksheets": [{"metadata": {}, "cells": [
        {"cell_type": "code", "input": "1 + 1", "language": "python", "collapsed": False, "metadata": {},
         "prompt_number": 1, "outputs": [{"output_type": "pyout", "prompt_number": 1, "metadata": {}, "text": ["2"]}]}]}]}
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.parametrize("content, message", [
    (lambda p: p.write_text('{"cells": [{"cell_type": "co'), "truncated or damaged"),
    (lambda p: p.write_text("[1, 2]"), "not a Jupyter notebook"),
    (lambda p: p.write_text('{"nbformat": 4, "cells": 3}'), "without a list of cells"),
])
def test_clean_refuses_malformed_notebooks_and_changes_nothing(tmp_path, capsys, content, message):
    good, bad = _notebook(tmp_path / "01_x.ipynb"), tmp_path / "02_bad.ipynb"
    content(bad)
    before = good.read_bytes(), bad.read_bytes()
    assert main(["clean", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert message in err and "02_bad.ipynb" in err and "Traceback" not in err
    assert (good.read_bytes(), bad.read_bytes()) == before  # the good one is not cleaned either: all or nothing


def test_clean_refuses_a_csv(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("path,label\n")
    assert main(["clean", str(tmp_path / "labels.csv")]) == 1
    assert "is not a notebook" in capsys.readouterr().err


def test_clean_converts_an_nbformat3_notebook_and_strips_its_outputs(tmp_path):
    path = _v3(tmp_path / "old.ipynb")
    assert main(["clean", "--check", str(path)]) == 1
    assert main(["clean", str(path)]) == 0
    nb = nbformat.read(path, as_version=4)
    assert nb.nbformat == 4 and nb.cells[0].source == "1 + 1" and nb.cells[0].outputs == []
    assert main(["clean", "--check", str(path)]) == 0


@pytest.mark.parametrize("flag, value", [("--n-verify", "0"), ("--input-size", "-64"), ("--tolerance", "nan"),
                                         ("--n-verify", "many")])
def test_export_refuses_bad_values_as_usage_errors(ckpt, flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", "--checkpoint", str(ckpt), "--out", str(ckpt.parent / "m.onnx"), flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


def test_corrupt_drift_reference_is_one_clear_error(tmp_path, capsys):
    from medkit.deploy import DriftMonitor

    path = tmp_path / "m.onnx.drift.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a drift reference"):
        DriftMonitor.load(path)


def test_checkpoint_records_weights_and_settings_digests(ckpt):
    config = read_config(ckpt)
    assert len(config["weights_sha256"]) == 64 and len(config["settings_sha256"]) == 64
    assert sorted(p.name for p in ckpt.iterdir()) == [CONFIG_FILE, "metrics.json", WEIGHTS_FILE]


def test_interrupted_between_the_two_renames_puts_the_old_folder_back(ckpt, monkeypatch):
    import os

    import medkit.base.atomic as atomic

    real = os.replace

    def die_moving_the_new_one_in(src, dst):
        if str(dst) == str(ckpt) and str(src).endswith(".staged"):  # the old folder is aside already
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", die_moving_the_new_one_in)
    model = get_backbone("resnet18", weights=None, num_classes=2)
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(ckpt, model, image_size=48, classes=["normal", "pneumonia"])
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before  # the previous folder was put back
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["ck"]
    os.rename(ckpt, ckpt.parent / ".ck.x1.old")  # what a SIGKILL at that instant leaves: the message says so
    with pytest.raises(DataError, match=r"\.ck\.x1\.old.*\.old is the previous checkpoint"):
        read_config(ckpt)
