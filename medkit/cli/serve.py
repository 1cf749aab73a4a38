"""`medkit serve`: listen as a DICOM node and predict every image a PACS or modality sends (C-STORE).

Every image goes through what `medkit predict` does to a file: the reader's refusals (modality, body part,
colour for a grey model, size unless --resize), the display pipeline, the sanity gate. Each result is one JSON
line in OUT/results.jsonl and, unless refused, a Secondary Capture in OUT/results/ with the prediction (or
FLAGGED) burned in, sent to --send-to when given. Logs and results name images by keyed hashes of their
UIDs unless --keep-uids. SIGTERM or Ctrl-C stops it cleanly: new images are refused, those in flight finished.
"""

from . import positive_int

HELP = "Run a DICOM node (C-STORE SCP) that predicts every image it receives with a model from `medkit export`."


def _port(text: str) -> int:
    """argparse type: a TCP port, 0 (let the OS choose) to 65535."""
    import argparse

    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="FILE", help="the .onnx file written by `medkit export`")
    parser.add_argument("--out", required=True, metavar="DIR", help="where results.jsonl and results/ are written")
    parser.add_argument("--ae-title", default="MEDKIT", help="this node's AE title (default MEDKIT)")
    parser.add_argument("--port", type=_port, default=11112, help="port to listen on (default 11112; 0: any free)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for every network)")
    parser.add_argument("--send-to", metavar="AE@HOST:PORT", help="send each result (Secondary Capture) to this AE")
    parser.add_argument("--accept-from", metavar="AE", nargs="+", default=(),
                        help="accept associations only from these calling AE titles (default: any)")
    parser.add_argument("--resize", action="store_true", help="resample images of another size to the model's size")
    parser.add_argument("--allow-ood", action="store_true", help="predict every image, without the sanity gate")
    parser.add_argument("--keep-uids", action="store_true",
                        help="write the images' UIDs in logs and results (default: keyed hashes, no UIDs)")
    parser.add_argument("--threads", type=positive_int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--log-file", metavar="FILE", help="also append the log to FILE")
    parser.add_argument("--ready-file", metavar="FILE",
                        help="write the port listened on to FILE once ready (for scripts and --port 0)")


def _logging(log_file) -> None:
    """Send medkit.serve's log to stderr (and `log_file`): time, level, message; never a patient attribute."""
    import logging

    logger = logging.getLogger("medkit.serve")
    logger.setLevel(logging.INFO)
    handlers = [logging.StreamHandler()] + ([logging.FileHandler(log_file)] if log_file else [])
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its INFO lines name every association


def run(args) -> int:
    from pathlib import Path

    from ..base.atomic import write_text
    from ..deploy.serve import DicomNode, ServeConfig, parse_destination

    _logging(args.log_file)
    config = ServeConfig(model=Path(args.model), out_dir=Path(args.out), ae_title=args.ae_title, port=args.port,
                         host=args.host, destination=parse_destination(args.send_to) if args.send_to else None,
                         resize=args.resize, allow_ood=args.allow_ood, keep_uids=args.keep_uids,
                         threads=args.threads, callers=tuple(args.accept_from))
    node = DicomNode(config)
    node.start()
    if args.ready_file:
        write_text(args.ready_file, f"{node.port}\n")
    node.serve_forever()
    return 0
