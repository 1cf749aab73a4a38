"""Ship a model as ONNX with its preprocessing inside, verify it against PyTorch, and run it (lesson 06).

The exported graph takes raw uint8 images (N, C, H, W) exactly as they come off the disk, runs
`medkit.models.Preprocess` (scale, grey -> RGB, resize, normalise) and the network, and returns
two outputs: `logits` (N, K) and `embedding` (N, D), the features in front of the head that the
drift monitor watches. Everything a user would otherwise re-type (input size, channels, classes,
mean/std, threshold, modality) is stored twice: in the ONNX file's `metadata_props` and in a JSON
sidecar `model.onnx.json`, together with the sha256 of the ONNX file. `OnnxPredictor` refuses a
file whose metadata, sidecar and graph do not agree.
"""

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..base.atomic import atomic_path, write_json
from ..base.cache import sha256sum
from ..base.checks import check_channels
from ..base.errors import ConfigError, DataError, WeightsError
from ..base.paths import check_file
from ..core.checkpoint import CheckpointConfig, load_checkpoint
from ..data.contrast import check_contrast, contrast_of
from ..data.pixels import DEFAULT_VALUE_RANGE
from ..models import Preprocess, get_spec, split_head
from .drift import DriftMonitor
from .files import read_for_model

__all__ = [
    "OPSET",
    "DEFAULT_MODALITIES",
    "DEFAULT_BODY_PARTS",
    "ExportWrapper",
    "export_onnx",
    "export_checkpoint",
    "export_verified",
    "checkpoint_export_args",
    "checkpoint_input",
    "check_output",
    "verify_onnx",
    "Verification",
    "OnnxPredictor",
    "sidecar_path",
    "drift_path",
    "save_reference",
]

OPSET = 18  # Resize with antialias (needed when images are shrunk inside the graph) exists from opset 18
DEFAULT_MODALITIES = ("CR", "DX")  # DICOM codes of plain chest radiographs, what the kit's models see
# BodyPartExamined values of a chest radiograph: CHEST is the defined term (PS3.16 Annex L); THORAX and LUNG
# are what some writers put there. A DICOM naming another part (FOOT, CSPINE...) is refused by `read_for_model`.
DEFAULT_BODY_PARTS = ("CHEST", "THORAX", "LUNG")
_META_KEY = "medkit"
# The fields that define what the graph expects; they must agree between ONNX metadata and sidecar.
_PREPROCESSING = ("input_size", "channels", "image_size", "mean", "std", "classes", "threshold", "modalities",
                  "input_dtype")
# body_parts and contrast came later: older sidecars lack them, but where present they must agree
_CHECKED = (*_PREPROCESSING, "body_parts", "contrast")


def sidecar_path(onnx_path) -> Path:
    """Return the JSON sidecar that travels with an ONNX file: `model.onnx` -> `model.onnx.json`."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + ".json")


def drift_path(onnx_path) -> Path:
    """Return the file of drift reference statistics saved with an ONNX file: `model.onnx.drift.npz`."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + ".drift.npz")


class ExportWrapper(nn.Module):
    """Preprocess + backbone body + head, returning (logits, embedding) so deployment can watch the features."""

    def __init__(self, model: nn.Module, preprocess: Preprocess):
        super().__init__()
        self.preprocess = preprocess
        self.body, self.head = split_head(model)  # on a copy: the caller's model keeps its head

    def forward(self, images: torch.Tensor):
        embedding = self.body(self.preprocess(images))
        return self.head(embedding), embedding


def _register_antialias_resize():
    """Teach the TorchScript exporter `F.interpolate(..., antialias=True)` as ONNX Resize(antialias=1).

    torch's exporter has no symbolic for it; ONNX Resize with antialias=1 and exclude_outside=1 computes
    the same triangle filter as PyTorch (checked to 1e-6 by tests/test_deploy_onnx.py).
    """
    from torch.onnx import register_custom_op_symbolic, symbolic_helper

    def resize_aa(g, x, output_size, align_corners, scale_factors):
        sizes = symbolic_helper._maybe_get_const(output_size, "is")
        if symbolic_helper._is_value(sizes) or symbolic_helper._maybe_get_const(align_corners, "b"):
            raise DataError("Antialiased resizing to a dynamic size or with align_corners cannot be exported.")
        batch_channels = g.op("Slice", g.op("Shape", x), g.op("Constant", value_t=torch.tensor([0])),
                              g.op("Constant", value_t=torch.tensor([2])))
        full = g.op("Concat", batch_channels, g.op("Constant", value_t=torch.tensor(list(sizes), dtype=torch.int64)),
                    axis_i=0)
        empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", x, empty, empty, full, mode_s="linear", antialias_i=1, exclude_outside_i=1,
                    coordinate_transformation_mode_s="half_pixel")

    register_custom_op_symbolic("aten::_upsample_bilinear2d_aa", resize_aa, OPSET)


def export_onnx(model: nn.Module, out, *, input_size: int, image_size: int, classes, channels: int = 1,
                mean=None, std=None, threshold: float = 0.5, modalities=DEFAULT_MODALITIES,
                body_parts=DEFAULT_BODY_PARTS, provenance: dict | None = None, contrast: str = "none") -> Path:
    """Export `model` with its preprocessing to `out` (ONNX, dynamic batch) and write the JSON sidecar.

    Args:
        model: a classifier from `medkit.models.get_backbone` (the registry says where its head is).
        out: the .onnx file to write; `out.json` (sidecar) is written beside it.
        input_size: the side of the raw square images the deployed model accepts (28 for PneumoniaMNIST).
        image_size: the side the network sees after the in-graph resize (the training size).
        classes: class names, in output order.
        channels: channels of the raw images (1 grey, 3 colour).
        mean, std: normalisation; default the backbone's.
        threshold: decision threshold on P(last class) for a binary model.
        modalities: DICOM Modality codes the model is meant for; other DICOMs are refused by `OnnxPredictor`.
        body_parts: DICOM BodyPartExamined values it is meant for; a DICOM naming another part is refused.
        contrast: the contrast step (medkit.data.contrast) the model was trained with; files read for it go through
            it (`read_for_model`), arrays passed to `predict` are taken as already through it.
        provenance: anything else worth keeping with the model (checkpoint, training data, metrics).
    """
    from ..base._optional import require

    onnx = require("onnx", "deploy", "ONNX export")

    spec = get_spec(model)
    mean, std = list(mean or spec.mean), list(std or spec.std)
    classes, out = [str(c) for c in classes], Path(out)
    check_channels(channels)
    wrapper = ExportWrapper(model.cpu().eval(), Preprocess(image_size, mean, std)).eval()
    example = torch.zeros(2, channels, int(input_size), int(input_size), dtype=torch.uint8)
    with torch.no_grad():
        logits, _ = wrapper(example)
    if logits.shape[1] != len(classes):
        raise DataError(f"The model has {logits.shape[1]} outputs but {len(classes)} classes were given: {classes}.")
    _register_antialias_resize()
    meta = {"format": "medkit-onnx/1", "backbone": spec.name, "opset": OPSET, "input_size": int(input_size),
            "channels": int(channels), "image_size": int(image_size), "mean": mean, "std": std, "classes": classes,
            "threshold": float(threshold), "modalities": [str(m).strip().upper() for m in modalities],
            "body_parts": [str(b).strip().upper() for b in body_parts],
            "input_dtype": "uint8", "inputs": "image: uint8 (N, C, H, W), 0-255", "outputs": ["logits", "embedding"],
            "contrast": check_contrast(contrast)}
    with atomic_path(out) as tmp:  # an interrupted export leaves the previous file, never half of one
        with warnings.catch_warnings():  # the tracer warns about the Python branches in Preprocess; fixed here
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (example,), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["image"], output_names=["logits", "embedding"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}})
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = _META_KEY, json.dumps(meta)
        proto.producer_name = "medkit"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    sidecar = {**meta, "onnx_file": out.name, "onnx_sha256": sha256sum(out), "provenance": provenance or {}}
    write_json(sidecar_path(out), sidecar)
    return out


def _npz_input_shape(path) -> tuple[int, int] | None:
    """Return (side, channels) of the training images in a MedMNIST-format npz, or None if it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            key = next((k for k in ("train_images", "val_images", "test_images") if k in npz.files), None)
            shape = npz[key].shape if key else None
    except (OSError, ValueError, TypeError):
        return None
    if shape is None or len(shape) not in (3, 4) or shape[1] != shape[2]:
        return None
    return int(shape[1]), 1 if len(shape) == 3 else int(shape[3])


def checkpoint_input(config: CheckpointConfig, ckpt_dir, input_size: int | None = None,
                     channels: int | None = None) -> tuple[int, int]:
    """Return (raw input side, channels) for a checkpoint: as given, else its config, else its training file's."""
    input_size, channels = input_size or config.input_size, channels or config.channels
    trained_on = config.data_path
    if (input_size is None or channels is None) and trained_on and Path(trained_on).is_file():
        found = _npz_input_shape(trained_on)  # checkpoints written before config.json recorded both
        if found:
            input_size, channels = input_size or found[0], channels or found[1]
    if input_size is None or channels is None:
        raise DataError(f"The config.json of {ckpt_dir} records neither the raw image size nor the channels its "
                        "model was trained on (an older checkpoint), and its training file is gone. Pass them: "
                        "--input-size N --channels 1 (grey) or 3 (colour).")
    return int(input_size), check_channels(int(channels), where=f" for {ckpt_dir}")


def checkpoint_export_args(ckpt_dir, config: CheckpointConfig, *, input_size: int | None = None,
                           channels: int | None = None, modalities=None, body_parts=None) -> dict:
    """Return the keyword arguments of `export_onnx` for a checkpoint: sizes, classes and statistics from its config."""
    if config.task == "multilabel":  # the exported graph ends in a softmax: one class per image
        raise ConfigError(f"{ckpt_dir} is a multi-label checkpoint (findings {config.findings}); ONNX export "
                          "handles one class per image only, so it is refused rather than exported with a softmax "
                          "across findings. Score it with `medkit evaluate`.")
    input_size, channels = checkpoint_input(config, ckpt_dir, input_size, channels)
    raw = config.to_dict()
    provenance = {"checkpoint": str(Path(ckpt_dir).resolve()),
                  **{k: v for k, v in raw.items() if k not in _PREPROCESSING and k not in ("mean", "std")}}
    return dict(input_size=input_size, image_size=config.image_size, classes=config.classes, channels=channels,
                mean=config.mean, std=config.std, threshold=config.threshold,
                modalities=modalities or raw.get("modalities") or DEFAULT_MODALITIES,
                body_parts=body_parts or raw.get("body_parts") or DEFAULT_BODY_PARTS, provenance=provenance,
                contrast=contrast_of(raw))


def export_checkpoint(ckpt_dir, out, *, input_size: int | None = None, channels: int | None = None,
                      modalities=None, body_parts=None) -> Path:
    """Export a `medkit fit` checkpoint folder to ONNX, taking sizes, classes and statistics from its config."""
    model, config = load_checkpoint(ckpt_dir)
    return export_onnx(model, out, **checkpoint_export_args(ckpt_dir, CheckpointConfig.from_dict(config),
                                                            input_size=input_size, channels=channels,
                                                            modalities=modalities, body_parts=body_parts))


def check_output(out, inputs=()) -> Path:
    """Return `out` as a Path, refusing a non-.onnx name, a folder, or outputs that would replace an input file.

    The export writes `out`, `out.json` and `out.drift.npz`; none may be one of `inputs` (the checkpoint's
    files, the verification images), so an export can never destroy what it reads.
    """
    out = Path(out)
    if out.is_dir():
        raise DataError(f"--out {out} is a folder; name the file to write, e.g. {out / 'model.onnx'}.")
    if out.suffix.lower() != ".onnx":
        raise DataError(f"--out {out} does not end in .onnx; name the ONNX file to write (e.g. model.onnx), so "
                        "that neither it nor its .json sidecar can replace another file.")
    existing = [Path(p) for p in inputs if Path(p).exists()]
    for target in (out, sidecar_path(out), drift_path(out)):
        if target.exists() and any(target.resolve() == p.resolve() for p in existing):
            raise DataError(f"--out {out} would overwrite the input {target}; write the model elsewhere.")
    return out


def export_verified(model: nn.Module, out, check_images, *, reference_images=None, tolerance: float = 1e-4,
                    **export_kwargs) -> tuple:
    """Export to a staged file beside `out`, verify it, and only then move it into place; return (check, monitor).

    On a failed check nothing is installed: the previous `out`, its sidecar and its drift reference stay as
    they were. With `reference_images`, a drift reference is fitted and installed with the model (without,
    a stale reference of an earlier model at `out` is removed).
    """
    out = Path(out)
    staged = out.with_name(f".{out.stem}.staged-{os.getpid()}.onnx")
    try:
        export_onnx(model, staged, **export_kwargs)
        result = verify_onnx(model, staged, check_images, tolerance=tolerance)
        if not result.ok:
            return result, None
        monitor = save_reference(staged, reference_images) if reference_images is not None else None
        sidecar = json.loads(sidecar_path(staged).read_text())
        os.replace(staged, out)  # same bytes, same sha256: the sidecar and drift reference stay valid
        write_json(sidecar_path(out), {**sidecar, "onnx_file": out.name})
        if monitor is not None:
            os.replace(drift_path(staged), drift_path(out))
        else:
            drift_path(out).unlink(missing_ok=True)
        return result, monitor
    finally:
        for leftover in (staged, sidecar_path(staged), drift_path(staged)):
            leftover.unlink(missing_ok=True)


@dataclass
class Verification:
    """How far ONNX Runtime's outputs are from PyTorch's on the same images.

    The tolerance applies to the probabilities, the output the deployed model reports. Logits are shown too:
    in a fine-tuned network whose batch norms have near-zero variances (dead channels on grey X-rays), float32
    logits of *any* two implementations differ by up to ~1e-3; PyTorch itself is that far from float64.
    """

    max_abs_diff: float  # largest |p_torch - p_onnx| over images and classes
    max_abs_diff_logits: float
    max_abs_diff_embedding: float
    same_classes: bool  # identical predicted class for every image
    n_images: int
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.same_classes and self.max_abs_diff <= self.tolerance

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (f"{verdict}: max |probability difference| = {self.max_abs_diff:.2e} (tolerance {self.tolerance:.0e}), "
                f"max |logit difference| = {self.max_abs_diff_logits:.2e}, predicted classes "
                f"{'identical' if self.same_classes else 'DIFFER'} on {self.n_images} images")


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _as_batch(images, channels: int) -> np.ndarray:
    """Return images (N, H, W) or (N, H, W, C) or (N, C, H, W) uint8 as (N, C, H, W)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DataError(f"The exported model takes uint8 images (0-255); got {images.dtype}. Convert with "
                        "medkit.data.images.to_uint8 first.")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] != channels:
        raise DataError(f"Expected a batch of {channels}-channel images, (N, H, W) or (N, C, H, W); "
                        f"got shape {images.shape}.")
    return np.ascontiguousarray(images)


def verify_onnx(model: nn.Module, onnx_path, images, *, tolerance: float = 1e-4, batch_size: int = 64) -> Verification:
    """Run PyTorch (model + the stored preprocessing) and ONNX Runtime on the same real images and compare."""
    predictor = OnnxPredictor(onnx_path)
    meta = predictor.meta
    images = predictor.check_batch(images)
    wrapper = ExportWrapper(model.cpu().eval(), Preprocess(meta["image_size"], meta["mean"], meta["std"])).eval()
    diffs, diffs_logits, diffs_emb, same = [], [], [], True
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        with torch.no_grad():
            logits, embedding = (t.numpy() for t in wrapper(torch.from_numpy(x)))
        onnx_logits, onnx_embedding = predictor.run(x)
        diffs.append(np.abs(_softmax(logits) - _softmax(onnx_logits)).max())
        diffs_logits.append(np.abs(logits - onnx_logits).max())
        diffs_emb.append(np.abs(embedding - onnx_embedding).max())
        same &= bool(np.array_equal(predictor.decide(_softmax(logits)), predictor.decide(_softmax(onnx_logits))))
    return Verification(float(max(diffs)), float(max(diffs_logits)), float(max(diffs_emb)), same, len(images),
                        tolerance)


def _read_sidecar(side: Path) -> dict:
    """Return the sidecar's JSON, refusing a damaged or incomplete one with the file named."""
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{side} is not valid JSON ({exc}); export the model again with `medkit export`.") from exc
    missing = [k for k in _PREPROCESSING if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise DataError(f"{side} lacks {', '.join(missing)}; it was not written by `medkit export`. Export again.")
    try:
        int(meta["input_size"]), int(meta["channels"]), float(meta["threshold"]), list(meta["classes"])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{side} holds unusable values ({exc}); export the model again.") from exc
    return meta


class OnnxPredictor:
    """Run an exported medkit model with ONNX Runtime, refusing inputs it was not made for.

    Args:
        path: the .onnx file written by `export_onnx` / `medkit export` (its `.json` sidecar beside it).
        threads: ONNX Runtime intra-op threads (None: its default, all cores).
    """

    def __init__(self, path, threads: int | None = None):
        from ..base._optional import require

        onnx = require("onnx", "deploy", "ONNX prediction")
        ort = require("onnxruntime", "deploy", "ONNX prediction")

        self.path = check_file(path, "ONNX file", hint="Create one with `medkit export`.")
        side = sidecar_path(self.path)
        if not os.path.lexists(side):
            raise DataError(f"{self.path} has no sidecar {side.name}, so its preprocessing is unknown. "
                            "Export it with `medkit export --checkpoint DIR --out model.onnx`.")
        self.meta = _read_sidecar(check_file(side, "ONNX sidecar"))
        try:
            proto = onnx.load(str(self.path), load_external_data=False)
        except Exception as exc:  # protobuf raises its own DecodeError (and others) on a file that is not ONNX
            raise DataError(f"{self.path} is not a readable ONNX file ({type(exc).__name__}: {str(exc)[:120]}). "
                            "Export the model again with `medkit export`.") from exc
        stored = {p.key: p.value for p in proto.metadata_props}
        if _META_KEY not in stored:
            raise DataError(f"{self.path} carries no medkit metadata: it was not exported by medkit, so the "
                            "preprocessing it expects is unknown. Re-export it with `medkit export`.")
        try:
            embedded = json.loads(stored[_META_KEY])
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.path}: its medkit metadata is not valid JSON ({exc}); export it again.") from exc
        differ = [k for k in _CHECKED if not isinstance(embedded, dict) or embedded.get(k) != self.meta.get(k)]
        if differ:
            detail = ", ".join(f"{k}: file {embedded.get(k) if isinstance(embedded, dict) else None!r} vs sidecar "
                               f"{self.meta.get(k)!r}" for k in differ)
            raise DataError(f"{self.path} does not match the preprocessing stored in {side.name} ({detail}). "
                            "The model file or its sidecar was swapped; export them again together.")
        if self.meta.get("onnx_sha256") and sha256sum(self.path) != self.meta["onnx_sha256"]:
            raise DataError(f"{self.path} has changed since it was exported (sha256 differs from {side.name}); "
                            "its preprocessing cannot be trusted. Export it again with `medkit export`.")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types: an invalid or unsupported graph
            raise DataError(f"ONNX Runtime cannot load {self.path} ({type(exc).__name__}: {str(exc)[:160]}). "
                            "Export it again with `medkit export`.") from exc
        inputs = self.session.get_inputs()
        expected = [self.meta["channels"], self.meta["input_size"], self.meta["input_size"]]
        if len(inputs) != 1 or inputs[0].name != "image" or list(inputs[0].shape[1:]) != expected:
            found = [(i.name, i.shape) for i in inputs]
            raise DataError(f"The graph of {self.path} takes {found}, but its sidecar says one input 'image' of "
                            f"shape (N, {', '.join(map(str, expected))}). Export the model again.")
        self.classes, self.threshold = list(self.meta["classes"]), float(self.meta["threshold"])
        self.input_size, self.channels = int(self.meta["input_size"]), int(self.meta["channels"])

    def check_batch(self, images) -> np.ndarray:
        """Return images as a uint8 (N, C, H, W) batch, or raise if their size or channels do not fit the model."""
        images = _as_batch(images, self.channels)
        if images.shape[-2:] != (self.input_size, self.input_size):
            raise DataError(f"Images are {images.shape[-2]}x{images.shape[-1]} px but {self.path.name} takes "
                            f"{self.input_size}x{self.input_size} px. Resize them first (`medkit predict --resize`).")
        return images

    def run(self, images) -> tuple[np.ndarray, np.ndarray]:
        """Return (logits (N, K), embeddings (N, D)) for a uint8 batch."""
        logits, embedding = self.session.run(None, {"image": self.check_batch(images)})
        return logits, embedding

    # 64 images per run, not 256: ONNX Runtime's memory arena grows to the largest batch and keeps it (a 256-image
    # embed of lesson 06's 64 px graph added ~310 MB to the kernel, over Binder's 1 GB)
    def predict_proba(self, images, batch_size: int = 64) -> np.ndarray:
        """Return class probabilities (N, K)."""
        images = self.check_batch(images)
        logits = np.concatenate([self.run(images[i:i + batch_size])[0] for i in range(0, len(images), batch_size)])
        if not np.all(np.isfinite(logits)):  # NaN >= threshold is False: each image would silently be class 0
            raise WeightsError(f"{self.path} gave NaN or inf outputs for {int((~np.isfinite(logits)).any(1).sum())} "
                               f"of {len(logits)} image(s). {self._non_finite_weights()}")
        return _softmax(logits)

    def _non_finite_weights(self) -> str:
        """Say which of the model's weight tensors hold NaN or inf, or that the inputs must be to blame."""
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(self.path))
        bad = [init.name for init in model.graph.initializer
               if np.issubdtype((a := numpy_helper.to_array(init)).dtype, np.floating) and not np.all(np.isfinite(a))]
        if bad:
            return (f"The weights contain NaN or inf in {len(bad)} tensor(s): {', '.join(bad[:5])}. Re-export from a "
                    "checkpoint that trained without diverging.")
        return "Its weights are finite, so the inputs (or an overflow inside the model) are to blame; check them."

    def embed(self, images, batch_size: int = 64) -> np.ndarray:
        """Return the embeddings (N, D) the drift monitor watches."""
        images = self.check_batch(images)
        return np.concatenate([self.run(images[i:i + batch_size])[1] for i in range(0, len(images), batch_size)])

    def decide(self, probs) -> np.ndarray:
        """Return predicted class indices: P(positive) >= threshold for binary models, else argmax."""
        probs = np.asarray(probs)
        return (probs[:, 1] >= self.threshold).astype(int) if probs.shape[1] == 2 else probs.argmax(1)

    def load_files(self, paths, resize: bool = False, value_range=DEFAULT_VALUE_RANGE) -> np.ndarray:
        """Read PNG/JPEG/DICOM files into a batch, refusing a wrong modality, colour for a grey model, or wrong size."""
        return np.stack([read_for_model(p, self, resize=resize, value_range=value_range) for p in paths])

    def predict_files(self, paths, resize: bool = False, value_range=DEFAULT_VALUE_RANGE) -> list[dict]:
        """Return one row per file: path, predicted class, its probability and P(each class)."""
        probs = self.predict_proba(self.load_files(paths, resize, value_range))
        pred = self.decide(probs)
        return [{"file": str(p), "prediction": self.classes[k], "probability": float(pr[k]),
                 **{f"p_{c}": float(v) for c, v in zip(self.classes, pr)}} for p, k, pr in zip(paths, pred, probs)]

    def monitor(self):
        """Return the drift monitor whose reference statistics were saved with this model."""
        path = drift_path(self.path)
        if not path.is_file():
            raise DataError(f"No drift reference {path.name} beside {self.path.name}. Save one with "
                            "`DriftMonitor.fit(predictor.embed(reference_images)).save(drift_path(model))`.")
        return DriftMonitor.load(path, model_sha256=self.meta.get("onnx_sha256", ""))


def save_reference(onnx_path, images, **kwargs) -> DriftMonitor:
    """Fit a monitor on the exported model's embeddings of clean `images` and save it beside the model."""
    predictor = OnnxPredictor(onnx_path)
    monitor = DriftMonitor.fit(predictor.embed(images), **kwargs)
    monitor.save(drift_path(onnx_path), model_sha256=predictor.meta.get("onnx_sha256", ""))
    return monitor
