"""`medkit export`: a `medkit fit` checkpoint -> ONNX with its preprocessing, verified against PyTorch as it goes."""

HELP = "Export a checkpoint to ONNX (preprocessing inside, dynamic batch), verify it with onnxruntime, save drift stats."


def add_arguments(parser):
    parser.add_argument("--checkpoint", required=True, metavar="DIR", help="checkpoint folder written by `medkit fit`")
    parser.add_argument("--out", required=True, metavar="FILE", help="the .onnx file to write (FILE.json beside it)")
    parser.add_argument("--images", nargs="*", metavar="PATH",
                        help="real images to verify on: a MedMNIST .npz or image files (default: the bundled "
                             "PneumoniaMNIST held-out test images)")
    parser.add_argument("--n-verify", type=int, default=128, help="how many images to verify on (default 128)")
    parser.add_argument("--input-size", type=int, help="side of the raw images the model takes (default: that of "
                                                       "the checkpoint, else of the verification images)")
    parser.add_argument("--modality", default=None, help="comma-separated DICOM modalities the model is for "
                                                         "(default: the checkpoint's, else CR,DX)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |probability difference| (1e-4)")
    parser.add_argument("--no-drift", action="store_true", help="do not save drift reference statistics")


def _load_images(paths):
    """Return uint8 images from a MedMNIST .npz (its test split, else val, else train) or image files."""
    from pathlib import Path

    from ..data import available_splits, load_npz, pneumonia
    from ..data.images import stack_images

    if not paths:
        splits = pneumonia()
        return splits["test"].images, splits["val"].images
    if len(paths) == 1 and Path(paths[0]).suffix == ".npz":
        splits = available_splits(paths[0])
        check = next(s for s in ("test", "val", "train") if s in splits)
        ref = "val" if "val" in splits and check != "val" else check
        return load_npz(paths[0], check).images, load_npz(paths[0], ref).images
    images, _, _ = stack_images(paths)
    return images, images


def run(args) -> int:
    from ..checkpoint import load_checkpoint
    from ..deploy import OPSET, drift_path, export_checkpoint, save_reference, verify_onnx

    model, config = load_checkpoint(args.checkpoint)
    check_images, reference_images = _load_images(args.images)
    input_size = args.input_size or config.get("input_size") or check_images.shape[1]
    channels = 1 if check_images.ndim == 3 else check_images.shape[-1]
    modalities = args.modality.split(",") if args.modality else None
    out = export_checkpoint(args.checkpoint, args.out, input_size=input_size, channels=channels, modalities=modalities)
    print(f"exported {config['backbone']} ({len(config['classes'])} classes) to {out} (opset {OPSET}, dynamic batch, "
          f"input uint8 {channels}x{input_size}x{input_size}, preprocessing inside)")
    result = verify_onnx(model, out, check_images[: args.n_verify], tolerance=args.tolerance)
    print(f"verify on {result.n_images} real images: max |probability difference| = {result.max_abs_diff:.2e} "
          f"(tolerance {result.tolerance:.0e}), max |logit difference| = {result.max_abs_diff_logits:.2e}, "
          f"predicted classes {'identical' if result.same_classes else 'DIFFER'}")
    if not result.ok:
        print(f"FAILED: {result}")
        return 1
    if not args.no_drift:
        monitor = save_reference(out, reference_images)
        print(f"drift reference: {drift_path(out)} ({monitor})")
    print("OK")
    return 0
