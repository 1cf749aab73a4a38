"""What the `medkit serve` tests and benchmark share: chest DX files, a small exported model, and a C-STORE sender.

The DX files are the bundled Kermany chest X-rays (data_samples/chest_xray, 128 px JPEGs) written as DICOM
Digital X-Ray Image Storage - For Presentation objects: 12 bits stored (the JPEG's grey * 16, a radiograph's
depth), MONOCHROME2, BodyPartExamined CHEST, one study per call, made-up patient. They are valid enough for
Orthanc and pydicom; they carry no real patient's data.
"""

import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHEST = ROOT / "data_samples" / "chest_xray" / "train"
PNEUMONIA_LIKE = ("PNEUMONIA", "NORMAL")
DX_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def chest_jpegs(n: int) -> list[Path]:
    """Return `n` bundled chest X-ray JPEGs, alternating the two classes (repeating when n exceeds them)."""
    pools = [sorted((CHEST / c).glob("*.jpeg")) for c in PNEUMONIA_LIKE]
    files = [p for pair in zip(*pools) for p in pair]
    return [files[i % len(files)] for i in range(n)]


def write_dx(pixels: np.ndarray, path, *, study_uid: str, series_uid: str, number: int,
             patient: str = "TEST^SERVE", body_part: str = "CHEST", modality: str = "DX") -> Path:
    """Write a uint8 grey image as a 12-bit DX DICOM file of one study and series; return its path."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = DX_CLASS, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = DX_CLASS, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient, "SERVE-0001", "", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = "20260101", "120000", "", ""
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, number
    ds.Modality, ds.BodyPartExamined, ds.Manufacturer = modality, body_part, "medkit test"
    ds.PresentationIntentType, ds.ImageType, ds.PatientOrientation = "FOR PRESENTATION", ["DERIVED", "PRIMARY"], ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = (pixels.astype(np.uint16) * 16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def dx_study(folder, n: int, **kwargs) -> list[Path]:
    """Write `n` bundled chest X-rays as one DX study (one series) in `folder`; return the files."""
    from PIL import Image
    from pydicom.uid import generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    return [write_dx(np.asarray(Image.open(jpeg).convert("L")), folder / f"dx{i:04d}.dcm", study_uid=study,
                     series_uid=series, number=i + 1, **kwargs) for i, jpeg in enumerate(chest_jpegs(n))]


def _corpus():
    """Return benchmarks/dicom_corpus.py as a module, loaded by path (the tests import this file by path too)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dicom_corpus", Path(__file__).parent / "dicom_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export_model(folder, backbone: str = "resnet18", input_size: int = 128, image_size: int = 64,
                 n_reference: int = 48) -> Path:
    """Export a random-init `backbone` ("tiny": a 2-layer CNN) for grey chest films, gated on bundled X-rays.

    Random weights predict nothing useful but cost what trained ones cost, which is what the tests and the
    load benchmark need; the gate is fitted on the bundled X-rays, so a black or noise image is FLAGGED.
    """
    import torch
    from PIL import Image

    from medkit.base.cache import sha256sum
    from medkit.deploy import OnnxPredictor, SanityGate, export_onnx, gate_path
    from medkit.models import get_backbone

    if backbone == "tiny":  # dicom_corpus's 2-layer CNN: milliseconds per image, for the tests
        backbone = _corpus()._tiny_backbone()
    torch.manual_seed(0)
    model = get_backbone(backbone, weights=None, num_classes=2).eval()
    out = export_onnx(model, Path(folder) / "model.onnx", input_size=input_size, image_size=image_size,
                      classes=["NORMAL", "PNEUMONIA"])
    images = np.stack([np.asarray(Image.open(p).convert("L").resize((input_size, input_size)))
                       for p in chest_jpegs(n_reference)])
    embeddings = OnnxPredictor(out).embed(images)
    half = n_reference * 2 // 3
    SanityGate.fit(images[:half], embeddings[:half], images[half:], embeddings[half:]).save(
        gate_path(out), model_sha256=sha256sum(out))
    return out


def send(files, port: int, ae_title: str = "MEDKIT", host: str = "127.0.0.1", latencies=None) -> list[int]:
    """C-STORE `files` over one association (pynetdicom's SCU); return each status (-1 when none came back)."""
    from pydicom import dcmread
    from pynetdicom import AE

    ae = AE(ae_title="SENDER")
    ae.add_requested_context(DX_CLASS, ["1.2.840.10008.1.2.1"])
    for path in files:  # every other SOP class the files use
        cls = str(dcmread(path, stop_before_pixels=True).SOPClassUID)
        if cls not in [c.abstract_syntax for c in ae.requested_contexts]:
            ae.add_requested_context(cls, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        return [-1] * len(files)
    statuses = []
    try:
        for path in files:
            if not assoc.is_established:  # the node aborted it (a node shutting down): the rest got no answer
                statuses.append(-1)
                continue
            start = time.perf_counter()
            status = assoc.send_c_store(path)
            if latencies is not None:
                latencies.append(time.perf_counter() - start)
            statuses.append(int(status.Status) if status and "Status" in status else -1)
    finally:
        if assoc.is_established:
            assoc.release()
    return statuses


def send_concurrently(files, port: int, n_associations: int, **kwargs) -> tuple[list[int], list[float]]:
    """Send `files` split over `n_associations` associations at once; return (statuses, per-image latencies)."""
    parts = [files[i::n_associations] for i in range(n_associations)]
    statuses, latencies = [None] * n_associations, []
    threads = [threading.Thread(target=lambda k=k: statuses.__setitem__(k, send(parts[k], port, latencies=latencies,
                                                                               **kwargs)))
               for k in range(n_associations)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [s for part in statuses for s in part], latencies
