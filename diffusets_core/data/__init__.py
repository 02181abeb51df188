"""Data: reading PTB-XL, MIMIC-IV-ECG (and the embedded cohort) or any WFDB folder, and
preparing them into a run directory (manifest + float32 shards, canonical leads, mV).

Main entry points: :func:`prepare_dataset` and :class:`SignalStore`. Imports are light:
neurokit2 is loaded only when R-peak detection is actually needed.
"""

from .folder import read_folder
from .leads import CANONICAL_LEADS, LeadMappingError, canonical_lead_name, lead_indices, map_leads, parse_lead_label
from .mimic import read_mimic
from .prepare import PrepareConfig, PrepareResult, list_records, prepare_dataset
from .preprocess import PreprocessConfig, ProcessedRecord, process_ref
from .ptbxl import read_ptbxl
from .records import DatasetLayoutError, RecordRef
from .reference_ecg import ReferenceECGError, ReferenceNotFoundError, load_reference_ecgs, reference_from_run
from .splits import assign_splits
from .store import MANIFEST_COLUMNS, SignalStore, read_manifest, read_preprocess_config
from .subjects import NoUsableRecordsError, SplitError
from .wfdb_io import (
    AllNaNError,
    ECGRecord,
    HeaderError,
    HeaderSignalMismatchError,
    MissingLeadError,
    RecordError,
    RecordNotFoundError,
    TruncatedSignalError,
    UnexpectedSamplingRateError,
    UnitError,
    header_comments,
    read_record,
)

__all__ = [
    "CANONICAL_LEADS",
    "LeadMappingError",
    "canonical_lead_name",
    "lead_indices",
    "map_leads",
    "parse_lead_label",
    "DatasetLayoutError",
    "RecordRef",
    "ECGRecord",
    "RecordError",
    "RecordNotFoundError",
    "HeaderError",
    "TruncatedSignalError",
    "HeaderSignalMismatchError",
    "MissingLeadError",
    "UnexpectedSamplingRateError",
    "UnitError",
    "AllNaNError",
    "read_record",
    "header_comments",
    "read_ptbxl",
    "read_mimic",
    "read_folder",
    "PreprocessConfig",
    "ProcessedRecord",
    "process_ref",
    "assign_splits",
    "SplitError",
    "NoUsableRecordsError",
    "MANIFEST_COLUMNS",
    "SignalStore",
    "read_manifest",
    "read_preprocess_config",
    "load_reference_ecgs",
    "reference_from_run",
    "ReferenceECGError",
    "ReferenceNotFoundError",
    "PrepareResult",
    "list_records",
    "prepare_dataset",
    "PrepareConfig",
]
