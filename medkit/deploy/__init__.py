"""Shipping a model (lesson 06): ONNX export and checks, latency, drift monitoring, a sanity gate, model cards, DICOM de-identification, the `medkit serve` DICOM node."""

from .deid import ACTIONS, BASIC_PROFILE, PROFILE, PROFILE_NAME, default_salt, deidentify, deidentify_file
from .drift import DriftMonitor, DriftResult, alarm_rates, sample_batches
from .files import dicom_modality, read_for_model
from .gate import SanityGate, Verdict, fit_gate, gate_path, predict_gated
from .latency import measure_latency
from .modelcard import DATASETS, ModelCard, dataset_provenance, subgroup_results, validation_results
from .onnx import (
    DEFAULT_MODALITIES,
    OPSET,
    ExportWrapper,
    OnnxPredictor,
    Verification,
    drift_path,
    export_checkpoint,
    export_onnx,
    export_verified,
    save_reference,
    sidecar_path,
    verify_onnx,
)
from .results import Pseudonymiser, read_results
from .serve import DicomNode, ServeConfig

__all__ = [
    "OPSET", "DEFAULT_MODALITIES", "ExportWrapper", "export_onnx", "export_checkpoint", "export_verified", "verify_onnx",
    "Verification",
    "OnnxPredictor", "sidecar_path", "drift_path", "dicom_modality", "read_for_model", "measure_latency",
    "DriftMonitor", "DriftResult", "save_reference", "sample_batches", "alarm_rates",
    "SanityGate", "Verdict", "fit_gate", "gate_path", "predict_gated", "DicomNode", "ServeConfig", "Pseudonymiser",
    "read_results",
    "DATASETS", "ModelCard", "dataset_provenance", "validation_results", "subgroup_results",
    "BASIC_PROFILE", "PROFILE", "ACTIONS", "PROFILE_NAME", "deidentify", "deidentify_file", "default_salt",
]
