"""A trained model on disk: `model.pt` (state dict) + `config.json` (everything needed to rebuild and preprocess).

`medkit fit` writes one, `medkit evaluate` and `medkit export` read it. Loading always uses
`torch.load(..., weights_only=True)`: a `model.pt` whose pickle would build arbitrary Python objects
(and so could run code) is refused, never retried unsafely. The config says which backbone the
weights belong to, the raw input size and channels, and the sha256 of `model.pt`.

A save never leaves a half-written or mixed checkpoint: `model.pt`, `config.json` and every file that
belongs with them (`metrics.json`, the sanity gate's `gate.npz`, which names the weights' sha256) are
written into a temporary folder beside the checkpoint, which then replaces the checkpoint folder as a
whole (`medkit.base.atomic.atomic_folder`). Killed or failing before that, the folder still holds the
previous checkpoint (or none), never new weights beside old metrics or an old gate. Other files a user
keeps in an overwritten checkpoint folder (notes) are carried into the new one; a file the save names
with no content (None) is one the new checkpoint lacks, so the old one is not carried.

`read_config` checks the schema, naming the field that is wrong: classes non-empty, unique and as many
as `num_classes`; threshold a number in [0, 1]; sizes positive; mean/std finite with std > 0; the
image size the one the recipe trained at. The config also records `settings_sha256`, a digest of the
fields that decide what the model's outputs mean (classes and their order, threshold, sizes, mean/std)
together with the weights' sha256, so a hand edit of any of them is refused rather than trusted.

`record_validation` appends what a checkpoint was later validated on (`medkit evaluate --record`) to the
config's `validation` list: config.json is rewritten through the same atomic commit, naming the same
weights sha256, so the weights are never touched and a crash leaves the old record or the new one.
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

from torch import nn

from ..base.atomic import atomic_folder, read_state_dict, torch_save, write_json
from ..base.cache import sha256sum
from ..base.checks import check_channels
from ..base.errors import ConfigError, DataError, WeightsError
from ..base.paths import check_dir, check_file
from ..models import get_backbone, get_spec

__all__ = ["CheckpointConfig", "SCHEMA", "migrate_config", "checkpoint_config", "save_checkpoint", "load_checkpoint", "read_config", "read_state_dict", "record_validation", "record_comparison", "data_path",
           "settings_digest", "CONFIG_FILE", "WEIGHTS_FILE"]

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.pt"
SCHEMA = "medkit-checkpoint/3"
_REQUIRED = {"backbone": str, "num_classes": int, "classes": list, "image_size": int, "mean": list, "std": list}
# The fields that decide what the outputs mean; settings_sha256 binds them to the weights.
_SETTINGS = ("backbone", "num_classes", "classes", "image_size", "input_size", "channels", "mean", "std", "threshold",
             "weights_sha256")
_RETRAIN = "Retrain with `medkit fit` (or restore config.json from a copy) rather than editing it by hand."


def _v1_to_v2(config: dict) -> dict:
    """v1 (no `format`): raw input size and channels unknown; `data` a path string."""
    data = config.get("data")
    return {**config, "format": "medkit-checkpoint/2", "input_size": config.get("input_size"),
            "channels": config.get("channels"), **({"data": {"path": str(data)}} if isinstance(data, str) else {})}


def _with_task_and_weights(config: dict) -> dict:
    """Return `config` naming its task (findings mean multi-label) and weights tag (the recipe's) where unnamed."""
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    task = config.get("task") or ("multilabel" if config.get("findings") else "single_label")
    return {**config, "task": task, "weights": config.get("weights", recipe.get("weights"))}


def _v2_to_v3(config: dict) -> dict:
    """v2: the task and the weights tag were implied, not written."""
    return {**_with_task_and_weights(config), "format": SCHEMA}


_MIGRATIONS = {None: _v1_to_v2, "medkit-checkpoint/1": _v1_to_v2, "medkit-checkpoint/2": _v2_to_v3}


def migrate_config(config: dict) -> dict:
    """Return a checkpoint config of the current schema, stepping an older one through each version after it."""
    while config.get("format") != SCHEMA:
        step = _MIGRATIONS.get(config.get("format"))
        if step is None:
            raise ConfigError(f"Checkpoint format {config.get('format')!r} is not one medkit reads (this medkit "
                              f"writes {SCHEMA}); update medkit, or retrain with `medkit fit`.")
        config = step(config)
    return config


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """What a checkpoint's config.json says, typed: written by `medkit fit`, read by evaluate, export and the card.

    `extra` keeps the records that ride along (recipe, splits, audit, DICOM scope, comparisons); `data` is
    the training source (`path`, `fingerprint`, carve parameters); `validation` what the model was validated on.
    """

    backbone: str
    classes: list
    image_size: int
    mean: list
    std: list
    threshold: float = 0.5
    input_size: int | None = None  # side of the raw images, before the in-graph resize (None: not uniform)
    channels: int | None = None
    task: str = "single_label"  # or "multilabel" (one sigmoid per finding)
    weights: str | None = None  # the registry weights tag it was fine-tuned from (None: random init)
    findings: list | None = None
    thresholds: dict | None = None  # per finding, multi-label only
    data: dict = dataclasses.field(default_factory=dict)
    validation: list = dataclasses.field(default_factory=list)
    weights_sha256: str | None = None
    settings_sha256: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def num_classes(self) -> int:
        """Return how many outputs the head has."""
        return len(self.classes)

    @property
    def data_path(self) -> str | None:
        """Return the training source this checkpoint records, or None."""
        return data_path(self.to_dict())

    @classmethod
    def from_dict(cls, config: dict, where="the checkpoint config") -> "CheckpointConfig":
        """Return the typed config of a config.json of any schema version, refusing an inconsistent one."""
        config = migrate_config(dict(config))
        if isinstance(config.get("data"), str | os.PathLike):  # a hand-made config naming its file: fit's form
            config["data"] = {"path": str(config["data"])}
        _check_schema(config, where)
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "schema"}
        known = {k: config[k] for k in names if config.get(k) is not None}
        extra = {k: v for k, v in config.items() if k not in names and k not in ("format", "num_classes")}
        return cls(**known, extra=extra, schema=config["format"])

    def to_dict(self) -> dict:
        """Return the config.json object (schema first, records after the fields that define the model)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("extra", "schema")}
        unset = [k for k, v in fields.items() if v is None and k not in ("input_size", "channels")]  # absent, not null
        return {"format": self.schema, "num_classes": self.num_classes,
                **{k: v for k, v in fields.items() if k not in unset}, **self.extra}

    def preprocess(self):
        """Return the in-graph preprocessing the weights were trained with: this config's size and mean/std."""
        from ..models import Preprocess

        return Preprocess(self.image_size, self.mean, self.std)


def settings_digest(config: dict) -> str:
    """Return the sha256 of the fields that decide what a checkpoint's outputs mean, weights' sha256 included."""
    return hashlib.sha256(json.dumps([config.get(k) for k in _SETTINGS]).encode()).hexdigest()


def data_path(config: dict) -> str | None:
    """Return the training data a checkpoint records (`data.path`; a plain string in hand-made configs), or None."""
    data = config.get("data")
    if isinstance(data, dict):
        data = data.get("path")
    return str(data) if isinstance(data, str | os.PathLike) and str(data) else None


def save_checkpoint(out_dir, model: nn.Module, *, image_size: int, classes, threshold: float = 0.5,
                    input_size: int | None = None, channels: int | None = None, files: dict | None = None,
                    **extra) -> Path:
    """Write `model` and its config into `out_dir` as one whole (the previous checkpoint survives a crash).

    Args:
        image_size: the side the network was trained at (after the in-graph resize).
        input_size, channels: the side and channel count (1 grey, 3 colour) of the raw training images,
            which `medkit export` gives the deployed model; None leaves them for export to ask.
        files: {name: content} written beside them in the same commit: JSON-serialisable data (`metrics.json`),
            a callable `write(path, weights_sha256)` for a file tied to the weights (`gate.npz`), or None for
            a file this checkpoint has none of (an overwritten folder's old one is dropped, not carried over).
        extra: anything JSON-serialisable worth keeping (recipe, data file, splits).
    """
    out_dir = Path(out_dir)
    spec = get_spec(model)
    check_channels(channels, allow_none=True)
    config = {"format": SCHEMA, "backbone": spec.name, "num_classes": len(classes),
              "classes": list(classes), "image_size": int(image_size),
              "input_size": None if input_size is None else int(input_size),
              "channels": None if channels is None else int(channels),
              "mean": list(spec.mean), "std": list(spec.std), "threshold": float(threshold), **extra}
    for stale in ("weights_sha256", "settings_sha256"):  # a config copied from another checkpoint (adapt) had its own
        config.pop(stale, None)
    config = CheckpointConfig.from_dict(_with_task_and_weights(config), f"the config of {out_dir}").to_dict()
    files = dict(files or {})
    json.dumps([config, {k: v for k, v in files.items() if not callable(v)}])  # a value JSON cannot hold fails here
    with atomic_folder(out_dir) as stage:
        weights_sha256 = sha256sum(torch_save(model.state_dict(), stage / WEIGHTS_FILE))
        config["weights_sha256"] = weights_sha256
        config["settings_sha256"] = settings_digest(config)
        write_json(stage / CONFIG_FILE, config)
        for name, content in files.items():
            if callable(content):
                content(stage / name, weights_sha256)
            elif content is not None:
                write_json(stage / name, content)
        _carry_over(out_dir, stage, owned={CONFIG_FILE, WEIGHTS_FILE, *files})
    return out_dir


def _carry_over(out_dir: Path, stage: Path, owned) -> None:
    """Keep the files a user put beside an overwritten checkpoint (notes, exports): hard-linked, else copied."""
    if not out_dir.is_dir():
        return
    for path in out_dir.iterdir():
        if (stage / path.name).exists() or path.name in owned:
            continue  # the new checkpoint's own files (or its lack of one) replace the old ones
        if path.is_dir():
            shutil.copytree(path, stage / path.name, copy_function=_link_or_copy)
        else:
            _link_or_copy(path, stage / path.name)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)  # same folder tree, same file system: no second copy of a large file
    except OSError:
        shutil.copy2(src, dst)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _schema_problems(config: dict) -> list[str]:
    """Return what is wrong with the fields that define a checkpoint's model and preprocessing, one per field."""
    bad, classes = [], config["classes"]
    if not classes or len(set(map(str, classes))) != len(classes):
        bad.append(f"classes={classes!r} (must be non-empty and unique)")
    elif config["num_classes"] != len(classes):
        bad.append(f"num_classes={config['num_classes']} but {len(classes)} classes")
    threshold = config.get("threshold", 0.5)
    # just above 1 is choose_threshold's finite "nothing is positive" (prob >= threshold)
    if not _is_number(threshold) or not 0 <= threshold <= math.nextafter(1.0, 2.0):
        bad.append(f"threshold={threshold!r} (must be a number in [0, 1])")
    for key in ("image_size", "input_size"):
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            bad.append(f"{key}={value!r} (must be a positive whole number)")
    trained_at = (config.get("recipe") or {}).get("image_size") if isinstance(config.get("recipe"), dict) else None
    if trained_at is not None and trained_at != config["image_size"]:
        bad.append(f"image_size={config['image_size']!r} but the recipe trained the weights at {trained_at} px")
    if config.get("channels") not in (None, 1, 3):
        bad.append(f"channels={config.get('channels')!r} (must be 1 or 3)")
    mean, std = config["mean"], config["std"]
    if not mean or len(mean) != len(std) or not all(map(_is_number, mean)):
        bad.append(f"mean={mean!r} (must be finite numbers, one per channel as in std)")
    if not std or not all(_is_number(v) and v > 0 for v in std):
        bad.append(f"std={std!r} (must be finite numbers > 0)")
    return bad


def _check_schema(config: dict, where) -> None:
    """Raise ConfigError naming every field of `config` that is missing, of the wrong type or out of range."""
    bad = [f"{k} (missing)" if k not in config else f"{k}={config[k]!r} (not {t.__name__})"
           for k, t in _REQUIRED.items() if not isinstance(config.get(k), t) or isinstance(config.get(k), bool)]
    bad = bad or _schema_problems(config)
    if not bad and config.get("settings_sha256") not in (None, settings_digest(config)):
        bad.append("classes, threshold, sizes or mean/std differ from those recorded with the weights "
                   "(settings_sha256): config.json was edited after training")
    if bad:
        raise ConfigError(f"{where} is incomplete or inconsistent: {'; '.join(bad)}. {_RETRAIN}")


def read_config(ckpt_dir) -> dict:
    """Return the config of a checkpoint folder, refusing a missing, non-JSON or incomplete one."""
    # folders an interrupted save leaves beside DIR (named before the folder check: a kill can leave DIR itself gone)
    left = sorted(p.name for p in Path(ckpt_dir).parent.glob(f".{Path(ckpt_dir).name}.*.*") if p.is_dir())
    hint = (f" Beside it: {', '.join(left)}, left by an interrupted save. One ending .old is the previous "
            f"checkpoint (rename it back to {Path(ckpt_dir).name}); one ending .staged is the new one, whole "
            "only when a .old sits beside it." if left else "")
    path = check_dir(ckpt_dir, "Checkpoint folder", hint="Train one with `medkit fit`." + hint) / CONFIG_FILE
    if not os.path.lexists(path):
        raise DataError(f"{ckpt_dir} is not a medkit checkpoint: {CONFIG_FILE} is missing. Train one with "
                        f"`medkit fit`.{hint}")
    check_file(path, "Checkpoint config")  # a folder, a FIFO, a loop or a device in its place, named as such
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); the checkpoint is damaged. Retrain it with "
                          "`medkit fit`, or restore config.json from a copy.") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path} holds a JSON {type(config).__name__}, not the object `medkit fit` writes.")
    return CheckpointConfig.from_dict(config, path).to_dict()


def checkpoint_config(ckpt_dir) -> CheckpointConfig:
    """Return the typed config of a checkpoint folder (any schema version, migrated), refusing a bad one."""
    return CheckpointConfig.from_dict(read_config(ckpt_dir), Path(ckpt_dir) / CONFIG_FILE)


def _weights_file(ckpt_dir: Path, config: dict) -> Path:
    """Return the weights file of a checkpoint, refusing one whose sha256 is not the one config.json records."""
    path, expected = ckpt_dir / WEIGHTS_FILE, config.get("weights_sha256")
    # an empty file is left to read_state_dict, whose WeightsError calls it truncated
    check_file(path, "Checkpoint weights", allow_empty=True,
               hint="The training run did not finish; retrain with `medkit fit`.")
    if expected is None or sha256sum(path) == expected:
        return path
    raise WeightsError(f"{path} does not match {CONFIG_FILE} (sha256 differs): the weights were replaced or "
                       "damaged after training. Retrain with `medkit fit` or restore the folder from a copy.")


def load_checkpoint(ckpt_dir, backbone: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint folder and return (model in eval mode, config)."""
    ckpt_dir = Path(ckpt_dir)
    config = read_config(ckpt_dir)
    if backbone is not None and backbone != config["backbone"]:
        raise WeightsError(f"Checkpoint {ckpt_dir} holds a {config['backbone']} model, not {backbone}.")
    weights = _weights_file(ckpt_dir, config)  # a missing or damaged model.pt is refused before building the model
    model = get_backbone(config["backbone"], weights=None, num_classes=config["num_classes"])
    state = read_state_dict(weights)
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
    return _append_record(ckpt_dir, "validation", entry)


def record_comparison(ckpt_dir, entry: dict) -> dict:
    """Append one retraining-gate decision (`medkit compare --record`) to the config's `comparisons`; return it.

    Same commit as `record_validation`: the weights are checked against their sha256 and never rewritten.
    """
    return _append_record(ckpt_dir, "comparisons", entry)


def _append_record(ckpt_dir, key: str, entry: dict) -> dict:
    """Append `entry` to the list `key` of a checkpoint's config.json, atomically, under the checkpoint's lock."""
    ckpt_dir = Path(ckpt_dir)
    with _locked(ckpt_dir):
        config = read_config(ckpt_dir)
        _weights_file(ckpt_dir, config)  # refuses weights replaced or damaged since the fit
        records = config.get(key, [])
        if not isinstance(records, list):
            raise ConfigError(f"{ckpt_dir / CONFIG_FILE}: `{key}` is a {type(records).__name__}, not the list "
                              "medkit writes. Restore config.json from a copy, or retrain with `medkit fit`.")
        updated = {**config, key: [*records, entry]}
        write_json(ckpt_dir / CONFIG_FILE, updated)  # serialised first: a value JSON cannot hold writes nothing
    return updated
