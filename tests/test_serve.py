"""`medkit serve`, the DICOM node: pynetdicom's storescu as an independent sender, what is refused and why, a
sender that vanishes mid-transfer, SIGTERM while images arrive, and no UID in the logs unless asked."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import ROOT

pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")

from serve_support import SALT, helpers  # noqa: E402

from medkit.deploy.results import Pseudonymiser, read_results  # noqa: E402
from medkit.deploy.serve import REFUSED_OUT_OF_RESOURCES, SUCCESS, DicomNode, ServeConfig  # noqa: E402

SAMPLES = ROOT / "data_samples"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny exported chest model (32 px, random weights) with a sanity gate fitted on bundled X-rays."""
    return helpers.export_model(tmp_path_factory.mktemp("model"), backbone="tiny", input_size=32, image_size=32)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Four bundled chest X-rays as one 128 px DX study."""
    return helpers.dx_study(tmp_path_factory.mktemp("dx"), 4)


@pytest.fixture
def node(model, tmp_path):
    """A running node on a free loopback port, resizing to the model's size; stopped after the test."""
    running = DicomNode(ServeConfig(model=model, out_dir=tmp_path / "out", port=0, resize=True, salt=SALT))
    running.start()
    yield running
    if running.server is not None:
        running.stop()


def _odd_images(folder, study):
    """Return DX files the node must flag or refuse: a black film, a foot, a colour picture."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    ref = dcmread(study[0])
    kwargs = dict(study_uid=ref.StudyInstanceUID, series_uid=ref.SeriesInstanceUID)
    black = helpers.write_dx(np.zeros((128, 128), np.uint8), folder / "black.dcm", number=90, **kwargs)
    foot = helpers.write_dx(np.asarray(dcmread(study[1]).pixel_array // 16, np.uint8), folder / "foot.dcm",
                            number=91, body_part="FOOT", **kwargs)
    colour = dcmread(study[2])  # a photograph-like RGB image in a DX header: a grey model must refuse it
    rgb = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    colour.SOPInstanceUID = colour.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    colour.PhotometricInterpretation, colour.SamplesPerPixel, colour.PlanarConfiguration = "RGB", 3, 0
    colour.BitsAllocated, colour.BitsStored, colour.HighBit, colour.PixelData = 8, 8, 7, rgb.tobytes()
    for keyword in ("WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope", "RescaleType"):
        delattr(colour, keyword)
    colour.save_as(folder / "colour.dcm", enforce_file_format=True)
    return black, foot, folder / "colour.dcm"


def test_storescu_sends_a_study_and_every_image_gets_a_result(node, study, tmp_path):
    black, foot, colour = _odd_images(tmp_path, study)
    files = [*study, black, foot, colour, SAMPLES / "CT_small.dcm"]
    proc = subprocess.run([sys.executable, "-m", "pynetdicom", "storescu", "127.0.0.1", str(node.port), "-aec",
                           "MEDKIT", "-aet", "STORESCU", *map(str, files)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    node.stop()
    rows = read_results(node.config.out_dir / "results.jsonl")
    from pydicom import dcmread

    uid = Pseudonymiser(SALT)
    by_sop = {r["sop"]: r for r in rows}
    assert sorted(by_sop) == sorted(uid(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files)
    status = {f.name: by_sop[uid(dcmread(f, stop_before_pixels=True).SOPInstanceUID)] for f in files}
    assert [status[f.name]["status"] for f in study] == ["predicted"] * len(study)
    assert all(status[f.name]["prediction"] in ("NORMAL", "PNEUMONIA") for f in study)
    assert status["black.dcm"]["status"] == "flagged" and status["black.dcm"]["checks"][0]["check"] == "flat"
    assert status["foot.dcm"]["status"] == "refused" and "BodyPartExamined FOOT" in status["foot.dcm"]["reason"]
    assert status["colour.dcm"]["status"] == "refused" and "is a colour image" in status["colour.dcm"]["reason"]
    assert status["CT_small.dcm"]["status"] == "refused" and "is a CT image" in status["CT_small.dcm"]["reason"]
    assert all(r["caller"] == "STORESCU" for r in rows)
    # a Secondary Capture for each image read (predicted or flagged), in the sent study, none for the refused
    captures = sorted((node.config.out_dir / "results").iterdir())
    assert sorted(c.name for c in captures) == sorted(r["output"] for r in rows if r["status"] != "refused")
    sc = dcmread(captures[0])
    assert sc.SOPClassUID.name == "Secondary Capture Image Storage" and sc.BurnedInAnnotation == "YES"
    assert sc.StudyInstanceUID == dcmread(study[0]).StudyInstanceUID
    assert not any((node.config.out_dir / "spool").iterdir())


def test_results_name_images_by_keyed_hash_not_uid(model, study, tmp_path, caplog):
    from pydicom import dcmread

    ds = dcmread(study[0])
    caplog.set_level("INFO", logger="medkit.serve")
    hidden = DicomNode(ServeConfig(model=model, out_dir=tmp_path / "hidden", resize=True, salt=SALT))
    assert hidden.handle(ds, ds.file_meta, "PACS") == SUCCESS
    text = (tmp_path / "hidden" / "results.jsonl").read_text() + caplog.text
    assert Pseudonymiser(SALT).token(ds.SOPInstanceUID) in text
    for value in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, str(ds.PatientName), ds.PatientID):
        assert value not in text
    kept = DicomNode(ServeConfig(model=model, out_dir=tmp_path / "kept", resize=True, salt=SALT, keep_uids=True))
    kept.handle(ds, ds.file_meta, "PACS")
    assert read_results(tmp_path / "kept" / "results.jsonl")[0]["sop"] == ds.SOPInstanceUID


def test_size_is_refused_without_resize(model, study, tmp_path):
    from pydicom import dcmread

    strict = DicomNode(ServeConfig(model=model, out_dir=tmp_path / "out", salt=SALT))
    ds = dcmread(study[0])
    assert strict.handle(ds, ds.file_meta) == SUCCESS  # received, and the refusal is the result
    (row,) = read_results(tmp_path / "out" / "results.jsonl")
    assert row["status"] == "refused" and "128x128 px, but the model takes 32x32 px" in row["reason"]


def _cutting_proxy(target_port: int, cut_after: int) -> int:
    """Start a TCP proxy to the node that closes both sides after `cut_after` bytes from the sender; return its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(src, dst, limit):
        sent = 0
        try:
            while data := src.recv(4096):
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[:limit - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()

    def serve():
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", target_port))
        threading.Thread(target=pipe, args=(upstream, client, None), daemon=True).start()
        pipe(client, upstream, cut_after)
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_sender_that_vanishes_mid_transfer_leaves_nothing_and_the_node_serves_on(node, study):
    # 128x128 16-bit: 32 kB of pixel data; the association request and the header pass, the pixels are cut
    statuses = helpers.send(study[:1], _cutting_proxy(node.port, 12_000))
    assert statuses != [SUCCESS]
    assert helpers.send(study[1:2], node.port) == [SUCCESS]
    node.stop()
    rows = read_results(node.config.out_dir / "results.jsonl")
    assert [r["sop"] for r in rows] == [Pseudonymiser(SALT)(_sop(study[1]))]
    assert not any((node.config.out_dir / "spool").iterdir())


def _sop(path) -> str:
    from pydicom import dcmread

    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def test_sigterm_finishes_or_refuses_what_is_in_flight(model, study, tmp_path):
    """SIGTERM while a sender streams: every image answered Success has its whole result, the rest are refused."""
    out, ready = tmp_path / "out", tmp_path / "port"
    files = study * 10  # 40 stores over one association
    proc = subprocess.Popen([sys.executable, "-m", "medkit.cli", "serve", "--model", str(model), "--out", str(out),
                             "--port", "0", "--resize", "--ready-file", str(ready)], stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.time() + 180  # the CLI imports torch and onnx: seconds alone, a minute on a loaded box
        while not ready.is_file() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert ready.is_file(), proc.stderr.read() if proc.poll() is not None else "node did not start in 180 s"
        statuses = []
        sender = threading.Thread(target=lambda: statuses.extend(helpers.send(files, int(ready.read_text()))))
        sender.start()
        while not (out / "results.jsonl").is_file() or len(read_results(out / "results.jsonl")) < 3:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        sender.join(60)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stderr.read()
    rows = read_results(out / "results.jsonl")  # every line whole JSON
    answered = [s for s in statuses if s == SUCCESS]
    assert 3 <= len(answered) < len(files), statuses
    assert len(rows) == len(answered)
    assert all(s in (SUCCESS, REFUSED_OUT_OF_RESOURCES, -1) for s in statuses)
    assert statuses[:len(answered)] == answered  # refused only after the signal, never before
    assert "stop requested" in log and "stopped" in log
    assert not any(_sop(f) in log for f in study)  # the log names images by keyed hash only
    assert not any((out / "spool").iterdir())
    assert not [p for p in (out / "results").iterdir() if p.suffix != ".dcm"]  # no temporary file left behind
    assert len({r["output"] for r in rows}) == len(list((out / "results").iterdir())) <= len(study)


def test_bad_destination_and_port_are_refused_clearly(model, tmp_path):
    from medkit.base.errors import ConfigError
    from medkit.deploy.serve import parse_destination

    assert parse_destination("ORTHANC@127.0.0.1:4242") == ("ORTHANC", "127.0.0.1", 4242)
    for bad in ("ORTHANC", "ORTHANC@host", "@h:1", "A@h:99999", "AAAAAAAAAAAAAAAAA@h:1"):
        with pytest.raises(ConfigError, match="AE@HOST:PORT|AE title must"):
            parse_destination(bad)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = DicomNode(ServeConfig(model=model, out_dir=tmp_path, port=taken.getsockname()[1], salt=SALT))
        with pytest.raises(ConfigError, match="Cannot listen on 127.0.0.1"):
            busy.start()


def test_results_file_keeps_whole_lines_under_concurrent_appends(tmp_path):
    from medkit.deploy.results import ResultsFile

    results = ResultsFile(tmp_path / "r.jsonl")
    rows = [{"thread": t, "k": k, "pad": "x" * (k * 37 % 3000)} for t in range(8) for k in range(50)]
    threads = [threading.Thread(target=lambda t=t: [results.append(r) for r in rows if r["thread"] == t])
               for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.close()
    got = read_results(tmp_path / "r.jsonl")
    assert sorted((r["thread"], r["k"]) for r in got) == sorted((r["thread"], r["k"]) for r in rows)
    with pytest.raises(ValueError):
        results.append({"nan": float("nan")})  # strict JSON: a NaN is refused before anything is written


def test_only_the_configured_callers_are_accepted(model, study, tmp_path):
    picky = DicomNode(ServeConfig(model=model, out_dir=tmp_path / "out", port=0, resize=True, salt=SALT,
                                  callers=("PACS",)))
    picky.start()
    try:
        assert helpers.send(study[:1], picky.port) == [-1]  # the helper calls as SENDER: association rejected
    finally:
        picky.stop()
    assert read_results(tmp_path / "out" / "results.jsonl") == []
