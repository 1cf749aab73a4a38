"""`medkit serve`: a DICOM node (C-STORE SCP) that runs an exported model on every image a PACS sends it.

Each received image goes through exactly what `medkit predict` does to a file (`gate.predict_gated`: the
reader `files.read_for_model`, with its modality, body part, photometric and size refusals, the display
pipeline of `medkit.data.dicom`, the sanity gate), then out as one JSON line in `results.jsonl` and, when it
was read, as a Secondary Capture (`capture.py`) in `results/`, optionally sent on to a destination AE.
An image the model was not made for is refused with its reason logged and written; the sender still gets
Success (the node received it: a PACS that routes every study to it should not retry a CT forever).

Privacy: logs and results name images by a keyed hash of their UIDs (`results.Pseudonymiser`) unless the
operator keeps the UIDs; no patient attribute is ever logged. Each image waits in `spool/` only while it is
being read (the reader takes a file), and a node that was killed clears what it left there when it starts.
Shutdown: on SIGTERM or SIGINT the node answers new C-STOREs with "Refused: out of resources" (0xA700, the
sender keeps the image and may retry), finishes every image in flight, then closes the associations.
"""

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..base.atomic import atomic_path
from ..base.errors import ConfigError, DataError, MedkitError
from .capture import banner_lines, render_result, secondary_capture
from .results import Pseudonymiser, ResultsFile

__all__ = ["ServeConfig", "DicomNode", "parse_destination", "RESULTS_FILE", "RESULTS_DIR", "SPOOL_DIR",
           "SUCCESS", "REFUSED_OUT_OF_RESOURCES", "FAILED"]

RESULTS_FILE, RESULTS_DIR, SPOOL_DIR = "results.jsonl", "results", "spool"
SUCCESS, REFUSED_OUT_OF_RESOURCES, FAILED = 0x0000, 0xA700, 0xC000  # C-STORE statuses, PS3.4 Table B.2-1
_LOG = logging.getLogger("medkit.serve")


@dataclass
class ServeConfig:
    """What `medkit serve` listens on, where it writes, and what it may say about the images."""

    model: Path  # the .onnx file from `medkit export` (sidecar, gate reference beside it)
    out_dir: Path  # results.jsonl, results/ (Secondary Captures), spool/ (images being read)
    ae_title: str = "MEDKIT"  # the node's AE title: a PACS sends to it by this name
    port: int = 11112  # the registered DICOM port (PS3.15 / IANA), not the privileged 104
    host: str = "127.0.0.1"  # loopback: listening on a network is the operator's decision (--host 0.0.0.0)
    destination: tuple | None = None  # (AE title, host, port) the Secondary Captures are sent to; None: kept only
    resize: bool = False  # as `medkit predict --resize`: resample other sizes to the model's, else refuse them
    allow_ood: bool = False  # as `medkit predict --allow-ood`: no sanity gate
    keep_uids: bool = False  # log and write the UIDs themselves instead of their keyed hashes
    salt: str | None = None  # key of the UID hashes; default the installation's de-identification salt
    threads: int | None = None  # onnxruntime intra-op threads (None: all cores)
    callers: tuple = ()  # calling AE titles accepted; empty: any
    drain_s: float = 60.0  # on SIGTERM, how long to wait for images in flight before closing anyway


def parse_destination(text: str) -> tuple[str, str, int]:
    """Return (AE title, host, port) from 'AE@HOST:PORT', refusing anything else with the expected form."""
    try:
        ae_title, address = text.split("@", 1)
        host, port = address.rsplit(":", 1)
        port = int(port)
    except ValueError:
        raise ConfigError(f"--send-to {text!r} is not AE@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242.") from None
    if not ae_title.strip() or len(ae_title.strip()) > 16 or not host or not 0 < port < 65536:
        raise ConfigError(f"--send-to {text!r}: the AE title must be 1-16 characters and the port 1-65535, e.g. "
                          "ORTHANC@127.0.0.1:4242.")
    return ae_title.strip(), host, port


class DicomNode:
    """A C-STORE SCP that predicts every image it receives; `start()`, then `stop()` (or `serve_forever()`)."""

    def __init__(self, config: ServeConfig):
        from ..base._optional import require

        require("pynetdicom", "serve", "medkit serve")
        require("highdicom", "serve", "medkit serve")
        from .gate import onnx_gate
        from .onnx import OnnxPredictor

        self.config = config
        self.predictor = OnnxPredictor(config.model, threads=config.threads)
        self.gate = None if config.allow_ood else onnx_gate(self.predictor, log=_LOG.warning)
        self.model_name = f"{self.predictor.meta.get('backbone', 'model')}/{self.predictor.meta.get('onnx_sha256', '')[:8]}"
        self.uid = Pseudonymiser(config.salt, keep_uids=config.keep_uids)
        out = Path(config.out_dir)
        self.spool, self.results_dir = out / SPOOL_DIR, out / RESULTS_DIR
        for folder in (self.spool, self.results_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._clear_spool()
        self._warm_up()
        self.results = ResultsFile(out / RESULTS_FILE)
        self._busy, self._stopping, self._done = threading.Condition(), False, threading.Event()
        self._in_flight, self.server = 0, None

    def _clear_spool(self) -> None:
        """Delete images a killed node left in the spool: they hold patient data and no result."""
        left = [p for p in self.spool.iterdir() if p.is_file()]
        for path in left:
            path.unlink()
        if left:
            _LOG.warning("removed %d image(s) a previous node left unread in %s", len(left), self.spool)

    def _warm_up(self) -> None:
        """Run the model and build one result on blanks, so the first image a PACS sends does not pay for it.

        highdicom reads the standard's tables (seconds) on its first object, Pillow its plugins on its first open.
        """
        import numpy as np
        from PIL import Image
        from pydicom.dataset import Dataset
        from pydicom.uid import generate_uid

        size, channels = self.predictor.input_size, self.predictor.channels
        self.predictor.run(np.zeros((1, channels, size, size), np.uint8))
        Image.init()
        blank = Dataset()
        blank.StudyInstanceUID, blank.SeriesInstanceUID, blank.SOPInstanceUID = (generate_uid() for _ in range(3))
        blank.SOPClassUID, blank.Modality, blank.PatientID, blank.PatientName = "1.2.840.10008.5.1.4.1.1.7", "OT", "", ""
        row = {"flagged": False, "prediction": self.predictor.classes[0], "probability": 1.0, "checks": []}
        secondary_capture(blank, render_result(np.zeros((size, size), np.uint8), ["warm-up"], False), row=row,
                          model_name=self.model_name, model_sha256="")

    def _application_entity(self):
        """Return the pynetdicom AE: every storage SOP class in the uncompressed transfer syntaxes, and echo."""
        from pynetdicom import AE, AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.config.ae_title)
        ae.maximum_associations = 32  # pynetdicom's default of 10 would turn a busy PACS's 11th sender away
        # uncompressed only: a PACS transcodes for a node that asks, and no decoder plugin is then needed here
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        if self.config.callers:
            ae.require_calling_aet = [str(c) for c in self.config.callers]
        return ae

    def start(self):
        """Listen on (host, port) in background threads; return the pynetdicom server."""
        from pynetdicom import evt

        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_ABORTED, self._on_aborted),
                    (evt.EVT_CONN_CLOSE, self._on_closed)]
        try:
            self.server = self._application_entity().start_server((self.config.host, int(self.config.port)),
                                                                  block=False, evt_handlers=handlers)
        except OSError as exc:
            raise ConfigError(f"Cannot listen on {self.config.host}:{self.config.port} ({exc.strerror or exc}): "
                              "another program holds the port, or it needs privileges. Choose another --port.") from exc
        _LOG.info("listening as %s on %s:%d, model %s, results in %s", self.config.ae_title, self.config.host,
                  self.server.server_address[1], self.model_name, self.config.out_dir)
        return self.server

    @property
    def port(self) -> int:
        """Return the port the node listens on (the one the OS chose when configured with 0)."""
        return int(self.server.server_address[1])

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then stop cleanly (the main thread's signal handlers are replaced)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: self._done.set())
        if self.server is None:
            self.start()
        self._done.wait()
        _LOG.info("stop requested: refusing new images, finishing %d in flight", self._in_flight)
        self.stop()

    def stop(self) -> None:
        """Refuse new images, wait (up to `drain_s`) for those in flight, then close every association and the port."""
        with self._busy:
            self._stopping = True
            drained = self._busy.wait_for(lambda: self._in_flight == 0, timeout=self.config.drain_s)
        if not drained:
            _LOG.error("%d image(s) still in flight after %.0f s; closing anyway (their senders get no answer and "
                       "keep them)", self._in_flight, self.config.drain_s)
        if self.server is not None:
            for assoc in list(self.server.active_associations):
                assoc.abort()
            self.server.shutdown()
            self.server = None
        self.results.close()
        _LOG.info("stopped")

    def _on_aborted(self, event) -> None:
        """Log a sender that aborted: what it had half sent was never handed to the model."""
        _LOG.warning("association from %s aborted; nothing partial was kept", event.assoc.requestor.ae_title)

    def _on_closed(self, event) -> None:
        """Log a connection that closed (a sender that vanished mid-transfer lands here without an A-ABORT)."""
        _LOG.debug("connection from %s closed", event.address[0] if event.address else "?")

    def _on_store(self, event) -> int:
        """Answer one C-STORE: refuse while stopping, else predict it and return Success."""
        with self._busy:
            if self._stopping:
                return REFUSED_OUT_OF_RESOURCES
            self._in_flight += 1
        try:
            return self.handle(event.dataset, event.file_meta, event.assoc.requestor.ae_title,
                               encoded=event.encoded_dataset())
        finally:
            with self._busy:
                self._in_flight -= 1
                self._busy.notify_all()

    def handle(self, ds, file_meta, caller: str = "", encoded: bytes | None = None) -> int:
        """Predict one received dataset, write its result line (and Secondary Capture), return the C-STORE status."""
        start = time.perf_counter()
        sop = str(ds.get("SOPInstanceUID", "") or "")
        row = {"sop": self.uid(sop), "study": self.uid(ds.get("StudyInstanceUID")),
               "series": self.uid(ds.get("SeriesInstanceUID")), "caller": str(caller).strip(),
               "received": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "model": self.model_name}
        spool = self.spool / f"{self.uid.token(sop) if sop else os.urandom(8).hex()}-{threading.get_ident()}.dcm"
        status = SUCCESS
        try:
            self._write_spool(spool, ds, file_meta, encoded)
            row.update(self._predict(spool, row["sop"]))
            if row["status"] != "refused":
                row.update(self._capture(spool, ds, row))
        except MedkitError as exc:  # a result that cannot be written (full disk...): the sender must keep it
            row.update(status="error", reason=self._scrub(str(exc), spool, row["sop"]))
            status = FAILED
        except Exception as exc:  # noqa: BLE001 - one bad image must never stop the node; it is logged, named
            row.update(status="error", reason=f"{type(exc).__name__}: {self._scrub(str(exc), spool, row['sop'])}")
            status = FAILED
            _LOG.exception("image %s: unexpected %s", row["sop"], type(exc).__name__)
        finally:
            spool.unlink(missing_ok=True)
        row["latency_ms"] = round(1000 * (time.perf_counter() - start), 2)
        self.results.append(row)
        _LOG.info("%s", _summary(row))
        return status

    def _write_spool(self, spool: Path, ds, file_meta, encoded: bytes | None) -> None:
        """Write the received image as a DICOM file for the reader (encoded bytes as sent, else through pydicom)."""
        if encoded is not None:
            spool.write_bytes(encoded)
            return
        ds.file_meta = file_meta
        ds.save_as(spool, enforce_file_format=True)

    def _scrub(self, text: str, spool: Path, name: str) -> str:
        """Return an error message with the spool path replaced by the image's pseudonym (it may hold a UID)."""
        return text.replace(str(spool), f"image {name}").replace(spool.name, f"image {name}")

    def _predict(self, spool: Path, name: str) -> dict:
        """Return the result of `predict_gated` on one file: predicted, flagged, or refused with the reason."""
        from .gate import predict_gated

        try:
            (row,) = predict_gated(self.predictor, [spool], resize=self.config.resize, gate=self.gate)
        except DataError as exc:  # the reader's refusals: modality, body part, colour, size, damaged file
            return {"status": "refused", "reason": self._scrub(str(exc), spool, name)}
        row.pop("file")
        return {"status": "flagged" if row["flagged"] else "predicted", **row}

    def _capture(self, spool: Path, ds, row: dict) -> dict:
        """Write the Secondary Capture of a result (atomically) and send it on; return where it went."""
        from ..data.dicom import dicom_to_uint8

        lines = banner_lines(row, self.model_name, self.predictor.threshold)
        pixels = render_result(dicom_to_uint8(spool), lines, row["flagged"])
        sc = secondary_capture(ds, pixels, row=row, model_name=self.model_name,
                               model_sha256=self.predictor.meta.get("onnx_sha256", ""))
        target = self.results_dir / f"{self.uid.token(sc.SOPInstanceUID)}.dcm"
        with atomic_path(target) as tmp:
            sc.save_as(tmp, enforce_file_format=True)
        out = {"output": target.name}
        if self.config.destination:
            out["sent"] = self._send(sc)
        return out

    def _send(self, sc) -> bool:
        """C-STORE one result to the destination AE; return whether it answered Success (failures are logged)."""
        from pynetdicom import AE
        from pynetdicom.sop_class import SecondaryCaptureImageStorage

        ae_title, host, port = self.config.destination
        ae = AE(ae_title=self.config.ae_title)
        ae.add_requested_context(SecondaryCaptureImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        assoc = ae.associate(host, int(port), ae_title=ae_title)
        if not assoc.is_established:
            _LOG.error("cannot associate with %s@%s:%d to send a result; it is kept in %s", ae_title, host, port,
                       self.results_dir)
            return False
        try:
            status = assoc.send_c_store(sc)
        finally:
            assoc.release()
        ok = bool(status) and int(status.Status) == SUCCESS
        if not ok:
            _LOG.error("%s refused a result (status %s); it is kept in %s", ae_title,
                       f"0x{int(status.Status):04X}" if status else "none", self.results_dir)
        return ok


def _summary(row: dict) -> str:
    """Return the log line of one result: pseudonym, caller and outcome, never a patient attribute."""
    what = {"predicted": lambda: f"{row['prediction']} {row['probability']:.3f}",
            "flagged": lambda: "FLAGGED " + "; ".join(f"{c['check']} {c['score']:.3g} vs {c['threshold']:.3g}"
                                                     for c in row["checks"]),
            }.get(row["status"], lambda: f"{row['status'].upper()}: {row.get('reason', '')}")()
    sent = "" if "sent" not in row else (" -> sent" if row["sent"] else " -> NOT sent")
    return f"image {row['sop']} from {row['caller'] or '?'}: {what} ({row['latency_ms']:.0f} ms){sent}"
