"""`medkit predict`: run an exported model on PNG, JPEG or DICOM files, with the preprocessing stored beside it."""

from . import positive_int

HELP = "Predict PNG/JPEG/DICOM files with a model from `medkit export`; refuses files it was not made for."


def add_arguments(parser):
    from . import value_range_arg

    parser.add_argument("--model", required=True, metavar="FILE", help="the .onnx file written by `medkit export`")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or DICOM files")
    parser.add_argument("--resize", action="store_true", help="resample images of another size to the model's size")
    parser.add_argument("--drift", action="store_true", help="also test the batch for drift against the reference")
    parser.add_argument("--value-range", type=value_range_arg, default=(0.0, 1.0), metavar="LOW,HIGH",
                        help="the range float images were saved in (default 0,1); a pixel outside it is refused, never rescaled")
    parser.add_argument("--threads", type=positive_int, default=None, help="onnxruntime threads (default: all cores)")


def run(args) -> int:
    from ..deploy import OnnxPredictor
    from . import emit

    predictor = OnnxPredictor(args.model, threads=args.threads)
    rows = predictor.predict_files(args.images, resize=args.resize, value_range=args.value_range)
    width = max(len(r["file"]) for r in rows)
    lines = [f"{'file':<{width}}  {'prediction':<12} probability"]
    lines += [f"{r['file']:<{width}}  {r['prediction']:<12} {r['probability']:.3f}" for r in rows]
    result = {"predictions": rows}
    if args.drift:
        embeddings = predictor.embed(predictor.load_files(args.images, args.resize, args.value_range))
        result["drift"] = predictor.monitor().test(embeddings)
        lines.append(f"drift: {result['drift']}")
    emit(args, result, "\n".join(lines))
    return 0
