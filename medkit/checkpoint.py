"""A trained model on disk: `model.pt` (state dict) + `config.json` (everything needed to rebuild and preprocess).

`medkit fit` writes one, `medkit evaluate` and `medkit export` read it. Loading always uses
`torch.load(..., weights_only=True)`: a `model.pt` whose pickle would build arbitrary Python objects
(and so could run code) is refused, never retried unsafely. The config says which backbone the
weights belong to, the raw input size and channels, and the sha256 of `model.pt`.

A save never leaves a half-written checkpoint: the weights go to `model.pt.new` (atomically), then
`config.json` is replaced atomically (the commit point: it names the new weights' sha256), then
`model.pt.new` is renamed to `model.pt`. Killed before the commit, the folder still holds the
previous checkpoint (or none); killed after it, `load_checkpoint` finishes the rename itself.

`record_validation` appends what a checkpoint was later validated on (`medkit evaluate --record`) to the
config's `validation` list: config.json is rewritten through the same atomic commit, naming the same
weights sha256, so the weights are never touched and a crash leaves the old record or the new one.
"""

import contextlib
import json
import os
from pathlib import Path

from torch import nn

from .atomic import read_state_dict, torch_save, write_json
from .cache import sha256sum
from .errors import ConfigError, DataError, WeightsError
from .models import get_backbone, get_spec

__all__ = ["save_checkpoint", "load_checkpoint", "read_config", "read_state_dict", "record_validation", "CONFIG_FILE",
           "WEIGHTS_FILE"]

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.pt"
_PENDING = WEIGHTS_FILE + ".new"  # weights written but not yet committed by config.json
_REQUIRED = {"backbone": str, "num_classes": int, "classes": list, "image_size": int, "mean": list, "std": list}


def save_checkpoint(out_dir, model: nn.Module, *, image_size: int, classes, threshold: float = 0.5,
                    input_size: int | None = None, channels: int | None = None, **extra) -> Path:
    """Write `model` and its config into `out_dir`, atomically (the previous checkpoint survives a crash).

    Args:
        image_size: the side the network was trained at (after the in-graph resize).
        input_size, channels: the side and channel count (1 grey, 3 colour) of the raw training images,
            which `medkit export` gives the deployed model; None leaves them for export to ask.
        extra: anything JSON-serialisable worth keeping (recipe, data file, splits).
    """
    out_dir = Path(out_dir)
    spec = get_spec(model)
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 (grey) or 3 (colour), got {channels!r}.")
    config = {"format": "medkit-checkpoint/2", "backbone": spec.name, "num_classes": len(classes),
              "classes": list(classes), "image_size": int(image_size),
              "input_size": None if input_size is None else int(input_size),
              "channels": None if channels is None else int(channels),
              "mean": list(spec.mean), "std": list(spec.std), "threshold": float(threshold), **extra}
    json.dumps(config)  # a value JSON cannot hold fails here, before anything is written
    pending = torch_save(model.state_dict(), out_dir / _PENDING)
    config["weights_sha256"] = sha256sum(pending)
    write_json(out_dir / CONFIG_FILE, config)  # the commit point
    os.replace(pending, out_dir / WEIGHTS_FILE)
    return out_dir


def read_config(ckpt_dir) -> dict:
    """Return the config of a checkpoint folder, refusing a missing, non-JSON or incomplete one."""
    path = Path(ckpt_dir) / CONFIG_FILE
    if not path.is_file():
        raise DataError(f"{ckpt_dir} is not a medkit checkpoint: {CONFIG_FILE} is missing. Train one with `medkit fit`.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); the checkpoint is damaged. Retrain it with "
                          "`medkit fit`, or restore config.json from a copy.") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path} holds a JSON {type(config).__name__}, not the object `medkit fit` writes.")
    bad = [f"{k} (missing)" if k not in config else f"{k}={config[k]!r} (not {t.__name__})"
           for k, t in _REQUIRED.items() if not isinstance(config.get(k), t) or isinstance(config.get(k), bool)]
    if not bad and config["num_classes"] != len(config["classes"]):
        bad.append(f"num_classes={config['num_classes']} but {len(config['classes'])} classes")
    if bad:
        raise ConfigError(f"{path} is incomplete or inconsistent: {'; '.join(bad)}. Retrain with `medkit fit` "
                          "rather than editing it by hand.")
    return config


def _weights_file(ckpt_dir: Path, config: dict) -> Path:
    """Return the weights file that config.json commits to, finishing an interrupted save if needed."""
    path, expected = ckpt_dir / WEIGHTS_FILE, config.get("weights_sha256")
    pending = ckpt_dir / _PENDING
    if expected is None or (path.is_file() and sha256sum(path) == expected):
        if pending.is_file() and expected is not None:
            pending.unlink(missing_ok=True)  # left by a save killed before its commit
        return path
    if pending.is_file() and sha256sum(pending) == expected:
        try:
            os.replace(pending, path)  # killed between the commit and the rename: finish it
        except OSError:
            return pending  # read-only folder: read the committed file where it is
        return path
    if not path.is_file():
        raise DataError(f"{ckpt_dir} has no {WEIGHTS_FILE}; the training run did not finish.")
    raise WeightsError(f"{path} does not match {CONFIG_FILE} (sha256 differs): the weights were replaced or "
                       "damaged after training. Retrain with `medkit fit` or restore the folder from a copy.")


def load_checkpoint(ckpt_dir, backbone: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint folder and return (model in eval mode, config)."""
    ckpt_dir = Path(ckpt_dir)
    config = read_config(ckpt_dir)
    if backbone is not None and backbone != config["backbone"]:
        raise WeightsError(f"Checkpoint {ckpt_dir} holds a {config['backbone']} model, not {backbone}.")
    model = get_backbone(config["backbone"], weights=None, num_classes=config["num_classes"])
    state = read_state_dict(_weights_file(ckpt_dir, config))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"The weights in {ckpt_dir} do not fit a {config['backbone']} with "
                           f"{config['num_classes']} classes: {str(exc)[:200]}") from exc
    return model.eval(), config


@contextlib.contextmanager
def _locked(folder: Path):
    """Hold an exclusive lock on `folder` so two `--record`s cannot both read the old list and drop each other's."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; a lost record there is the price of a concurrent --record
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def record_validation(ckpt_dir, entry: dict) -> dict:
    """Append one validation `entry` to the checkpoint's config.json and return the new config.

    The weights must still match the sha256 the config commits to (a record describes those weights, not
    others); the rewritten config keeps that sha256, so `load_checkpoint` loads the same model afterwards.
    """
    ckpt_dir = Path(ckpt_dir)
    with _locked(ckpt_dir):
        config = read_config(ckpt_dir)
        _weights_file(ckpt_dir, config)  # refuses weights replaced or damaged since the fit
        records = config.get("validation", [])
        if not isinstance(records, list):
            raise ConfigError(f"{ckpt_dir / CONFIG_FILE}: `validation` is a {type(records).__name__}, not the list "
                              "medkit writes. Restore config.json from a copy, or retrain with `medkit fit`.")
        updated = {**config, "validation": [*records, entry]}
        write_json(ckpt_dir / CONFIG_FILE, updated)  # serialised first: a value JSON cannot hold writes nothing
    return updated
