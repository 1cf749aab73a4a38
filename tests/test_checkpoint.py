"""Checkpoints: what config.json records, hostile model.pt and config.json refused, and no save ever half-written."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from medkit.base.errors import ConfigError, DataError, WeightsError
from medkit.cli import build_parser, main
from medkit.core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, read_config, save_checkpoint
from medkit.models import get_backbone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(seed: int):
    torch.manual_seed(seed)
    return get_backbone("resnet18", weights=None, num_classes=2)


def _same_weights(model, other) -> bool:
    return all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_config_records_sizes_channels_and_weights_hash(tmp_path):
    model = _model(0)
    save_checkpoint(tmp_path, model, image_size=64, classes=["a", "b"], input_size=128, channels=3, data="x.npz")
    config = read_config(tmp_path)
    assert (config["image_size"], config["input_size"], config["channels"]) == (64, 128, 3)
    assert len(config["weights_sha256"]) == 64 and config["data"] == {"path": "x.npz"}  # a plain path: fit's form
    loaded, _ = load_checkpoint(tmp_path)
    assert _same_weights(model, loaded)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # no temporary files left


class _Payload:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_would_run_code_is_refused_and_does_not_run(tmp_path, capsys):
    save_checkpoint(tmp_path, _model(0), image_size=48, classes=["a", "b"], input_size=28, channels=1)
    marker = tmp_path / "PAYLOAD_RAN"
    with open(tmp_path / WEIGHTS_FILE, "wb") as f:
        pickle.dump({"conv1.weight": _Payload(marker)}, f)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config.pop("weights_sha256")  # as if the attacker rewrote config.json too
    config.pop("settings_sha256")
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="can run arbitrary code") as info:
        load_checkpoint(tmp_path)
    assert "weights_only" not in str(info.value) and info.value.__cause__ is None
    assert not marker.exists()
    assert main(["export", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "arbitrary code" in err and "weights_only" not in err and "Traceback" not in err
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is real: plain pickle runs it
    assert marker.exists()


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON list"),
    ('{"backbone": "resnet18"}', "num_classes \\(missing\\)"),
    ('{"backbone": "resnet18", "num_classes": 3, "classes": ["a", "b"], "image_size": 48, "mean": [0], "std": [1]}',
     "num_classes=3 but 2 classes"),
])
def test_bad_config_json_is_refused(tmp_path, capsys, content, match):
    save_checkpoint(tmp_path, _model(0), image_size=48, classes=["a", "b"])
    (tmp_path / CONFIG_FILE).write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_checkpoint(tmp_path)
    assert main(["export", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 1
    assert CONFIG_FILE in capsys.readouterr().err


def test_weights_not_matching_config_or_not_a_state_dict(tmp_path):
    save_checkpoint(tmp_path, _model(0), image_size=48, classes=["a", "b"])
    torch.save(_model(1).state_dict(), tmp_path / WEIGHTS_FILE)  # swapped after training
    with pytest.raises(WeightsError, match="does not match config.json"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, _model(0), image_size=48, classes=["a", "b"])
    (tmp_path / WEIGHTS_FILE).write_bytes(b"")
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config.pop("weights_sha256"), config.pop("settings_sha256")
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="not a readable PyTorch file"):
        load_checkpoint(tmp_path)
    torch.save([torch.zeros(2)], tmp_path / WEIGHTS_FILE)
    with pytest.raises(WeightsError, match="not a state dict"):
        load_checkpoint(tmp_path)


def test_interrupted_save_keeps_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    """Killed at any write or rename of a save, the folder holds the old weights with the old metrics, never a mix."""
    import medkit.base.atomic as atomic
    import medkit.core.checkpoint as ckpt

    out, old, new = tmp_path / "ck", _model(0), _model(1)
    save_checkpoint(out, old, image_size=48, classes=["a", "b"], files={"metrics.json": {"run": "old"}})

    def die(*_, **__):
        raise KeyboardInterrupt

    for target, name in ((ckpt, "write_json"), (atomic, "fsync_dir"), (atomic, "_swap_in")):
        monkeypatch.setattr(target, name, die)
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(out, new, image_size=48, classes=["a", "b"], files={"metrics.json": {"run": "new"}})
        monkeypatch.undo()
        assert _same_weights(old, load_checkpoint(out)[0])
        assert json.loads((out / "metrics.json").read_text()) == {"run": "old"}
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no staged folder left beside it
    save_checkpoint(out, new, image_size=48, classes=["a", "b"], files={"metrics.json": {"run": "new"}})
    assert _same_weights(new, load_checkpoint(out)[0])
    assert json.loads((out / "metrics.json").read_text()) == {"run": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


_SAVER = """
import sys, torch
from medkit.core.checkpoint import save_checkpoint
from medkit.models import get_backbone
models = []
for seed in (0, 1):
    torch.manual_seed(seed)
    models.append(get_backbone("resnet18", weights=None, num_classes=2))
print("ready", flush=True)
i = 0
while True:  # save A, B, A, B... until killed
    save_checkpoint(sys.argv[1], models[i % 2], image_size=48, classes=["a", "b"], which=i % 2)
    i += 1
"""


def test_killed_while_saving_leaves_a_complete_checkpoint(tmp_path):
    """SIGKILL a process that saves checkpoints in a loop, at several moments: every time, what loads is whole."""
    models = [_model(0), _model(1)]
    rng = np.random.default_rng(0)
    for trial in range(2):
        out = tmp_path / f"run{trial}"
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(out)], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": ROOT})
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.3, 1.5)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (out / CONFIG_FILE).exists():
            assert not (out / WEIGHTS_FILE).exists()  # none at all: killed before the first commit
            continue
        model, config = load_checkpoint(out)
        assert _same_weights(models[config["which"]], model)  # the weights are those the config describes


def test_fit_killed_mid_epoch_leaves_previous_checkpoint_or_none(tmp_path, pneumonia):
    from medkit.data import subsample

    train, val = pneumonia["train"], pneumonia["val"]
    t, v = subsample(train.labels, 200, 1), subsample(val.labels, 60, 1)
    data = tmp_path / "tiny.npz"
    np.savez(data, train_images=train.images[t], train_labels=train.labels[t, None],
             val_images=val.images[v], val_labels=val.labels[v, None])
    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    overwrite = ["--overwrite"] if any("--overwrite" in a.option_strings for a in fit._actions) else []
    previous = get_backbone("efficientnet_lite0", weights=None, num_classes=2)
    # With a previous checkpoint in DIR (the empty-DIR case is the same run with nothing to keep).
    for out, before in ((tmp_path / "previous", previous),):
        if before is not None:
            save_checkpoint(out, before, image_size=48, classes=["normal", "pneumonia"], input_size=28, channels=1)
            config_before = (out / CONFIG_FILE).read_text()
        proc = subprocess.Popen([sys.executable, "-u", "-m", "medkit.cli", "fit", "--data", str(data), "--out",
                                 str(out), "--epochs", "40", "--no-cache", "--image-size", "48", *overwrite],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"})
        seen = ""
        while not seen.endswith("\n") or not seen.splitlines()[-1].startswith("medkit fit:"):
            line = proc.stdout.readline()  # the split report, then the line that says training starts (not --quiet)
            assert line, seen  # the process ended before training started
            seen += line
        time.sleep(2.0)
        assert proc.poll() is None, "the fit finished before it could be killed"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if before is None:
            assert not (out / WEIGHTS_FILE).exists() and not (out / CONFIG_FILE).exists()
        else:
            model, _ = load_checkpoint(out)
            assert (out / CONFIG_FILE).read_text() == config_before and _same_weights(before, model)


def test_missing_checkpoint_parts(tmp_path):
    with pytest.raises(DataError, match="not a medkit checkpoint"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, _model(0), image_size=48, classes=["a", "b"])
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(DataError, match="did not finish"):
        load_checkpoint(tmp_path)
    with pytest.raises(DataError, match="channels must be 1"):
        save_checkpoint(tmp_path, _model(0), image_size=48, classes=["a", "b"], channels=2)


def _entry(i: int, role: str = "external") -> dict:
    return {"role": role, "part": "all", "data": f"/sites/{i}", "fingerprint": "f" * 64, "n": 10, "patients": 5,
            "auc": 0.9, "ci95": {"auc": [0.8, 0.95]}, "threshold": 0.5, "date": "2025-01-01T00:00:00+00:00"}


def test_record_validation_keeps_the_weights_commit(tmp_path, monkeypatch):
    from medkit.core.checkpoint import record_validation

    model = _model(0)
    save_checkpoint(tmp_path, model, image_size=48, classes=["a", "b"], validation=[_entry(0, "internal")])
    before = read_config(tmp_path)
    config = record_validation(tmp_path, _entry(1))
    assert config == read_config(tmp_path) and config["weights_sha256"] == before["weights_sha256"]
    assert [r["data"] for r in config["validation"]] == ["/sites/0", "/sites/1"]
    assert _same_weights(model, load_checkpoint(tmp_path)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # no temporary files left
    import medkit.core.checkpoint as ckpt

    def die(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "write_json", die)  # killed while recording: the previous config stays whole
    with pytest.raises(KeyboardInterrupt):
        record_validation(tmp_path, _entry(2))
    monkeypatch.undo()
    assert read_config(tmp_path) == config
    with pytest.raises(TypeError):  # a value JSON cannot hold is refused before anything is written
        record_validation(tmp_path, {**_entry(3), "n": object()})
    assert read_config(tmp_path) == config


def test_record_validation_refuses_swapped_weights_and_a_bad_list(tmp_path):
    from medkit.core.checkpoint import record_validation

    save_checkpoint(tmp_path, _model(0), image_size=48, classes=["a", "b"])
    torch.save(_model(1).state_dict(), tmp_path / WEIGHTS_FILE)  # a record would describe weights nobody validated
    with pytest.raises(WeightsError, match="does not match"):
        record_validation(tmp_path, _entry(0))
    save_checkpoint(tmp_path, _model(0), image_size=48, classes=["a", "b"], validation={"not": "a list"})
    with pytest.raises(ConfigError, match="not the list"):
        record_validation(tmp_path, _entry(0))


_RECORDER = """
import sys
from medkit.core.checkpoint import record_validation
for i in range(int(sys.argv[2])):
    record_validation(sys.argv[1], {"role": "external", "data": f"{sys.argv[3]}-{i}"})
"""


def test_concurrent_records_are_all_kept(tmp_path):
    save_checkpoint(tmp_path, _model(0), image_size=48, classes=["a", "b"])
    procs = [subprocess.Popen([sys.executable, "-c", _RECORDER, str(tmp_path), "15", name],
                              env={**os.environ, "PYTHONPATH": ROOT}) for name in ("p", "q")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    data = [r["data"] for r in read_config(tmp_path)["validation"]]
    assert sorted(data) == sorted(f"{name}-{i}" for name in "pq" for i in range(15))
    load_checkpoint(tmp_path)


def test_nan_weights_are_named_not_blamed_on_softmax(tmp_path):
    from medkit.evaluation import check_probs

    model = _model(0)
    with torch.no_grad():
        model.fc.weight[0, :3] = float("nan")  # what a diverged run leaves
        model.layer1[0].bn1.running_var[0] = float("inf")
    save_checkpoint(tmp_path, model, image_size=64, classes=["a", "b"], input_size=64, channels=3, data="x.npz")
    with pytest.raises(WeightsError, match=r"NaN or inf values in 2 tensor\(s\): .*fc.weight \(3 of 1024\)") as exc:
        load_checkpoint(tmp_path)
    assert "layer1.0.bn1.running_var (1 of 64)" in str(exc.value) and "softmax" not in str(exc.value)
    with pytest.raises(DataError, match=r"NaN or inf in 1 of 2 row\(s\).*NaN/inf weights") as exc:
        check_probs([[0.5, 0.5], [float("nan"), float("nan")]])
    assert "softmax" not in str(exc.value)
    with pytest.raises(DataError, match="Apply softmax"):  # logits, the case the hint is for, still get it
        check_probs([[2.0, -1.0]])


# --- schema versions: every older config.json loads through migrate_config --------------------------------------

def _saved(tmp_path):
    save_checkpoint(tmp_path / "ck", _model(0), image_size=32, classes=["a", "b"], input_size=28, channels=1,
                    recipe={"weights": "DEFAULT"}, data={"path": "/data/train.npz", "fingerprint": "f"})
    return json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())


def _rewrite(tmp_path, config):
    (tmp_path / "ck" / CONFIG_FILE).write_text(json.dumps(config))
    return tmp_path / "ck"


def test_checkpoint_written_now_is_the_current_schema_typed(tmp_path):
    from medkit.core.checkpoint import SCHEMA, CheckpointConfig, checkpoint_config

    raw = _saved(tmp_path)
    config = checkpoint_config(tmp_path / "ck")
    assert raw["format"] == config.schema == SCHEMA
    assert (config.task, config.weights, config.data_path, config.input_size, config.channels) == (
        "single_label", "DEFAULT", "/data/train.npz", 28, 1)
    assert CheckpointConfig.from_dict(config.to_dict()) == config
    assert config.preprocess().image_size == 32 and config.preprocess().mean.flatten().tolist() == pytest.approx(
        config.mean)


def test_v2_checkpoint_migrates_task_and_weights_from_its_recipe(tmp_path):
    from medkit.core.checkpoint import SCHEMA, checkpoint_config

    raw = _saved(tmp_path)
    v2 = {k: v for k, v in raw.items() if k not in ("task", "weights")} | {"format": "medkit-checkpoint/2"}
    config = checkpoint_config(_rewrite(tmp_path, v2))
    assert (config.schema, config.task, config.weights) == (SCHEMA, "single_label", "DEFAULT")
    multi = v2 | {"findings": ["a", "b"]}
    assert checkpoint_config(_rewrite(tmp_path, multi)).task == "multilabel"
    model, _ = load_checkpoint(tmp_path / "ck")  # the weights still match: migration touches no digested field
    assert _same_weights(model, _model(0))


def test_v1_checkpoint_without_format_migrates_its_data_string_and_unknown_sizes(tmp_path):
    from medkit.core.checkpoint import checkpoint_config

    raw = _saved(tmp_path)
    drop = ("format", "task", "weights", "input_size", "channels", "settings_sha256")
    v1 = {k: v for k, v in raw.items() if k not in drop} | {"data": "/data/old.npz"}
    config = checkpoint_config(_rewrite(tmp_path, v1))
    assert (config.data_path, config.data, config.input_size, config.channels) == (
        "/data/old.npz", {"path": "/data/old.npz"}, None, None)


def test_unknown_checkpoint_format_is_refused_by_name(tmp_path):
    raw = _saved(tmp_path)
    with pytest.raises(ConfigError, match="medkit-checkpoint/9.*is not one medkit reads"):
        read_config(_rewrite(tmp_path, raw | {"format": "medkit-checkpoint/9"}))
