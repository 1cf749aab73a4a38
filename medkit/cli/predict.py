"""`medkit predict`: run an exported model on PNG, JPEG or DICOM files, with the preprocessing stored beside it.

Each image first passes the sanity gate (`medkit.deploy.gate`): flat or low-contrast, inverted relative to
the training images, too small, aspect ratio far from training, or out of distribution (the distance of its
embedding to the 10th nearest training embedding above the threshold `medkit fit` set on held-out images). A flagged image is
listed as FLAGGED, with the check, its score and the threshold, and gets no class. `--allow-ood` predicts
every image as before.
"""

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
    parser.add_argument("--allow-ood", action="store_true",
                        help="predict every image, without the sanity gate (flat, contrast, inverted, size, aspect, "
                             "out-of-distribution score)")
    parser.add_argument("--threads", type=positive_int, default=None, help="onnxruntime threads (default: all cores)")


def _line(row: dict, width: int) -> str:
    if row["flagged"]:
        checks = "; ".join(f"{c['check']} {c['score']:.3g} vs {c['threshold']:.3g}" for c in row["checks"])
        return f"{row['file']:<{width}}  {'FLAGGED':<12} -            {checks}"
    ood = f"ood {row['ood_score']:.3g}" if row.get("ood_score") is not None else ""
    return f"{row['file']:<{width}}  {row['prediction']:<12} {row['probability']:.3f}        {ood}".rstrip()


def run(args) -> int:
    from ..deploy import OnnxPredictor
    from ..deploy.gate import onnx_gate, predict_gated
    from . import emit, log

    predictor = OnnxPredictor(args.model, threads=args.threads)
    gate = None if args.allow_ood else onnx_gate(predictor, log=log)
    rows = predict_gated(predictor, args.images, resize=args.resize, gate=gate, value_range=args.value_range)
    width = max(len(r["file"]) for r in rows)
    lines = [f"{'file':<{width}}  {'prediction':<12} probability  gate"] + [_line(r, width) for r in rows]
    flagged = sum(r["flagged"] for r in rows)
    result = {"predictions": rows, "flagged": flagged, "gate": "off (--allow-ood)" if gate is None else repr(gate)}
    if flagged:
        log(f"sanity gate: {flagged} of {len(rows)} image(s) flagged and not predicted (check score vs threshold "
            "above); --allow-ood predicts them anyway")
    if args.drift:
        embeddings = predictor.embed(predictor.load_files(args.images, args.resize, args.value_range))
        result["drift"] = predictor.monitor().test(embeddings)
        lines.append(f"drift: {result['drift']}")
    emit(args, result, "\n".join(lines))
    return 0
