"""`medkit export`: a `medkit fit` checkpoint -> ONNX with its preprocessing, verified against PyTorch as it goes.

The model is written to a staged file beside `--out` and moved into place only after the parity check
passes, so a failed export leaves the previous model, its sidecar and its drift reference untouched.
"""

from . import positive_float, positive_int

HELP = "Export a checkpoint to ONNX (preprocessing inside, dynamic batch), verify it with onnxruntime, save drift stats."


def add_arguments(parser):
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint folder written by `medkit fit`")
    parser.add_argument("--out", required=True, metavar="FILE", help="the .onnx file to write (FILE.json beside it)")
    parser.add_argument("--images", nargs="*", metavar="PATH",
                        help="real images to verify on: a MedMNIST .npz or image files (default: the checkpoint's "
                             "training file, else the bundled PneumoniaMNIST test images for a 28 px grey model)")
    # at least 1: the parity check against PyTorch is what makes an export trustworthy, so it cannot be skipped
    parser.add_argument("--n-verify", type=positive_int, default=128, help="how many images to verify on (default "
                                                                         "128, at least 1: it cannot be skipped)")
    parser.add_argument("--input-size", type=positive_int, help="side of the raw images the model takes (default: the "
                                                       "checkpoint's)")
    parser.add_argument("--channels", type=int, choices=(1, 3), help="channels of the raw images (default: the "
                                                                      "checkpoint's)")
    parser.add_argument("--modality", default=None, help="comma-separated DICOM modalities the model is for "
                                                         "(default: the checkpoint's, else CR,DX; add UNKNOWN to "
                                                         "accept DICOM files without a Modality)")
    parser.add_argument("--body-part", default=None, help="comma-separated DICOM BodyPartExamined values the model is "
                                                          "for (default: the checkpoint's, else CHEST,THORAX,LUNG)")
    parser.add_argument("--tolerance", type=positive_float, default=1e-4, help="largest allowed |probability difference| (1e-4)")
    parser.add_argument("--no-drift", action="store_true", help="do not save drift reference statistics")


def _npz_images(path, input_size: int, channels: int):
    """Return (check, reference) uint8 images from a MedMNIST .npz (its test split, else val, else train)."""
    from ..base.errors import DataError
    from ..data import available_splits, load_npz

    splits = available_splits(path)
    if not splits:
        raise DataError(f"{path} holds no `<split>_images`/`<split>_labels` arrays to verify on.")
    check = next(s for s in ("test", "val", "train") if s in splits)
    ref = "val" if "val" in splits and check != "val" else check
    check_images, ref_images = load_npz(path, check).images, load_npz(path, ref).images
    shape = (input_size, input_size) if channels == 1 else (input_size, input_size, channels)
    if check_images.shape[1:] != shape:
        raise DataError(f"{path} holds images of shape {check_images.shape[1:]}, but the model takes {shape} "
                        f"({channels}-channel {input_size} px). Verify on images of the model's own size: --images.")
    return check_images, ref_images


def _source_images(path, config, input_size: int, channels: int):
    """Return (check, reference) images from the npz, class folder or CSV a checkpoint was trained on.

    Checked on its held-out test part (fit's carve, same seed); the drift reference is what the model
    was trained and tuned on (train + val), the largest clean sample of its own kind of images.
    """
    import numpy as np

    from ..data import load_source

    group_by = (config.extra.get("recipe") or {}).get("group_by", "auto")
    source = load_source(path, image_size=input_size, channels=channels, group_by=group_by, carve=True)
    parts = source.splits
    return parts["test"].images, np.concatenate([parts["train"].images, parts["val"].images])


def _load_images(paths, config, input_size: int, channels: int):
    """Return (check, reference) images of the model's own size and channels to verify and fit drift on."""
    from pathlib import Path

    from ..base.errors import DataError
    from ..data import pneumonia
    from ..data.images import stack_images

    if paths:
        if len(paths) == 1 and Path(paths[0]).suffix == ".npz":
            return _npz_images(paths[0], input_size, channels)
        images, _, _ = stack_images(paths, image_size=input_size, channels=channels, source="--images")
        return images, images
    data = config.data_path
    if data and Path(data).exists():  # loaded as fit loaded it (same size, same carve): its held-out test part
        return _source_images(data, config, input_size, channels)
    if (input_size, channels) == (28, 1):
        splits = pneumonia()
        return splits["test"].images, splits["val"].images
    raise DataError(f"No images to verify a {channels}-channel {input_size} px model on: its training data "
                    f"{data or '(not recorded)'} is not here and the bundled images are 1-channel 28 px. "
                    "Pass --images with real images of the model's kind.")


def run(args) -> int:
    from pathlib import Path

    from ..core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointConfig, load_checkpoint
    from ..data.contrast import equalize_contrast
    from ..deploy import OPSET, drift_path
    from ..deploy.gate import export_gate
    from ..deploy.onnx import check_output, checkpoint_export_args, export_verified
    from . import emit

    ckpt = Path(args.checkpoint)
    out = check_output(args.out, [ckpt / CONFIG_FILE, ckpt / WEIGHTS_FILE, *(args.images or [])])
    model, raw = load_checkpoint(ckpt)
    config = CheckpointConfig.from_dict(raw, ckpt / CONFIG_FILE)
    kwargs = checkpoint_export_args(ckpt, config, input_size=args.input_size, channels=args.channels,
                                    modalities=args.modality.split(",") if args.modality else None,
                                    body_parts=args.body_part.split(",") if args.body_part else None)
    input_size, channels = kwargs["input_size"], kwargs["channels"]
    # the images the deployed model will be fed: read from files, through the contrast step it was trained with
    check_images, reference_images = (equalize_contrast(images, kwargs["contrast"])
                                      for images in _load_images(args.images, config, input_size, channels))
    result, monitor = export_verified(model, out, check_images[: args.n_verify], tolerance=args.tolerance,
                                      reference_images=None if args.no_drift else reference_images, **kwargs)
    lines = [f"export {config.backbone} ({config.num_classes} classes) to {out} (opset {OPSET}, dynamic batch, "
             f"input uint8 {channels}x{input_size}x{input_size}, preprocessing inside)",
             f"verify on {result.n_images} real images: max |probability difference| = {result.max_abs_diff:.2e} "
             f"(tolerance {result.tolerance:.0e}), max |logit difference| = {result.max_abs_diff_logits:.2e}, "
             f"predicted classes {'identical' if result.same_classes else 'DIFFER'}"]
    summary = {"out": str(out), "ok": bool(result.ok), "opset": OPSET, "input_size": input_size, "channels": channels,
               "n_verified": result.n_images, "max_abs_diff": result.max_abs_diff,
               "max_abs_diff_logits": result.max_abs_diff_logits, "same_classes": bool(result.same_classes)}
    if not result.ok:
        lines.append(f"FAILED: {result}; nothing was written, {out} is unchanged")
        emit(args, summary, "\n".join(lines))
        return 1
    gate = export_gate(ckpt, out, config.weights_sha256 or "")
    summary["gate_reference"] = None if gate is None else str(gate)
    lines.append(f"sanity gate reference: {gate}" if gate is not None else
                 f"sanity gate: {ckpt} has no gate.npz, so `medkit predict` runs the image checks only (no OOD score)")
    if monitor is not None:
        summary["drift_reference"] = str(drift_path(out))
        lines.append(f"drift reference: {drift_path(out)} ({monitor})")
    emit(args, summary, "\n".join(lines + ["OK"]))
    return 0
