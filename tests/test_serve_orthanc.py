"""`medkit serve` against a real PACS: Debian's Orthanc, started on loopback with its own storage, loaded with the
bundled DICOM files and a DX chest study, told to send its studies to the node (REST /modalities/{id}/store);
every image gets a result, and the results come back into Orthanc in the study they belong to.

Skipped, with the reason, where the `Orthanc` binary is missing (`.ci/run` installs Debian's `orthanc`) or
does not start."""

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from conftest import ROOT

pytest.importorskip("pynetdicom")
pytest.importorskip("highdicom")

from serve_support import SALT, helpers  # noqa: E402

from medkit.deploy.results import Pseudonymiser, read_results  # noqa: E402
from medkit.deploy.serve import DicomNode, ServeConfig  # noqa: E402

BUNDLED = [ROOT / "data_samples" / name for name in ("CT_small.dcm", "MR_small.dcm")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rest(base: str, path: str, data: bytes | None = None, timeout: float = 60):
    """Return Orthanc's JSON answer to GET (or POST `data`) on `path`."""
    request = urllib.request.Request(base + path, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read() or b"null")


@pytest.fixture
def orthanc(tmp_path):
    """Orthanc on loopback (free HTTP and DICOM ports, storage in tmp_path); yields (REST base, DICOM port, config)."""
    binary = shutil.which("Orthanc")
    if binary is None:
        pytest.skip("Orthanc is not installed (Debian: apt-get install orthanc; .ci/run does it)")
    http, dicom, node_port = _free_port(), _free_port(), _free_port()
    config = {"Name": "medkit-test", "StorageDirectory": str(tmp_path / "db"), "IndexDirectory": str(tmp_path / "db"),
              "HttpPort": http, "DicomPort": dicom, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [], "HttpServerEnabled": True, "DicomServerEnabled": True,
              "DicomModalities": {"medkit": ["MEDKIT", "127.0.0.1", node_port]}, "StableAge": 1}
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    log = open(tmp_path / "orthanc.log", "w")
    proc = subprocess.Popen([binary, str(tmp_path / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                _rest(base, "/system", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.skip(f"Orthanc did not start: {(tmp_path / 'orthanc.log').read_text()[-500:]}")
                time.sleep(0.1)
        yield base, dicom, node_port
    finally:
        proc.kill()  # a throwaway instance: its storage goes with tmp_path, so no orderly shutdown is needed
        proc.wait(20)
        log.close()


def test_orthanc_sends_its_studies_and_gets_the_results_back(orthanc, tmp_path):
    base, orthanc_dicom, node_port = orthanc
    model = helpers.export_model(tmp_path / "model", backbone="tiny", input_size=32, image_size=32)
    study = helpers.dx_study(tmp_path / "dx", 3)
    files = [*study, *BUNDLED]
    for path in files:
        assert _rest(base, "/instances", path.read_bytes())["Status"] == "Success"
    studies = _rest(base, "/studies")
    assert len(studies) == 3  # the DX study, CT_small's and MR_small's
    node = DicomNode(ServeConfig(model=model, out_dir=tmp_path / "out", port=node_port, resize=True, salt=SALT,
                                 destination=("ORTHANC", "127.0.0.1", orthanc_dicom)))
    node.start()
    try:
        assert _rest(base, "/modalities/medkit/echo", b"{}") == {}
        for orthanc_study in studies:
            answer = _rest(base, "/modalities/medkit/store", json.dumps({"Resources": [orthanc_study],
                                                                         "Synchronous": True}).encode())
            assert answer["FailedInstancesCount"] == 0, answer
    finally:
        node.stop()
    from pydicom import dcmread

    uid = Pseudonymiser(SALT)
    rows = {r["sop"]: r for r in read_results(tmp_path / "out" / "results.jsonl")}
    sops = [str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]
    assert sorted(rows) == sorted(uid(s) for s in sops)  # every image sent got one result
    assert [rows[uid(s)]["status"] for s in sops] == ["predicted"] * len(study) + ["refused", "refused"]
    assert all(rows[uid(s)]["sent"] for s in sops[:len(study)]) and all(r["caller"] == "ORTHANC" for r in rows.values())
    # the results are in Orthanc now: in the DX study, one new series of Secondary Captures, one per image
    dx = dcmread(study[0], stop_before_pixels=True)
    (dx_study,) = [s for s in _rest(base, "/studies?expand")
                   if s["MainDicomTags"]["StudyInstanceUID"] == dx.StudyInstanceUID]
    series = [_rest(base, f"/series/{s}") for s in dx_study["Series"]]
    (results,) = [s for s in series if s["MainDicomTags"].get("SeriesDescription", "").startswith("medkit")]
    assert len(results["Instances"]) == len(study) and results["MainDicomTags"]["Modality"] == "OT"
    tags = _rest(base, f"/instances/{results['Instances'][0]}/simplified-tags")
    assert tags["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.7" and tags["BurnedInAnnotation"] == "YES"
    assert len(_rest(base, "/instances")) == len(files) + len(study)
