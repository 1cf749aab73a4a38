"""Run every file of pydicom's test corpus through medkit's DICOM reader and `medkit predict`, and judge each result.

For each file: the reader (`medkit.data.dicom.load_dicom` and `dicom_to_uint8`, what image folders and
`medkit predict` use) either loads it or raises a MedkitError naming the file; anything else is a crash.
A loaded file is checked against what it must hold ("silent-wrong" if a check fails):
- files that encode the same picture (MR_small in 7 transfer syntaxes, SC_rgb in RLE/JPEG/YBR/16/32 bit...)
  give the same 8-bit image as their uncompressed reference (lossy ones within a few grey levels);
- rescaled grey images equal stored * RescaleSlope + RescaleIntercept (HU for CT, within -4096..4095);
- MONOCHROME1 is the exact inverse of the same file declared MONOCHROME2 (window first, invert after),
  and not mostly white;
- PALETTE COLOR comes back as RGB through its table, not as indices; RTDOSE in Gy (DoseGridScaling);
- a varied image does not come back flat, and nothing comes back in more than 2-D grey or (H, W, 3).
Then `medkit predict --resize FILE` runs each file on a tiny exported model (grey, and RGB for colour
files) that accepts every modality of the corpus and UNKNOWN: it predicts, or exits 2 with the file named.

    python benchmarks/dicom_corpus.py            # prints the table and the counts
"""

import contextlib
import io
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medkit.base.errors import MedkitError
from medkit.data.dicom import dicom_to_uint8, load_dicom, open_dicom

# name -> (reference file, mean |difference| allowed in grey levels): same picture, other encodings.
FAMILIES = {
    "MR_small": ("MR_small.dcm", 0.0),
    "SC_rgb_rle": ("SC_rgb_rle.dcm", 4.0),  # includes lossy JPEG and YBR versions
    "SC_rgb_jpeg": ("SC_rgb_jpeg_dcmd.dcm", 4.0),
    "SC_rgb_small_odd": ("SC_rgb_small_odd.dcm", 6.0),
    "rtdose_1frame": ("rtdose_1frame.dcm", 0.0),
    "liver": ("liver_1frame.dcm", 0.0),
}
_MEMBERS = {
    "MR_small": lambda n: n.startswith("MR_small"),
    "SC_rgb_rle": lambda n: (n.startswith(("SC_rgb_dcmtk", "SC_rgb_rle", "SC_rgb_gdcm", "SC_rgb_jls", "SC_ybr_full"))
                             or n in ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm", "SC_rgb_jpeg_gdcm.dcm")),
    "SC_rgb_jpeg": lambda n: n in ("SC_rgb_jpeg.dcm", "SC_jpeg_no_color_transform.dcm",
                                   "SC_jpeg_no_color_transform_2.dcm", "SC_rgb_jpeg_app14_dcmd.dcm"),
    "SC_rgb_small_odd": lambda n: n.startswith("SC_rgb_small_odd"),
    "rtdose_1frame": lambda n: n.startswith("rtdose") and n.endswith("_1frame.dcm"),
    "liver": lambda n: n.startswith("liver"),
}


def corpus_files() -> list[Path]:
    """Return every file (not folder) of pydicom's test corpus, sorted by name then path."""
    from pydicom.data import get_testdata_files

    return sorted((Path(f) for f in get_testdata_files() if Path(f).is_file()), key=lambda p: (p.name, str(p)))


def _family(name: str) -> str | None:
    return next((fam for fam, member in _MEMBERS.items() if member(name)), None)


def _header(path: Path) -> tuple[str, str, str]:
    """Return (modality, transfer syntax, photometric) for the table, '-' where absent or unreadable."""
    try:
        ds = open_dicom(path, pixels=False)
    except MedkitError:
        return "-", "-", "-"
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return (str(ds.get("Modality", "") or "-"), str(uid.name if uid is not None else "-")[:30],
            str(ds.get("PhotometricInterpretation", "") or "-"))


def _twin_monochrome2(path: Path, tmp: Path) -> Path:
    """Write `path` declared MONOCHROME2 (everything else equal) and return it."""
    import pydicom

    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "MONOCHROME2"
    out = tmp / f"{path.name}.mono2.dcm"
    ds.save_as(out)
    return out


def check_loaded(path: Path, tmp: Path, references: dict) -> list[str]:
    """Return the checks a loaded file fails (empty: plausible)."""
    import pydicom
    from pydicom.pixels import apply_color_lut

    failed = []
    pixels = load_dicom(path)
    values, ds = pixels.values, pixels.ds
    single = pixels.frames == 1
    image = dicom_to_uint8(path) if single else None
    if image is not None and not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        failed.append(f"shape {image.shape}")
    if image is not None and image.min() == image.max() and values.min() != values.max():
        failed.append("flat image from varied values")
    stored = np.asarray(ds.pixel_array)
    if pixels.photometric in ("MONOCHROME1", "MONOCHROME2") and "RescaleSlope" in ds and not ds.get(
            "ModalityLUTSequence"):
        expected = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        if not np.allclose(values, expected, atol=1e-3 * max(1.0, float(np.abs(expected).max()))):
            failed.append("rescale not applied")
    if pixels.modality == "CT" and not (-4096 <= values.min() and values.max() <= 4095):
        failed.append(f"CT values {values.min():.0f}..{values.max():.0f} are not HU")
    if pixels.photometric == "MONOCHROME1" and image is not None:
        twin = dicom_to_uint8(_twin_monochrome2(path, tmp))
        if not np.array_equal(image.astype(int), 255 - twin.astype(int)):
            failed.append("MONOCHROME1 is not the inverse of its windowed MONOCHROME2 twin")
        if (image == 255).mean() > 0.5:
            failed.append("MONOCHROME1 comes out mostly white")
    if pixels.photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pydicom.dcmread(path).pixel_array, ds)[..., :3].astype(np.float64)
        rgb = rgb * (255.0 / (255.0 if rgb.max() <= 255 else 65535.0))
        if values.shape[-1] != 3 or np.abs(values - rgb).max() > 1.0:
            failed.append("PALETTE COLOR not expanded through its table")
    if pixels.modality == "RTDOSE":
        scale = float(ds.get("DoseGridScaling", 1.0))
        if not np.allclose(values, stored * scale, rtol=1e-5) or values.max() > 200:
            failed.append("RTDOSE not in Gy (DoseGridScaling)")
    family = _family(path.name)
    if family and image is not None:
        ref_name, tol = FAMILIES[family]
        ref = references.get(ref_name)
        if ref is not None and (ref.shape != image.shape or
                                np.abs(ref.astype(float) - image.astype(float)).mean() > tol + 0.5):
            failed.append(f"differs from {ref_name}")
    return failed


def _tiny_backbone():
    """Register (once) a 2-layer CNN so the corpus runs through a real exported model in milliseconds."""
    from medkit.models import Backbone, list_backbones, register

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc = nn.Linear(8, 1000)

        def forward(self, x):
            return self.fc(self.conv(x))

    if "corpus_tiny" not in list_backbones():
        register(Backbone(name="corpus_tiny", build=Tiny, weights={}, head="fc", groups=(("conv",), ("fc",)),
                          cam_layer="conv", feature_dim=8))
    return "corpus_tiny"


def export_tiny(folder: Path, modalities, body_parts=None) -> dict:
    """Export a grey and an RGB tiny model accepting `modalities` and `body_parts` (default: export_onnx's, chest)."""
    from medkit.deploy import export_onnx
    from medkit.models import get_backbone

    name = _tiny_backbone()
    torch.manual_seed(0)
    model = get_backbone(name, weights=None, num_classes=2).eval()
    return {c: export_onnx(model, folder / f"tiny{c}.onnx", input_size=32, image_size=32, classes=["a", "b"],
                           channels=c, modalities=modalities,
                           **({} if body_parts is None else {"body_parts": body_parts})) for c in (1, 3)}


def predict_outcome(model: Path, path: Path) -> tuple[str, str]:
    """Run `medkit predict --resize` on one file; return (outcome, detail): predicted, refused or crashed."""
    from medkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(["predict", "--model", str(model), "--resize", str(path)])
    except BaseException as exc:  # noqa: BLE001 - a traceback is exactly what this measures
        return "crashed", f"{type(exc).__name__}: {exc}"[:200]
    if rc == 0 and str(path) in out.getvalue():
        return "predicted", out.getvalue().splitlines()[-1][-40:]
    if rc == 1 and str(path) in err.getvalue():  # a MedkitError exits 1 and names the file
        return "refused", err.getvalue().strip().splitlines()[-1][:200]  # the error, after any warnings
    return "crashed", f"exit {rc} without naming the file: {err.getvalue()[:150]}"


def run_corpus(tmp: Path) -> list[dict]:
    """Return one row per corpus file: header fields, reader outcome, predict outcome and details."""
    files = corpus_files()
    references, rows = {}, []
    for name, _ in FAMILIES.values():
        path = next(p for p in files if p.name == name)
        with warnings.catch_warnings(), contextlib.suppress(MedkitError):  # a refused reference checks nothing
            warnings.simplefilter("ignore")
            references[name] = dicom_to_uint8(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        headers = {p: _header(p) for p in files}
    modalities = sorted({h[0] for h in headers.values() if h[0] != "-"} | {"UNKNOWN"})
    parts = set()
    for path in files:  # the corpus models accept every body part in it: this run tests reading, not the part check
        with contextlib.suppress(MedkitError), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts.add(str(open_dicom(path, pixels=False).get("BodyPartExamined", "") or "").strip().upper())
    models = export_tiny(tmp, modalities, sorted(parts - {""}) or ["CHEST"])
    for path in files:
        modality, syntax, photometric = headers[path]
        row = {"file": path.name, "path": str(path), "modality": modality, "transfer_syntax": syntax,
               "photometric": photometric}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                failed = check_loaded(path, tmp, references)
            row["reader"], row["detail"] = ("silent-wrong", "; ".join(failed)) if failed else ("loaded", "")
        except MedkitError as exc:
            named = str(path) in str(exc)
            row["reader"], row["detail"] = ("refused" if named else "crashed"), str(exc).replace(str(path), "FILE")
        except Exception as exc:  # noqa: BLE001 - a traceback is exactly what this measures
            row["reader"], row["detail"] = "crashed", "".join(traceback.format_exception_only(exc)).strip()
        colour = photometric not in ("MONOCHROME1", "MONOCHROME2", "-")
        row["predict"], row["predict_detail"] = predict_outcome(models[3 if colour else 1], path)
        rows.append(row)
    return rows


def counts(rows) -> dict:
    """Return the outcome counts the issue asks for."""
    return {"tried": len(rows), "loaded": sum(r["reader"] == "loaded" for r in rows),
            "refused clearly": sum(r["reader"] == "refused" for r in rows),
            "crashed": sum(r["reader"] == "crashed" for r in rows),
            "silent-wrong": sum(r["reader"] == "silent-wrong" for r in rows),
            "predicted": sum(r["predict"] == "predicted" for r in rows),
            "predict refused": sum(r["predict"] == "refused" for r in rows),
            "predict crashed": sum(r["predict"] == "crashed" for r in rows)}


def main():
    import pydicom

    with tempfile.TemporaryDirectory() as tmp:
        rows = run_corpus(Path(tmp))
    print(f"pydicom {pydicom.__version__} test corpus, {len(rows)} files")
    print(f"{'file':42} {'modality':8} {'transfer syntax':30} {'photometric':14} {'reader':12} {'predict':9} detail")
    for r in rows:
        detail = (r["detail"] or r["predict_detail"]).replace("\n", " ")[:110]
        print(f"{r['file'][:42]:42} {r['modality'][:8]:8} {r['transfer_syntax']:30} {r['photometric'][:14]:14} "
              f"{r['reader']:12} {r['predict']:9} {detail}")
    print("\n" + ", ".join(f"{k}: {v}" for k, v in counts(rows).items()))
    return 0 if counts(rows)["crashed"] == counts(rows)["silent-wrong"] == counts(rows)["predict crashed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
